"""Bindings of cext/sys/statmount.c (and sys.c's listmount/statmount): one mount by unique id, and whole
tables in the layout of cext/common/mountinfo.h (kernel 6.8+)."""

from __future__ import annotations

import errno
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from mountkit._c.core import check_supported as _check_supported
from mountkit._c.core import failure as _fail
from mountkit._c.mountinfo import MI_STRIDE
from mountkit._mountkit_sys import ffi, lib
from mountkit.errors import InvalidOptionError
from mountkit.flags import LSMT_ROOT, MNT_ID_REQ_SIZE_VER0, STATMOUNT


def _id_req(mnt_id: int, param: int = 0) -> object:
    req = ffi.new("struct mk_mnt_id_req *")
    req.size = MNT_ID_REQ_SIZE_VER0
    req.mnt_id, req.param = mnt_id, param
    return req


def listmount(mnt_id: int = LSMT_ROOT, batch: int = 4096) -> list[int]:
    """All unique mount ids below ``mnt_id`` (the whole namespace by default), paging as needed.

    The watcher keys what it knows by these ids (statmount_table's records carry the old ones).
    """
    _check_supported("listmount")
    ids = ffi.new("uint64_t[]", batch)
    out: list[int] = []
    last = 0
    while True:
        n = lib.mk_listmount(_id_req(mnt_id, last), ids, batch, 0)
        if n < 0:
            raise _fail("listmount")
        out.extend(ids[0:n])
        if n < batch:
            return out
        last = out[-1]


class StatMount(NamedTuple):
    """statmount(2) results; a string field is ``None`` when the kernel did not fill it."""

    mask: int
    sb_dev_major: int
    sb_dev_minor: int
    sb_flags: int
    mnt_id: int
    mnt_parent_id: int
    mnt_id_old: int
    mnt_parent_id_old: int
    mnt_attr: int
    mnt_propagation: int
    mnt_peer_group: int
    mnt_master: int
    propagate_from: int
    fs_type: bytes | None
    fs_subtype: bytes | None
    mnt_root: bytes | None
    mnt_point: bytes | None
    mnt_opts: bytes | None
    sb_source: bytes | None


_SM_STRINGS = (
    ("fs_type", STATMOUNT.FS_TYPE),
    ("fs_subtype", STATMOUNT.FS_SUBTYPE),
    ("mnt_root", STATMOUNT.MNT_ROOT),
    ("mnt_point", STATMOUNT.MNT_POINT),
    ("mnt_opts", STATMOUNT.MNT_OPTS),
    ("sb_source", STATMOUNT.SB_SOURCE),
)
_SM_STRING_MASK = sum(bit for _, bit in _SM_STRINGS)
_SM_NO_STRINGS: dict[str, bytes | None] = dict.fromkeys(name for name, _ in _SM_STRINGS)
_sm_bufsize = 8192


def statmount(mnt_id: int, mask: int) -> StatMount:
    """statmount(2) of one mount by unique id, growing the buffer on EOVERFLOW.

    A mask without string fields needs only the fixed struct, so the hot path (is this bind
    read-only?) neither allocates nor zeroes the 8 KiB a full record may need.
    """
    global _sm_bufsize
    _check_supported("statmount")
    req = _id_req(mnt_id, mask)  # statmount takes its mask in the request's param
    size = _sm_bufsize if mask & _SM_STRING_MASK else ffi.sizeof("struct mk_statmount")
    while True:
        raw = ffi.new("char[]", size)
        sm = ffi.cast("struct mk_statmount *", raw)
        if lib.mk_statmount(req, sm, size, 0) == 0:
            break
        if ffi.errno != errno.EOVERFLOW:
            raise _fail("statmount")
        size = _sm_bufsize = max(size, _sm_bufsize) * 2
    got = sm.mask
    strings = (
        {name: ffi.string(sm.str + getattr(sm, name)) if got & bit else None for name, bit in _SM_STRINGS}
        if got & _SM_STRING_MASK
        else _SM_NO_STRINGS
    )
    return StatMount(
        mask=got,
        sb_dev_major=sm.sb_dev_major,
        sb_dev_minor=sm.sb_dev_minor,
        sb_flags=sm.sb_flags,
        mnt_id=sm.mnt_id,
        mnt_parent_id=sm.mnt_parent_id,
        mnt_id_old=sm.mnt_id_old,
        mnt_parent_id_old=sm.mnt_parent_id_old,
        mnt_attr=sm.mnt_attr,
        mnt_propagation=sm.mnt_propagation,
        mnt_peer_group=sm.mnt_peer_group,
        mnt_master=sm.mnt_master,
        propagate_from=sm.propagate_from,
        **strings,
    )


def _sm_table(t: object) -> tuple[bytes, array[int], int]:
    """The C table as Python objects: one copy of each array (the bytes type cannot adopt C memory)."""
    tab: Any = t
    cols = array("I")
    cols.frombytes(ffi.buffer(tab.cols, tab.n * MI_STRIDE * 4) if tab.n else b"")
    return (ffi.buffer(tab.buf, tab.len)[:] if tab.len else b""), cols, int(tab.n)


def statmount_table(
    ids: Sequence[int] | None = None, *, threads: int = 1, dev: tuple[int, int] | None = None
) -> tuple[bytes, array[int], int]:
    """Every mount of this namespace (or those of unique ``ids``, or of device ``dev``, a
    (major, minor)) by listmount + statmount in C.

    The result has :func:`mountinfo_parse`'s layout, with the words mountinfo shows.  Mounts gone
    meanwhile are left out.  ``threads`` > 1 spreads the statmount calls (one per mount) over that
    many threads, without the GIL (fewer for small tables).  UnsupportedError before 6.8.
    """
    if ids is not None and dev is not None:
        raise InvalidOptionError("statmount", "ids or dev, not both")
    _check_supported("statmount")
    t = ffi.new("struct mk_sm_table *")
    try:
        if dev is not None:
            rc = lib.mk_sm_read_dev(dev[0], dev[1], t)
        elif ids is None:
            rc = lib.mk_sm_read_all(threads, t)
        else:
            rc = lib.mk_sm_read_ids(ffi.new("uint64_t[]", list(ids)), len(ids), threads, t)
        if rc != 0:
            raise _fail("statmount")
        return _sm_table(t)
    finally:
        lib.mk_sm_free(t)


_SM_NUMBERS = int(STATMOUNT.SB_BASIC | STATMOUNT.MNT_BASIC | STATMOUNT.PROPAGATE_FROM)


def statmount_records(records: Iterable[StatMount]) -> tuple[bytes, array[int], int]:
    """:func:`statmount_table` of records already read (statmount(2) results, e.g. from a notification)."""
    t = ffi.new("struct mk_sm_table *")
    head = ffi.sizeof("struct mk_statmount")
    try:
        for rec in records:
            strings = bytearray()
            offsets: dict[str, int] = {}
            mask = _SM_NUMBERS
            for name, bit in _SM_STRINGS:
                value = getattr(rec, name)
                if value is not None:
                    offsets[name], mask = len(strings), mask | bit
                    strings += value + b"\0"
            raw = ffi.new("char[]", head + len(strings))
            sm: Any = ffi.cast("struct mk_statmount *", raw)
            for field in StatMount._fields:
                if field not in offsets and field not in _SM_NO_STRINGS:
                    setattr(sm, field, getattr(rec, field))
            for name, offset in offsets.items():
                setattr(sm, name, offset)
            sm.mask = mask
            ffi.memmove(sm.str, bytes(strings), len(strings))
            if lib.mk_sm_append(sm, t) != 0:
                raise MemoryError("statmount records")
        return _sm_table(t)
    finally:
        lib.mk_sm_free(t)
