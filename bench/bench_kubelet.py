"""The node service as the kubelet calls it: csi-pubbench (Go, grpc-go) against the running driver.

Kubelet calls a CSI node plugin from Go; a Python client adds its own per-call cost to every
figure, so this benchmark drives the driver with csi-pubbench (``../shared/tools/csi-pubbench``,
README there): a static Go client of the CSI spec's Go bindings and grpc-go, which also serves a
Go no-op node service, the transport's floor.

Everything runs in a private mount namespace (``common.in_private_ns``): kubelet-like pod binds
are made first, one tmpfs is "staged" beneath the kubelet root, then the driver is started as
deployed (``python -m csi.main --mode node``, logging at its default INFO level to a file) as a
process of that namespace.  Measured in the same run, per number of existing mounts:

  * sequential NodePublishVolume(ro)+NodeUnpublishVolume pairs from the Go client, p50 and p99,
    against two no-op RPCs (NodeGetCapabilities) of the same server from the same client, and
    against the Go no-op server's two no-op RPCs, in alternating blocks (at ``--sweep-at`` mounts);
  * the burst: N concurrent publishes to N targets (N pods with the volume starting at once),
    then N concurrent unpublishes, as walls, against the same bursts answered by a bare grpcio no-op
    server; errors; the driver's RSS after the bursts (serving /metrics, scraped once, as the node
    DaemonSet runs it) against that bare server's;
  * once, outside the timing, the same burst with a mount watcher (fanotify) recording every
    target's attach: each must be read-only when it appears;
  * the burst's walls against the burst size (at ``--sweep-at`` mounts).

The Go client is found at ``--pubbench``, ``$CSI_PUBBENCH``, on PATH, or unpacked from
``csi-pubbench.xz`` (``$CSI_PUBBENCH_XZ`` or ``../shared/tools/csi-pubbench/``, checked against
the SHA256SUMS beside it); without one the benchmark is skipped (exit 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable

import bench_transport
import common

from csi.node import kubelet  # loads no grpc: safe before the fork
from csi.version import DEFAULT_DRIVER_NAME
from mountkit import Mounter

#: how the driver is started: as deployed, node mode, default log level
DRIVER = ("-m", "csi.main", "--mode", "node", "--node-id", "bench-node", "--zone", "us-central1-c")
#: the pod count a kubelet admits per node by default: the burst when all of them start at once
BURST = 110

PAIR = "Go client: publish(ro)+unpublish pair"
CAPS = "Go client: 2 no-op RPCs, this server"
#: what a pair cannot go below with this transport: its two RPCs doing nothing, plus the kernel's syscalls
PAIR_FLOOR = "floor: 2 no-op RPCs + the bare syscalls"
GO_CAPS = "Go client: 2 no-op RPCs, Go no-op server"
PUBLISH_WALL = "burst: publish wall"
UNPUBLISH_WALL = "burst: unpublish wall"
#: the same bursts answered by a bare grpcio server doing no work: what the transport alone costs
FLOOR = ", bare grpcio no-op server"
ERRORS = "burst: failed runs"
READONLY = "burst: targets read-only at attach"
RSS = "driver RSS after the bursts, /metrics scraped (as deployed)"
RSS_FLOOR = "bare grpcio no-op server RSS after the same bursts"


# --- the Go client -------------------------------------------------------------


def _unpacked(xz: str, out_dir: str) -> str:
    """``xz`` unpacked into ``out_dir``, checked against the SHA256SUMS beside it."""
    out = os.path.join(out_dir, "csi-pubbench")
    with lzma.open(xz) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    sums = os.path.join(os.path.dirname(xz), "SHA256SUMS")
    if os.path.exists(sums):
        with open(sums) as f:
            want = {name: digest for digest, name in (line.split() for line in f if line.strip())}
        with open(out, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if want.get("csi-pubbench") != got:
            raise SystemExit(f"bench_kubelet: {xz} unpacks to sha256 {got}, not the one in {sums}")
    os.chmod(out, 0o755)
    return out


def find_pubbench(given: str | None, unpack_to: str) -> str | None:
    """The csi-pubbench binary to use (see the module docstring; an .xz is unpacked into
    ``unpack_to``); None when there is none."""
    for path in (given, os.environ.get("CSI_PUBBENCH"), shutil.which("csi-pubbench")):
        if path and os.access(path, os.X_OK):
            return path
    here = os.path.dirname(os.path.abspath(__file__))
    for xz in (
        os.environ.get("CSI_PUBBENCH_XZ"),
        os.path.join(here, "..", "..", "shared", "tools", "csi-pubbench", "csi-pubbench.xz"),
    ):
        if xz and os.path.exists(xz):
            return _unpacked(xz, unpack_to)
    return None


def _run(pubbench: str, *args: str) -> dict[str, object]:
    """One csi-pubbench run; its JSON answer (a non-zero exit raises with its stderr)."""
    done = subprocess.run([pubbench, *args], check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"csi-pubbench {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _ms(values: object) -> list[float]:
    assert isinstance(values, list)
    return [float(v) for v in values]


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- one namespace ---------------------------------------------------------------


class _Node:
    """The driver serving the node service in this namespace; beside it the Go no-op server and a bare
    grpcio no-op node server with as many worker threads (bench_transport's ``noop-node``)."""

    def __init__(self, scratch: str, root: str, pubbench: str, workers: int) -> None:
        self.sock = os.path.join(scratch, "csi.sock")
        self.go_sock = os.path.join(scratch, "go.sock")
        self.log = open(os.path.join(scratch, "driver.log"), "w")  # noqa: SIM115 - closed in stop()
        with socket.socket() as probe:  # a free loopback port for /metrics, as the DaemonSet serves it
            probe.bind(("127.0.0.1", 0))
            self.http = f"127.0.0.1:{probe.getsockname()[1]}"
        self.driver = subprocess.Popen(
            [
                sys.executable,
                *DRIVER,
                "--endpoint",
                f"unix://{self.sock}",
                "--kubelet-root",
                root,
                "--workers",
                str(workers),
                "--http-endpoint",
                self.http,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.go = subprocess.Popen([pubbench, "serve", self.go_sock], stderr=subprocess.DEVNULL)
        self.noop_sock = os.path.join(scratch, "noop.sock")
        self.noop = bench_transport._start("noop-node", self.noop_sock, None, workers)
        assert self.driver.stdout is not None
        line = self.driver.stdout.readline()  # "listening on ...", once serving
        if not line.startswith("listening on"):
            self.stop()
            raise RuntimeError(f"the driver did not start: {line!r}")
        deadline = time.monotonic() + 30
        while not os.path.exists(self.go_sock):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Go no-op server did not start")
            time.sleep(0.01)

    def rss_mib(self, process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> float:
        import psutil

        return float(psutil.Process(process.pid).memory_info().rss) / 2**20

    def scrape(self) -> None:
        """GET /metrics once, as Prometheus does (the driver loads what writing them out needs then)."""
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=30) as answer:
            if b"csi_operations_total" not in answer.read():
                raise RuntimeError("the driver's /metrics shows no csi_operations_total")

    def stop(self) -> None:
        for proc in (self.driver, self.go, self.noop):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


def _burst(pubbench: str, sock: str, staging: str, base: str, n: int) -> tuple[float, float] | str:
    """(publish wall, unpublish wall) in ms of one burst of ``n`` at ``base``-0..n-1; the error instead."""
    os.makedirs(os.path.dirname(base), exist_ok=True)
    try:
        got = _run(pubbench, sock, staging, base, str(n), "burst")
    except RuntimeError as exc:
        return str(exc)
    left = [f"{base}-{i}" for i in range(n) if os.path.exists(f"{base}-{i}")]
    if left:
        return f"{len(left)} targets left after the unpublishes, first {left[0]}"
    return float(str(got["publish_wall_ms"])), float(str(got["unpublish_wall_ms"]))


def _checked_burst(pubbench: str, sock: str, staging: str, base: str, n: int) -> tuple[int, str]:
    """How many of a burst's ``n`` targets were read-only when their attach was seen, and a note.

    A fanotify watcher (a thread of this process: untimed) describes each mount as its attach
    event is read; every target must be attached once, and read-only.
    """
    from mountkit.watcher import EventKind, watch

    parent = os.path.dirname(base)
    os.makedirs(parent, exist_ok=True)
    top = os.path.realpath(parent)
    seen: dict[str, bool | None] = {}
    stop = threading.Event()
    with watch(top) as watcher:
        if watcher.backend != "fanotify":
            return 0, "not checked: no fanotify mount events (Linux 6.15+)"

        def collect() -> None:
            while True:
                last = stop.is_set()
                for event in watcher.read(timeout=0.0 if last else 0.05):
                    if event.kind is EventKind.ATTACH and event.mount is not None:
                        seen.setdefault(event.mount.mount_point, event.mount.readonly)
                if last:
                    return

        reader = threading.Thread(target=collect)
        reader.start()
        try:
            result = _burst(pubbench, sock, staging, base, n)
        finally:
            stop.set()
            reader.join()
    if isinstance(result, str):
        return 0, result
    targets = [os.path.join(top, f"{os.path.basename(base)}-{i}") for i in range(n)]
    ro = sum(1 for t in targets if seen.get(t) is True)
    writable = [t for t in targets if seen.get(t) is False]
    unseen = sum(1 for t in targets if t not in seen)
    first = f", first {writable[0]}" if writable else ""
    note = f"{len(writable)} writable{first}; {unseen} not seen by the watcher"
    return ro, note


def _stage(scratch: str, existing: int) -> tuple[str, str, float]:
    """The node before the driver starts: ``existing`` kubelet binds and one staged share beneath the
    kubelet root; (kubelet root, staging path, seconds the binds took)."""
    built = common.timed(lambda: common.kubelet_binds(scratch, existing))
    root = os.path.join(scratch, common.KUBELET_ROOT)
    staging = kubelet.staging_path(root, DEFAULT_DRIVER_NAME, "bench")
    os.makedirs(staging)
    Mounter().mount("share", staging, "tmpfs", "size=1m")
    return root, staging, built


def _pair_rows(
    node: _Node, pubbench: str, staging: str, target: str, pairs: int, blocks: int
) -> list[common.Row]:
    """Sequential publish+unpublish pairs and no-op RPCs, in alternating blocks: this server, then the
    Go no-op server, then the pair's syscalls made bare by this process; p50 and p99 of each against
    the transport beneath it, and the pair against its floor: the no-op RPCs plus the bare syscalls."""
    os.makedirs(os.path.dirname(target))
    pair: list[float] = []
    caps: list[float] = []
    go_caps: list[float] = []
    kernel: list[float] = []
    bare = target + "-bare"
    for _ in range(blocks):
        got = _run(pubbench, node.sock, staging, target, str(pairs))
        pair += _ms(got["total"])
        caps += _ms(got["caps"])
        go_caps += _ms(_run(pubbench, node.go_sock, staging, target, str(pairs), "caps")["caps"])
        for _ in range(pairs):
            start = time.perf_counter_ns()
            common.bare_publish_cycle(staging, bare)
            kernel.append((time.perf_counter_ns() - start) / 1e6)
    rows: list[common.Row] = []
    quantiles: tuple[tuple[str, Callable[[list[float]], float], str], ...] = (
        ("p50", statistics.median, "goal <= 1.15x"),
        ("p99", lambda v: _p(v, 0.99), "goal <= 2x"),
    )
    for label, pick, goal in quantiles:
        rows += [
            common.Row(f"{GO_CAPS} {label}", pick(go_caps) * 1e6),
            common.Row(f"{CAPS} {label}", pick(caps) * 1e6, baseline=f"{GO_CAPS} {label}"),
            common.Row(f"{common.BARE_PUBLISH_CYCLE} {label}", pick(kernel) * 1e6),
            common.Row(f"{PAIR_FLOOR} {label}", (pick(caps) + pick(kernel)) * 1e6),
            common.Row(f"{PAIR} {label}", pick(pair) * 1e6, baseline=f"{CAPS} {label}", note=goal),
            common.Row(f"{PAIR} {label}, to its floor", pick(pair) * 1e6, baseline=f"{PAIR_FLOOR} {label}"),
        ]
    return rows


def _burst_rows(node: _Node, pubbench: str, staging: str, bases: list[str], n: int) -> list[common.Row]:
    """One burst of ``n`` publishes, then ``n`` unpublishes, at each of ``bases``, each followed by the
    same burst at the bare grpcio no-op server: median walls against that floor, failures."""
    walls: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    failures: list[str] = []
    for base in bases:
        got = _burst(pubbench, node.sock, staging, base, n)
        if isinstance(got, str):
            failures.append(got)
        else:
            walls.append(got)
        noop = _burst(pubbench, node.noop_sock, staging, base + "-noop", n)
        if isinstance(noop, str):
            failures.append(f"the bare grpcio no-op server: {noop}")
        else:
            floor.append(noop)
    rows: list[common.Row] = []
    for i, name in enumerate((PUBLISH_WALL, UNPUBLISH_WALL)):
        base_ms = [w[i] for w in floor]
        if base_ms:
            note = f"max {max(base_ms):.1f} ms"
            rows.append(common.Row(name + FLOOR, statistics.median(base_ms) * 1e6, note=note))
        ms = [w[i] for w in walls]
        if ms:
            note = f"median of {len(ms)}; max {max(ms):.1f} ms"
            rows.append(common.Row(name, statistics.median(ms) * 1e6, baseline=name + FLOOR, note=note))
    first = f"; first: {failures[0]}" if failures else ""
    rows.append(common.Row(ERRORS, len(failures), "", note=f"of {len(bases)}{first}"))
    return rows


def _bench(
    scratch: str, existing: int, sweep_here: bool, args: argparse.Namespace, pubbench: str
) -> tuple[list[common.Row], common.Sweep]:
    """One run at ``existing`` mounts: the pairs and the burst-size sweep only where ``sweep_here``."""
    # imported in the namespace's child: csi's modules load grpc, which must not be loaded before the fork

    def bases(tag: str) -> list[str]:  # a pod of its own for each burst
        return [kubelet.publish_target(root, f"burst-{tag}-{run}", "pvc-b") for run in range(args.bursts)]

    root, staging, built = _stage(scratch, existing)
    node = _Node(scratch, root, pubbench, args.workers)
    rows: list[common.Row] = []
    sweep: common.Sweep = []
    try:
        busy = common.settle()
        if sweep_here and args.pairs:
            target = kubelet.publish_target(root, "seq", "pvc-seq")
            rows += _pair_rows(node, pubbench, staging, target, args.pairs, args.blocks)
        if args.bursts:
            main = _burst_rows(node, pubbench, staging, bases("main"), BURST)
            for r in main:
                baseline = r.baseline and f"{r.baseline} ({BURST})"
                rows.append(common.Row(f"{r.name} ({BURST})", r.value, r.unit, baseline, r.note))
            node.scrape()
            rows.append(common.Row(RSS_FLOOR, node.rss_mib(node.noop), "MiB"))
            rows.append(common.Row(RSS, node.rss_mib(node.driver), "MiB", RSS_FLOOR, "goal <= 40 MB"))
            checked = kubelet.publish_target(root, "burst-checked", "pvc-b")
            ro, note = _checked_burst(pubbench, node.sock, staging, checked, BURST)
            rows.append(common.Row(f"{READONLY} ({BURST})", ro, "", note=note))
            for n in args.sizes if sweep_here else []:
                sweep.append((n, _burst_rows(node, pubbench, staging, bases(f"n{n}"), n)))
    finally:
        node.stop()
    bursts = [(f"a burst of {n} publishes, then {n} unpublishes", n_rows) for n, n_rows in sweep]
    common.report_node("the node service from the Go client", existing, built, busy, rows, bursts)
    return rows, sweep


def main() -> int:
    parser = common.node_parser(__doc__, "the mount count with the sequential pairs and the burst-size sweep")
    parser.add_argument("--pubbench", help="the csi-pubbench binary (default: see the module docstring)")
    parser.add_argument("--pairs", type=int, default=500, help="sequential pairs per block (0: none)")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks of pairs")
    parser.add_argument("--bursts", type=int, default=5, help="timed bursts per size and mount count")
    parser.add_argument(
        "--sizes",
        type=common.int_list,
        default=[1, 10, 50, 110, 250],
        help=f"burst sizes swept at --sweep-at mounts (the {BURST}-burst is timed everywhere)",
    )
    parser.add_argument(
        "--workers", type=int, default=10, help="the driver's gRPC worker threads (--workers)"
    )
    args = parser.parse_args()
    if not common.is_root("bench_kubelet"):
        return 1
    with tempfile.TemporaryDirectory(prefix="csi-pubbench-") as unpack_to:
        pubbench = find_pubbench(args.pubbench, unpack_to)
        if pubbench is None:
            print(
                "bench_kubelet: skipped: no csi-pubbench binary (give --pubbench, set CSI_PUBBENCH or "
                "CSI_PUBBENCH_XZ, or put it on PATH; see ../shared/tools/csi-pubbench/README.md)"
            )
            return 0
        print(f"bench_kubelet: Go client {pubbench}")
        common.per_mount_count(
            _bench, args.mounts, args.sweep_at, ("kubelet", "kubelet-burst", "burst"), args, pubbench
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
