"""Bindings of cext/common/mountinfo.c as the cffi module has it: the compact table's column layout and
its scans (the CPython-API module parses and builds entries: :mod:`mountkit._c.table`)."""

from __future__ import annotations

from mountkit._mountkit_sys import ffi, lib

#: uint32 columns per entry, and their indices (cext/common/mountinfo.h describes the layout)
MI_STRIDE: int = lib.MK_MI_STRIDE
MI_ROOT: int = lib.MK_MI_ROOT
MI_MOUNT_POINT: int = lib.MK_MI_MOUNT_POINT
MI_FS_TYPE: int = lib.MK_MI_FS_TYPE
MI_SOURCE: int = lib.MK_MI_SOURCE
MI_PARENT_ID: int = lib.MK_MI_PARENT_ID
MI_MINOR: int = lib.MK_MI_MINOR


def mountinfo_select(buf: bytes, cols: memoryview, n: int, col: int, needle: bytes, under: bool) -> list[int]:
    """Indices of entries whose text column ``col`` is ``needle`` (or, ``under``, a path below it)."""
    hits = ffi.new("uint32_t[]", max(n, 1))
    k = lib.mk_mi_select(buf, ffi.from_buffer("uint32_t[]", cols), n, col, under, needle, len(needle), hits)
    return list(hits[0:k])


def mountinfo_select_int(cols: memoryview, n: int, col: int, value: int) -> list[int]:
    """Indices of entries whose number column ``col`` equals ``value``."""
    hits = ffi.new("uint32_t[]", max(n, 1))
    k = lib.mk_mi_select_int(ffi.from_buffer("uint32_t[]", cols), n, col, value, hits)
    return list(hits[0:k])
