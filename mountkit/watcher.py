"""Watch the mount namespace: attach, detach and change events, optionally under one path.

:func:`watch` picks one of two backends (``backend="auto"``):

``fanotify`` (Linux 6.15+)
    ``FAN_REPORT_MNT`` with a ``FAN_MARK_MNTNS`` mark reports every attach and detach in order,
    with the mount's unique id; the queue is unlimited, so a burst loses nothing (an overflow is
    answered with a full resynchronisation).  fanotify has no change event: a move (ATTACH|DETACH
    on one id) is reported as a change, and other changes (remount, propagation, the submounts a
    move carried) are found through ``poll(POLLPRI)`` on mountinfo, which re-describes only the
    watched subtree, once the queue is quiet, by statmount (a whole-namespace watch diffs
    mountinfo's text instead, as ``poll`` does: cheaper than a statmount of every mount).
``poll`` (any kernel; the 6.1 test guest)
    Each ``poll(POLLPRI)`` wake-up on ``/proc/self/mountinfo`` diffs the text with the last one by
    mount id, parsing only the lines that differ.  A mount attached and detached again between two
    reads is never seen; a mount id reused for another filesystem or root is a detach and an
    attach, for the same one elsewhere a move.

Unlike libmount's ``mnt_monitor``, which says *that* the table changed, each event names the mount
and what it was before.
"""

from __future__ import annotations

import enum
import errno
import math
import os
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from mountkit import _sys
from mountkit._types import PathArg
from mountkit.errors import MountError, UnsupportedError
from mountkit.flags import FAN_EVENT, FAN_INIT, FAN_MARK_ADD, FAN_MARK_MNTNS
from mountkit.table import MountInfo, MountTable, read_mountinfo

Backend = Literal["auto", "fanotify", "poll"]

_MOUNTINFO = "/proc/self/mountinfo"
_FAN_INIT = int(FAN_INIT.REPORT_MNT | FAN_INIT.NONBLOCK | FAN_INIT.CLOEXEC | FAN_INIT.UNLIMITED_QUEUE)
_ATTACH, _DETACH, _OVERFLOW = int(FAN_EVENT.MNT_ATTACH), int(FAN_EVENT.MNT_DETACH), int(FAN_EVENT.Q_OVERFLOW)
#: how long the fanotify queue must stay quiet before a pending change rescan runs
_SETTLE = 0.02
_READ_SIZE = 1 << 16
#: the stretch of two mountinfo texts compared at once when looking for what they share
_BLOCK = 1 << 16


class EventKind(enum.Enum):
    ATTACH = "attach"
    DETACH = "detach"
    CHANGE = "change"


@dataclass(frozen=True, slots=True)
class MountEvent:
    """One change of the namespace.

    ``mount`` is the mount after the event (attach, change) or as last seen (detach); ``None``
    when the fanotify backend could not describe it (attached and gone again before its event was
    read, or detached before it was ever seen).  ``previous`` is the mount before a change.
    ``unique_id`` is the kernel's 64-bit mount id (fanotify backend; ``None`` for poll), which
    is never reused, unlike ``mount.mount_id``.
    """

    kind: EventKind
    mount: MountInfo | None
    previous: MountInfo | None = None
    unique_id: int | None = None


def _below(path: str, top: str | None) -> bool:
    """Is ``path`` at or below ``top`` (anywhere, when ``top`` is None)?"""
    return top is None or path == top or path.startswith(top.rstrip("/") + "/")


def _wanted(event: MountEvent, top: str | None) -> bool:
    """Is the event at or below ``top``, before or after?  A mount never described is kept."""
    if top is None or (event.mount is None and event.previous is None):
        return True
    return any(e is not None and _below(e.mount_point, top) for e in (event.mount, event.previous))


def _same_mount(a: MountInfo, b: MountInfo) -> bool:
    """One mount, perhaps changed (not a reused id): same superblock and root."""
    return (a.major, a.minor, a.root) == (b.major, b.minor, b.root)


def _diff(old: dict[int, MountInfo], new: dict[int, MountInfo], unique: bool) -> list[MountEvent]:
    """Events turning table ``old`` into ``new`` (both keyed by mount id)."""
    detached: list[MountEvent] = []
    attached: list[MountEvent] = []
    changed: list[MountEvent] = []
    for key, before in old.items():
        after = new.get(key)
        if after is None or not _same_mount(before, after):
            detached.append(MountEvent(EventKind.DETACH, before, None, key if unique else None))
    for key, now in new.items():
        was = old.get(key)
        if was is None or not _same_mount(was, now):
            attached.append(MountEvent(EventKind.ATTACH, now, None, key if unique else None))
        elif was != now:
            changed.append(MountEvent(EventKind.CHANGE, now, was, key if unique else None))
    return detached + changed + attached


def _changed_lines(old: bytes, new: bytes) -> tuple[list[bytes], list[bytes]]:
    """The lines only in mountinfo text ``old`` and those only in ``new``, each in its text's order.

    A mount has one line, so a mount whose line is in both texts is unchanged, and the diff of
    these lines is the diff of the tables.  Only the stretch between the longest common prefix
    and suffix of whole lines is split and compared: a change of a few mounts costs a few block
    compares of the text, not a hash of each line.
    """
    head = _common(lambda i, j: old[i:j] == new[i:j], min(len(old), len(new)))
    head = old.rfind(b"\n", 0, head) + 1  # back to a line start (the same in both)
    n, m = len(old), len(new)
    tail = _common(lambda i, j: old[n - j : n - i] == new[m - j : m - i], min(n, m) - head)
    # forward to a line start: past the first newline of the common tail (the same in both)
    end = old.find(b"\n", n - tail) if tail else -1
    tail = n - end - 1 if end >= 0 else 0
    was = [line for line in old[head : n - tail].split(b"\n") if line]
    now = [line for line in new[head : m - tail].split(b"\n") if line]
    kept = set(was).intersection(now)
    return [line for line in was if line not in kept], [line for line in now if line not in kept]


def _common(same: Callable[[int, int], bool], limit: int) -> int:
    """The largest ``n <= limit`` with ``same(0, n)``, where ``same(i, j)`` compares offsets i to j.

    Whole blocks first, then a bisection inside the first block that differs: about
    ``limit / _BLOCK + 16`` compares, each a memcmp of at most a block.
    """
    n = 0
    while n + _BLOCK <= limit and same(n, n + _BLOCK):
        n += _BLOCK
    hi = min(n + _BLOCK, limit)
    while n < hi:  # same(0, n) holds; the answer lies in [n, hi]
        mid = (n + hi + 1) // 2
        if same(n, mid):
            n = mid
        else:
            hi = mid - 1
    return n


def _by_id(lines: list[bytes]) -> dict[int, MountInfo]:
    return {e.mount_id: e for e in MountTable.parse(b"\n".join(lines))} if lines else {}


class MountWatcher:
    """An armed watch: events that happen after construction are kept until read.

    Iterate it for an endless stream, or call :meth:`read` with a timeout.  Use it as a context
    manager (or call :meth:`close`) to release its file descriptors.  ``backend`` says which
    backend runs (``"fanotify"`` or ``"poll"``).
    """

    backend: Literal["fanotify", "poll"]

    def __init__(self, under: PathArg | None = None, *, backend: Backend = "auto") -> None:
        top = None if under is None else os.path.abspath(os.fsdecode(under))
        self._top = None if top == "/" else top  # "/" is the whole namespace
        self._fan = -1
        self._dirty = False
        # Opened before the first snapshot: a change after it wakes the next poll.
        self._mountinfo = os.open(_MOUNTINFO, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if backend in ("auto", "fanotify"):
                try:
                    self._fan = _fanotify_group()
                except UnsupportedError:
                    if backend == "fanotify":
                        raise
            self._poll = select.poll()
            self._poll.register(self._mountinfo, select.POLLPRI)
            # fanotify: every mount by unique id; those at or below the watched path; the places
            # mounts moved away from since the last rescan (their submounts moved unannounced)
            self._known: dict[int, MountInfo] = {}
            self._inside: set[int] = set()
            self._moved: list[str] = []
            # poll, and fanotify on the whole namespace: the text of the last rescan
            self._text = read_mountinfo() if self._fan < 0 or self._top is None else b""
            if self._fan >= 0:
                self.backend = "fanotify"
                self._poll.register(self._fan, select.POLLIN)
                self._reset(_described(_sys.listmount()))
            else:
                self.backend = "poll"
        except BaseException:
            self.close()
            raise

    def read(self, timeout: float | None = None) -> list[MountEvent]:
        """The events that arrive within ``timeout`` seconds (``None``: wait for at least one)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = left
            if self._dirty:
                wait = _SETTLE if left is None else min(left, _SETTLE)
            ready = self._poll.poll(None if wait is None else math.ceil(wait * 1000))
            events = self._events({fd for fd, _ in ready})
            if events:
                return events
            if left is not None and left <= 0:
                return []

    def __iter__(self) -> Iterator[MountEvent]:
        while True:
            yield from self.read()

    def _events(self, ready: set[int]) -> list[MountEvent]:
        if self._fan < 0:
            if self._mountinfo not in ready:
                return []
            new = read_mountinfo()
            gone, came = _changed_lines(self._text, new)
            found = _diff(_by_id(gone), _by_id(came), unique=False)
            self._text = new
        else:
            if self._mountinfo in ready:
                self._dirty = True
            found = self._drain() if self._fan in ready else []
            if self._dirty and not found and not ready - {self._mountinfo}:
                self._dirty = False
                found = self._rescan()
        return [e for e in found if _wanted(e, self._top)]

    def _drain(self) -> list[MountEvent]:
        """Every queued fanotify event, described."""
        found: list[MountEvent] = []
        while True:
            try:
                data = os.read(self._fan, _READ_SIZE)
            except BlockingIOError:
                return found
            for mask, uid in _sys.fan_mount_events(data):
                if mask & _OVERFLOW:
                    fresh = _described(_sys.listmount())
                    found += _diff(self._known, fresh, unique=True)
                    self._reset(fresh)
                    continue
                before = self._known.get(uid)
                if mask & _ATTACH:
                    after = _describe(uid)
                    if after is not None:
                        self._remember(uid, after)
                    if mask & _DETACH:  # a move (of a mount never described: its submounts may be anywhere)
                        if self._top is not None:  # a whole-namespace rescan looks at every mount anyway
                            self._moved.append(before.mount_point if before is not None else "/")
                        if after is None or after != before:  # a rescan may have seen the move first
                            found.append(MountEvent(EventKind.CHANGE, after, before, uid))
                    else:
                        found.append(MountEvent(EventKind.ATTACH, after, None, uid))
                elif mask & _DETACH:
                    self._known.pop(uid, None)
                    self._inside.discard(uid)
                    found.append(MountEvent(EventKind.DETACH, before, None, uid))

    def _rescan(self) -> list[MountEvent]:
        """Changes of the known mounts that may be wanted, in unique-id order (see the module docstring).

        Attach and detach come from fanotify, not from here; a mount gone meanwhile is left to its
        detach event.
        """
        if self._top is None:
            return self._rescan_text()
        suspects = set(self._inside)
        if self._moved:
            below = tuple(path.rstrip("/") + "/" for path in self._moved)
            suspects.update(uid for uid, info in self._known.items() if info.mount_point.startswith(below))
            self._moved.clear()
        found = []
        for uid, after in _described(sorted(suspects)).items():
            before = self._known[uid]
            if after != before:
                self._remember(uid, after)
                found.append(MountEvent(EventKind.CHANGE, after, before, uid))
        return found

    def _rescan_text(self) -> list[MountEvent]:
        """:meth:`_rescan` of the whole namespace, from mountinfo's changed lines: every mount is a
        suspect, and a line costs the kernel less than a statmount of its fields.

        Lines are matched to known mounts by mountinfo's mount id, which the kernel reuses, so
        fanotify events queued during the read are handled first and the rescan waits for the
        next quiet.
        """
        new = read_mountinfo()
        queued = self._drain()
        if queued:
            self._dirty = True
            return queued
        _gone, came = _changed_lines(self._text, new)
        self._text = new
        uid_of = {info.mount_id: uid for uid, info in self._known.items()}
        found = []
        for after in _by_id(came).values():
            uid = uid_of.get(after.mount_id)
            if uid is None:  # never described (gone before its attach was read): nothing to compare
                continue
            before = self._known[uid]
            if before != after and _same_mount(before, after):
                self._remember(uid, after)
                found.append(MountEvent(EventKind.CHANGE, after, before, uid))
        return sorted(found, key=lambda e: e.unique_id or 0)

    def _remember(self, uid: int, info: MountInfo) -> None:
        self._known[uid] = info
        if _below(info.mount_point, self._top):
            self._inside.add(uid)
        else:
            self._inside.discard(uid)

    def _reset(self, known: dict[int, MountInfo]) -> None:
        self._known = known
        self._inside = {uid for uid, info in known.items() if _below(info.mount_point, self._top)}

    def close(self) -> None:
        """Release the file descriptors (idempotent)."""
        for fd in (self._fan, self._mountinfo):
            if fd >= 0:
                os.close(fd)
        self._fan = self._mountinfo = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def watch(under: PathArg | None = None, *, backend: Backend = "auto") -> MountWatcher:
    """Start watching this process's mount namespace (only mounts at or below ``under``, if given).

    ``backend``: ``"fanotify"`` (6.15+, UnsupportedError before, or without CAP_SYS_ADMIN),
    ``"poll"``, or ``"auto"`` (fanotify where it works, else poll).  Events that happen from
    this call on are kept until read; see the module docstring for what each backend guarantees.
    """
    return MountWatcher(under, backend=backend)


def _fanotify_group() -> int:
    """A FAN_REPORT_MNT group marked on this mount namespace; UnsupportedError where the kernel cannot."""
    try:
        fd = _sys.fanotify_init(_FAN_INIT, os.O_RDONLY | os.O_CLOEXEC)
    except MountError as exc:
        # EINVAL: no FAN_REPORT_MNT (before 6.14); EPERM: not CAP_SYS_ADMIN
        raise UnsupportedError(
            exc.errno or errno.EINVAL, "fanotify_init", None, None, "no mount notifications here"
        ) from None
    try:
        ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _sys.fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MNTNS, _ATTACH | _DETACH, ns)
        finally:
            os.close(ns)
    except MountError as exc:
        os.close(fd)
        raise UnsupportedError(
            exc.errno or errno.EINVAL, "fanotify_mark", None, None, "no mount-namespace marks here"
        ) from None
    return fd


def _describe(uid: int) -> MountInfo | None:
    """statmount of one mount by unique id; None when it is gone."""
    found = MountTable.read_ids([uid])
    return found[0] if found else None


def _described(uids: list[int]) -> dict[int, MountInfo]:
    """The mounts of these unique ids that are still there, in that order, by statmount in one C call."""
    table = MountTable.read_ids(uids)
    if len(table) == len(uids):
        return dict(zip(uids, table, strict=True))
    # some are gone, and the records carry no unique id to match the rest by: one call each
    return {uid: info for uid in uids if (info := _describe(uid)) is not None}
