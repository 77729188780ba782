"""The names the rest of mountkit uses of its C code, gathered from :mod:`mountkit._c` (one module per C
unit, the only importers of the compiled modules).

Callers write ``_sys.mount(...)``, ``_sys.probe(...)``: one import, whichever C unit a call is in.
"""

from __future__ import annotations

from mountkit._c.core import mark_unsupported, supported
from mountkit._c.fanotify import fan_mount_events, fanotify_init, fanotify_mark
from mountkit._c.mountinfo import (
    MI_FS_TYPE,
    MI_MINOR,
    MI_MOUNT_POINT,
    MI_PARENT_ID,
    MI_ROOT,
    MI_SOURCE,
    MI_STRIDE,
    mountinfo_select,
    mountinfo_select_int,
)
from mountkit._c.probe import (
    PROBE_LIVE_ROOT,
    PROBE_MOUNT_ROOT,
    PROBE_STATFS,
    PROBE_UNMOUNT,
    probe,
    probe_counts,
)
from mountkit._c.statmount import StatMount, listmount, statmount, statmount_records, statmount_table
from mountkit._c.syscalls import (
    BIND_RO,
    BIND_RO_KNOWN,
    BIND_ROOT,
    BIND_SAME,
    Statx,
    bind_state,
    fs_log,
    fsconfig,
    fsmount,
    fsopen,
    fspick,
    is_mount_root,
    mount,
    mount_setattr,
    move_mount,
    open_beneath,
    open_tree,
    openat2,
    statx,
    umount2,
    unmount,
    unshare,
)
from mountkit._c.table import MI_CHUNK, mountinfo_entries, mountinfo_parse, mountinfo_read

__all__ = [
    "BIND_RO",
    "BIND_ROOT",
    "BIND_RO_KNOWN",
    "BIND_SAME",
    "MI_CHUNK",
    "MI_FS_TYPE",
    "MI_MINOR",
    "MI_MOUNT_POINT",
    "MI_PARENT_ID",
    "MI_ROOT",
    "MI_SOURCE",
    "MI_STRIDE",
    "PROBE_LIVE_ROOT",
    "PROBE_MOUNT_ROOT",
    "PROBE_STATFS",
    "PROBE_UNMOUNT",
    "StatMount",
    "Statx",
    "bind_state",
    "fan_mount_events",
    "fanotify_init",
    "fanotify_mark",
    "fs_log",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "is_mount_root",
    "listmount",
    "mark_unsupported",
    "mount",
    "mount_setattr",
    "mountinfo_entries",
    "mountinfo_parse",
    "mountinfo_read",
    "mountinfo_select",
    "mountinfo_select_int",
    "move_mount",
    "open_beneath",
    "open_tree",
    "openat2",
    "probe",
    "probe_counts",
    "statmount",
    "statmount_records",
    "statmount_table",
    "statx",
    "supported",
    "umount2",
    "unmount",
    "unshare",
]
