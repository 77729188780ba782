"""Bindings of cext/sys/fanotify.c: a fanotify group and the parser of its FAN_REPORT_MNT event stream."""

from __future__ import annotations

from mountkit._c.core import c_string as _cstr
from mountkit._c.core import check_supported as _check_supported
from mountkit._c.core import failure as _fail
from mountkit._mountkit_sys import ffi, lib
from mountkit._types import PathArg


def fanotify_init(flags: int, event_f_flags: int) -> int:
    """fanotify_init(2); returns a new file descriptor the caller must close."""
    _check_supported("fanotify_init")
    fd = lib.mk_fanotify_init(flags, event_f_flags)
    if fd < 0:
        raise _fail("fanotify_init")
    return int(fd)


def fanotify_mark(fd: int, flags: int, mask: int, dfd: int, path: PathArg | None = None) -> None:
    """fanotify_mark(2); EINVAL for a flag or event the kernel does not know."""
    if lib.mk_fanotify_mark(fd, flags, mask, dfd, _cstr(path, "fanotify_mark")) != 0:
        raise _fail("fanotify_mark", path)


def fan_mount_events(data: bytes) -> list[tuple[int, int]]:
    """``(mask, unique mount id)`` per event in bytes read from a FAN_REPORT_MNT group (id 0: none).

    Raises ValueError when the bytes are not whole events of the metadata version mountkit knows.
    """
    cap = len(data) // ffi.sizeof("struct mk_fanotify_event_metadata") + 1
    masks = ffi.new("uint64_t[]", cap)
    ids = ffi.new("uint64_t[]", cap)
    n = lib.mk_fan_mnt_events(data, len(data), masks, ids, cap)
    if n < 0:
        raise ValueError("malformed fanotify event stream")
    return list(zip(masks[0:n], ids[0:n]))
