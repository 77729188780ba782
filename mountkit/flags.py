"""Kernel ABI constants (uapi values), as flags enums.

Kept in Python rather than read from the build host's headers, which may
predate the newer mount API; the values are fixed by the kernel ABI.
"""

from __future__ import annotations

import enum


class MS(enum.IntFlag):
    """mount(2) flags."""

    RDONLY = 1
    NOSUID = 2
    NODEV = 4
    NOEXEC = 8
    SYNCHRONOUS = 16
    REMOUNT = 32
    MANDLOCK = 64
    DIRSYNC = 128
    NOSYMFOLLOW = 256
    NOATIME = 1024
    NODIRATIME = 2048
    BIND = 4096
    MOVE = 8192
    REC = 16384
    SILENT = 32768
    POSIXACL = 1 << 16
    UNBINDABLE = 1 << 17
    PRIVATE = 1 << 18
    SLAVE = 1 << 19
    SHARED = 1 << 20
    RELATIME = 1 << 21
    KERNMOUNT = 1 << 22
    I_VERSION = 1 << 23
    STRICTATIME = 1 << 24
    LAZYTIME = 1 << 25


PROPAGATION_MASK = MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE


class MNT(enum.IntFlag):
    """umount2(2) flags."""

    FORCE = 1
    DETACH = 2
    EXPIRE = 4
    UMOUNT_NOFOLLOW = 8


class AT(enum.IntFlag):
    """*at(2) flags."""

    SYMLINK_NOFOLLOW = 0x100
    REMOVEDIR = 0x200
    SYMLINK_FOLLOW = 0x400
    NO_AUTOMOUNT = 0x800
    EMPTY_PATH = 0x1000
    STATX_FORCE_SYNC = 0x2000
    STATX_DONT_SYNC = 0x4000
    RECURSIVE = 0x8000


AT_FDCWD = -100
#: the *at flags of a probe that must not act on what it looks at: no symlink followed, no
#: automount triggered, no round trip to a network filesystem's server for attributes
PROBE_AT = AT.SYMLINK_NOFOLLOW | AT.NO_AUTOMOUNT | AT.STATX_DONT_SYNC


class OPEN_TREE(enum.IntFlag):
    CLONE = 1
    CLOEXEC = 0o2000000


class MOVE_MOUNT(enum.IntFlag):
    F_SYMLINKS = 0x1
    F_AUTOMOUNTS = 0x2
    F_EMPTY_PATH = 0x4
    T_SYMLINKS = 0x10
    T_AUTOMOUNTS = 0x20
    T_EMPTY_PATH = 0x40
    SET_GROUP = 0x100
    BENEATH = 0x200


class MOUNT_ATTR(enum.IntFlag):
    """mount_setattr(2) / fsmount(2) attributes."""

    RDONLY = 0x1
    NOSUID = 0x2
    NODEV = 0x4
    NOEXEC = 0x8
    RELATIME = 0x0
    NOATIME = 0x10
    STRICTATIME = 0x20
    NODIRATIME = 0x80
    IDMAP = 0x100000
    NOSYMFOLLOW = 0x200000


MOUNT_ATTR_ATIME_MASK = 0x70


class FSCONFIG(enum.IntEnum):
    SET_FLAG = 0
    SET_STRING = 1
    SET_BINARY = 2
    SET_PATH = 3
    SET_PATH_EMPTY = 4
    SET_FD = 5
    CMD_CREATE = 6
    CMD_RECONFIGURE = 7
    CMD_CREATE_EXCL = 8


FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1


class FSPICK(enum.IntFlag):
    CLOEXEC = 0x1
    SYMLINK_NOFOLLOW = 0x2
    NO_AUTOMOUNT = 0x4
    EMPTY_PATH = 0x8


#: superblock flags of mount(2) -> the fsconfig(FSCONFIG_SET_FLAG) key every fs_context takes for it
#: (fs/fs_context.c common_set_sb_flag; ``ro`` also needs MOUNT_ATTR_RDONLY on the mount itself)
SB_FLAG_KEYS: tuple[tuple[MS, str], ...] = (
    (MS.RDONLY, "ro"),
    (MS.SYNCHRONOUS, "sync"),
    (MS.DIRSYNC, "dirsync"),
    (MS.LAZYTIME, "lazytime"),
    (MS.MANDLOCK, "mand"),
)

#: the longest key or string value fsconfig(2) copies in (strndup_user(..., 256) with its NUL)
FSCONFIG_MAX_STRING = 255


class STATX(enum.IntFlag):
    TYPE = 0x1
    MODE = 0x2
    NLINK = 0x4
    UID = 0x8
    GID = 0x10
    ATIME = 0x20
    MTIME = 0x40
    CTIME = 0x80
    INO = 0x100
    SIZE = 0x200
    BLOCKS = 0x400
    BASIC_STATS = 0x7FF
    BTIME = 0x800
    MNT_ID = 0x1000
    DIOALIGN = 0x2000
    MNT_ID_UNIQUE = 0x4000


STATX_ATTR_MOUNT_ROOT = 0x2000
#: statvfs f_flag for a nosymfollow mount (5.10+; the os module has no ST_NOSYMFOLLOW)
ST_NOSYMFOLLOW = 0x2000


class RESOLVE(enum.IntFlag):
    """openat2(2) resolve flags."""

    NO_XDEV = 0x1
    NO_MAGICLINKS = 0x2
    NO_SYMLINKS = 0x4
    BENEATH = 0x8
    IN_ROOT = 0x10
    CACHED = 0x20


class STATMOUNT(enum.IntFlag):
    SB_BASIC = 0x1
    MNT_BASIC = 0x2
    PROPAGATE_FROM = 0x4
    MNT_ROOT = 0x8
    MNT_POINT = 0x10
    FS_TYPE = 0x20
    MNT_NS_ID = 0x40
    MNT_OPTS = 0x80
    FS_SUBTYPE = 0x100
    SB_SOURCE = 0x200
    OPT_ARRAY = 0x400
    OPT_SEC_ARRAY = 0x800


#: listmount(2): the root of the namespace
LSMT_ROOT = 0xFFFFFFFFFFFFFFFF
MNT_ID_REQ_SIZE_VER0 = 24

#: superblock flags as statmount reports them in sb_flags
SB_RDONLY = 0x1
SB_LAZYTIME = 1 << 25

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


class FAN_INIT(enum.IntFlag):
    """fanotify_init(2) flags for a mount-notification group (FAN_REPORT_MNT: Linux 6.15+)."""

    CLOEXEC = 0x1
    NONBLOCK = 0x2
    UNLIMITED_QUEUE = 0x10
    REPORT_MNT = 0x4000


class FAN_EVENT(enum.IntFlag):
    """fanotify event mask bits of a FAN_REPORT_MNT group; a move reports ATTACH | DETACH."""

    Q_OVERFLOW = 0x4000
    MNT_ATTACH = 0x01000000
    MNT_DETACH = 0x02000000


FAN_MARK_ADD = 0x1
#: mark a mount namespace, given as an nsfs fd (/proc/self/ns/mnt)
FAN_MARK_MNTNS = 0x110
