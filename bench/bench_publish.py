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
BARE = "kernel: mkdir, open_tree + mount_setattr + move_mount, umount2, rmdir (bare)"


Sweep = list[tuple[int, list[common.Row]]]


def _bench(
    scratch: str,
    existing: int,
    repeats: int,
    reference_repeats: int,
    volumes: int,
    workers: int,
    concurrency: list[int],
) -> tuple[list[common.Row], Sweep]:
    # grpc is imported only here, in the namespace's child: it must not be loaded before the fork
    import grpc
    import psutil

    from csi.node import kubelet
    from csi.proto import csi_pb2, csi_pb2_grpc
    from csi.version import DEFAULT_DRIVER_NAME
    from mountkit import _sys
    from mountkit.flags import AT, AT_FDCWD, MNT, MOUNT_ATTR, MOVE_MOUNT, OPEN_TREE

    start = time.monotonic()
    common.kubelet_binds(scratch, existing)
    built = time.monotonic() - start
    root = os.path.join(scratch, common.KUBELET_ROOT)
    stagings = []
    for i in range(volumes if concurrency else 1):  # staged shares: one, or one per published volume
        staging = kubelet.staging_path(root, DEFAULT_DRIVER_NAME, f"v{i:05d}")
        os.makedirs(staging)
        _sys.mount(f"share-{i}", staging, "tmpfs", 0, "size=1m")
        stagings.append(staging)

    sock = os.path.join(scratch, "csi.sock")
    driver = subprocess.Popen([sys.executable, "-c", SERVER, sock, root, str(workers)])
    channel = grpc.insecure_channel(f"unix://{sock}")
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = csi_pb2_grpc.NodeStub(channel)
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
            ),
        )

        def target(pod: str, i: int) -> str:
            path = kubelet.publish_target(root, pod, f"pvc-b{i:05d}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return path

        def publish(i: int, path: str) -> None:
            stub.NodePublishVolume(
                csi_pb2.NodePublishVolumeRequest(
                    volume_id=f"v{i}",
                    staging_target_path=stagings[i],
                    target_path=path,
                    volume_capability=cap,
                    readonly=True,
                ),
                timeout=60,
            )

        def unpublish(i: int, path: str) -> None:
            stub.NodeUnpublishVolume(
                csi_pb2.NodeUnpublishVolumeRequest(volume_id=f"v{i}", target_path=path), timeout=60
            )

        one = target("timed", 0)

        def driver_cycle() -> None:
            publish(0, one)
            unpublish(0, one)

        def reference_cycle() -> None:
            os.makedirs(one, exist_ok=True)
            subprocess.run(["mount", "-o", "bind", stagings[0], one], check=True)
            subprocess.run(["mount", "-o", "bind,remount,ro", one], check=True)
            subprocess.run(["umount", one], check=True)

        def noop_cycle() -> None:  # the transport alone: two RPCs that do no work
            stub.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=60)
            stub.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=60)

        bare = target("bare", 0)

        def bare_cycle() -> None:  # the kernel alone: what the driver asks of it, with no checks
            os.mkdir(bare)
            fd = _sys.open_tree(stagings[0], int(OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC))
            try:
                _sys.mount_setattr(fd, "", int(AT.EMPTY_PATH), int(MOUNT_ATTR.RDONLY))
                _sys.move_mount(fd, "", AT_FDCWD, bare, int(MOVE_MOUNT.F_EMPTY_PATH))
            finally:
                os.close(fd)
            _sys.umount2(bare, int(MNT.UMOUNT_NOFOLLOW))
            os.rmdir(bare)

        busy = common.settle()
        timings = common.measure_together(
            {NOOP: noop_cycle, "driver": driver_cycle, BARE: bare_cycle}, repeats=repeats, warmup=50
        )
        noop, drv, kernel = (timings[name] for name in (NOOP, "driver", BARE))
        ref = common.measure(
            reference_cycle, repeats=reference_repeats
        )  # apart: its three processes slow what follows

        sweep: list[tuple[int, list[common.Row]]] = []
        rss = 0
        for clients in concurrency:
            targets = [target(f"pod-c{clients}-{i:05d}", i) for i in range(volumes)]
            latencies: list[int] = []
            errors: list[str] = []

            def publish_one(
                i: int,
                targets: list[str] = targets,
                errors: list[str] = errors,
                latencies: list[int] = latencies,
            ) -> None:
                t0 = time.perf_counter_ns()
                try:
                    publish(i, targets[i])
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                latencies.append(time.perf_counter_ns() - t0)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                list(pool.map(publish_one, range(volumes)))
            elapsed = time.perf_counter() - t0
            rss = max(rss, psutil.Process(driver.pid).memory_info().rss)
            published = sum(1 for t in targets if os.path.ismount(t))
            with ThreadPoolExecutor(max_workers=clients) as pool:
                list(pool.map(lambda i, targets=targets: unpublish(i, targets[i]), range(volumes)))
            left = sum(1 for t in targets if os.path.exists(t))
            latencies.sort()
            sweep.append(
                (
                    clients,
                    [
                        common.Row("publish p50", latencies[len(latencies) // 2]),
                        common.Row(
                            "publish p99", latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))]
                        ),
                        common.Row(
                            "publishes/s",
                            volumes / elapsed,
                            "/s",
                            note=f"{len(errors)} errors{'; first: ' + errors[0] if errors else ''}; "
                            f"{published} mounted; {left} targets left after unpublish",
                        ),
                        common.Row("errors", len(errors), ""),
                    ],
                )
            )
    finally:
        channel.close()
        driver.terminate()
        driver.wait(timeout=30)

    rows = [
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
    if sweep:
        rows.append(
            common.Row(
                "driver RSS after the concurrent publishes", rss / 2**20, "MiB", note="target <= 60 MB"
            )
        )
    common.report(
        f"NodePublish(ro)+NodeUnpublish over gRPC with {existing:,} mounts on the node "
        f"(built in {built:.1f} s; CPUs {busy:.0f}% busy before timing)",
        rows,
    )
    for clients, crows in sweep:
        common.report(
            f"{volumes:,} publishes by {clients} concurrent client(s), {existing:,} mounts on the node", crows
        )
    return rows, sweep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mounts",
        type=common.int_list,
        default=[100, 1_000, 10_000, 30_000],
        help="kubelet binds made beforehand, one run per count (comma-separated)",
    )
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
    parser.add_argument("--sweep-at", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=10, help="the driver's gRPC worker threads")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_publish: needs root (a private mount namespace and real mounts)", file=sys.stderr)
        return 1
    for existing in args.mounts:
        levels = args.concurrency if existing == args.sweep_at else []
        rows, sweep = common.in_private_ns(
            _bench,
            existing,
            args.repeats,
            args.reference_repeats,
            args.volumes,
            args.workers,
            levels,
            timeout=1800,
        )
        common.record("publish", "mounts", existing, rows)
        for clients, crows in sweep:
            common.record("publish-concurrency", "clients", clients, crows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
