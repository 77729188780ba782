"""What every binding module of :mod:`mountkit._c` shares: a path as the C code takes it, ``-1/errno``
as :class:`~mountkit.errors.MountError`, and which syscalls this kernel lacks.

ENOSYS is learnt once (by any module), then raised without a syscall, so callers fall back cheaply.
"""

from __future__ import annotations

import errno
import os

from mountkit._mountkit_sys import ffi
from mountkit._types import PathArg
from mountkit.errors import InvalidOptionError, MountError, UnsupportedError

_missing: set[str] = set()
_UNSUPPORTED = (errno.ENOSYS,)


def path_bytes(path: PathArg | None, op: str) -> bytes:
    """``path`` as the C code takes it (None: empty); a NUL byte in it: InvalidOptionError naming ``op``."""
    if path is None:
        return b""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise InvalidOptionError(op, "path contains a NUL byte", os.fsdecode(raw.replace(b"\0", b"\\0")))
    return raw


def c_string(value: PathArg | None, op: str) -> object:
    """:func:`path_bytes`, or NULL for None (an optional C string)."""
    return ffi.NULL if value is None else path_bytes(value, op)


def path_name(path: PathArg | None) -> str | None:
    """``path`` as an error names it."""
    return None if path is None else os.fsdecode(path)


def failure(op: str, path: PathArg | None = None, path2: PathArg | None = None) -> MountError:
    """The error of a C call that returned -1: UnsupportedError (remembered) for ENOSYS, else MountError."""
    err = ffi.errno
    if err in _UNSUPPORTED:
        _missing.add(op)
        return UnsupportedError(err, op, path_name(path), path_name(path2), "not supported by this kernel")
    return MountError(err, op, path_name(path), path_name(path2))


def check_supported(op: str) -> None:
    """Raise UnsupportedError, without a syscall, when ``op`` failed with ENOSYS before."""
    if op in _missing:
        raise UnsupportedError(errno.ENOSYS, op, None, None, "not supported by this kernel")


def supported(op: str) -> bool:
    """False once ``op`` (e.g. ``"open_tree"``) has failed with ENOSYS on this kernel."""
    return op not in _missing


def mark_unsupported(op: str) -> None:
    """Record that ``op`` must not be used (a kernel that rejects a needed flag, or a test)."""
    _missing.add(op)
