"""Shared benchmark helpers: a private namespace, kubelet-like mounts, timing, and a ratio printer.

Benchmarks mount for real, so every one runs its body through :func:`in_private_ns` (the test
suite's :func:`mountkit.testing.run_in_private_ns`): the mounts
live and die in a child's own mount namespace and never reach the host.  Timings are medians and
p99s of ``time.perf_counter_ns`` over repeats, and every figure is printed as a ratio against an
alternative measured in the same run, because absolute numbers on a shared 2-core machine mean
little across runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from csi.node import kubelet

# the kernel's floor times the bare syscalls, which only the private bindings reach (no public API)
from mountkit import Mounter, _sys
from mountkit.flags import AT, AT_FDCWD, MNT, MOUNT_ATTR, MOVE_MOUNT, OPEN_TREE
from mountkit.testing import run_in_private_ns

T = TypeVar("T")

#: where kubelet puts a CSI volume's publish target, relative to the kubelet root
#: kubelet's root below a benchmark's scratch directory
KUBELET_ROOT = "var/lib/kubelet"


def in_private_ns(fn: Callable[..., T], *args: Any, timeout: float = 600.0) -> T:
    """``fn(scratch, *args)`` in a forked child with a private mount namespace and a tmpfs scratch."""
    return run_in_private_ns(fn, *args, timeout=timeout)


def kubelet_binds(scratch: str, n: int, *, per_pod: int = 1) -> list[str]:
    """Bind-mount one staging dir onto ``n`` kubelet-style CSI targets under ``scratch``; their paths.

    The bind source sits on a tmpfs of its own, apart from the tree holding the targets: a
    non-recursive bind gets slower as its *source* mount gains children (ARCHITECTURE notes), so
    binding from the scratch tmpfs itself would make building 10,000 mounts quadratic.
    """
    mounter = Mounter()
    staging = os.path.join(scratch, "staging")
    os.mkdir(staging)
    mounter.mount("tmpfs", staging, "tmpfs", "size=1m,mode=755")
    targets = []
    pod = ""
    for i in range(n):
        if i % per_pod == 0:
            pod = str(uuid.UUID(int=i + 1))
        target = kubelet.publish_target(os.path.join(scratch, KUBELET_ROOT), pod, f"pvc-{i:05d}")
        os.makedirs(target)
        mounter.bind(staging, target)
        targets.append(target)
    return targets


BARE_PUBLISH_CYCLE = "kernel: mkdir, open_tree + mount_setattr + move_mount, umount2, rmdir (bare)"


def bare_publish_cycle(source: str, target: str) -> None:
    """The kernel's part of a read-only publish + unpublish alone: the syscalls the driver asks for,
    made bare by this process, with none of its checks (a floor for the publish figures)."""
    os.mkdir(target)
    fd = _sys.open_tree(source, int(OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC))
    try:
        _sys.mount_setattr(fd, "", int(AT.EMPTY_PATH), int(MOUNT_ATTR.RDONLY))
        _sys.move_mount(fd, "", AT_FDCWD, target, int(MOVE_MOUNT.F_EMPTY_PATH))
    finally:
        os.close(fd)
    _sys.umount2(target, int(MNT.UMOUNT_NOFOLLOW))
    os.rmdir(target)


@dataclass(frozen=True, slots=True)
class Timing:
    """Median and 99th percentile of one operation, in nanoseconds."""

    median_ns: float
    p99_ns: float
    repeats: int


def settle(*, busy_below: float = 10.0, within: float = 15.0) -> float:
    """Wait for a quiet machine before timing a tail: the CPUs under ``busy_below`` % busy over 0.2 s
    (the kernel tearing down an earlier benchmark's namespace of 30,000 mounts keeps a core busy
    for a while after its processes are gone), for at most ``within`` s; the busy % last seen."""
    import psutil

    deadline = time.monotonic() + within
    while True:
        busy = float(psutil.cpu_percent(interval=0.2))
        if busy < busy_below or time.monotonic() >= deadline:
            return busy


def _timing(samples: list[int]) -> Timing:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return Timing(statistics.median(samples), p99, len(samples))


def measure(fn: Callable[[], object], *, repeats: int = 30, warmup: int = 2) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls."""
    return measure_together({"": fn}, repeats=repeats, warmup=warmup)[""]


def measure_in_turn(
    fns: dict[str, Callable[[], object]], *, repeats: int = 30, warmup: int = 2
) -> dict[str, tuple[Timing, Timing]]:
    """(wall, CPU) timings of each function, called one after another in every round, the order
    rotating.

    For operations whose ratios matter: a load that comes and goes on the shared machine, or a
    cache one operation leaves warm for its next call, then weighs on all of them alike.  CPU is
    ``time.process_time_ns``: every thread of the process, so work spread over threads shows.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    wall: dict[str, list[int]] = {name: [] for name in names}
    cpu: dict[str, list[int]] = {name: [] for name in names}
    for round_ in range(repeats):
        for i in range(len(names)):
            name = names[(round_ + i) % len(names)]
            cpu_start, start = time.process_time_ns(), time.perf_counter_ns()
            fns[name]()
            wall[name].append(time.perf_counter_ns() - start)
            cpu[name].append(time.process_time_ns() - cpu_start)
    return {name: (_timing(wall[name]), _timing(cpu[name])) for name in names}


def measure_together(
    fns: dict[str, Callable[[], object]], *, repeats: int = 30, warmup: int = 2
) -> dict[str, Timing]:
    """The wall times of :func:`measure_in_turn`."""
    return {name: wall for name, (wall, _cpu) in measure_in_turn(fns, repeats=repeats, warmup=warmup).items()}


def fmt_ns(ns: float) -> str:
    """A duration with a readable unit."""
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


@dataclass(frozen=True, slots=True)
class Row:
    """One printed line: ``name  value  ratio vs <baseline>``; ``value`` is in ``unit``."""

    name: str
    value: float
    unit: str = "ns"
    baseline: str | None = None  # the name of another row, to print a ratio against
    note: str = ""


#: a figure set per swept value: (the value, e.g. a burst size, and its rows)
Sweep = list[tuple[int, list[Row]]]


def timing_row(name: str, timing: Timing, baseline: str | None = None, note: str = "") -> Row:
    """A row for a timing (its median; the p99 goes into the note)."""
    p99 = f"p99 {fmt_ns(timing.p99_ns)}"
    return Row(name, timing.median_ns, "ns", baseline, f"{p99}; {note}" if note else p99)


def report(title: str, rows: Sequence[Row]) -> str:
    """Print (and return) the rows aligned, each with its ratio against its baseline row."""
    by_name = {row.name: row for row in rows}
    width = max(len(row.name) for row in rows)
    lines = [f"== {title}"]
    for row in rows:
        value = fmt_ns(row.value) if row.unit == "ns" else f"{row.value:,.0f} {row.unit}"
        ratio = ""
        if row.baseline is not None:
            base = by_name[row.baseline].value
            ratio = f"{row.value / base:7.2f}x vs {row.baseline}" if base else f"   n/a vs {row.baseline}"
        note = f"  ({row.note})" if row.note else ""
        lines.append(f"{row.name:<{width}}  {value:>12}  {ratio}{note}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


#: where bench/run collects every figure (bench/plots.py draws from it); override with MOUNTKIT_BENCH_CSV
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CSV_FIELDS = ("bench", "figure", "x_name", "x", "value", "unit")


def record(bench: str, x_name: str, x: float, rows: Sequence[Row]) -> None:
    """Append ``rows`` (measured at ``x_name`` = ``x``, e.g. mounts = 10000) to the results CSV."""
    path = os.environ.get("MOUNTKIT_BENCH_CSV") or os.path.join(RESULTS_DIR, "results.csv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fresh = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        out = csv.writer(f)
        if fresh:
            out.writerow(CSV_FIELDS)
        for row in rows:
            out.writerow((bench, row.name, x_name, x, f"{row.value:.6g}", row.unit))


def int_list(text: str) -> list[int]:
    """A comma-separated list of counts, as the benchmarks' sweep flags take it (``100,1000,10000``)."""
    return [int(v) for v in text.split(",") if v]


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took (once; for the set-up figures a report names, not for measurements)."""
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def node_parser(doc: str, sweep_at_help: str) -> argparse.ArgumentParser:
    """The flags of the node benchmarks (bench_kubelet, bench_publish): ``--mounts`` made beforehand,
    one run per count, and ``--sweep-at``, the count at which the sweep runs; add their own to it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--mounts",
        type=int_list,
        default=[100, 1_000, 10_000, 30_000],
        help="kubelet binds made beforehand, one run per count (comma-separated)",
    )
    parser.add_argument("--sweep-at", type=int, default=10_000, help=sweep_at_help)
    return parser


def is_root(bench: str) -> bool:
    """Root, else False with a line on stderr: the benchmarks make a private namespace and real mounts."""
    if os.geteuid() == 0:
        return True
    print(f"{bench}: needs root (a private mount namespace and real mounts)", file=sys.stderr)
    return False


def per_mount_count(
    bench: Callable[..., tuple[list[Row], Sweep]],
    mounts: Sequence[int],
    sweep_at: int,
    figures: tuple[str, str, str],
    *args: Any,
) -> None:
    """``bench(scratch, existing, sweep, *args)`` in a private namespace of its own for each count of
    ``mounts`` (``sweep``: is it ``sweep_at``); its rows recorded as bench ``figures[0]`` against the
    mount count, its sweep as bench ``figures[1]`` against ``figures[2]``."""
    name, sweep_name, sweep_x = figures
    for existing in mounts:
        rows, sweep = in_private_ns(bench, existing, existing == sweep_at, *args, timeout=1800)
        record(name, "mounts", existing, rows)
        for x, sweep_rows in sweep:
            record(sweep_name, sweep_x, x, sweep_rows)


def report_node(
    what: str,
    existing: int,
    built: float,
    busy: float,
    rows: Sequence[Row],
    sweep: Sequence[tuple[str, list[Row]]],
) -> None:
    """Report a node benchmark's run at ``existing`` mounts (made in ``built`` s, the CPUs ``busy`` % before
    timing): ``rows`` under ``what``, then each (title, rows) of its sweep."""
    on_node = f"{existing:,} mounts on the node"
    report(f"{what}, {on_node} (built in {built:.1f} s; CPUs {busy:.0f}% busy before timing)", rows)
    for title, sweep_rows in sweep:
        report(f"{title}, {on_node}", sweep_rows)
