"""Crash consistency: SIGKILL the node driver at random points of a kubelet-like stream of calls.

The driver runs in a namespace held by another process, so its mounts survive the kill; the next
driver starts in the same namespace and kubelet's retries must converge: exactly the expected
mounts (none leaked, none stacked twice), no directory with data removed, every file intact.
Staging is a bind of a share directory standing in for NFS (this kernel has no NFS client).
``MOUNTKIT_CRASH_KILLS`` sets the number of kills (CI 25, nightly >= 200), ``MOUNTKIT_SEED`` the seed.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from csi.node import kubelet
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.version import DEFAULT_DRIVER_NAME
from tests.support.csiutil import CAP
from tests.support.reliability import NsDriver, report, seed, size

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)

VOLUMES = 3


@pytest.fixture
def driver() -> Iterator[NsDriver]:
    d = NsDriver("node")
    try:
        yield d
    finally:
        d.close()


def checksums(directory: str) -> dict[str, str]:
    return {
        name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
        for name in sorted(os.listdir(directory))
    }


def until_ok(d: NsDriver, call: Callable[..., Any], request: Any, stats: Counter[str]) -> None:
    """Call as kubelet does: again, with a pause, until OK, restarting a dead driver in the same namespace.

    ``wait_for_ready``: a channel that met the killed driver backs off before reconnecting, and
    without it every call in that window fails at once with UNAVAILABLE.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            call(request, timeout=10, wait_for_ready=True)
            return
        except grpc.RpcError as exc:
            stats["retries"] += 1
            if exc.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise
            if not d.alive():
                d.kill()
                d.start()
            time.sleep(0.1)
    raise AssertionError(f"the call never converged within 120 s ({stats['retries']} retries so far)")


def test_random_sigkills_converge(driver: NsDriver) -> None:
    kills, rng_seed = size("MOUNTKIT_CRASH_KILLS", 25), seed()
    rng = random.Random(rng_seed)
    print(f"crash seed={rng_seed} (MOUNTKIT_SEED to replay)")
    shares, stagings, sums = [], [], []
    for v in range(VOLUMES):
        share = os.path.join(driver.workdir, "shares", f"v{v}")
        os.makedirs(share)
        for f in range(3):
            with open(os.path.join(share, f"f{f}"), "wb") as out:
                out.write(rng.randbytes(rng.randrange(1, 1 << 16)))
        shares.append(share)
        sums.append(checksums(share))
        stagings.append(kubelet.staging_path(driver.root, DEFAULT_DRIVER_NAME, f"pv{v}"))
        os.makedirs(os.path.dirname(stagings[-1]))
    targets = [
        [kubelet.publish_target(driver.root, f"pod{p}", f"pv{v}") for p in range(2)] for v in range(VOLUMES)
    ]
    for pair in targets:
        for target in pair:
            os.makedirs(os.path.dirname(target))
    # data a kubelet left in an unmounted target dir must survive every unpublish
    precious = kubelet.publish_target(driver.root, "podx", "pvx")
    os.makedirs(precious)
    with open(os.path.join(precious, "keep"), "w") as out:
        out.write("keep me")

    stats: Counter[str] = Counter()
    driver.start()
    channel = grpc.insecure_channel(f"unix://{driver.sock}")
    node = csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
    bytes_lost = 0
    try:
        for cycle in range((kills + 1) // 2):  # two kills a cycle
            v = cycle % VOLUMES
            staging = stagings[v]
            # NodeStage stand-in: the share bound at the staging path (what a staged NFS share looks like)
            if staging not in driver.mounts():
                os.makedirs(staging, exist_ok=True)
                driver.ns("mount", "--bind", shares[v], staging)
            killer = threading.Timer(rng.uniform(0.0, 0.08), driver.kill)
            killer.start()
            stats["kills"] += 1
            for p, target in enumerate(targets[v]):
                request = csi_pb2.NodePublishVolumeRequest(
                    volume_id=f"pv{v}",
                    staging_target_path=staging,
                    target_path=target,
                    volume_capability=CAP,
                    readonly=p == 1,
                )
                until_ok(driver, node.NodePublishVolume, request, stats)
            killer.join()
            if not driver.alive():
                driver.start()
            table = Counter(driver.mounts())
            assert table == Counter([staging, *targets[v]]), f"cycle {cycle}: {table}"
            for target in targets[v]:
                assert (
                    checksums(os.path.join(f"/proc/{driver.holder.pid}/root", target.lstrip("/"))) == sums[v]
                )
            killer = threading.Timer(rng.uniform(0.0, 0.05), driver.kill)
            killer.start()
            stats["kills"] += 1
            for target in [*targets[v], precious]:
                until_ok(
                    driver,
                    node.NodeUnpublishVolume,
                    csi_pb2.NodeUnpublishVolumeRequest(volume_id=f"pv{v}", target_path=target),
                    stats,
                )
            until_ok(
                driver,
                node.NodeUnstageVolume,
                csi_pb2.NodeUnstageVolumeRequest(volume_id=f"pv{v}", staging_target_path=staging),
                stats,
            )
            killer.join()
            if not driver.alive():
                driver.start()
            assert driver.mounts() == [], f"cycle {cycle}: leaked {driver.mounts()}"
            assert not any(os.path.exists(t) for t in targets[v]) and not os.path.exists(staging)
            with open(os.path.join(precious, "keep")) as inp:
                assert inp.read() == "keep me"
            for share, expected in zip(shares, sums):
                got = checksums(share)
                bytes_lost += sum(
                    os.path.getsize(os.path.join(share, n)) for n in expected if got.get(n) != expected[n]
                )
            assert bytes_lost == 0
    finally:
        channel.close()
    report(
        "crash",
        seed=rng_seed,
        faults_injected=stats["kills"],
        driver_restarts=driver.starts - 1,
        retries=stats["retries"],
        mounts_leaked=len(driver.mounts()),
        bytes_lost=bytes_lost,
    )
