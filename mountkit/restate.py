"""MS_REMOUNT replaces the per-mount flags rather than amending them: the flags in force (statvfs), and
the full set a legacy remount must restate.
"""

from __future__ import annotations

import errno
import os

from mountkit._bits import _PER_MOUNT
from mountkit.errors import MountError
from mountkit.flags import MS, ST_NOSYMFOLLOW
from mountkit.options import ParsedOptions
from mountkit.rules import classified as _classified

#: statvfs f_flag bit -> mount flag, for the flags a legacy bind remount must restate (the kernel
#: keeps the atime mode by itself when none is given)
_STATVFS_FLAGS = (
    (os.ST_RDONLY, MS.RDONLY),
    (os.ST_NOSUID, MS.NOSUID),
    (os.ST_NODEV, MS.NODEV),
    (os.ST_NOEXEC, MS.NOEXEC),
    (ST_NOSYMFOLLOW, MS.NOSYMFOLLOW),
)


def _current_flags(path: str) -> MS:
    """The per-mount flags in force at ``path`` (statvfs reports them), for a legacy bind remount."""
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError as exc:
        raise _classified(MountError(exc.errno or errno.EIO, "statvfs", path)) from None
    current = MS(0)
    for bit, flag in _STATVFS_FLAGS:
        if f_flag & bit:
            current |= flag
    return current


def _restated(path: str, opts: ParsedOptions, extra: int = 0) -> int:
    """The full per-mount flag set for MS_REMOUNT, which replaces rather than amends: current ± options."""
    return int(((_current_flags(path) | opts.flags | extra) & ~opts.clear) & _PER_MOUNT)
