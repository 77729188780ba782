"""mountkit.watch on this kernel: both backends, 1,000-mount bursts with no event lost, the CLI.

Every test runs in a private mount namespace (the ``in_ns`` fixture of mountkit.testing), so the
watcher sees only the mounts the test makes.  The scenarios live in tests/support/watchutil.py, shared
with the 6.1 guest (tests/vm/guest/test_watch.py).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from mountkit import _sys
from mountkit.flags import MS, STATX
from mountkit.table import find_mount
from tests.support.kernelskips import MOUNT_ID_NOT_REUSED
from tests.support.watchutil import (
    BURST,
    LIFECYCLE,
    MOVE_TREE,
    WHOLE_NAMESPACE,
    burst_concurrent,
    lifecycle,
    move_tree,
    open_watcher,
    read_until,
    whole_namespace,
)

pytestmark = pytest.mark.privileged

BACKENDS = ("fanotify", "poll")


@pytest.mark.parametrize("backend", BACKENDS)
def test_attach_change_move_detach(in_ns: Any, backend: str) -> None:
    assert in_ns(lifecycle, backend) == LIFECYCLE


@pytest.mark.parametrize("backend", BACKENDS)
def test_move_carries_submounts(in_ns: Any, backend: str) -> None:
    assert in_ns(move_tree, backend) == MOVE_TREE


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_namespace_changes(in_ns: Any, backend: str) -> None:
    assert in_ns(whole_namespace, backend) == WHOLE_NAMESPACE


def _id_reused_during_rescan(scratch: str) -> tuple[bool, list[tuple[str, str, str]]]:
    """fanotify, whole namespace: while a rescan reads mountinfo, a bind is unmounted and another
    made, which takes the freed mount id (mountinfo's ids are reused).  The text then names the new
    mount by an id known for the old one; the rescan must not read that as the old one moving."""
    from mountkit import watcher

    src, a, old, new = (os.path.join(scratch, d) for d in ("src", "a", "old", "new"))
    for d in (src, a, old, new):
        os.mkdir(d)
    _sys.mount("tmpfs", a, "tmpfs", 0, None)
    _sys.mount(src, old, None, MS.BIND, None)
    old_id = find_mount(old).mount_id  # type: ignore[union-attr]
    real_read = watcher.read_mountinfo
    reused = []

    def swap_then_read() -> bytes:
        if not reused:
            _sys.umount2(old)
            _sys.mount(src, new, None, MS.BIND, None)
            reused.append(find_mount(new).mount_id == old_id)  # type: ignore[union-attr]
        return real_read()

    with open_watcher(None, "fanotify") as w:
        watcher.read_mountinfo = swap_then_read  # type: ignore[assignment]
        try:
            _sys.mount(None, a, None, MS.REMOUNT | MS.BIND | MS.RDONLY, None)  # wakes a rescan
            events = read_until(w, lambda ev: len(ev) >= 3)
            events += w.read(0.3)
        finally:
            watcher.read_mountinfo = real_read  # type: ignore[assignment]
    return reused[0], [
        (e.kind.value, e.mount.mount_point[len(scratch) :], e.mount.options[0]) for e in events if e.mount
    ]


def test_fanotify_rescan_with_an_id_reused_during_its_read(in_ns: Any) -> None:
    reused, events = in_ns(_id_reused_during_rescan)
    if not reused:
        pytest.skip(MOUNT_ID_NOT_REUSED)
    assert sorted(events) == [("attach", "/new", "rw"), ("change", "/a", "ro"), ("detach", "/old", "rw")]


def _burst_interleaved(scratch: str) -> tuple[list[int], list[tuple[str, int | None]]]:
    """fanotify: bind and at once unbind, BURST times, before reading a single event."""
    src, tgt = os.path.join(scratch, "src"), os.path.join(scratch, "tgt")
    os.mkdir(src)
    os.mkdir(tgt)
    made: list[int] = []
    with open_watcher(scratch, "fanotify") as w:
        for _ in range(BURST):
            _sys.mount(src, tgt, None, MS.BIND, None)
            made.append(_sys.statx(tgt, 0, STATX.MNT_ID_UNIQUE).mnt_id)
            _sys.umount2(tgt)
        events = read_until(w, lambda ev: len(ev) >= 2 * BURST, timeout=10)
    return made, [(e.kind.value, e.unique_id) for e in events]


def test_fanotify_burst_loses_no_event(in_ns: Any) -> None:
    made, events = in_ns(_burst_interleaved)
    assert len(set(made)) == BURST  # unique ids are never reused
    # every mount: its attach, then its detach, nothing else (the burst never waited for the reader)
    assert events == [(kind, uid) for uid in made for kind in ("attach", "detach")]


def test_concurrent_burst_fanotify(in_ns: Any) -> None:
    burst = in_ns(burst_concurrent, "fanotify")
    assert len(burst.made_ids) == BURST
    # every mount attached and detached, by its unique id; a mount already gone when its attach was
    # read cannot be described (no mount point), but its event is there
    assert burst.attached_ids == burst.made_ids
    assert burst.detached_ids == burst.made_ids
    assert set(burst.attached) <= set(burst.targets) and burst.detached == burst.attached


def test_concurrent_burst_poll(in_ns: Any) -> None:
    burst = in_ns(functools.partial(burst_concurrent, between_phases=True), "poll")
    # every mount in the table at one of the watcher's reads: attached, then detached
    assert burst.attached == burst.targets
    assert burst.detached == burst.targets


def _cli(scratch: str) -> tuple[list[dict[str, Any]], str]:
    target = os.path.join(scratch, "m")
    os.mkdir(target)
    argv = [sys.executable, "-m", "mountkit.cli", "watch", "--json", "--count", "2", scratch]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        armed = proc.stderr.readline()  # printed once the watch is armed
        _sys.mount("tmpfs", target, "tmpfs", 0, "size=1m")
        first = proc.stdout.readline()  # read before the unmount, so the mount can still be described
        _sys.umount2(target)
        out, _ = proc.communicate(timeout=30)
    return [json.loads(line) for line in (first + out).splitlines()], armed


def test_cli_watch_json(in_ns: Any) -> None:
    lines, armed = in_ns(_cli)
    assert armed.startswith("mountkit: watching ")
    assert [line["event"] for line in lines] == ["attach", "detach"]
    assert lines[0]["mount"]["fs_type"] == "tmpfs" and lines[0]["mount"]["mount_point"].endswith("/m")
    assert lines[1]["mount"]["mount_point"] == lines[0]["mount"]["mount_point"]
