"""The engine's rules that need no kernel: shared by :class:`~mountkit.mounter.Mounter` and
:class:`~mountkit.fake.FakeMounter`.

Pure Python (no compiled extension), so that FakeMounter imports where mountkit's extension was
never built: what counts as the same filesystem family and the same mount, how a conflicting
mount is described, which errnos mean a dead filesystem, and how a mount point directory is removed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mountkit.errors import CORRUPTED_ERRNOS, CorruptedMountError, MountConflictError, MountError
from mountkit.nfs import NFS_FAMILY, versions

if TYPE_CHECKING:
    from mountkit.table import MountInfo


def classified(exc: MountError) -> MountError:
    """``exc`` as a CorruptedMountError when its errno says the filesystem is dead."""
    if exc.errno in CORRUPTED_ERRNOS and not isinstance(exc, CorruptedMountError):
        return CorruptedMountError(
            exc.errno, exc.operation, exc.filename, exc.filename2, exc.detail, exc.role, exc.step
        )
    return exc


def fs_family(fstype: str) -> str:
    return "nfs" if fstype in NFS_FAMILY else fstype


def remove_mountpoint_dir(name: str) -> None:
    """rmdir ``name`` (never its contents; the kernel refuses a mount point); missing is success."""
    try:
        os.rmdir(name)
    except FileNotFoundError:
        return
    except OSError as exc:
        err = exc.errno or errno.EIO
        detail = "not empty; its contents were left in place" if err == errno.ENOTEMPTY else None
        raise classified(MountError(err, "cleanup", name, None, detail)) from None


def _nfs_version(words: Iterable[str]) -> str | None:
    """The NFS version ``words`` ask for (the last one wins, as in the kernel); None: no version given."""
    found = versions(words)
    return found[-1] if found else None


def mount_conflict(
    info: MountInfo | None,
    target: str,
    fstype: str,
    source: str,
    readonly: bool,
    data: Iterable[str],
    same_source: bool,
) -> MountConflictError | None:
    """The error for mounting ``source`` at ``target`` over ``info``; None when ``info`` is that mount.

    Mounting what is mounted is a no-op only if it is the same mount in the ways a caller can see:
    the source and filesystem family (``same_source`` is the caller's comparison), the read-only
    state, and for NFS the protocol version (``vers=4`` is met by any 4.x the client negotiated).
    Other options are not compared: the kernel rewrites them (defaults, ``noac``).
    """
    asked = f"asked for {fstype} {source!r}{' read-only' if readonly else ''}"
    if info is None or fs_family(info.fs_type) != fs_family(fstype) or not same_source:
        return MountConflictError(
            errno.EBUSY, "mount", source, target, f"{describe(info)} is mounted there; {asked}"
        )
    if info.readonly != readonly:
        why = f"it is mounted {'read-only' if info.readonly else 'read-write'}"
        return MountConflictError(errno.EBUSY, "mount", source, target, f"{why}; {asked}")
    if fs_family(fstype) == "nfs":
        want, shown = _nfs_version(data), _nfs_version(info.super_options)
        if (
            want is not None
            and shown is not None
            and want != shown
            and not (want == "4" and shown.startswith("4"))
        ):
            why = f"it is mounted with NFS version {shown}"
            return MountConflictError(errno.EBUSY, "mount", source, target, f"{why}; {asked} version {want}")
    return None


def describe(info: MountInfo | None) -> str:
    """How a conflict names what is mounted (``None``: a mount the table could not show)."""
    if info is None:
        return "another mount"
    mode = "ro" if info.readonly else "rw"
    return f"{info.fs_type} {info.source!r} (root {info.root!r}, {mode})"
