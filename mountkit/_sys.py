"""The one module that touches the compiled modules (the cffi one, and cext/capi/'s CPython-API one).

It turns ``-1/errno`` into :class:`~mountkit.errors.MountError` (with the
operation and the path), converts paths to bytes, and remembers which newer
syscalls the running kernel lacks (ENOSYS is learnt once, then raised without
a syscall) so that callers can fall back cheaply.  cffi releases the GIL
around every call, so a call that blocks on a dead filesystem blocks only its
own thread.  Nothing outside this module sees a pointer or a raw errno.
"""

from __future__ import annotations

import errno
import os
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from mountkit._mountkit_sys import ffi, lib
from mountkit._mountkit_table import CHUNK as _CHUNK
from mountkit._mountkit_table import entries as _entries
from mountkit._mountkit_table import parse as _parse
from mountkit._mountkit_table import read as _read
from mountkit._types import PathArg
from mountkit.errors import SOURCE, CorruptedMountError, InvalidOptionError, MountError, UnsupportedError
from mountkit.flags import AT_FDCWD, LSMT_ROOT, MNT_ID_REQ_SIZE_VER0, STATMOUNT

_missing: set[str] = set()
_UNSUPPORTED = (errno.ENOSYS,)


def _b(path: PathArg | None, op: str) -> bytes:
    if path is None:
        return b""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise InvalidOptionError(op, "path contains a NUL byte", os.fsdecode(raw.replace(b"\0", b"\\0")))
    return raw


def _cstr(value: PathArg | None, op: str) -> object:
    return ffi.NULL if value is None else _b(value, op)


def _name(path: PathArg | None) -> str | None:
    return None if path is None else os.fsdecode(path)


def _fail(op: str, path: PathArg | None = None, path2: PathArg | None = None) -> MountError:
    err = ffi.errno
    if err in _UNSUPPORTED:
        _missing.add(op)
        return UnsupportedError(err, op, _name(path), _name(path2), "not supported by this kernel")
    return MountError(err, op, _name(path), _name(path2))


def _check_supported(op: str) -> None:
    if op in _missing:
        raise UnsupportedError(errno.ENOSYS, op, None, None, "not supported by this kernel")


def supported(op: str) -> bool:
    """False once ``op`` (e.g. ``"open_tree"``) has failed with ENOSYS on this kernel."""
    return op not in _missing


def mark_unsupported(op: str) -> None:
    """Record that ``op`` must not be used (a kernel that rejects a needed flag, or a test)."""
    _missing.add(op)


def mount(source: PathArg | None, target: PathArg, fstype: str | None, flags: int, data: str | None) -> None:
    """mount(2). ``data`` may hold secrets: it never enters an error."""
    rc = lib.mk_mount(
        _cstr(source, "mount"),
        _b(target, "mount"),
        ffi.NULL if fstype is None else fstype.encode(),
        flags,
        ffi.NULL if data is None else data.encode(),
    )
    if rc != 0:
        raise _fail("mount", target, source if flags else None)


def umount2(target: PathArg, flags: int = 0) -> None:
    if lib.mk_umount2(_b(target, "umount"), flags) != 0:
        raise _fail("umount", target)


def unmount(target: PathArg, flags: int = 0) -> None:
    """umount2 until nothing is left mounted at ``target`` (cext/sys.h ``mk_unmount``): one call."""
    if lib.mk_unmount(_b(target, "umount"), flags) != 0:
        raise _fail("umount", target)


def open_tree(path: PathArg, flags: int, dfd: int = AT_FDCWD) -> int:
    """open_tree(2); returns a new file descriptor the caller must close."""
    _check_supported("open_tree")
    fd = lib.mk_open_tree(dfd, _b(path, "open_tree"), flags)
    if fd < 0:
        raise _fail("open_tree", path)
    return int(fd)


def move_mount(from_dfd: int, from_path: PathArg, to_dfd: int, to_path: PathArg, flags: int) -> None:
    _check_supported("move_mount")
    if lib.mk_move_mount(from_dfd, _b(from_path, "move_mount"), to_dfd, _b(to_path, "move_mount"), flags):
        raise _fail("move_mount", to_path or None, from_path or None)


def mount_setattr(
    dfd: int, path: PathArg, flags: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0
) -> None:
    _check_supported("mount_setattr")
    attr = ffi.new("struct mk_mount_attr *")
    attr.attr_set, attr.attr_clr, attr.propagation = attr_set, attr_clr, propagation
    if lib.mk_mount_setattr(dfd, _b(path, "mount_setattr"), flags, attr, ffi.sizeof("struct mk_mount_attr")):
        raise _fail("mount_setattr", path or None)


def fsopen(fsname: str, flags: int) -> int:
    """fsopen(2); returns a new filesystem-context descriptor the caller must close."""
    _check_supported("fsopen")
    fd = lib.mk_fsopen(_b(fsname, "fsopen"), flags)
    if fd < 0:
        raise _fail("fsopen", fsname)
    return int(fd)


def fs_log(fd: int) -> list[str]:
    """The messages the kernel left in a filesystem context, oldest first.

    Each is ``"<e|w|i> <fs>: <text>"`` (mount_api.rst); the read that finds
    none left fails with ENODATA.  A refused fsconfig or fsmount explains
    itself here, where mount(2) would give only the errno.
    """
    out: list[str] = []
    for _ in range(32):  # the kernel keeps at most 8; stop on a context that never runs dry
        try:
            raw = os.read(fd, 4096)
        except OSError:
            break
        if not raw:
            break
        out.append(raw.decode(errors="replace").rstrip("\n"))
    return out


def _refusal(fd: int, secret: str | None) -> str | None:
    """The kernel's error and warning messages of ``fd`` (type letter dropped), ``secret`` blanked."""
    text = "; ".join(m[2:] if m[1:2] == " " else m for m in fs_log(fd) if m[:1] in ("e", "w"))
    if secret and text:
        text = text.replace(secret, "<redacted>")
    return text or None


def fsconfig(
    fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0, *, secret: bool = False
) -> None:
    """fsconfig(2); on failure the kernel's message joins the error, which names ``key``.

    A ``secret`` value is blanked out of that message; a value is never reported otherwise either.
    """
    _check_supported("fsconfig")
    rc = lib.mk_fsconfig(
        fd, cmd, ffi.NULL if key is None else _b(key, "fsconfig"), ffi.NULL if value is None else _b(value, "fsconfig"),
        aux,
    )
    if rc != 0:
        err = _fail("fsconfig")
        why = _refusal(fd, value if secret else None)
        err.detail = "; ".join(filter(None, (f"key {key!r}" if key else None, why))) or err.detail
        raise err


def fsmount(fd: int, flags: int, attr_flags: int) -> int:
    """fsmount(2); returns a detached mount's descriptor the caller must close."""
    _check_supported("fsmount")
    mfd = lib.mk_fsmount(fd, flags, attr_flags)
    if mfd < 0:
        err = _fail("fsmount")
        err.detail = _refusal(fd, None) or err.detail
        raise err
    return int(mfd)


def fspick(path: PathArg, flags: int, dfd: int = AT_FDCWD) -> int:
    """fspick(2); returns a reconfiguration context of the superblock at ``path``, to be closed."""
    _check_supported("fspick")
    fd = lib.mk_fspick(dfd, _b(path, "fspick"), flags)
    if fd < 0:
        raise _fail("fspick", path or None)
    return int(fd)


class Statx(NamedTuple):
    """The statx(2) fields mountkit uses (a tuple: built on hot paths, where a frozen dataclass costs µs)."""

    mask: int
    attributes: int
    attributes_mask: int
    mode: int
    ino: int
    dev_major: int
    dev_minor: int
    mnt_id: int


def statx(path: PathArg, flags: int, mask: int, dfd: int = AT_FDCWD) -> Statx:
    buf = ffi.new("struct mk_statx *")
    if lib.mk_statx(dfd, _b(path, "statx"), flags, mask, buf) != 0:
        raise _fail("statx", path or None)
    return Statx(
        buf.stx_mask,
        buf.stx_attributes,
        buf.stx_attributes_mask,
        buf.stx_mode,
        buf.stx_ino,
        buf.stx_dev_major,
        buf.stx_dev_minor,
        buf.stx_mnt_id,
    )


def is_mount_root(path: PathArg, at_flags: int, dfd: int = AT_FDCWD) -> bool | None:
    """One statx: is ``path`` the root of a mount? ``None`` when the kernel cannot say (before 5.8)."""
    rc = lib.mk_is_mount_root(dfd, _b(path, "statx"), at_flags)
    if rc == -1:
        raise _fail("statx", path or None)
    return None if rc == -2 else rc == 1


# --- deadline-bounded probes (cext/probe.c): the syscalls that may hang, on a C worker pool ---------

PROBE_MOUNT_ROOT: int = lib.MK_PROBE_MOUNT_ROOT
PROBE_STATFS: int = lib.MK_PROBE_STATFS
PROBE_LIVE_ROOT: int = lib.MK_PROBE_LIVE_ROOT
PROBE_UNMOUNT: int = lib.MK_PROBE_UNMOUNT
_PROBE_FAILED = {
    lib.MK_PROBE_FAILED_STATX: "statx", lib.MK_PROBE_FAILED_STATFS: "statfs", lib.MK_PROBE_FAILED_UNMOUNT: "umount"
}


def probe(op: int, path: PathArg, flags: int, timeout: float, operation: str) -> bool | None:
    """Run probe ``op`` (``PROBE_*``) of ``path`` on a C pool worker, waiting at most ``timeout`` s.

    ``flags`` are the statx's AT_* flags, or umount2's for ``PROBE_UNMOUNT`` (:func:`unmount`).
    Returns whether ``path`` is a mount root (``None``: the kernel cannot tell; ``PROBE_STATFS``
    and ``PROBE_UNMOUNT`` return ``None`` too).  A failed syscall: MountError naming it.  No answer
    in time: CorruptedMountError(ETIMEDOUT) naming ``operation``; the worker is abandoned
    (cext/probe.h); nothing else raises CorruptedMountError here.
    """
    err = ffi.new("int[2]")
    rc = lib.mk_probe(op, _b(path, operation), flags, max(1, round(timeout * 1000)), err, err + 1)
    if rc == -3:
        raise CorruptedMountError(
            errno.ETIMEDOUT, operation, _name(path), None, f"no answer within {timeout:g} s; probe abandoned"
        )
    if rc == -1:
        raise MountError(err[0], _PROBE_FAILED[err[1]], _name(path))
    if rc == -4:
        raise MountError(err[0], operation, _name(path), None, "cannot start a probe thread")
    return None if rc == -2 or op in (PROBE_STATFS, PROBE_UNMOUNT) else rc == 1


def probe_counts() -> tuple[int, int, int]:
    """(probes abandoned so far, abandoned probes still blocked, C probe workers alive)."""
    return int(lib.mk_probe_abandoned()), int(lib.mk_probe_hung()), int(lib.mk_probe_workers())


BIND_ROOT: int = lib.MK_BIND_ROOT
BIND_SAME: int = lib.MK_BIND_SAME
BIND_RO_KNOWN: int = lib.MK_BIND_RO_KNOWN
BIND_RO: int = lib.MK_BIND_RO


def bind_state(dfd: int, path: PathArg, at_flags: int, sdfd: int, spath: PathArg, s_flags: int) -> int | None:
    """``BIND_*`` bits for a bind target and its source in one call; None before 5.8 (cext/sys.h)."""
    which = ffi.new("int *")
    rc = lib.mk_bind_state(dfd, _b(path, "statx"), at_flags, sdfd, _b(spath, "statx"), s_flags, which)
    if rc == -1:
        if which[0]:
            raise MountError(ffi.errno, "statx", _name(spath or None), None, None, SOURCE)
        raise _fail("statx", path or None)
    return None if rc == -2 else int(rc)


def openat2(path: PathArg, flags: int, resolve: int, mode: int = 0, dfd: int = AT_FDCWD) -> int:
    """openat2(2); returns a new file descriptor the caller must close."""
    _check_supported("openat2")
    how = ffi.new("struct mk_open_how *")
    how.flags, how.mode, how.resolve = flags, mode, resolve
    fd = lib.mk_openat2(dfd, _b(path, "openat2"), how, ffi.sizeof("struct mk_open_how"))
    if fd < 0:
        raise _fail("openat2", path)
    return int(fd)


def open_beneath(root: PathArg, path: PathArg, flags: int, resolve: int) -> int:
    """openat2(2) of ``path`` from a descriptor of ``root`` opened (and closed) in the same call.

    The root that cannot be opened raises OSError naming it, as ``os.open`` does; a refused
    openat2 raises MountError as :func:`openat2`.
    """
    _check_supported("openat2")
    how = ffi.new("struct mk_open_how *")
    how.flags, how.resolve = flags, resolve
    which = ffi.new("int *")
    fd = lib.mk_open_beneath(_b(root, "open"), _b(path, "openat2"), how, ffi.sizeof("struct mk_open_how"), which)
    if fd < 0:
        if not which[0]:
            err = ffi.errno
            raise OSError(err, os.strerror(err), _name(root))
        raise _fail("openat2", path)
    return int(fd)


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


# --- the statmount backend in C (cext/statmount.c): whole tables in mountinfo_parse's layout -------


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


def unshare(flags: int) -> None:
    if lib.mk_unshare(flags) != 0:
        raise _fail("unshare")


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


# --- mountinfo parsing (cext/mountinfo.c): the compact table mountkit.table builds on ---------------

#: uint32 columns per entry, and their indices (cext/mountinfo.h describes the layout)
MI_STRIDE: int = lib.MK_MI_STRIDE
MI_ROOT: int = lib.MK_MI_ROOT
MI_MOUNT_POINT: int = lib.MK_MI_MOUNT_POINT
MI_FS_TYPE: int = lib.MK_MI_FS_TYPE
MI_SOURCE: int = lib.MK_MI_SOURCE
MI_PARENT_ID: int = lib.MK_MI_PARENT_ID
MI_MINOR: int = lib.MK_MI_MINOR

#: bytes read(2) asks for at a time when reading mountinfo (cext/capi/mountinfo_read.c says why)
MI_CHUNK: int = _CHUNK


def _parsed(parts: tuple[bytes, bytes, int]) -> tuple[bytes, memoryview, int]:
    buf, cols, n = parts
    return buf, memoryview(cols).cast("I"), n


def mountinfo_parse(text: bytes) -> tuple[bytes, memoryview, int]:
    """Parse mountinfo text into (unescaped field buffer, uint32 columns, entry count).

    Raises ValueError naming the 1-based line number and the field that could not be read (never
    the line itself: super options may carry what a mount was given).
    """
    return _parsed(_parse(text))


def mountinfo_read(fd: int, chunk: int = MI_CHUNK) -> tuple[bytes, memoryview, int]:
    """:func:`mountinfo_parse` of the text read from ``fd`` to its end, parsed as it is read.

    Reads ``chunk`` bytes at a time (a longer line grows the buffer) with the GIL released, and
    parses into the buffers returned, so the text is never held whole; OSError from read(2).
    """
    return _parsed(_read(fd, chunk))


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


_Record = TypeVar("_Record")


def mountinfo_entries(buf: bytes, cols: memoryview, start: int, stop: int, cls: type[_Record]) -> list[_Record]:
    """Entries ``[start, stop)`` of a table in :func:`mountinfo_parse`'s layout as ``cls`` objects, built in C.

    ``cls`` is a slots class with an object slot per mountinfo field (table.MountInfo); paths are
    decoded like :func:`os.fsdecode`, list fields are tuples (cext/entries.c).
    """
    return _entries(buf, cols, start, stop, cls)  # type: ignore[no-any-return]
