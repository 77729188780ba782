"""mountkit.watch on this kernel: both backends, a 1,000-mount burst with no event lost, the CLI.

Every test runs in a private mount namespace (the ``in_ns`` fixture of mountkit.testing), so the
watcher sees only the mounts the test makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import mountkit
from mountkit import _sys
from mountkit.errors import UnsupportedError
from mountkit.flags import MS, STATX
from mountkit.watcher import EventKind, MountEvent, MountWatcher

pytestmark = pytest.mark.privileged

BURST = int(os.environ.get("MOUNTKIT_WATCH_BURST", "1000"))
BACKENDS = ("fanotify", "poll")


def _watcher(under: str, backend: str) -> MountWatcher:
    try:
        return mountkit.watch(under, backend=backend)  # type: ignore[arg-type]
    except UnsupportedError as exc:
        pytest.skip(f"no fanotify mount events on this kernel (6.15+): {exc}")


def _until(w: MountWatcher, done: Any, timeout: float = 30.0) -> list[MountEvent]:
    """Read events until ``done(events)`` or ``timeout`` seconds without any."""
    events: list[MountEvent] = []
    while not done(events):
        batch = w.read(timeout)
        if not batch:
            break
        events += batch
    return events


def _lifecycle(scratch: str, backend: str) -> list[tuple[str, str | None, tuple[str, ...], str | None]]:
    """attach, remount ro, move, detach of one tmpfs; a mount outside the watched path is not reported."""
    watched, outside = os.path.join(scratch, "w"), os.path.join(scratch, "outside")
    for d in (watched, outside):
        os.mkdir(d)
    a, b = os.path.join(watched, "a"), os.path.join(watched, "b")
    os.mkdir(a)
    os.mkdir(b)
    with _watcher(watched, backend) as w:
        assert w.backend == backend
        _sys.mount("tmpfs", outside, "tmpfs", 0, None)
        _sys.mount("tmpfs", a, "tmpfs", 0, None)
        events = _until(w, lambda ev: len(ev) >= 1)
        _sys.mount(None, a, None, MS.REMOUNT | MS.BIND | MS.RDONLY, None)
        events += _until(w, lambda ev: len(ev) >= 1)
        _sys.mount(a, b, None, MS.MOVE, None)
        events += _until(w, lambda ev: len(ev) >= 1)
        _sys.umount2(b)
        events += _until(w, lambda ev: len(ev) >= 1)
        _sys.umount2(outside)
        events += w.read(0.3)  # nothing more: the outside mount is filtered out
    return [
        (
            e.kind.value,
            e.mount.mount_point if e.mount else None,
            e.mount.options[:1] if e.mount else (),
            e.previous.mount_point if e.previous else None,
        )
        for e in events
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_attach_change_move_detach(in_ns: Any, backend: str) -> None:
    scratch_events = in_ns(_lifecycle, backend)
    a_rel, b_rel = "/w/a", "/w/b"
    kinds = [(kind, point and point[-4:], opts, prev and prev[-4:]) for kind, point, opts, prev in scratch_events]
    assert kinds == [
        ("attach", a_rel, ("rw",), None),
        ("change", a_rel, ("ro",), a_rel),  # remount read-only: previous shows rw
        ("change", b_rel, ("ro",), a_rel),  # a move
        ("detach", b_rel, ("ro",), None),
    ], scratch_events


def _burst_interleaved(scratch: str) -> tuple[list[int], list[tuple[str, int | None]]]:
    """fanotify: bind and at once unbind, BURST times, before reading a single event."""
    src, tgt = os.path.join(scratch, "src"), os.path.join(scratch, "tgt")
    os.mkdir(src)
    os.mkdir(tgt)
    made: list[int] = []
    with _watcher(scratch, "fanotify") as w:
        for _ in range(BURST):
            _sys.mount(src, tgt, None, MS.BIND, None)
            made.append(_sys.statx(tgt, 0, STATX.MNT_ID_UNIQUE).mnt_id)
            _sys.umount2(tgt)
        events = _until(w, lambda ev: len(ev) >= 2 * BURST, timeout=10)
    return made, [(e.kind.value, e.unique_id) for e in events]


def test_fanotify_burst_loses_no_event(in_ns: Any) -> None:
    made, events = in_ns(_burst_interleaved)
    assert len(set(made)) == BURST  # unique ids are never reused
    # every mount: its attach, then its detach, nothing else (the burst never waited for the reader)
    assert events == [(kind, uid) for uid in made for kind in ("attach", "detach")]


def _burst_concurrent(scratch: str, backend: str) -> tuple[list[str], list[str], list[str]]:
    """BURST binds, then BURST unbinds in the same order, by another process while the watcher reads."""
    src = os.path.join(scratch, "src")
    os.mkdir(src)
    targets = [os.path.join(scratch, f"t{i:04d}") for i in range(BURST)]
    for t in targets:
        os.mkdir(t)
    with _watcher(scratch, backend) as w:
        pid = os.fork()
        if pid == 0:
            try:
                for t in targets:
                    _sys.mount(src, t, None, MS.BIND, None)
                for t in targets:
                    _sys.umount2(t)
            finally:
                os._exit(0)
        events = _until(w, lambda ev: sum(e.kind is EventKind.DETACH for e in ev) >= BURST, timeout=10)
        os.waitpid(pid, 0)
    attached = sorted(e.mount.mount_point for e in events if e.kind is EventKind.ATTACH and e.mount)
    gone = sorted(e.mount.mount_point for e in events if e.kind is EventKind.DETACH and e.mount)
    return targets, attached, gone


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_burst_loses_no_event(in_ns: Any, backend: str) -> None:
    targets, attached, detached = in_ns(_burst_concurrent, backend)
    assert attached == targets
    assert detached == targets


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
