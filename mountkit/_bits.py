"""The flags the mount verbs pass, as plain ints computed once (IntFlag arithmetic costs about a
microsecond per operation), and the per-mount flag set mount(2) takes.
"""

from __future__ import annotations

import os

from mountkit.flags import (
    AT,
    FSCONFIG,
    FSPICK,
    MNT,
    MOUNT_ATTR,
    MOVE_MOUNT,
    MS,
    OPEN_TREE,
    PROBE_AT,
    RESOLVE,
    STATMOUNT,
    STATX,
)

# Plain ints, computed once: IntFlag arithmetic costs about a microsecond per operation.
#: statx flags of a probe: about the path itself, never triggering an automount or a server round trip
_PROBE_AT = int(PROBE_AT)
_SOURCE_AT = int(AT.NO_AUTOMOUNT | AT.STATX_DONT_SYNC)
_STATX_INO = int(STATX.INO)
_STATX_INO_MNT = int(STATX.INO | STATX.MNT_ID_UNIQUE)
_STATX_MNT_ID_UNIQUE = int(STATX.MNT_ID_UNIQUE)
_SM_BASIC = int(STATMOUNT.MNT_BASIC)
_CLONE = int(OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC)
_RECURSIVE = int(AT.RECURSIVE)
_EMPTY_PATH = int(AT.EMPTY_PATH)
_F_EMPTY_PATH = int(MOVE_MOUNT.F_EMPTY_PATH)
_T_EMPTY_PATH = int(MOVE_MOUNT.T_EMPTY_PATH)
_SET_FLAG = int(FSCONFIG.SET_FLAG)
_SET_STRING = int(FSCONFIG.SET_STRING)
_CMD_CREATE = int(FSCONFIG.CMD_CREATE)
_CMD_RECONFIGURE = int(FSCONFIG.CMD_RECONFIGURE)
_FSPICK = int(FSPICK.CLOEXEC | FSPICK.SYMLINK_NOFOLLOW | FSPICK.NO_AUTOMOUNT)
_SETATTR_AT = int(AT.SYMLINK_NOFOLLOW | AT.NO_AUTOMOUNT)
_RDONLY_ATTR = int(MOUNT_ATTR.RDONLY)
_O_PATH = os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_NO_XDEV = int(RESOLVE.NO_XDEV)
_NOFOLLOW = int(MNT.UMOUNT_NOFOLLOW)
_DETACH = int(MNT.DETACH)
_BIND = int(MS.BIND)
_BIND_REC = int(MS.BIND | MS.REC)
_BIND_REMOUNT = int(MS.REMOUNT | MS.BIND)
#: the per-mount flags (as opposed to superblock flags) mount(2) takes
_PER_MOUNT = (
    MS.RDONLY
    | MS.NOSUID
    | MS.NODEV
    | MS.NOEXEC
    | MS.NOSYMFOLLOW
    | MS.NOATIME
    | MS.NODIRATIME
    | MS.RELATIME
    | MS.STRICTATIME
)
