"""Concurrency: racing calls on one target never double-mount; many volumes publish in parallel;
a steady publish/unpublish soak keeps the driver's memory and file descriptors flat.

``MOUNTKIT_VOLUMES`` (default 200) and ``MOUNTKIT_SOAK_SECONDS`` (CI 20, nightly 600) size it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from csi.node import kubelet
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.version import DEFAULT_DRIVER_NAME
from tests.support.csiutil import CAP
from tests.support.reliability import NsDriver, report, size

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)


@pytest.fixture(scope="module")
def driver() -> Iterator[tuple[NsDriver, csi_pb2_grpc.NodeStub]]:
    d = NsDriver("node")
    try:
        d.start()
        with grpc.insecure_channel(f"unix://{d.sock}") as channel:
            yield d, csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
    finally:
        d.close()


def staged(d: NsDriver, names: list[str]) -> list[str]:
    """tmpfs stand-ins for staged shares (one nsenter for all of them)."""
    paths = [kubelet.staging_path(d.root, DEFAULT_DRIVER_NAME, n) for n in names]
    for p in paths:
        os.makedirs(p)
    d.ns("sh", "-c", " && ".join(f"mount -t tmpfs -o size=1m share-{n} {p}" for n, p in zip(names, paths)))
    return paths


def target_of(d: NsDriver, pod: str, volume: str) -> str:
    target = kubelet.publish_target(d.root, pod, volume)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    return target


def code(call: object, request: object) -> grpc.StatusCode:
    try:
        call(request, timeout=60)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_64_racing_calls_on_one_target(driver: tuple[NsDriver, csi_pb2_grpc.NodeStub]) -> None:
    d, node = driver
    [staging] = staged(d, ["race"])
    target = target_of(d, "racer", "race")
    publish = csi_pb2.NodePublishVolumeRequest(
        volume_id="race", staging_target_path=staging, target_path=target, volume_capability=CAP
    )
    unpublish = csi_pb2.NodeUnpublishVolumeRequest(volume_id="race", target_path=target)
    with ThreadPoolExecutor(64) as pool:
        codes = Counter(pool.map(lambda _: code(node.NodePublishVolume, publish), range(64)))
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}, codes
        assert d.mounts().count(target) == 1
        mixed = Counter(
            pool.map(
                lambda i: code(
                    node.NodeUnpublishVolume if i % 2 else node.NodePublishVolume,
                    unpublish if i % 2 else publish,
                ),
                range(64),
            )
        )
        assert set(mixed) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}, mixed
        assert d.mounts().count(target) <= 1
    assert code(node.NodeUnpublishVolume, unpublish) == grpc.StatusCode.OK
    assert target not in d.mounts()
    report("concurrency.race", calls=128, **{c.name: n for c, n in (codes + mixed).items()}, double_mounts=0)


def test_many_volumes_published_in_parallel(driver: tuple[NsDriver, csi_pb2_grpc.NodeStub]) -> None:
    d, node = driver
    count = size("MOUNTKIT_VOLUMES", 200)
    names = [f"many{i}" for i in range(count)]
    stagings = staged(d, names)
    requests = [
        csi_pb2.NodePublishVolumeRequest(
            volume_id=n, staging_target_path=s, target_path=target_of(d, f"p{n}", n), volume_capability=CAP
        )
        for n, s in zip(names, stagings)
    ]
    with ThreadPoolExecutor(32) as pool:
        codes = Counter(pool.map(lambda r: code(node.NodePublishVolume, r), requests))
        assert codes == {grpc.StatusCode.OK: count}, codes
        table = Counter(d.mounts())
        assert all(table[r.target_path] == 1 for r in requests)
        undo = Counter(
            pool.map(
                lambda r: code(
                    node.NodeUnpublishVolume,
                    csi_pb2.NodeUnpublishVolumeRequest(volume_id=r.volume_id, target_path=r.target_path),
                ),
                requests,
            )
        )
        assert undo == {grpc.StatusCode.OK: count}, undo
    assert not any(r.target_path in d.mounts() for r in requests)
    report("concurrency.parallel", volumes=count, ok=codes[grpc.StatusCode.OK], mounts_leaked=0)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as inp:
        return next(int(line.split()[1]) for line in inp if line.startswith("VmRSS:"))


def test_soak_keeps_memory_and_fds_flat(driver: tuple[NsDriver, csi_pb2_grpc.NodeStub]) -> None:
    d, node = driver
    assert d.proc is not None
    pid = d.proc.pid
    seconds = size("MOUNTKIT_SOAK_SECONDS", 20)
    [staging] = staged(d, ["soak"])
    target = target_of(d, "soaker", "soak")
    publish = csi_pb2.NodePublishVolumeRequest(
        volume_id="soak", staging_target_path=staging, target_path=target, volume_capability=CAP
    )
    unpublish = csi_pb2.NodeUnpublishVolumeRequest(volume_id="soak", target_path=target)

    def cycle() -> None:
        node.NodePublishVolume(publish, timeout=30)
        node.NodeUnpublishVolume(unpublish, timeout=30)

    for _ in range(50):  # warm up: caches, thread pool, allocator arenas
        cycle()
    fds, rss = len(os.listdir(f"/proc/{pid}/fd")), _rss_kib(pid)
    cycles, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        cycle()
        cycles += 1
        time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))  # a steady ~50 cycles/s at most
    fds_after, rss_after = len(os.listdir(f"/proc/{pid}/fd")), _rss_kib(pid)
    report(
        "concurrency.soak",
        seconds=seconds,
        cycles=cycles,
        rss_kib_before=rss,
        rss_kib_after=rss_after,
        fds_before=fds,
        fds_after=fds_after,
        mounts_leaked=d.mounts().count(target),
    )
    assert d.mounts().count(target) == 0
    assert fds_after <= fds + 2, (fds, fds_after)
    assert rss_after - rss < 8 * 1024, (rss, rss_after)
