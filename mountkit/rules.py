"""The engine's rules that need no kernel: shared by :class:`~mountkit.mounter.Mounter` and
:class:`~mountkit.fake.FakeMounter`.

Pure Python (no compiled extension), so that FakeMounter imports where mountkit's extension was
never built: what counts as the same filesystem family, how a conflicting mount is described,
which errnos mean a dead filesystem, and how a mount point directory is removed.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Union

from mountkit.errors import CORRUPTED_ERRNOS, CorruptedMountError, MountError

if TYPE_CHECKING:
    from mountkit.table import MountInfo

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: filesystem types that are one family: mounting nfs4 where nfs is mounted is the same mount
NFS_FAMILY = frozenset({"nfs", "nfs4"})


def classified(exc: MountError) -> MountError:
    """``exc`` as a CorruptedMountError when its errno says the filesystem is dead."""
    if exc.errno in CORRUPTED_ERRNOS and not isinstance(exc, CorruptedMountError):
        return CorruptedMountError(exc.errno, exc.operation, exc.filename, exc.filename2, exc.detail)
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


def describe(info: MountInfo | None) -> str:
    """How a conflict names what is mounted (``None``: a mount the table could not show)."""
    if info is None:
        return "another mount"
    mode = "ro" if info.readonly else "rw"
    return f"{info.fs_type} {info.source!r} (root {info.root!r}, {mode})"
