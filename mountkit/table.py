"""The mount table: ``/proc/<pid>/mountinfo`` (or listmount/statmount) as :class:`MountInfo` records.

The kernel generating the text dominates a read, and what this module adds must stay small next to
it even at 10,000 mounts.  So a :class:`MountTable` is compact: one ``bytes`` buffer of the
unescaped text plus uint32 columns of numbers and field offsets (about 48 bytes an entry), filled
by a C parser (``cext/common/mountinfo.c``) as read(2) hands the text over
(``cext/table/mountinfo_read.c``).  Lookups (``find``, ``find_all``, ``under``, ``refs``,
``children``) scan the columns in C and build :class:`MountInfo` objects only for what they return;
indexing and iteration build a fresh one per access (not cached: keep those you need).  Paths are
decoded like :func:`os.fsdecode` (surrogateescape), so a non-UTF-8 name round-trips.

:func:`find_mount` answers for one mount point mostly without a table: statx settles a path that is
not a mount root in O(1) (5.8+), and with statmount and ``STATX_MNT_ID_UNIQUE`` (6.8+) a mount root
costs one statx and one statmount; otherwise it reads the compact table and builds one entry.
"""

from __future__ import annotations

import errno
import os
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal, TypeAlias, overload

try:
    from mountkit import _sys
except ImportError:  # no compiled extension: tables built from entries (FakeMounter) still work
    from mountkit import _pysys as _sys  # type: ignore[no-redef]
from mountkit._types import PathArg
from mountkit.errors import InvalidOptionError, MountError, UnsupportedError
from mountkit.flags import (
    PROBE_AT,
    STATX,
    STATX_ATTR_MOUNT_ROOT,
)

_ENC = sys.getfilesystemencoding()
_ERR = sys.getfilesystemencodeerrors()
_STRIDE = _sys.MI_STRIDE

Backend = Literal["mountinfo", "statmount"]
#: a table's uint32 columns as a parse (memoryview) or statmount (array) hands them over, or pickled (bytes)
Columns: TypeAlias = "memoryview | array[int] | bytes"


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One line of mountinfo (proc(5)), with the kernel's escapes undone."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    optional_fields: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def readonly(self) -> bool:
        """Whether this mount (not necessarily its superblock) is read-only."""
        return "ro" in self.options


class _Twin:
    """:class:`MountInfo`'s slot layout without the frozen ``__setattr__``, to build entries fast.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (about 1 µs
    for eleven fields, most of the cost of listing 10,000 mounts).  An entry is made as this twin
    by ``object.__new__`` (no ``__init__`` frame), filled by plain slot stores, then retyped to
    MountInfo (``__class__`` assignment is allowed between classes with identical slots).
    """

    __slots__ = MountInfo.__slots__


_new = object.__new__
#: MountInfo objects built in C from the compact table (cext/table/entries.c); None without the extension
_c_entries: Callable[[bytes, memoryview, int, int, type[MountInfo]], list[MountInfo]] | None = (
    _sys.mountinfo_entries
)
#: entries built per C call while iterating (a loop that stops early pays for one batch, not the table)
_ENTRY_BATCH = 4096


def _entry_of(
    mount_id: int,
    parent_id: int,
    major: int,
    minor: int,
    root: str,
    mount_point: str,
    options: tuple[str, ...],
    optional_fields: tuple[str, ...],
    fs_type: str,
    source: str,
    super_options: tuple[str, ...],
) -> MountInfo:
    """``MountInfo(...)``, built through :class:`_Twin`."""
    e: Any = _new(_Twin)  # a twin, then a MountInfo: its type is checked by the signature
    e.mount_id, e.parent_id, e.major, e.minor = mount_id, parent_id, major, minor
    e.root, e.mount_point, e.options, e.optional_fields = root, mount_point, options, optional_fields
    e.fs_type, e.source, e.super_options = fs_type, source, super_options
    e.__class__ = MountInfo
    return e  # type: ignore[no-any-return]


def _dec(raw: bytes) -> str:
    return raw.decode(_ENC, _ERR)


def _enc(text: str, what: str) -> bytes:
    raw = text.encode(_ENC, _ERR)
    if b"\0" in raw:
        raise InvalidOptionError("mount table", f"{what} contains a NUL byte")
    return raw


def _join(items: tuple[str, ...], what: str) -> bytes:
    return b"\0".join(_enc(item, what) for item in items)


def _items(raw: bytes) -> tuple[str, ...]:
    return tuple(_dec(item) for item in raw.split(b"\0")) if raw else ()


def _path(path: PathArg) -> str:
    """An absolute, normalised path as a mount table spells it ("/a/b", never "/a/b/")."""
    return os.path.abspath(os.fsdecode(path))


class MountTable(Sequence[MountInfo]):
    """Mounts in kernel order, held compactly; see the module docstring for what is lazy."""

    __slots__ = ("_buf", "_cols", "_n")

    _buf: bytes
    _cols: memoryview  # uint32 ("I"), MI_STRIDE an entry
    _n: int

    def __init__(self, entries: Iterable[MountInfo] = ()) -> None:
        """A table of the given entries (the statmount backend and fakes build tables this way)."""
        buf = bytearray()
        cols = array("I")
        n = 0
        for e in entries:
            cols.extend((e.mount_id, e.parent_id, e.major, e.minor))
            for field in (
                _enc(e.root, "root"),
                _enc(e.mount_point, "mount point"),
                _join(e.options, "option"),
                _join(e.optional_fields, "optional field"),
                _enc(e.fs_type, "fs type"),
                _enc(e.source, "source"),
                _join(e.super_options, "super option"),
            ):
                cols.append(len(buf))
                buf += field
            cols.append(len(buf))
            n += 1
        self._buf, self._cols, self._n = bytes(buf), memoryview(cols), n

    @classmethod
    def parse(cls, text: str | bytes) -> MountTable:
        """Parse mountinfo text; ValueError names the first malformed line (1-based)."""
        raw = os.fsencode(text) if isinstance(text, str) else text
        return cls._of(_sys.mountinfo_parse(raw))

    @classmethod
    def _of(cls, parts: tuple[bytes, Columns, int]) -> MountTable:
        """The table of a parse's or statmount's (buffer, uint32 columns, entry count)."""
        table = cls.__new__(cls)
        buf, cols, table._n = parts
        view = memoryview(cols)
        table._buf, table._cols = buf, view if view.format == "I" else view.cast("I")
        return table

    def __reduce__(self) -> tuple[Callable[[tuple[bytes, Columns, int]], MountTable], tuple[Any, ...]]:
        return MountTable._of, ((self._buf, self._cols.tobytes(), self._n),)  # a memoryview does not pickle

    @classmethod
    def read(cls, pid: int | None = None, *, backend: Backend = "mountinfo", threads: int = 1) -> MountTable:
        """The mount table as process ``pid`` (default: this one) sees it.

        ``backend="statmount"`` builds the same records from listmount(2)+statmount(2) (6.8+,
        UnsupportedError before), in one C call (cext/sys/statmount.c); it sees only the caller's own
        namespace, so it refuses another pid.  It is not the default: a statmount call per mount
        costs the kernel more than mountinfo's text for it (bench/bench_table.py says how much).
        ``threads`` > 1 (statmount only) spreads those calls over that many threads: less wall
        time when cores are idle, more CPU time in all.
        """
        if threads < 1 or (threads > 1 and backend != "statmount"):
            raise InvalidOptionError("mount table", "threads: 1, or more with the statmount backend")
        if backend == "mountinfo":
            return cls._of(_read_mountinfo(pid))
        if backend == "statmount":
            if pid is not None and pid != os.getpid():
                raise InvalidOptionError("statmount", "lists only this process's mount namespace")
            return cls._of(_sys.statmount_table(threads=threads))
        raise InvalidOptionError("mount table", f"unknown backend {backend!r}")

    @classmethod
    def read_ids(cls, unique_ids: Sequence[int]) -> MountTable:
        """The mounts with these unique ids (listmount(2), statx ``STATX_MNT_ID_UNIQUE``), in that order.

        One statmount(2) each, in one C call (6.8+, UnsupportedError before), so describing a few
        mounts costs a few, whatever the size of the namespace.  Mounts gone meanwhile are left
        out; the records carry the ids mountinfo shows, not the unique ones.
        """
        return cls._of(_sys.statmount_table(unique_ids))

    @classmethod
    def read_dev(cls, major: int, minor: int) -> MountTable:
        """The mounts of one filesystem (superblock device ``major:minor``), in kernel order.

        By statmount(2) in one C call (6.8+, UnsupportedError before): each mount is asked for its
        superblock alone, which costs a fraction of its mountinfo line (no path is built), and only
        the filesystem's own mounts are described in full: what :meth:`refs` needs, at a third of
        a whole read on a node of deep kubelet paths (bench/bench_table.py).
        """
        return cls._of(_sys.statmount_table(dev=(major, minor)))

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> MountInfo: ...

    @overload
    def __getitem__(self, index: slice) -> list[MountInfo]: ...

    def __getitem__(self, index: int | slice) -> MountInfo | list[MountInfo]:
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("mount table index out of range")
        return self._entry(index)

    def __iter__(self) -> Iterator[MountInfo]:
        if _c_entries is None:
            return self._py_iter()
        # built in C a chunk at a time: a loop that stops early does not pay for the whole table
        chunks = (
            _c_entries(self._buf, self._cols, i, min(i + _ENTRY_BATCH, self._n), MountInfo)
            for i in range(0, self._n, _ENTRY_BATCH)
        )
        return chain.from_iterable(chunks)

    def _py_iter(self) -> Iterator[MountInfo]:
        """__iter__ without the C builder (no compiled extension): about 1 µs an entry."""
        b = self._buf
        if not b.isascii():  # offsets are byte offsets: slice and decode entry by entry
            yield from map(self._entry, range(self._n))
            return
        text = b.decode("ascii")  # one decode; ASCII offsets are the same in bytes and str
        twin, mountinfo = _Twin, MountInfo
        # option lists repeat across mounts (10,000 binds share a handful): split each once
        lists: dict[str, tuple[str, ...]] = {"": ()}
        for mount_id, parent_id, major, minor, r, m, o, of, t, s, so, end in zip(
            *[iter(self._cols)] * _STRIDE
        ):
            e: Any = _new(twin)  # inline _entry_of: a call per entry is a tenth of the cost
            e.mount_id, e.parent_id, e.major, e.minor = mount_id, parent_id, major, minor
            e.root, e.mount_point, e.fs_type, e.source = text[r:m], text[m:o], text[t:s], text[s:so]
            k = text[o:of]
            e.options = lists[k] if k in lists else lists.setdefault(k, tuple(k.split("\0")))
            k = text[of:t]
            e.optional_fields = lists[k] if k in lists else lists.setdefault(k, tuple(k.split("\0")))
            k = text[so:end]
            e.super_options = lists[k] if k in lists else lists.setdefault(k, tuple(k.split("\0")))
            e.__class__ = mountinfo
            yield e

    def __repr__(self) -> str:
        return f"<MountTable of {self._n} mounts>"

    def _entry(self, i: int) -> MountInfo:
        k = i * _STRIDE
        mount_id, parent_id, major, minor, r, m, o, of, t, s, so, end = self._cols[k : k + _STRIDE]
        b = self._buf
        return _entry_of(
            mount_id,
            parent_id,
            major,
            minor,
            _dec(b[r:m]),
            _dec(b[m:o]),
            _items(b[o:of]),
            _items(b[of:t]),
            _dec(b[t:s]),
            _dec(b[s:so]),
            _items(b[so:end]),
        )

    def _select(self, col: int, value: str, *, under: bool = False) -> list[int]:
        return _sys.mountinfo_select(self._buf, self._cols, self._n, col, _enc(value, "query"), under)

    def find_all(self, mount_point: PathArg) -> list[MountInfo]:
        """Every mount at ``mount_point``, bottom of the stack first, the visible one last."""
        return _stack_order([self._entry(i) for i in self._select(_sys.MI_MOUNT_POINT, _path(mount_point))])

    def find(
        self, mount_point: PathArg | None = None, *, source: str | None = None, fs_type: str | None = None
    ) -> MountInfo | None:
        """The topmost entry matching every given criterion, or None.

        With a mount point, "topmost" is the top of the stack there; otherwise it is the last
        match in kernel order (the most recently mounted, on 6.8+ kernels, which order by id).
        """
        if mount_point is not None:
            found = self.find_all(mount_point)
        elif source is not None:
            found = [self._entry(i) for i in self._select(_sys.MI_SOURCE, source)]
        elif fs_type is not None:
            found = [self._entry(i) for i in self._select(_sys.MI_FS_TYPE, fs_type)]
        else:
            raise TypeError("find() needs a mount point, a source or a filesystem type")
        for entry in reversed(found):
            if (source is None or entry.source == source) and (fs_type is None or entry.fs_type == fs_type):
                return entry
        return None

    def children(self, entry: MountInfo) -> list[MountInfo]:
        """The mounts whose parent is ``entry``, in kernel order (a mount that is its own parent excluded)."""
        hits = _sys.mountinfo_select_int(self._cols, self._n, _sys.MI_PARENT_ID, entry.mount_id)
        return [c for c in map(self._entry, hits) if c.mount_id != entry.mount_id]

    def under(self, path: PathArg) -> list[MountInfo]:
        """The mounts at ``path`` or anywhere below it, in kernel order."""
        return [self._entry(i) for i in self._select(_sys.MI_MOUNT_POINT, _path(path), under=True)]

    def refs(self, path: PathArg) -> list[str]:
        """The other mount points showing the same (major, minor, root) as the mount at ``path``.

        Like Kubernetes' ``GetMountRefs``: for a bind mount, where else the same directory of the
        same filesystem is mounted.  Empty when nothing is mounted at ``path``.  The entries are
        picked by the device's minor number in C first (the root, often "/", matches thousands
        of binds of other filesystems), so only the filesystem's own mounts become MountInfo.
        """
        top = self.find(path)
        return [] if top is None else self.refs_of(top)

    def refs_of(self, mount: MountInfo) -> list[str]:
        """:meth:`refs` of a mount already found (e.g. by :func:`find_mount`): the other mount
        points of this table showing its (major, minor, root)."""
        refs: dict[str, None] = {}
        for i in _sys.mountinfo_select_int(self._cols, self._n, _sys.MI_MINOR, mount.minor):
            e = self._entry(i)
            if e.major == mount.major and e.root == mount.root and e.mount_point != mount.mount_point:
                refs[e.mount_point] = None
        return list(refs)


def _stack_order(entries: list[MountInfo]) -> list[MountInfo]:
    """Entries at one mount point ordered bottom to top, by following parent links.

    A mount stacked on another has the lower one as its parent; kernel order usually agrees, but
    not after ``MOVE_MOUNT_BENEATH``.  Entries not linked into a chain keep their kernel order.
    """
    if len(entries) < 2:
        return entries
    ids = {e.mount_id for e in entries}
    above = {e.parent_id: e for e in entries if e.parent_id in ids and e.parent_id != e.mount_id}
    ordered: list[MountInfo] = []
    for e in entries:
        if e.parent_id in ids and e.parent_id != e.mount_id:
            continue  # not a bottom: reached from the mount below it
        while True:
            ordered.append(e)
            nxt = above.get(e.mount_id)
            if nxt is None or nxt in ordered:
                break
            e = nxt
    ordered += [e for e in entries if e not in ordered]
    return ordered


def _mountinfo_path(pid: int | None) -> str:
    return f"/proc/{'self' if pid is None else pid}/mountinfo"


def _unreadable(exc: OSError, path: str) -> MountError:
    return MountError(exc.errno or errno.EIO, "read mount table", path)


def _read_mountinfo(pid: int | None) -> tuple[bytes, memoryview, int]:
    """``/proc/<pid>/mountinfo`` parsed as it is read; MountError (with the path) when unreadable."""
    path = _mountinfo_path(pid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _sys.mountinfo_read(fd)
        finally:
            os.close(fd)
    except MountError:  # UnsupportedError: no compiled extension
        raise
    except OSError as exc:
        raise _unreadable(exc, path) from exc


def read_mountinfo(pid: int | None = None) -> bytes:
    """The raw bytes of ``/proc/<pid>/mountinfo`` (the poll watcher diffs them); MountError if unreadable."""
    path = _mountinfo_path(pid)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise _unreadable(exc, path) from exc


# --- the statmount backend ------------------------------------------------------------------------


def from_statmount(sm: _sys.StatMount) -> MountInfo:
    """The :class:`MountInfo` mountinfo would show for a statmount(2) result (cext/sys/statmount.c)."""
    return MountTable._of(_sys.statmount_records([sm]))[0]


# --- one mount point --------------------------------------------------------------------------------


#: what :func:`_find_by_statx` says when statx proves nothing is mounted at the path
_NOT_MOUNTED = object()


def _find_by_statx(path: str) -> MountInfo | object | None:
    """The mount visible at ``path`` by statx (+ statmount); ``_NOT_MOUNTED``; None when undecided.

    statx alone settles a path that is not a mount root (5.8+: STATX_ATTR_MOUNT_ROOT) or does not
    exist; a mount root is described by statmount (6.8+).  Anything else falls to the scan.
    """
    if not _sys.supported("statx"):
        return None
    try:
        st = _sys.statx(path, PROBE_AT, STATX.MNT_ID_UNIQUE)
    except UnsupportedError:
        return None
    except MountError as exc:  # missing: nothing visible there; anything else: the scan decides
        return _NOT_MOUNTED if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    if not st.attributes_mask & STATX_ATTR_MOUNT_ROOT:
        return None
    if not st.attributes & STATX_ATTR_MOUNT_ROOT:
        return _NOT_MOUNTED
    if not (st.mask & STATX.MNT_ID_UNIQUE and _sys.supported("statmount")):
        return None
    try:
        found = MountTable.read_ids([st.mnt_id])
    except MountError:
        return None  # unsupported: the scan decides
    if not found:
        return None  # unmounted meanwhile: the scan decides
    return found[0] if found[0].mount_point == path else None


def find_mount(mount_point: PathArg, pid: int | None = None) -> MountInfo | None:
    """The topmost mount visible at ``mount_point`` as ``pid`` sees it, building no entry but that one.

    For this process statx settles it in O(1) where the kernel can tell (5.8+): a path that is
    missing or not a mount root has none (a mount shadowed by a later mount over a parent
    directory is invisible there; ``MountTable.read().find`` still lists it), and a mount root is
    described by statmount (6.8+).  Anything else reads mountinfo once into a compact table (as
    fast as reading the text: it is parsed while read) and builds only the entry it returns.  The
    statx may block on a dead network filesystem: callers probing one run this with a deadline.
    """
    path = _path(mount_point)
    if pid is None or pid == os.getpid():
        found = _find_by_statx(path)
        if found is _NOT_MOUNTED:
            return None
        if isinstance(found, MountInfo):
            return found
    return MountTable.read(pid).find(path)
