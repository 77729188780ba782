"""FakeMounter: the :class:`~mountkit.mounter.Mounter` interface over an in-memory table.

For unit tests of code that mounts (the CSI node service among them): no
kernel, no root.  It keeps the real engine's idempotency and conflict rules,
records every call, and lets a test make a path look dead
(:meth:`FakeMounter.set_corrupted`) or make the next call of a verb fail
(:meth:`FakeMounter.fail_next`).  The only thing it touches on disk is what
``cleanup_mountpoint`` removes: an empty directory, as the real one does.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from mountkit._types import PathArg
from mountkit.errors import (
    SOURCE,
    TARGET,
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
)
from mountkit.flags import MS
from mountkit.nfs import NFS_FAMILY as _NFS_FAMILY
from mountkit.nfs import NfsSource, other_source, source_of
from mountkit.options import ParsedOptions, parse_options
from mountkit.rules import describe as _describe
from mountkit.rules import mount_conflict as _mount_conflict
from mountkit.rules import remove_mountpoint_dir
from mountkit.table import MountInfo, MountTable

#: per-mount flag -> the word mountinfo shows for it (ro/rw is handled apart)
_SHOWN = ((MS.NOSUID, "nosuid"), (MS.NODEV, "nodev"), (MS.NOEXEC, "noexec"), (MS.NOATIME, "noatime"))


def _p(path: PathArg) -> str:
    return os.path.abspath(os.fsdecode(path))


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _options(opts: ParsedOptions, readonly: bool, base: tuple[str, ...] = ()) -> tuple[str, ...]:
    words = {w for w in base if w not in ("ro", "rw")}
    for flag, word in _SHOWN:
        if flag in opts.flags:
            words.add(word)
        elif flag in opts.clear:
            words.discard(word)
    return ("ro" if readonly else "rw", *sorted(words))


class FakeMounter:
    """Same verbs as :class:`~mountkit.mounter.Mounter`; ``calls`` lists ``(verb, *args)`` in order.

    Recorded options are :meth:`ParsedOptions.redacted` strings: sensitive
    values never reach the record.  ``entries`` seeds the table.
    """

    def __init__(self, entries: Iterable[MountInfo] = ()) -> None:
        self.entries: list[MountInfo] = list(entries)
        self.calls: list[tuple[object, ...]] = []
        self._ids = itertools.count(max((e.mount_id for e in self.entries), default=100) + 1)
        seeded = (f for e in self.entries for f in e.optional_fields if f.startswith(("shared:", "master:")))
        self._groups = itertools.count(max((int(f.partition(":")[2]) for f in seeded), default=0) + 1)
        self._corrupted: dict[str, int] = {}
        self._failures: dict[str, BaseException] = {}

    # --- test controls ---------------------------------------------------------------------------

    def set_corrupted(self, path: PathArg, err: int = errno.ESTALE) -> None:
        """Make ``path`` (and everything below) look dead: probes raise CorruptedMountError(err)."""
        self._corrupted[_p(path)] = err

    def fail_next(self, verb: str, error: BaseException) -> None:
        """Make the next call of ``verb`` (e.g. ``"unmount"``) raise ``error`` (after being recorded)."""
        self._failures[verb] = error

    # --- the Mounter interface -------------------------------------------------------------------

    def mount(
        self,
        source: str | NfsSource,
        target: PathArg,
        fstype: str,
        options: Iterable[str] | str = (),
        sensitive_options: Iterable[str] = (),
        *,
        beneath: PathArg | None = None,
    ) -> None:
        """As :meth:`Mounter.mount`: same source and fs family at ``target`` is a no-op, else a conflict.

        ``beneath`` is accepted for the interface; the fake resolves no paths, so it pins nothing.
        """
        tgt = _p(target)
        opts = parse_options(options, sensitive_options)
        src = str(source)  # as the table shows an NfsSource
        self._record("mount", src, tgt, fstype, opts.redacted())
        if opts.flags & (MS.BIND | MS.REMOUNT | MS.MOVE):
            raise InvalidOptionError("mount", "bind, remount and move have verbs of their own", tgt)
        if fstype in _NFS_FAMILY:
            source_of(source)
        else:
            other_source(source, fstype, tgt)
        top = self._top(tgt)
        if top is not None:
            conflict = _mount_conflict(
                top, tgt, fstype, src, MS.RDONLY in opts.flags, opts.data, top.source == src
            )
            if conflict is None:
                return
            raise conflict
        minor = next(self._ids)  # a fresh superblock: an anonymous device of its own
        self._add(tgt, 0, minor, "/", fstype, src, _options(opts, MS.RDONLY in opts.flags), opts.data)

    def bind(
        self,
        source: PathArg,
        target: PathArg,
        *,
        readonly: bool = False,
        recursive: bool = False,
        options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None:
        """As :meth:`Mounter.bind`: the same source with the same ro state is a no-op, else a conflict.

        ``beneath``: see :meth:`mount`.
        """
        src, tgt = _p(source), _p(target)
        opts = parse_options(options)
        self._record("bind", src, tgt, readonly, recursive, opts.redacted())
        if opts.data or opts.sensitive:
            raise InvalidOptionError("bind", "filesystem data options do not apply to a bind mount", tgt)
        readonly = readonly or MS.RDONLY in opts.flags
        under = self._containing(src)
        if under is None:
            major, minor, root, fs_type, fs_source = 0, 0, src, "none", "none"
        else:
            rel = os.path.relpath(src, under.mount_point)
            root = os.path.normpath(os.path.join(under.root, rel)) if rel != "." else under.root
            major, minor, fs_type, fs_source = under.major, under.minor, under.fs_type, under.source
        top = self._top(tgt)
        if top is not None:
            if (top.major, top.minor, top.root) == (major, minor, root) and top.readonly == readonly:
                return
            asked = f"a {'read-only' if readonly else 'read-write'} bind of {src!r}"
            raise MountConflictError(
                errno.EBUSY, "bind", tgt, None, f"{_describe(top)} is mounted there; asked for {asked}"
            )
        children = (
            [e for e in self.entries if e.mount_point != src and _under(e.mount_point, src)]
            if recursive
            else []
        )
        self._add(tgt, major, minor, root, fs_type, fs_source, _options(opts, readonly), ())
        for child in children:
            moved = tgt + child.mount_point[len(src.rstrip("/")) :]
            self.entries.append(dataclasses.replace(child, mount_id=next(self._ids), mount_point=moved))

    def remount(self, target: PathArg, options: Iterable[str] | str) -> None:
        """As :meth:`Mounter.remount`: not a mount point is MountError(EINVAL)."""
        tgt = _p(target)
        opts = parse_options(options)
        self._record("remount", tgt, opts.redacted())
        top = self._top(tgt)
        if top is None:
            raise MountError(errno.EINVAL, "remount", tgt, None, "not a mount point")
        readonly = MS.RDONLY in opts.flags or (top.readonly and MS.RDONLY not in opts.clear)
        changed = dataclasses.replace(
            top,
            options=_options(opts, readonly, top.options),
            super_options=opts.data if opts.data else top.super_options,
        )
        self.entries[self.entries.index(top)] = changed

    def rbind(
        self,
        source: PathArg,
        target: PathArg,
        *,
        readonly: bool = False,
        options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None:
        """As :meth:`Mounter.rbind`: :meth:`bind` with ``recursive=True`` (recorded as that bind)."""
        self.bind(source, target, readonly=readonly, recursive=True, options=options, beneath=beneath)

    def move(self, source: PathArg, target: PathArg) -> None:
        """As :meth:`Mounter.move`: nothing at ``source`` but a mount at ``target`` is a no-op."""
        src, tgt = _p(source), _p(target)
        self._record("move", src, tgt)
        at_tgt = self._top(tgt)
        if self._top(src) is None:
            if at_tgt is not None:
                return
            raise MountError(errno.EINVAL, "move", src, tgt, "nothing is mounted at the source", SOURCE)
        if at_tgt is not None:
            raise MountConflictError(
                errno.EBUSY, "move", src, tgt, f"{_describe(at_tgt)} is mounted there already", TARGET
            )
        cut = len(src.rstrip("/"))
        self.entries = [
            dataclasses.replace(e, mount_point=tgt + e.mount_point[cut:]) if _under(e.mount_point, src) else e
            for e in self.entries
        ]

    def make_private(self, path: PathArg, *, recursive: bool = False) -> None:
        """As :meth:`Mounter.make_private`: no propagation fields left."""
        self._propagate("make_private", path, recursive, lambda e: ())

    def make_shared(self, path: PathArg, *, recursive: bool = False) -> None:
        """As :meth:`Mounter.make_shared`: a peer group of its own (kept if it had one), master kept."""

        def shared(e: MountInfo) -> tuple[str, ...]:
            peer = [f for f in e.optional_fields if f.startswith("shared:")] or [
                f"shared:{next(self._groups)}"
            ]
            return (*peer, *(f for f in e.optional_fields if f.startswith("master:")))

        self._propagate("make_shared", path, recursive, shared)

    def make_slave(self, path: PathArg, *, recursive: bool = False) -> None:
        """As :meth:`Mounter.make_slave`: a slave of its peer group if it had peers, else of its master, else
        private."""

        def slave(e: MountInfo) -> tuple[str, ...]:
            fields = e.optional_fields
            peer = next((f for f in fields if f.startswith("shared:")), None)
            peers = peer is not None and any(peer in o.optional_fields for o in self.entries if o is not e)
            master = (
                [f"master:{peer[7:]}"] if peers and peer else [f for f in fields if f.startswith("master:")]
            )
            return (*master, *(f for f in fields if f == "unbindable"))

        self._propagate("make_slave", path, recursive, slave)

    def make_unbindable(self, path: PathArg, *, recursive: bool = False) -> None:
        """As :meth:`Mounter.make_unbindable`."""
        self._propagate("make_unbindable", path, recursive, lambda e: ("unbindable",))

    def unmount(
        self,
        target: PathArg,
        *,
        lazy: bool = False,
        force: bool = False,
        recursive: bool = False,
        timeout: float | None = None,
    ) -> None:
        """As :meth:`Mounter.unmount`: every stacked mount goes; nothing there is success.

        Mounts below ``target`` make it busy (MountError EBUSY) unless ``lazy``,
        which detaches them too, as the kernel does, or ``recursive``, which
        unmounts them first.  Nothing here can hang, so ``timeout`` changes nothing.
        """
        tgt = _p(target)
        self._record("unmount", tgt, lazy, force, recursive)
        if self._top(tgt) is None:
            return
        below = [e for e in self.entries if e.mount_point != tgt and _under(e.mount_point, tgt)]
        if below and not (lazy or recursive):
            raise MountError(errno.EBUSY, "unmount", tgt)
        self.entries = [e for e in self.entries if not _under(e.mount_point, tgt)]

    def cleanup_mountpoint(
        self,
        path: PathArg,
        *,
        lazy: bool = False,
        force: bool = False,
        timeout: float | None = None,
        beneath: PathArg | None = None,
    ) -> None:
        """As :meth:`Mounter.cleanup_mountpoint`: unmount, then rmdir the (real) empty directory
        (``beneath``: see :meth:`mount`)."""
        name = _p(path)
        self._record("cleanup_mountpoint", name, lazy, force)
        self.unmount(name, lazy=lazy, force=force)
        remove_mountpoint_dir(name)

    def is_mountpoint(self, path: PathArg) -> bool:
        """Whether the fake table has a mount at ``path``; a corrupted path raises."""
        name = _p(path)
        self._record("is_mountpoint", name)
        return self._top(name) is not None

    def check(self, path: PathArg) -> None:
        """Raise CorruptedMountError for a path marked with :meth:`set_corrupted`."""
        name = _p(path)
        self._record("check", name)

    def is_live_mountpoint(self, path: PathArg) -> bool:
        """:meth:`is_mountpoint`, then :meth:`check` of a mount point (one probe in the real engine)."""
        name = _p(path)
        self._record("is_live_mountpoint", name)
        if self._top(name) is None:
            return False
        self._record("check", name)
        return True

    def refs(self, path: PathArg) -> list[str]:
        """Other fake mount points of the same (major, minor, root)."""
        return MountTable(self.entries).refs(_p(path))

    def list(self) -> MountTable:
        """The fake table."""
        return MountTable(self.entries)

    # --- internals -------------------------------------------------------------------------------

    def _record(self, verb: str, *args: object) -> None:
        """Log the call, then apply an injected failure or a corrupted path, as the kernel would."""
        self.calls.append((verb, *args))
        failure = self._failures.pop(verb, None)
        if failure is not None:
            raise failure
        path = args[1] if verb in ("mount", "bind") else args[0]
        assert isinstance(path, str)
        for dead, err in self._corrupted.items():
            if _under(path, dead) and verb != "unmount" and verb != "cleanup_mountpoint":
                raise CorruptedMountError(err, verb, path)

    def _propagate(
        self, verb: str, path: PathArg, recursive: bool, fields: Callable[[MountInfo], tuple[str, ...]]
    ) -> None:
        name = _p(path)
        self._record(verb, name, recursive)
        top = self._top(name)
        if top is None:
            raise MountError(errno.EINVAL, verb, name, None, "not a mount point")
        chosen = [e for e in self.entries if _under(e.mount_point, name)] if recursive else [top]
        changed = {id(e): dataclasses.replace(e, optional_fields=fields(e)) for e in chosen}
        self.entries = [changed.get(id(e), e) for e in self.entries]

    def _top(self, path: str) -> MountInfo | None:
        return next((e for e in reversed(self.entries) if e.mount_point == path), None)

    def _containing(self, path: str) -> MountInfo | None:
        hits = [e for e in self.entries if _under(path, e.mount_point)]
        return max(hits, key=lambda e: len(e.mount_point), default=None)

    def _add(
        self,
        tgt: str,
        major: int,
        minor: int,
        root: str,
        fs_type: str,
        source: str,
        options: tuple[str, ...],
        data: tuple[str, ...],
    ) -> None:
        parent = self._containing(tgt)
        self.entries.append(
            MountInfo(
                mount_id=next(self._ids),
                parent_id=parent.mount_id if parent is not None else 1,
                major=major,
                minor=minor,
                root=root,
                mount_point=tgt,
                options=options,
                optional_fields=(),
                fs_type=fs_type,
                source=source,
                super_options=data,
            )
        )


if TYPE_CHECKING:
    from mountkit.interface import MountInterface

    # mypy checks the fake against the protocol here, as mount-utils' `var _ Interface = &FakeMounter{}`
    _conforms: MountInterface = FakeMounter()
