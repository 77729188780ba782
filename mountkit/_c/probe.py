"""Bindings of cext/sys/probe.c: the syscalls that may hang (statx, statfs, umount2) on a C worker pool,
with a deadline; a worker that does not answer is abandoned (cext/sys/probe.h).  Concurrent probes of one
path (same op and flags, never an unmount) share one in-flight probe, each caller keeping its own deadline."""

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
    lib.MK_PROBE_FAILED_OPEN: "open_beneath",
    lib.MK_PROBE_FAILED_RMDIR: "cleanup",
}


def probe(op: int, path: PathArg, flags: int, timeout: float, operation: str) -> bool | None:
    """Run probe ``op`` (``PROBE_*``) of ``path`` on a C pool worker, waiting at most ``timeout`` s.

    ``flags`` are the statx's AT_* flags, or umount2's for ``PROBE_UNMOUNT`` (:func:`unmount`).
    Returns whether ``path`` is a mount root (``None``: the kernel cannot tell; ``PROBE_STATFS``
    and ``PROBE_UNMOUNT`` return ``None`` too).  A failed syscall: MountError naming it.  No answer
    in time: CorruptedMountError(ETIMEDOUT) naming ``operation``; the worker is abandoned
    (cext/sys/probe.h); nothing else raises CorruptedMountError here.  While a probe of the same
    ``op``, ``flags`` and ``path`` is in flight (and has kept no caller past its deadline), this call
    waits for its answer, or error, instead of starting another; an answer is never reused afterwards.
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


def cleanup_beneath(
    root: PathArg, parent: str, name: str, flags: int, open_flags: int, resolve: int, timeout: float
) -> None:
    """Unmount ``name`` in ``parent`` (opened beneath ``root``) and remove its directory, in one probe
    job with a deadline (cext/sys/probe.h mk_probe_cleanup_beneath).

    A failed step: MountError naming it (``open_beneath`` with the parent, ``umount`` or ``cleanup``
    with ``parent/name``), the parent's naming the root as its second path.  No answer in time:
    CorruptedMountError(ETIMEDOUT) naming ``unmount``, the worker abandoned.
    """
    err = ffi.new("int[2]")
    where = f"{parent}/{name}"
    rc = lib.mk_probe_cleanup_beneath(
        _b(root, "open"),
        _b(parent, "open_beneath"),
        _b(name, "unmount"),
        flags,
        open_flags,
        resolve,
        max(1, round(timeout * 1000)),
        err,
        err + 1,
    )
    if rc == -3:
        raise CorruptedMountError(
            errno.ETIMEDOUT, "unmount", where, None, f"no answer within {timeout:g} s; probe abandoned"
        )
    if rc == -1:
        if err[1] == lib.MK_PROBE_FAILED_OPEN:
            raise MountError(err[0], "open_beneath", parent, _name(root))
        raise MountError(err[0], _PROBE_FAILED[err[1]], where)
    if rc == -4:
        raise MountError(err[0], "unmount", where, None, "cannot start a probe thread")


def probe_counts() -> tuple[int, int, int]:
    """(probes abandoned so far, abandoned probes still blocked, C probe workers alive)."""
    return int(lib.mk_probe_abandoned()), int(lib.mk_probe_hung()), int(lib.mk_probe_workers())


def probe_jobs() -> tuple[int, int]:
    """(probes handed to the C pool so far, callers that joined a probe in flight instead)."""
    return int(lib.mk_probe_started()), int(lib.mk_probe_joined())
