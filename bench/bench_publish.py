"""NodePublishVolume + NodeUnpublishVolume over gRPC on a node that already holds 10,000 mounts.

Everything runs in a private mount namespace (``common.in_private_ns``): 10,000 kubelet-like pod
binds are made first, then the driver is started as a process of that namespace, serving the node
service on a unix socket, and a client in the namespace drives it.

Measured in the same run:
  * one read-only publish + unpublish through the driver (open_tree + mount_setattr + move_mount:
    never writable), interleaved (one cycle of each per round, so load from elsewhere on the
    machine falls on all alike) with two no-op RPCs (the transport the driver's figure includes)
    and with the kernel's work alone: the same syscalls made bare by this process (mkdir,
    open_tree + mount_setattr + move_mount, umount2, rmdir), so that the driver's p99 can be told
    apart from the kernel's and the transport's;
  * the reference approach of the Go driver, three processes: ``mount -o bind``,
    ``mount -o bind,remount,ro``, ``umount``, timed apart (a cycle right after its processes
    takes about three times as long: interleaved, it would slow the others down);
  * 1,000 distinct volumes published concurrently: errors, publishes/s, the driver's RSS after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import common
import psutil

from csi.node import kubelet  # loads no grpc: safe before the fork
from csi.version import DEFAULT_DRIVER_NAME
from mountkit import Mounter

SERVER = """
import sys
from csi.identity import IdentityServicer
from csi.locks import VolumeLocks
from csi.node.service import NodeServicer
from csi.server import CsiServer, serve_until_signalled
from mountkit import Mounter
sock, root, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
node = NodeServicer("bench-node", "us-central1-a", root, Mounter(probe_timeout=10.0), VolumeLocks(), 10.0)
identity = IdentityServicer("filestore.csi.storage.gke.io", "bench", controller=False)
serve_until_signalled(CsiServer("unix://" + sock, identity, node=node, workers=workers), 1.0)
"""

NOOP = "transport: 2x NodeGetCapabilities (no-op RPCs)"
REFERENCE = "reference: mount -o bind; mount -o bind,remount,ro; umount"
BARE = common.BARE_PUBLISH_CYCLE


def _stage(scratch: str, existing: int, volumes: int) -> tuple[str, list[str], float]:
    """The node before the driver starts: ``existing`` kubelet binds and ``volumes`` staged shares
    beneath the kubelet root; (kubelet root, staging paths, seconds the binds took)."""
    built = common.timed(lambda: common.kubelet_binds(scratch, existing))
    root = os.path.join(scratch, common.KUBELET_ROOT)
    mounter = Mounter()
    stagings = []
    for i in range(volumes):
        staging = kubelet.staging_path(root, DEFAULT_DRIVER_NAME, f"v{i:05d}")
        os.makedirs(staging)
        mounter.mount(f"share-{i}", staging, "tmpfs", "size=1m")
        stagings.append(staging)
    return root, stagings, built


class _Driver:
    """The driver serving the node service on a unix socket in this namespace, and a client of it."""

    def __init__(self, scratch: str, root: str, stagings: list[str], workers: int) -> None:
        # grpc and csi (which loads grpc) only here, in the namespace's child: not loaded before the fork
        import grpc

        from csi.proto import csi_pb2, csi_pb2_grpc

        self.pb, self.error, self.root, self.stagings = csi_pb2, grpc.RpcError, root, stagings
        self._publish_target = kubelet.publish_target
        sock = os.path.join(scratch, "csi.sock")
        self.process = subprocess.Popen([sys.executable, "-c", SERVER, sock, root, str(workers)])
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.stub = csi_pb2_grpc.NodeStub(self.channel)
        self.cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
            ),
        )

    def target(self, pod: str, i: int) -> str:
        """Volume ``i``'s publish target in pod ``pod``, its parent made."""
        path = self._publish_target(self.root, pod, f"pvc-b{i:05d}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def publish(self, i: int, path: str) -> None:
        request = self.pb.NodePublishVolumeRequest(
            volume_id=f"v{i}",
            staging_target_path=self.stagings[i],
            target_path=path,
            volume_capability=self.cap,
            readonly=True,
        )
        self.stub.NodePublishVolume(request, timeout=60)

    def unpublish(self, i: int, path: str) -> None:
        self.stub.NodeUnpublishVolume(
            self.pb.NodeUnpublishVolumeRequest(volume_id=f"v{i}", target_path=path), timeout=60
        )

    def noop(self) -> None:
        self.stub.NodeGetCapabilities(self.pb.NodeGetCapabilitiesRequest(), timeout=60)

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def _cycle_rows(driver: _Driver, repeats: int, reference_repeats: int) -> list[common.Row]:
    """A publish + unpublish cycle through the driver, against the transport, the bare syscalls and the
    reference's three processes (see the module docstring)."""
    source, one, bare = driver.stagings[0], driver.target("timed", 0), driver.target("bare", 0)

    def driver_cycle() -> None:
        driver.publish(0, one)
        driver.unpublish(0, one)

    def noop_cycle() -> None:  # the transport alone: two RPCs that do no work
        driver.noop()
        driver.noop()

    def bare_cycle() -> None:
        common.bare_publish_cycle(source, bare)

    def reference_cycle() -> None:
        os.makedirs(one, exist_ok=True)
        subprocess.run(["mount", "-o", "bind", source, one], check=True)
        subprocess.run(["mount", "-o", "bind,remount,ro", one], check=True)
        subprocess.run(["umount", one], check=True)

    timings = common.measure_together(
        {NOOP: noop_cycle, "driver": driver_cycle, BARE: bare_cycle}, repeats=repeats, warmup=50
    )
    noop, drv, kernel = (timings[name] for name in (NOOP, "driver", BARE))
    ref = common.measure(reference_cycle, repeats=reference_repeats)  # apart: its processes slow what follows
    return [
        common.timing_row(REFERENCE, ref),
        common.timing_row(NOOP, noop),
        common.timing_row(
            "driver: NodePublishVolume(ro) + NodeUnpublishVolume",
            drv,
            baseline=REFERENCE,
            note="includes the gRPC round trips",
        ),
        common.timing_row(
            "driver: publish + unpublish against the transport",
            drv,
            baseline=NOOP,
            note="target <= 1.5x, p99 < 2 ms",
        ),
        common.timing_row(BARE, kernel, note="the kernel's share of the driver's figure"),
        common.Row("driver: publish + unpublish p99", drv.p99_ns, note="target < 2 ms"),
        common.Row("transport: 2x no-op RPC p99", noop.p99_ns),
        common.Row("kernel: bare syscalls p99", kernel.p99_ns),
    ]


def _concurrent_rows(driver: _Driver, clients: int) -> tuple[list[common.Row], int]:
    """Every staged volume published at once by ``clients`` concurrent clients, then unpublished; the
    rows, and the driver's RSS with all of them published."""
    volumes = len(driver.stagings)
    targets = [driver.target(f"pod-c{clients}-{i:05d}", i) for i in range(volumes)]
    latencies: list[int] = []
    errors: list[str] = []

    def publish_one(i: int) -> None:
        t0 = time.perf_counter_ns()
        try:
            driver.publish(i, targets[i])
        except driver.error as exc:
            errors.append(f"{exc.code().name}: {exc.details()}")
        latencies.append(time.perf_counter_ns() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(publish_one, range(volumes)))
    elapsed = time.perf_counter() - t0
    rss = driver.rss()
    published = sum(1 for t in targets if os.path.ismount(t))
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda i: driver.unpublish(i, targets[i]), range(volumes)))
    left = sum(1 for t in targets if os.path.exists(t))
    latencies.sort()
    first = f"; first: {errors[0]}" if errors else ""
    rows = [
        common.Row("publish p50", latencies[len(latencies) // 2]),
        common.Row("publish p99", latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))]),
        common.Row(
            "publishes/s",
            volumes / elapsed,
            "/s",
            note=f"{len(errors)} errors{first}; {published} mounted; {left} targets left after unpublish",
        ),
        common.Row("errors", len(errors), ""),
    ]
    return rows, rss


def _bench(
    scratch: str, existing: int, sweep_here: bool, args: argparse.Namespace
) -> tuple[list[common.Row], common.Sweep]:
    """One run at ``existing`` mounts: the concurrency sweep only where ``sweep_here``."""
    levels = args.concurrency if sweep_here else []
    root, stagings, built = _stage(scratch, existing, args.volumes if levels else 1)
    driver = _Driver(scratch, root, stagings, args.workers)
    sweep: common.Sweep = []
    rss = 0
    try:
        busy = common.settle()
        rows = _cycle_rows(driver, args.repeats, args.reference_repeats)
        for clients in levels:
            level_rows, level_rss = _concurrent_rows(driver, clients)
            sweep.append((clients, level_rows))
            rss = max(rss, level_rss)
    finally:
        driver.close()
    if sweep:
        rows.append(
            common.Row(
                "driver RSS after the concurrent publishes", rss / 2**20, "MiB", note="target <= 60 MB"
            )
        )
    by_clients = [(f"{args.volumes:,} publishes by {n} concurrent client(s)", n_rows) for n, n_rows in sweep]
    common.report_node("NodePublish(ro)+NodeUnpublish over gRPC", existing, built, busy, rows, by_clients)
    return rows, sweep


def main() -> int:
    parser = common.node_parser(__doc__, "the mount count with the concurrency sweep")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1_000,
        help="timed cycles of the driver, the transport and the kernel (a p99 of 100 is their second worst)",
    )
    parser.add_argument(
        "--reference-repeats", type=int, default=100, help="timed cycles of the three processes"
    )
    parser.add_argument("--volumes", type=int, default=1_000, help="volumes published per concurrency level")
    parser.add_argument(
        "--concurrency",
        type=common.int_list,
        default=[1, 4, 16, 64],
        help="concurrent clients, swept at --sweep-at mounts (comma-separated)",
    )
    parser.add_argument("--workers", type=int, default=10, help="the driver's gRPC worker threads")
    args = parser.parse_args()
    if not common.is_root("bench_publish"):
        return 1
    figures = ("publish", "publish-concurrency", "clients")
    common.per_mount_count(_bench, args.mounts, args.sweep_at, figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
