"""A hung or dead share never hangs the node: every probe and RPC on it returns within its timeout.

tests/support/hangfs.py stands in for a sick NFS share (this kernel has no NFS client): its getattr/statfs
answer, hang, or fail with ESTALE/ENOTCONN/EIO on demand, and a hung FUSE getattr leaves the caller
asleep exactly like a stat on a dead hard-mounted NFS server.  The mountkit-level test runs in an
``in_ns`` child; the driver test runs the real driver (``csi.main``, gRPC) in its own namespace and
starts hangfs there with ``nsenter``.  Every cleanup frees hung callers (mode ok, then the FUSE
connection aborted) and kills the hangfs daemon by PID.  Figures are printed (``pytest -s``).
"""

from __future__ import annotations

import errno
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from csi.proto import csi_pb2
from mountkit import CorruptedMountError, Mounter, is_mountpoint, probe
from tests.support import hangfs
from tests.support.csiutil import CAP, Driver, mounts_under, run_driver

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("needs /dev/fuse", allow_module_level=True)
pytest.importorskip("fuse", reason="needs fusepy")

PROBE = 1.0  # the driver's --probe-timeout and the Mounter's probe_timeout
WORKERS = 4  # the driver's gRPC worker threads
SLACK = 1.5  # scheduling slack on a shared 2-core machine
DEAD_MODES = ("ESTALE", "ENOTCONN", "EIO")
HANGFS = hangfs.__file__


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, fn() or the exception it raised)."""
    start = time.monotonic()
    try:
        result: Any = fn()
    except Exception as exc:  # noqa: BLE001 - the caller asserts on it
        result = exc
    return time.monotonic() - start, result


# -- mountkit ------------------------------------------------------------------------------------


def _probe_a_sick_mount(scratch: str) -> dict[str, Any]:
    """In the namespace child: probes and unmounts of hangfs, per mode, each timed."""
    mnt, control = os.path.join(scratch, "share"), os.path.join(scratch, hangfs.CONTROL_NAME)
    os.mkdir(mnt)
    mounter = Mounter(probe_timeout=PROBE)
    pid = hangfs.start(mnt, control)
    seen: dict[str, Any] = {}
    try:
        assert is_mountpoint(mnt, timeout=PROBE)
        mounter.check(mnt)
        for mode in ("hang", *DEAD_MODES):
            hangfs.set_mode(control, mode)
            abandoned = probe.abandoned_probes()
            took, result = timed(lambda: is_mountpoint(mnt, timeout=PROBE))  # the path is in the dcache
            seen[f"{mode} is_mountpoint cached"] = (took, result, probe.abandoned_probes() - abandoned)
            for name, fn in (
                ("is_mountpoint", lambda: is_mountpoint(mnt, timeout=PROBE)),
                ("check", lambda: mounter.check(mnt)),
            ):
                took, result = timed(fn)
                seen[f"{mode} {name}"] = (took, type(result).__name__, getattr(result, "errno", None))
        # a name beneath the share is not in the dentry cache: the probe goes to a worker, which hangs
        hangfs.set_mode(control, "hang")
        took, result = timed(lambda: is_mountpoint(os.path.join(mnt, "uncached"), timeout=PROBE))
        seen["hang is_mountpoint uncached"] = (took, type(result).__name__, getattr(result, "errno", None))
        # still hung: unmount falls back to a detach and returns
        hangfs.set_mode(control, "hang")
        took, result = timed(lambda: mounter.cleanup_mountpoint(mnt))
        seen["hang cleanup_mountpoint"] = (took, type(result).__name__, getattr(result, "errno", None))
        if result is not None:
            took, result = timed(lambda: mounter.cleanup_mountpoint(mnt, lazy=True, force=True))
            seen["hang cleanup_mountpoint lazy+force"] = (
                took,
                type(result).__name__,
                getattr(result, "errno", None),
            )
        with open("/proc/self/mountinfo") as f:
            seen["left mounted"] = any(line.split()[4] == mnt for line in f)
    finally:
        hangfs.set_mode(control, "ok")
        try:
            hangfs.abort(mnt)
        except StopIteration:  # already unmounted: nothing to abort
            pass
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return seen


def test_mountkit_probes_of_a_sick_mount_return_within_the_timeout(in_ns: Any) -> None:
    seen = in_ns(_probe_a_sick_mount)
    for key, value in seen.items():
        print(f"mountkit {key}: {value}")
    for mode in ("hang", *DEAD_MODES):
        want = errno.ETIMEDOUT if mode == "hang" else getattr(errno, mode)
        for name in ("is_mountpoint", "check"):
            took = seen[f"{mode} {name}"][0]
            assert took < PROBE + SLACK, f"{mode} {name} took {took:.2f} s"
        # statx's mount-root attribute needs no answer from the filesystem: still a mount point
        assert seen[f"{mode} is_mountpoint"][1:] in (("bool", None), (CorruptedMountError.__name__, want))
        # a path all in the dentry cache is answered on the caller's thread: no probe waits or is abandoned
        took, result, abandoned = seen[f"{mode} is_mountpoint cached"]
        assert (result, abandoned) == (True, 0), f"{mode}: {result!r}, {abandoned} abandoned"
        assert took < 0.1, f"{mode} cached is_mountpoint took {took:.3f} s"
        assert seen[f"{mode} check"][1:] == (CorruptedMountError.__name__, want)
    took, *result = seen["hang is_mountpoint uncached"]
    assert result == [CorruptedMountError.__name__, errno.ETIMEDOUT] and took < PROBE + SLACK
    # a probe abandoned in the hung statfs may still pin the mount (EBUSY): then the detach works
    assert seen["hang cleanup_mountpoint"][1:] in (("NoneType", None), ("MountError", errno.EBUSY))
    if "hang cleanup_mountpoint lazy+force" in seen:
        assert seen["hang cleanup_mountpoint lazy+force"][0] < PROBE + SLACK
    assert seen["left mounted"] is False


STUCK = 4  # probes left hanging at once


def _stuck_probe_workers(scratch: str) -> dict[str, Any]:
    """In the namespace child: probes stuck on hangfs are abandoned, others still answer, then they rejoin."""
    mnt, control = os.path.join(scratch, "share"), os.path.join(scratch, hangfs.CONTROL_NAME)
    os.mkdir(mnt)
    mounter = Mounter(probe_timeout=0.3)
    pid = hangfs.start(mnt, control)
    seen: dict[str, Any] = {"hung before": probe.hung_probes(), "abandoned before": probe.abandoned_probes()}
    try:
        hangfs.set_mode(control, "hang")
        results: list[Any] = []
        # probes of one path would share one stuck worker (cext/sys/probe.h): spell it STUCK ways
        spellings = [mnt + "/." * i for i in range(STUCK)]

        def check(path: str) -> None:
            results.append(timed(lambda: mounter.check(path))[1])

        threads = [threading.Thread(target=check, args=(path,)) for path in spellings]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        seen["stuck results"] = sorted({(type(r).__name__, getattr(r, "errno", None)) for r in results})
        seen["hung while stuck"] = probe.hung_probes()
        seen["abandoned while stuck"] = probe.abandoned_probes()
        # the pool is not drained: healthy probes get fresh workers at once
        seen["healthy check"] = timed(lambda: mounter.check(scratch))
        seen["healthy is_live_mountpoint"] = timed(lambda: mounter.is_live_mountpoint(scratch))
    finally:
        hangfs.set_mode(control, "ok")
        hangfs.abort(mnt)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    deadline = time.monotonic() + 10
    while probe.hung_probes() > seen["hung before"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the aborted connection frees the stuck workers: they rejoin the pool
    seen["hung after"] = probe.hung_probes()
    return seen


def test_stuck_probe_workers_are_abandoned_replaced_and_rejoin(in_ns: Any) -> None:
    seen = in_ns(_stuck_probe_workers)
    print(f"stuck probe workers: {seen}")
    assert seen["stuck results"] == [(CorruptedMountError.__name__, errno.ETIMEDOUT)]
    assert seen["hung while stuck"] == seen["hung before"] + STUCK
    assert seen["abandoned while stuck"] == seen["abandoned before"] + STUCK
    for key in ("healthy check", "healthy is_live_mountpoint"):
        took, result = seen[key]
        assert took < 0.3, f"{key} took {took:.3f} s"
        assert result in (None, True), f"{key}: {result!r}"
    assert seen["hung after"] == seen["hung before"]


# -- the driver over gRPC ------------------------------------------------------------------------


@contextmanager
def sick_share(driver: Driver, staging: str) -> Iterator[str]:
    """hangfs mounted at ``staging`` in the driver's namespace; yields its control file."""
    control = os.path.join(os.path.dirname(staging), hangfs.CONTROL_NAME)
    os.makedirs(staging, exist_ok=True)
    daemon = subprocess.Popen(
        ["nsenter", f"--mount=/proc/{driver.pid}/ns/mnt", "--", sys.executable, HANGFS, staging, control],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while os.path.relpath(staging, driver.root) not in mounts_under(driver):
            assert time.monotonic() < deadline and daemon.poll() is None, "hangfs did not mount"
            time.sleep(0.05)
        yield control
    finally:
        hangfs.set_mode(control, "ok")
        driver.ns(
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {os.path.dirname(HANGFS)!r}); "
            f"import hangfs\ntry: hangfs.abort({staging!r})\nexcept StopIteration: pass",
            check=False,
        )
        daemon.kill()  # our own daemon, by PID
        daemon.wait()


#: the share a sick volume is staged from again (nothing serves it: the re-mount must fail clearly)
SHARE_CONTEXT = {"ip": "127.0.0.1", "volume": "vol1"}


def stats(driver: Driver, volume_id: str, path: str) -> Any:
    return driver.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=path), timeout=30
    )


def publish(
    driver: Driver, volume_id: str, staging: str, target: str, context: dict[str, str] | None = None
) -> Any:
    return driver.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume_id,
            staging_target_path=staging,
            target_path=target,
            volume_capability=CAP,
            volume_context=context,
        ),
        timeout=30,
    )


def unpublish(driver: Driver, volume_id: str, target: str) -> Any:
    return driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target), timeout=30
    )


def healthy_p50(driver: Driver, staging: str, target: str, rounds: int = 15) -> float:
    """Median seconds of one publish+unpublish of the healthy volume."""
    times = []
    for _ in range(rounds):
        start = time.monotonic()
        publish(driver, "well", staging, target)
        unpublish(driver, "well", target)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def code(result: Any) -> grpc.StatusCode:
    return result.code() if isinstance(result, grpc.RpcError) else grpc.StatusCode.OK


def test_a_hung_volume_blocks_no_worker_and_slows_no_healthy_volume() -> None:
    with run_driver("--mode=node", f"--probe-timeout={PROBE}", f"--workers={WORKERS}", "--grace=1") as driver:
        well = driver.staging("well")
        os.makedirs(well)
        driver.ns("mount", "-t", "tmpfs", "-o", "size=4m", "share-well", well)
        well_target = driver.target("pod-w", "well")
        sick = driver.staging("sick")
        sick_target = driver.target("pod-s", "sick")
        with sick_share(driver, sick) as control:
            publish(driver, "sick", sick, sick_target)
            assert mounts_under(driver)[os.path.relpath(sick_target, driver.root)].startswith("fuse")
            assert not stats(driver, "sick", sick_target).volume_condition.abnormal
            before = healthy_p50(driver, well, well_target)

            figures: dict[str, Any] = {}
            for mode in ("hang", *DEAD_MODES):
                hangfs.set_mode(control, mode)
                calls = 3 * WORKERS  # more than the server has workers
                futures = [
                    driver.node.NodeGetVolumeStats.future(
                        csi_pb2.NodeGetVolumeStatsRequest(volume_id="sick", volume_path=path), timeout=30
                    )
                    for path in [sick_target, sick] * (calls // 2)
                ]
                start = time.monotonic()
                answers = [f.result() for f in futures]
                wall = time.monotonic() - start
                messages = {a.volume_condition.message for a in answers}
                assert all(a.volume_condition.abnormal for a in answers), messages
                assert all(a.volume_condition.message for a in answers)
                # queued behind WORKERS slots, each call bounded by the lstat and is_mountpoint probes
                assert wall < (calls / WORKERS) * 2 * PROBE + SLACK, f"{mode}: {wall:.2f} s"
                took, answer = timed(lambda: stats(driver, "well", well))
                assert code(answer) == grpc.StatusCode.OK and not answer.volume_condition.abnormal
                assert took < 0.5, f"healthy stats after {calls} {mode} calls took {took:.2f} s"
                figures[mode] = (calls, round(wall, 2), round(took, 3), min(messages))

            hangfs.set_mode(control, "hang")
            background = [
                driver.node.NodeGetVolumeStats.future(
                    csi_pb2.NodeGetVolumeStatsRequest(volume_id="sick", volume_path=sick_target), timeout=30
                )
                for _ in range(WORKERS // 2)
            ]
            during = healthy_p50(driver, well, well_target)
            for f in background:
                assert f.result().volume_condition.abnormal

            # pin the hung mounts with abandoned probes (as a kubelet's stats poll would)
            for path in (sick_target, sick):
                assert stats(driver, "sick", path).volume_condition.abnormal
            other = driver.target("pod-s2", "sick")
            took_pub, pub = timed(lambda: publish(driver, "sick", sick, other, SHARE_CONTEXT))
            staged_after_publish = os.path.relpath(sick, driver.root) in mounts_under(driver)
            took_unpub, unpub = timed(lambda: unpublish(driver, "sick", sick_target))
            took_unpub2, unpub2 = timed(lambda: unpublish(driver, "sick", other))
            took_unstage, unstage = timed(
                lambda: driver.node.NodeUnstageVolume(
                    csi_pb2.NodeUnstageVolumeRequest(volume_id="sick", staging_target_path=sick), timeout=30
                )
            )
            left = mounts_under(driver)
            after = healthy_p50(driver, well, well_target)

        print(
            f"\nhealthy publish+unpublish p50: before {before * 1e3:.1f} ms, during the hang "
            f"{during * 1e3:.1f} ms, after the sick unmounts {after * 1e3:.1f} ms"
        )
        for mode, (calls, wall, took, message) in figures.items():
            print(
                f"{mode}: {calls} stats calls in {wall} s (all abnormal), "
                f"healthy stats then {took * 1e3:.1f} ms; message: {message}"
            )
        print(
            f"hung publish {took_pub:.2f} s -> {code(pub).name}; unpublish {took_unpub:.2f} s -> "
            f"{code(unpub).name}, {took_unpub2:.2f} s -> {code(unpub2).name}; "
            f"unstage {took_unstage:.2f} s -> {code(unstage).name}; mounts left {left}"
        )

        assert during < before * 3 + 0.05 and after < before * 3 + 0.05
        for took in (took_pub, took_unpub, took_unpub2, took_unstage):
            assert took < 3 * PROBE + SLACK
        # publish never binds a dead share into a pod: it detaches the hung staging mount and stages
        # the volume again (here the kernel has no NFS client, so that mount fails, clearly)
        assert not staged_after_publish, "the hung staging mount was not detached"
        assert code(pub) != grpc.StatusCode.OK
        if "no NFS client" in (pub.details() or ""):
            assert code(pub) == grpc.StatusCode.INTERNAL
        for result in (unpub, unpub2, unstage):
            assert code(result) == grpc.StatusCode.OK, result
        assert left.keys() == {os.path.relpath(well, driver.root)}


def test_a_stale_staging_mount_is_detached_before_staging_again() -> None:
    with run_driver("--mode=node", f"--probe-timeout={PROBE}", "--grace=1") as driver:
        staging = driver.staging("stale")
        with sick_share(driver, staging) as control:
            hangfs.set_mode(control, "ESTALE")
            took, result = timed(
                lambda: driver.node.NodeStageVolume(
                    csi_pb2.NodeStageVolumeRequest(
                        volume_id="stale",
                        staging_target_path=staging,
                        volume_capability=CAP,
                        volume_context=SHARE_CONTEXT,
                    ),
                    timeout=30,
                )
            )
            left = mounts_under(driver)
        print(
            f"\nstage over an ESTALE staging mount: {took:.2f} s -> {code(result).name}: "
            f"{result.details() if isinstance(result, grpc.RpcError) else ''}; mounts left {left}"
        )
        assert os.path.relpath(staging, driver.root) not in left, "the stale mount was not detached"
        assert took < 5 * PROBE + SLACK
        if isinstance(result, grpc.RpcError) and "no NFS client" in (result.details() or ""):
            assert code(result) == grpc.StatusCode.INTERNAL
        else:  # a kernel with NFS: nothing serves 127.0.0.1 here, the mount fails some other clear way
            assert code(result) != grpc.StatusCode.OK
