"""mountkit.watch on this kernel: both backends, 1,000-mount bursts with no event lost, the CLI.

Every test runs in a private mount namespace (the ``in_ns`` fixture of mountkit.testing), so the
watcher sees only the mounts the test makes.  The scenarios live in tests/watchutil.py, shared
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
from watchutil import (
    BURST,
    LIFECYCLE,
    MOVE_TREE,
    burst_concurrent,
    lifecycle,
    move_tree,
    open_watcher,
    read_until,
)

from mountkit import _sys
from mountkit.flags import MS, STATX

pytestmark = pytest.mark.privileged

BACKENDS = ("fanotify", "poll")


@pytest.mark.parametrize("backend", BACKENDS)
def test_attach_change_move_detach(in_ns: Any, backend: str) -> None:
    assert in_ns(lifecycle, backend) == LIFECYCLE


@pytest.mark.parametrize("backend", BACKENDS)
def test_move_carries_submounts(in_ns: Any, backend: str) -> None:
    assert in_ns(move_tree, backend) == MOVE_TREE


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
