"""The CO side of driver tests: run the whole driver in its own mount namespace and talk CSI to it.

Used by the privileged and real-NFS guest tests; the driver is a separate process (as in a cluster), so
what it mounts lives in its namespace and the test looks there through ``nsenter``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from csi.node import kubelet
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.version import DEFAULT_DRIVER_NAME
from mountkit.testing import unshare_argv

_Mode = csi_pb2.VolumeCapability.AccessMode
CAP = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=_Mode.MULTI_NODE_MULTI_WRITER)
)


def nsenter(
    pid: int, *argv: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the mount namespace of process ``pid`` (where the driver's mounts live)."""
    return subprocess.run(
        ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", *argv],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def driver_argv(root: str, sock: str, *flags: str) -> list[str]:
    """``csi.main`` (mode all, test project/zone/node) on ``sock``; ``flags`` come last, so they win.

    ``--nfs-lock-check=warn``: the development host runs no rpc.statd, and these tests are about
    other things than NFSv3 lock recovery; tests of it pass ``--nfs-lock-check=refuse``.
    """
    return [
        sys.executable,
        "-m",
        "csi.main",
        "--mode=all",
        "--project=test-project",
        "--zone=us-central1-a",
        "--node-id=node-1",
        f"--kubelet-root={root}",
        f"--endpoint=unix://{sock}",
        "--nfs-lock-check=warn",
        *flags,
    ]


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM our own child (by PID) and reap it; SIGKILL it if it has not exited after ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Driver:
    """A running driver: its PID (whose mount namespace holds the mounts), kubelet root and stubs."""

    pid: int
    root: str
    controller: Any
    node: Any
    endpoint: str = ""  # the unix socket's path

    def ns(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run argv in the driver's mount namespace."""
        return nsenter(self.pid, *argv, check=check, timeout=timeout)

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.ns("sh", "-c", script, check=check, timeout=timeout)

    def staging(self, volume: str) -> str:
        path = kubelet.staging_path(self.root, DEFAULT_DRIVER_NAME, volume)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def target(self, pod: str, volume: str) -> str:
        path = kubelet.publish_target(self.root, pod, volume)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path


@contextmanager
def run_server(
    argv: Callable[[str, str], list[str]], *, prefix: str = "filestore-driver-", timeout: float = 300
) -> Iterator[Driver]:
    """Start the CSI server ``argv(kubelet_root, socket)`` in a private mount namespace; SIGTERM it after.

    Its output goes to a log printed when the test fails; the namespace, and every mount in it, dies
    with the server, so the scratch dir is then removed.
    """
    workdir = tempfile.mkdtemp(prefix=prefix)
    root = os.path.join(workdir, "kubelet")
    os.makedirs(root)
    sock = os.path.join(workdir, "csi.sock")
    with open(os.path.join(workdir, "driver.log"), "w+") as log:
        proc = subprocess.Popen(unshare_argv(argv(root, sock)), stdout=log, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(f"unix://{sock}")
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
            yield Driver(
                proc.pid,
                root,
                csi_pb2_grpc.ControllerStub(channel),  # type: ignore[no-untyped-call]
                csi_pb2_grpc.NodeStub(channel),  # type: ignore[no-untyped-call]
                sock,
            )
        except BaseException:
            log.seek(0)
            print("driver log:\n" + log.read()[-6000:], file=sys.stderr)
            raise
        finally:
            channel.close()
            stop(proc)
    shutil.rmtree(workdir, ignore_errors=True)


def run_driver(*flags: str, timeout: float = 300) -> AbstractContextManager[Driver]:
    """Start ``csi.main`` (mode all) in a private mount namespace with ``flags``; SIGTERM it after."""
    return run_server(lambda root, sock: driver_argv(root, sock, *flags), timeout=timeout)


def mount_rows(driver: Driver, *columns: str) -> dict[str, list[str]]:
    """The findmnt ``columns`` of each of the driver's mounts under its kubelet root, by target."""
    out = driver.ns("findmnt", "-rn", "-o", ",".join(("TARGET", *columns))).stdout
    rows = {}
    for line in out.splitlines():
        target, *values = line.split(" ")
        if target.startswith(driver.root + "/"):
            rows[target] = values
    return rows


def until_done(call: Any, request: Any, timeout: float = 300) -> Any:
    """Call as the provisioner does: again while the cloud operation is pending."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(request, timeout=60)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED):
                raise
            if time.monotonic() > deadline:
                raise


def create_volume(driver: Driver, name: str, **parameters: str) -> Any:
    params = {"tier": "standard", "network": "default", **parameters}
    return until_done(
        driver.controller.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name=name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 40),
            volume_capabilities=[CAP],
            parameters=params,
        ),
    ).volume


def stage(driver: Driver, volume: Any, staging: str, timeout: float = 120) -> None:
    driver.node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=staging,
            volume_capability=CAP,
            volume_context=dict(volume.volume_context),
        ),
        timeout=timeout,
    )


def publish(
    driver: Driver, volume: Any, staging: str, target: str, readonly: bool = False, timeout: float = 60
) -> None:
    driver.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=staging,
            target_path=target,
            volume_capability=CAP,
            readonly=readonly,
        ),
        timeout=timeout,
    )


def unpublish(driver: Driver, volume: Any, target: str, timeout: float = 60) -> None:
    driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target), timeout=timeout
    )


def unstage(driver: Driver, volume: Any, staging: str, timeout: float = 60) -> None:
    driver.node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=staging),
        timeout=timeout,
    )


def volume_stats(driver: Driver, volume: Any, path: str, timeout: float = 60) -> Any:
    return driver.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=path), timeout=timeout
    )


def mounts_under(driver: Driver) -> dict[str, str]:
    """{path relative to the kubelet root: fstype} of the driver's mounts under its kubelet root."""
    return {
        os.path.relpath(target, driver.root): fstype + (",ro" if "ro" in options.split(",") else "")
        for target, (fstype, options) in mount_rows(driver, "FSTYPE", "OPTIONS").items()
    }
