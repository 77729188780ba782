"""Scenarios for mountkit.watch shared by tests/privileged/test_watch.py (this kernel) and
tests/vm/guest/test_watch.py (the 6.1 guest, poll backend only).

Each scenario is a function run by ``in_ns`` in a private mount namespace; it returns plain data.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import mountkit
from mountkit import _sys
from mountkit.errors import UnsupportedError
from mountkit.flags import MS, STATX
from mountkit.table import MountInfo
from mountkit.watcher import EventKind, MountEvent, MountWatcher
from tests.support.kernelskips import NO_FANOTIFY_MOUNT_EVENTS

BURST = int(os.environ.get("MOUNTKIT_WATCH_BURST", "1000"))

#: what lifecycle() reports: (kind, mount point, ro/rw, previous mount point), paths under scratch
LIFECYCLE = [
    ("attach", "/w/a", "rw", None),
    ("change", "/w/a", "ro", "/w/a"),  # remount read-only
    ("change", "/w/b", "ro", "/w/a"),  # a move
    ("detach", "/w/b", "ro", None),
]


def open_watcher(under: str | None, backend: str) -> MountWatcher:
    try:
        return mountkit.watch(under, backend=backend)  # type: ignore[arg-type]
    except UnsupportedError as exc:
        pytest.skip(f"{NO_FANOTIFY_MOUNT_EVENTS}: {exc}")


def read_until(
    w: MountWatcher, done: Callable[[list[MountEvent]], bool], timeout: float = 30.0
) -> list[MountEvent]:
    """Read events until ``done(events)`` or ``timeout`` seconds without any."""
    events: list[MountEvent] = []
    while not done(events):
        batch = w.read(timeout)
        if not batch:
            break
        events += batch
    return events


def lifecycle(scratch: str, backend: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """attach, remount ro, move, detach of one tmpfs; a mount outside the watched path is not reported."""
    watched, outside = os.path.join(scratch, "w"), os.path.join(scratch, "outside")
    a, b = os.path.join(watched, "a"), os.path.join(watched, "b")
    for d in (watched, outside, a, b):
        os.mkdir(d)

    def one(w: MountWatcher) -> list[MountEvent]:
        return read_until(w, lambda ev: len(ev) >= 1)

    with open_watcher(watched, backend) as w:
        assert w.backend == backend
        _sys.mount("tmpfs", outside, "tmpfs", 0, None)
        _sys.mount("tmpfs", a, "tmpfs", 0, None)
        events = one(w)
        _sys.mount(None, a, None, MS.REMOUNT | MS.BIND | MS.RDONLY, None)
        events += one(w)
        _sys.mount(a, b, None, MS.MOVE, None)
        events += one(w)
        _sys.umount2(b)
        events += one(w)
        _sys.umount2(outside)
        events += w.read(0.3)  # nothing more: the outside mount is filtered out

    def rel(path: str | None) -> str | None:
        return None if path is None else path[len(scratch) :]

    return [
        (
            e.kind.value,
            rel(e.mount.mount_point) if e.mount else None,
            e.mount.options[0] if e.mount else None,
            rel(e.previous.mount_point) if e.previous else None,
        )
        for e in events
    ]


#: what move_tree() reports: (mount point, previous mount point) of each change, paths under scratch
MOVE_TREE = [
    *[(f"/w/x{sub}", f"/q{sub}") for sub in ("", "/c", "/c/d")],  # moved in, submounts with it
    *[(f"/o{sub}", f"/w/x{sub}") for sub in ("", "/c", "/c/d")],  # moved out again
]


def move_tree(scratch: str, backend: str) -> list[tuple[str, str]]:
    """A mount with two submounts moved outside the watched path, in, and out; a remount outside.

    Only the moves in and out are reported, each as a change of the three mounts; a move carries
    its submounts along without fanotify events of their own.
    """
    watched, o, q = (os.path.join(scratch, d) for d in ("w", "o", "q"))
    for d in (watched, o, q):
        os.mkdir(d)
    _sys.mount("tmpfs", o, "tmpfs", 0, None)
    os.makedirs(os.path.join(o, "c"))
    _sys.mount("tmpfs", os.path.join(o, "c"), "tmpfs", 0, None)
    os.mkdir(os.path.join(o, "c", "d"))
    _sys.mount("tmpfs", os.path.join(o, "c", "d"), "tmpfs", 0, None)
    os.mkdir(os.path.join(watched, "x"))
    with open_watcher(watched, backend) as w:
        _sys.mount(o, q, None, MS.MOVE, None)  # outside to outside: nothing to report
        events = w.read(0.3)
        _sys.mount(q, os.path.join(watched, "x"), None, MS.MOVE, None)
        events += read_until(w, lambda ev: len(ev) >= 3)
        _sys.mount(os.path.join(watched, "x"), o, None, MS.MOVE, None)
        events += read_until(w, lambda ev: len(ev) >= 3)
        _sys.mount(None, os.path.join(o, "c"), None, MS.REMOUNT | MS.BIND | MS.RDONLY, None)
        events += w.read(0.3)  # outside: nothing

    def rel(e: MountInfo | None) -> str:
        assert e is not None
        return e.mount_point[len(scratch) :]

    assert {e.kind for e in events} == {EventKind.CHANGE}
    return [(rel(e.mount), rel(e.previous)) for e in events]


@dataclass(frozen=True)
class Burst:
    """What burst_concurrent() made and what the watcher reported (sorted lists)."""

    targets: list[str]
    made_ids: list[int]  # unique ids of the binds (empty before 6.8: no STATX_MNT_ID_UNIQUE)
    attached: list[str]  # mount points of the attach events whose mount could be described
    detached: list[str]
    attached_ids: list[int]  # unique ids of the attach events (fanotify backend)
    detached_ids: list[int]


def burst_concurrent(scratch: str, backend: str, *, between_phases: bool = False) -> Burst:
    """BURST binds, then BURST unbinds in the same order, by another process while the watcher reads.

    ``between_phases``: the unbinds start once the watcher has reported every bind.  The poll
    backend reports what is in the table at one of its reads; on a loaded machine it may not get to
    read at all while a whole phase runs, so its test checks the guarantee it makes (nothing
    present at a read is lost, however many changes one read sums up) rather than the scheduler.
    """
    src = os.path.join(scratch, "src")
    os.mkdir(src)
    targets = [os.path.join(scratch, f"t{i:04d}") for i in range(BURST)]
    for t in targets:
        os.mkdir(t)
    rfd, wfd = os.pipe()
    go_r, go_w = os.pipe()
    with open_watcher(scratch, backend) as w:
        pid = os.fork()
        if pid == 0:
            try:
                ids = []
                for t in targets:
                    _sys.mount(src, t, None, MS.BIND, None)
                    st = _sys.statx(t, 0, STATX.MNT_ID_UNIQUE)
                    if st.mask & STATX.MNT_ID_UNIQUE:
                        ids.append(st.mnt_id)
                if between_phases:
                    os.read(go_r, 1)
                for t in targets:
                    _sys.umount2(t)
                os.write(wfd, array("Q", ids).tobytes())
            finally:
                os._exit(0)
        os.close(wfd)
        events = []
        if between_phases:
            events = read_until(
                w, lambda ev: sum(e.kind is EventKind.ATTACH for e in ev) >= BURST, timeout=10
            )
            os.write(go_w, b"g")
        events += read_until(w, lambda ev: sum(e.kind is EventKind.DETACH for e in ev) >= BURST, timeout=10)
        os.waitpid(pid, 0)
    for fd in (go_r, go_w):
        os.close(fd)
    with os.fdopen(rfd, "rb") as f:
        made = array("Q", f.read()).tolist()

    def points(kind: EventKind) -> list[str]:
        return sorted(e.mount.mount_point for e in events if e.kind is kind and e.mount)

    def ids(kind: EventKind) -> list[int]:
        return sorted(e.unique_id for e in events if e.kind is kind and e.unique_id is not None)

    return Burst(
        targets,
        sorted(made),
        points(EventKind.ATTACH),
        points(EventKind.DETACH),
        ids(EventKind.ATTACH),
        ids(EventKind.DETACH),
    )


#: what whole_namespace() reports: (kind, mount point, previous mount point, ro/rw, fs size), paths
#: under scratch
WHOLE_NAMESPACE = [
    ("attach", "/a", None, "rw", "size=1024k"),
    ("change", "/a", "/a", "ro", "size=1024k"),  # remount read-only
    (
        "change",
        "/a",
        "/a",
        "rw",
        "size=2048k",
    ),  # the filesystem's options (a remount sets the mount's flags too)
    ("attach", "/a/c", None, "rw", None),
    ("change", "/b", "/a", "rw", "size=2048k"),  # a move, with its submount
    ("change", "/b/c", "/a/c", "rw", None),
    ("detach", "/b/c", None, "rw", None),
    ("detach", "/b", None, "rw", "size=2048k"),
]


def whole_namespace(scratch: str, backend: str) -> list[tuple[str, str, str | None, str, str | None]]:
    """A watch of the whole namespace: attach, remount read-only, remount of the filesystem's
    options, a submount, a move carrying it, detaches; each change reported once, in order."""
    a, b = os.path.join(scratch, "a"), os.path.join(scratch, "b")
    for d in (a, b):
        os.mkdir(d)

    with open_watcher(None, backend) as w:

        def until(n: int) -> list[MountEvent]:
            return read_until(w, lambda ev: len(ev) >= n)

        _sys.mount("tmpfs", a, "tmpfs", 0, "size=1m")
        events = until(1)
        os.mkdir(os.path.join(a, "c"))
        _sys.mount(None, a, None, MS.REMOUNT | MS.BIND | MS.RDONLY, None)
        events += until(1)
        _sys.mount(None, a, None, MS.REMOUNT, "size=2m")
        events += until(1)
        _sys.mount("tmpfs", os.path.join(a, "c"), "tmpfs", 0, None)
        events += until(1)
        _sys.mount(a, b, None, MS.MOVE, None)
        events += until(2)
        _sys.umount2(os.path.join(b, "c"))
        events += until(1)
        _sys.umount2(b)
        events += until(1)
        events += w.read(0.3)  # nothing more
        assert not w._moved, "a whole-namespace watch keeps no list of moved-away places"

    def row(e: MountEvent) -> tuple[str, str, str | None, str, str | None]:
        now = e.mount or e.previous
        assert now is not None
        size = next((o for o in now.super_options if o.startswith("size=")), None)
        before = e.previous.mount_point[len(scratch) :] if e.mount and e.previous else None
        return e.kind.value, now.mount_point[len(scratch) :], before, now.options[0], size

    return [row(e) for e in events]
