"""Bindings of cext/sys/probe.c: the syscalls that may hang (statx, statfs, umount2) on a C worker pool,
with a deadline; a worker that does not answer is abandoned (cext/sys/probe.h)."""

from __future__ import annotations

import errno

from mountkit._c.core import path_bytes as _b
from mountkit._c.core import path_name as _name
from mountkit._mountkit_sys import ffi, lib
from mountkit._types import PathArg
from mountkit.errors import CorruptedMountError, MountError

PROBE_MOUNT_ROOT: int = lib.MK_PROBE_MOUNT_ROOT
PROBE_STATFS: int = lib.MK_PROBE_STATFS
PROBE_LIVE_ROOT: int = lib.MK_PROBE_LIVE_ROOT
PROBE_UNMOUNT: int = lib.MK_PROBE_UNMOUNT
_PROBE_FAILED = {
    lib.MK_PROBE_FAILED_STATX: "statx",
    lib.MK_PROBE_FAILED_STATFS: "statfs",
    lib.MK_PROBE_FAILED_UNMOUNT: "umount",
}


def probe(op: int, path: PathArg, flags: int, timeout: float, operation: str) -> bool | None:
    """Run probe ``op`` (``PROBE_*``) of ``path`` on a C pool worker, waiting at most ``timeout`` s.

    ``flags`` are the statx's AT_* flags, or umount2's for ``PROBE_UNMOUNT`` (:func:`unmount`).
    Returns whether ``path`` is a mount root (``None``: the kernel cannot tell; ``PROBE_STATFS``
    and ``PROBE_UNMOUNT`` return ``None`` too).  A failed syscall: MountError naming it.  No answer
    in time: CorruptedMountError(ETIMEDOUT) naming ``operation``; the worker is abandoned
    (cext/sys/probe.h); nothing else raises CorruptedMountError here.
    """
    err = ffi.new("int[2]")
    rc = lib.mk_probe(op, _b(path, operation), flags, max(1, round(timeout * 1000)), err, err + 1)
    if rc == -3:
        raise CorruptedMountError(
            errno.ETIMEDOUT, operation, _name(path), None, f"no answer within {timeout:g} s; probe abandoned"
        )
    if rc == -1:
        raise MountError(err[0], _PROBE_FAILED[err[1]], _name(path))
    if rc == -4:
        raise MountError(err[0], operation, _name(path), None, "cannot start a probe thread")
    return None if rc == -2 or op in (PROBE_STATFS, PROBE_UNMOUNT) else rc == 1


def probe_counts() -> tuple[int, int, int]:
    """(probes abandoned so far, abandoned probes still blocked, C probe workers alive)."""
    return int(lib.mk_probe_abandoned()), int(lib.mk_probe_hung()), int(lib.mk_probe_workers())
