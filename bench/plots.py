"""Draw the benchmark figures bench/run collected (bench/results/results.csv) as PNGs beside it.

One plot per question: how each table operation grows with the number of mounts, what the kernel
itself charges per mount for mountinfo and statmount, how the probes
and the publish path grow, how publish latency grows with concurrent clients, how the Go client's pod burst
grows with
the mounts and with its size, and one bar chart of
mountkit against its alternatives at 10,000 mounts.  Run: ``python bench/plots.py [CSV]``.
"""

from __future__ import annotations

import csv
import os
import sys
from collections import defaultdict
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from common import RESULTS_DIR
from matplotlib.figure import Figure

Series = dict[str, list[tuple[float, float]]]

TABLE = {
    "raw read /proc/self/mountinfo": "raw read of mountinfo (the floor)",
    "MountTable.read()": "MountTable.read()",
    "list(MountTable.read())": "list(MountTable.read())",
    "MountTable.read(backend='statmount')": "MountTable.read(backend='statmount')",
    "psutil.disk_partitions(all=True)": "psutil.disk_partitions(all=True)",
    "findmnt -J (subprocess)": "findmnt -J",
    "find_mount (statx+statmount)": "find_mount, a mount root",
    "find_mount (not mounted)": "find_mount, not a mount point",
    "find_mount (mountinfo scan)": "find_mount, another pid (scan)",
}
KERNEL = {  # bench_table's per-mount rows, from kernel_floor.c
    "kernel, per mount: mountinfo text, read(2)": "mountinfo text, read(2)",
    "kernel, per mount: statmount of the backend's fields": "statmount of the backend's fields",
    "kernel, per mount: statmount of SB_BASIC alone (read_dev's pick)": "statmount of SB_BASIC alone",
    "kernel, per mount: listmount": "listmount",
}
PROBE = {
    "is_mountpoint (one statx)": "is_mountpoint (one statx)",
    "Mounter.is_mountpoint (deadline, probe pool)": "Mounter.is_mountpoint (deadline-bounded)",
    "MountTable.read().find": "full-table check",
}
PUBLISH = {
    "driver: NodePublishVolume(ro) + NodeUnpublishVolume": "driver: publish(ro) + unpublish over gRPC",
    "transport: 2x NodeGetCapabilities (no-op RPCs)": "transport: 2 no-op RPCs",
    "reference: mount -o bind; mount -o bind,remount,ro; umount": "reference: mount(8) x2 + umount(8)",
}
#: bench_kubelet's burst walls (the Go client's 110-pod burst; against the burst size without the suffix)
KUBELET_BURST = {
    "burst: publish wall (110)": "110 concurrent publishes, wall",
    "burst: unpublish wall (110)": "110 concurrent unpublishes, wall",
    "burst: publish wall, bare grpcio no-op server (110)": "the same publishes, bare grpcio no-op server",
    "burst: unpublish wall, bare grpcio no-op server (110)": "the same unpublishes, bare grpcio no-op server",
}
KUBELET_SIZE = {
    "burst: publish wall": "N concurrent publishes, wall",
    "burst: unpublish wall": "N concurrent unpublishes, wall",
    "burst: publish wall, bare grpcio no-op server": "the same publishes, bare grpcio no-op server",
    "burst: unpublish wall, bare grpcio no-op server": "the same unpublishes, bare grpcio no-op server",
}
#: (label, mountkit figure, alternative figure, bench) at 10,000 mounts (binds: 5,000 one by one)
VERSUS = (
    ("is it a mount point?", "is_mountpoint (one statx)", "MountTable.read().find", "probe"),
    ("bind + unmount", "bind+unmount Mounter", "mount --bind + umount (exec)", "bind"),
    ("ro bind + unmount", "ro bind+unmount Mounter", "mount -o bind,ro + umount (exec)", "bind"),
    (
        "publish(ro) + unpublish",
        "driver: NodePublishVolume(ro) + NodeUnpublishVolume",
        "reference: mount -o bind; mount -o bind,remount,ro; umount",
        "publish",
    ),
    ("whole table vs findmnt -J", "list(MountTable.read())", "findmnt -J (subprocess)", "table"),
    ("whole table vs psutil", "list(MountTable.read())", "psutil.disk_partitions(all=True)", "table"),
)


MOUNTS_X = "kubelet-like bind mounts in the namespace"
NODE_X = "kubelet-like bind mounts on the node"


@dataclass(frozen=True, slots=True)
class Growth:
    """One plot of figures against the swept value (log-log): ``file`` from bench ``bench``'s ``figures``."""

    file: str
    bench: str
    figures: dict[str, str]  # the figure's name in the CSV -> its label
    title: str
    xlabel: str
    unit_ns: float = 1e6
    ylabel: str = "median time"


GROWTH = (
    Growth("table.png", "table", TABLE, "Mount table operations against the number of mounts", MOUNTS_X),
    Growth(
        "kernel.png",
        "table",
        KERNEL,
        "The kernel's own cost per mount (C, nothing of mountkit's)",
        MOUNTS_X,
        1e3,
        "median time per mount",
    ),
    Growth("probe.png", "probe", PROBE, "Mount point checks against the number of mounts", MOUNTS_X, 1e3),
    Growth(
        "publish.png",
        "publish",
        PUBLISH,
        "NodePublish(ro)+NodeUnpublish against the number of mounts",
        NODE_X,
    ),
    Growth(
        "burst-mounts.png",
        "kubelet",
        KUBELET_BURST,
        "A 110-pod burst from the Go client against the number of mounts",
        NODE_X,
        ylabel="wall",
    ),
    Growth(
        "burst-size.png",
        "kubelet-burst",
        KUBELET_SIZE,
        "A burst from the Go client against its size (10,000 mounts)",
        "concurrent publishes (pods starting at once)",
        ylabel="wall",
    ),
)


def _save(fig: Figure, out: str) -> None:
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def load(path: str) -> dict[str, Series]:
    """bench -> figure -> [(x, value)], the last value measured at each x."""
    data: dict[str, dict[str, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            data[row["bench"]][row["figure"]][float(row["x"])] = float(row["value"])
    return {b: {fig: sorted(points.items()) for fig, points in figs.items()} for b, figs in data.items()}


def growth(series: Series, plot: Growth, out: str) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=90)
    for key, label in plot.figures.items():
        points = series.get(key)
        if points:
            ax.plot([x for x, _ in points], [v / plot.unit_ns for _, v in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(f"{plot.ylabel}, " + {1e6: "ms", 1e3: "µs"}[plot.unit_ns])
    ax.set_title(plot.title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    _save(fig, out)


def concurrency(series: Series, out: str) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=90)
    for key in ("publish p50", "publish p99"):
        points = series.get(key, [])
        ax.plot([x for x, _ in points], [v / 1e6 for _, v in points], marker="o", label=key)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("NodePublishVolume latency, ms")
    ax.grid(True, which="both", alpha=0.3)
    rate = series.get("publishes/s", [])
    twin = ax.twinx()
    twin.plot([x for x, _ in rate], [v for _, v in rate], marker="s", color="tab:green", label="publishes/s")
    twin.set_ylabel("publishes/s")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    ax.set_title("Publish latency and throughput against concurrent publishes (10,000 mounts)")
    _save(fig, out)


def versus(data: dict[str, Series], out: str) -> None:
    labels, ratios = [], []
    for label, ours, theirs, bench in VERSUS:
        series = data.get(bench, {})
        mine, other = dict(series.get(ours, [])), dict(series.get(theirs, []))
        at = 10_000.0 if 10_000.0 in mine else max(mine, default=None)
        if at is None or at not in other or not mine[at]:
            continue
        labels.append(label)
        ratios.append(other[at] / mine[at])
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.4), dpi=90)
    bars = ax.barh(labels, ratios, color=["tab:blue" if r >= 1 else "tab:red" for r in ratios])
    ax.bar_label(bars, labels=[f"{r:,.1f}x" for r in ratios], fontsize=8, padding=3)
    ax.set_xscale("log")
    ax.set_xlim(min([0.3, *ratios]), max([10.0, *ratios]) * 30)  # room for the labels
    ax.axvline(1, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("times faster than the alternative (log scale; 10,000 mounts; < 1: slower)")
    ax.set_title("mountkit against the alternatives")
    _save(fig, out)


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(RESULTS_DIR, "results.csv")
    data = load(path)
    here = os.path.dirname(os.path.abspath(path))
    for plot in GROWTH:
        growth(data.get(plot.bench, {}), plot, os.path.join(here, plot.file))
    concurrency(data.get("publish-concurrency", {}), os.path.join(here, "concurrency.png"))
    versus(data, os.path.join(here, "versus.png"))
    print(f"plots written to {here}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
