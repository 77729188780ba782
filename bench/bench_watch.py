"""Mount watchers under a burst: how many of 1,000 short-lived bind mounts each one reports.

Anchor: util-linux's ``findmnt --poll`` (libmount: a table diff on each POLLPRI of mountinfo, as
libmount's monitor does without fanotify).  Two bursts, neither waiting for any watcher:
``interleaved`` binds and at once unbinds each mount; ``phased`` binds all, then unbinds all.
Each row is the number of mounts whose attach the watcher reported, and the time it took after
the burst to report the last event; ratios are against findmnt in the same run.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

from common import Row, in_private_ns, report

from mountkit import _sys
from mountkit.errors import UnsupportedError
from mountkit.flags import MS
from mountkit.watcher import EventKind, watch

N = int(os.environ.get("MOUNTKIT_BENCH_WATCH", "1000"))
#: the watcher is done when it has been quiet this long after the burst
QUIET = 1.0


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
                    seen.add(e.unique_id if e.unique_id is not None else e.mount.mount_point if e.mount else "?")
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
        rows.append(Row(base, count, "mounts", None, f"of {N}; last event {lag * 1e3:.0f} ms after the burst"))
        for backend in ("fanotify", "poll"):
            try:
                count, lag = _mountkit(scratch, kind, backend)
            except UnsupportedError:
                continue
            note = f"of {N}; last event {lag * 1e3:.0f} ms after the burst"
            rows.append(Row(f"mountkit.watch {backend}, {kind}", count, "mounts", base, note))
    return rows


def main() -> None:
    report(f"mount watchers: attaches reported of {N} short-lived binds", in_private_ns(_run))


if __name__ == "__main__":
    main()
