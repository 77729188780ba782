"""Is this path a mount point, answered without reading the mount table: statx's STATX_ATTR_MOUNT_ROOT (5.8+),
else openat2 with RESOLVE_NO_XDEV from the parent (5.6+), else the table; bounded by a probe deadline
when asked.
"""

from __future__ import annotations

import errno
import os

from mountkit import _sys, probe
from mountkit._bits import _EMPTY_PATH, _NO_XDEV, _O_PATH, _PROBE_AT
from mountkit._types import PathArg
from mountkit.errors import MountError, UnsupportedError
from mountkit.flags import AT_FDCWD
from mountkit.pinning import _Spot
from mountkit.rules import classified as _classified
from mountkit.table import find_mount


def _is_mountpoint(path: PathArg) -> bool:
    """The fast paths, cheapest first; missing paths are not mount points."""
    try:
        root = _sys.is_mount_root(path, _PROBE_AT)  # kernel >= 5.8: one statx, right for binds too
        if root is not None:
            return root
        return _crosses_mount(os.path.abspath(os.fsdecode(path)))
    except MountError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise _classified(exc) from None


def _crosses_mount(path: str) -> bool:
    """openat2(RESOLVE_NO_XDEV) from the parent (kernel >= 5.6), else the mount table."""
    parent, name = os.path.split(path)
    if not name:
        return True  # "/" is always a mount root
    try:
        pfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise MountError(exc.errno or errno.EIO, "is_mountpoint", path) from None
    try:
        os.close(_sys.openat2(name, _O_PATH, _NO_XDEV, dfd=pfd))
        return False
    except UnsupportedError:
        return find_mount(os.path.join(os.path.realpath(parent), name)) is not None
    except MountError as exc:
        if exc.errno == errno.EXDEV:
            return True
        raise
    finally:
        os.close(pfd)


def is_mountpoint(path: PathArg, *, timeout: float | None = None) -> bool:
    """Is ``path`` itself the root of a mount (a symlink is never followed)?

    Answers without reading the mount table: statx's STATX_ATTR_MOUNT_ROOT
    (5.8+), else openat2 with RESOLVE_NO_XDEV from the parent (5.6+), else the
    table.  Unlike ``os.path.ismount`` and ``st_dev`` comparison it is right for
    a bind mount within one filesystem.  A missing path is not a mount point.
    Raises CorruptedMountError when the filesystem is stale or disconnected, or
    (with ``timeout``) does not answer in time; the probe then runs on a thread
    that can be abandoned (see :mod:`mountkit.probe`).
    """
    if timeout is None:
        return _is_mountpoint(path)
    root = _probe(_sys.PROBE_MOUNT_ROOT, path, timeout, "is_mountpoint")
    if root is not None:
        return root
    return probe.run_with_deadline(lambda: _is_mountpoint(path), timeout, "is_mountpoint", os.fsdecode(path))


def _probe(op: int, path: PathArg, timeout: float, operation: str) -> bool | None:
    """:func:`mountkit._sys.probe` of ``path``; a missing path is no mount root, a dead one corrupted."""
    try:
        return _sys.probe(op, path, _PROBE_AT, timeout, operation)
    except MountError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise _classified(exc) from None


def _spot_is_mountpoint(spot: _Spot) -> bool:
    """:func:`_is_mountpoint` of a pinned spot (one statx of the descriptor), by name before 5.8."""
    if spot.dfd == AT_FDCWD:
        return _is_mountpoint(spot.path)
    try:
        root = _sys.is_mount_root("", _PROBE_AT | _EMPTY_PATH, dfd=spot.dfd)
    except MountError as exc:
        raise _classified(exc) from None
    return _crosses_mount(os.readlink(spot.name)) if root is None else root
