"""Mount watchers: how many of 1,000 short-lived bind mounts each one reports, and what an event costs.

Burst.  Anchor: util-linux's ``findmnt --poll`` (libmount: a table diff on each POLLPRI of
mountinfo, as libmount's monitor does without fanotify).  Two bursts, neither waiting for any
watcher: ``interleaved`` binds and at once unbinds each mount; ``phased`` binds all, then unbinds
all.  Each row is the number of mounts whose attach the watcher reported, and the time it took
after the burst to report the last event; ratios are against findmnt in the same run.

Cost of an event.  10,000 unrelated mounts (kubelet-style binds) and a watch on a small subtree,
in which a tmpfs is mounted, remounted read-only and unmounted, over and over: each row is the
median CPU time (user + system, the kernel writing mountinfo included) the watcher spends from
the change until it has reported it and gone quiet.  The ``whole namespace`` rows watch every
mount: as the kernel does not say which mount a remount touched, both backends then read
mountinfo on each change and parse only the lines that differ (the fanotify backend re-described
every mount by statmount before).  Baselines, measured in the same run with the
rounds interleaved: a full-table diff on each POLLPRI of mountinfo (the whole table read into
records by mount id and compared with the last: what the poll backend did before it diffed lines,
and what a libmount monitor's caller does), from mountinfo and from listmount+statmount in one C
call (the fanotify backend's old re-describe of every known mount, at its cheapest).
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from common import Row, in_private_ns, kubelet_binds, record, report

# the burst's binds are bare syscalls, the kernel's pace with no checks between them (no public API)
from mountkit import Mounter, _sys
from mountkit.errors import UnsupportedError
from mountkit.flags import MS
from mountkit.table import Backend, MountInfo, MountTable, read_mountinfo
from mountkit.watcher import EventKind, watch

N = int(os.environ.get("MOUNTKIT_BENCH_WATCH", "1000"))
#: the watcher is done when it has been quiet this long after the burst
QUIET = 1.0
#: unrelated mounts present while the cost of one event is measured
UNRELATED = int(os.environ.get("MOUNTKIT_BENCH_WATCH_MOUNTS", "10000"))
#: rounds (each alternative in turn) and mount/remount/unmount cycles per round
ROUNDS, CYCLES = 3, 4
#: an event is handled once its watcher has been quiet this long (more than the fanotify settle time)
SETTLED = 0.1


def _burst(scratch: str, kind: str) -> list[str]:
    src = os.path.join(scratch, "src")
    targets = [os.path.join(scratch, f"{kind}{i:04d}") for i in range(N)]
    for t in (src, *targets):
        os.makedirs(t, exist_ok=True)
    if kind == "interleaved":
        for t in targets:
            _sys.mount(src, t, None, MS.BIND, None)
            _sys.umount2(t)
    else:
        for t in targets:
            _sys.mount(src, t, None, MS.BIND, None)
        for t in targets:
            _sys.umount2(t)
    return targets


def _start_burst(scratch: str, kind: str) -> tuple[int, int]:
    """Fork the burst; (pid, fd from which its end time, CLOCK_MONOTONIC, can be read)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        _burst(scratch, kind)
        os.write(wfd, repr(time.monotonic()).encode())
        os._exit(0)
    os.close(wfd)
    return pid, rfd


def _ended(pid: int, rfd: int) -> float:
    os.waitpid(pid, 0)
    with os.fdopen(rfd, "rb") as f:
        return float(f.read())


def _mountkit(scratch: str, kind: str, backend: str) -> tuple[int, float]:
    """(mounts reported attached, seconds from the burst's end to the last event)."""
    with watch(scratch, backend=backend) as w:  # type: ignore[arg-type]
        pid, rfd = _start_burst(scratch, kind)
        seen: set[int | str] = set()
        last = time.monotonic()
        while True:
            events = w.read(QUIET)
            for e in events:
                if e.kind is EventKind.ATTACH:
                    seen.add(
                        e.unique_id if e.unique_id is not None else e.mount.mount_point if e.mount else "?"
                    )
                last = time.monotonic()
            if not events:
                return len(seen), max(0.0, last - _ended(pid, rfd))


def _findmnt(scratch: str, kind: str) -> tuple[int, float]:
    argv = ["findmnt", "--poll", "--raw", "--noheadings", "--output", "ACTION,TARGET"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        time.sleep(0.5)  # findmnt prints nothing when armed: give it time to read the first table
        pid, rfd = _start_burst(scratch, kind)
        last = time.monotonic()
        seen = set()
        while select.select([proc.stdout], [], [], QUIET)[0]:
            line = proc.stdout.readline()
            if not line:
                break
            action, _, target = line.strip().partition(" ")
            if action == "mount" and target.startswith(scratch):
                seen.add(target)
            last = time.monotonic()
        proc.kill()  # our own child, by its handle
    return len(seen), max(0.0, last - _ended(pid, rfd))


def _run(scratch: str) -> list[Row]:
    rows = []
    for kind in ("interleaved", "phased"):
        base = f"findmnt --poll, {kind}"
        count, lag = _findmnt(scratch, kind)
        rows.append(
            Row(base, count, "mounts", None, f"of {N}; last event {lag * 1e3:.0f} ms after the burst")
        )
        for backend in ("fanotify", "poll"):
            try:
                count, lag = _mountkit(scratch, kind, backend)
            except UnsupportedError:
                continue
            note = f"of {N}; last event {lag * 1e3:.0f} ms after the burst"
            rows.append(Row(f"mountkit.watch {backend}, {kind}", count, "mounts", base, note))
    return rows


class _Watcher(Protocol):
    def read(self, timeout: float) -> Sequence[object]: ...

    def close(self) -> None: ...


class _FullTableDiff:
    """A baseline watcher: on each POLLPRI of mountinfo, the whole table by mount id, compared with the last.

    ``backend=None`` reads the mountinfo text and nothing more: the floor of any watcher that
    learns what changed from mountinfo (the poll backend), not a watcher.
    """

    def __init__(self, backend: Backend | None) -> None:
        self._backend = backend
        self._fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLPRI)
        self._last = self._table()

    def _table(self) -> dict[int, MountInfo]:
        if self._backend is None:
            read_mountinfo()
            return {}
        return {e.mount_id: e for e in MountTable.read(backend=self._backend)}

    def read(self, timeout: float) -> list[int]:
        """The ids of the mounts that changed (attached, detached or other), once the table changed."""
        if not self._poll.poll(timeout * 1000):
            return []
        new = self._table()
        if self._backend is None:
            return [0]
        changed = [key for key in self._last.keys() | new.keys() if self._last.get(key) != new.get(key)]
        self._last = new
        return changed

    def close(self) -> None:
        os.close(self._fd)


def _cycles(target: str, w: _Watcher) -> list[float]:
    """CPU seconds from each change (mount, remount read-only, unmount) until reported and quiet."""
    mounter = Mounter()
    changes: tuple[Callable[[], None], ...] = (
        lambda: mounter.mount("tmpfs", target, "tmpfs", "size=1m"),
        lambda: mounter.remount(target, "ro"),
        lambda: mounter.unmount(target),
    )
    costs = []
    for _ in range(CYCLES):
        for change in changes:
            change()
            start = time.process_time()
            reported = 0
            while batch := w.read(SETTLED):
                reported += len(batch)
            costs.append(time.process_time() - start)
            assert reported, "a watcher missed a change"
    return costs


def _per_event(scratch: str) -> list[Row]:
    os.mkdir(os.path.join(scratch, "unrelated"))
    kubelet_binds(os.path.join(scratch, "unrelated"), UNRELATED)
    sub = os.path.join(scratch, "sub")
    target = os.path.join(sub, "m")
    os.makedirs(target)
    openers: dict[str, Callable[[], _Watcher]] = {
        "mountinfo read alone (floor)": lambda: _FullTableDiff(None),
        "full-table diff, mountinfo": lambda: _FullTableDiff("mountinfo"),
        "full-table diff, statmount": lambda: _FullTableDiff("statmount"),
        "mountkit.watch poll": lambda: watch(sub, backend="poll"),
        "mountkit.watch fanotify": lambda: watch(sub, backend="fanotify"),
        "mountkit.watch poll, whole namespace": lambda: watch(backend="poll"),
        "mountkit.watch fanotify, whole namespace": lambda: watch(backend="fanotify"),
    }
    costs: dict[str, list[float]] = {name: [] for name in openers}
    for _ in range(ROUNDS):
        for name, opener in openers.items():
            try:
                w = opener()
            except UnsupportedError:
                continue
            try:
                costs[name] += _cycles(target, w)
            finally:
                w.close()

    def baseline(name: str) -> str | None:
        if name.startswith("full-table"):
            return None
        return "full-table diff, statmount" if "fanotify" in name else "full-table diff, mountinfo"

    return [
        Row(name, statistics.median(c) * 1e9, "ns", baseline(name), f"{len(c)} events")
        for name, c in costs.items()
        if c
    ]


def main() -> None:
    report(f"mount watchers: attaches reported of {N} short-lived binds", in_private_ns(_run))
    rows = in_private_ns(_per_event)
    report(
        f"mount watchers: CPU per event, watching a small subtree among {UNRELATED:,} unrelated mounts", rows
    )
    record("watch-event", "mounts", UNRELATED, rows)


if __name__ == "__main__":
    main()
