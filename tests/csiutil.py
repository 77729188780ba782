"""The CO side of driver tests: run the whole driver in its own mount namespace and talk CSI to it.

Used by the real-NFS guest tests; the driver is a separate process (as in a cluster), so what it
mounts lives in its namespace and the test looks there through ``nsenter``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from nsutil import unshare_argv

from csi.proto import csi_pb2, csi_pb2_grpc

_Mode = csi_pb2.VolumeCapability.AccessMode
CAP = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=_Mode.MULTI_NODE_MULTI_WRITER)
)


@dataclass
class Driver:
    """A running driver: its PID (whose mount namespace holds the mounts), kubelet root and stubs."""

    pid: int
    root: str
    controller: Any
    node: Any

    def ns(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run argv in the driver's mount namespace."""
        return subprocess.run(
            ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--", *argv],
            capture_output=True, text=True, check=check, timeout=timeout,
        )

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.ns("sh", "-c", script, check=check, timeout=timeout)

    def staging(self, volume: str) -> str:
        path = os.path.join(self.root, "plugins", "kubernetes.io", "csi", volume, "globalmount")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def target(self, pod: str, volume: str) -> str:
        parent = os.path.join(self.root, "pods", pod, "volumes", "kubernetes.io~csi", volume)
        os.makedirs(parent, exist_ok=True)
        return os.path.join(parent, "mount")


@contextmanager
def run_driver(*flags: str, timeout: float = 120) -> Iterator[Driver]:
    """Start ``csi.main`` (mode all) in a private mount namespace with ``flags``; SIGTERM it after."""
    workdir = tempfile.mkdtemp(prefix="filestore-driver-")
    root = os.path.join(workdir, "kubelet")
    os.makedirs(root)
    sock = os.path.join(workdir, "csi.sock")
    argv = [
        sys.executable, "-m", "csi.main", "--mode=all", "--project=test-project", "--zone=us-central1-a",
        "--node-id=node-1", f"--kubelet-root={root}", f"--endpoint=unix://{sock}", *flags,
    ]
    with open(os.path.join(workdir, "driver.log"), "w+") as log:
        proc = subprocess.Popen(unshare_argv(argv), stdout=log, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(f"unix://{sock}")
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
            yield Driver(
                proc.pid, root,
                csi_pb2_grpc.ControllerStub(channel),  # type: ignore[no-untyped-call]
                csi_pb2_grpc.NodeStub(channel),  # type: ignore[no-untyped-call]
            )
        except BaseException:
            log.seek(0)
            print("driver log:\n" + log.read()[-6000:], file=sys.stderr)
            raise
        finally:
            channel.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by PID
                proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)

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
    return until_done(driver.controller.CreateVolume, csi_pb2.CreateVolumeRequest(
        name=name, capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 40),
        volume_capabilities=[CAP], parameters=params,
    )).volume


def stage(driver: Driver, volume: Any, staging: str, timeout: float = 120) -> None:
    driver.node.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=staging, volume_capability=CAP,
        volume_context=dict(volume.volume_context),
    ), timeout=timeout)


def publish(driver: Driver, volume: Any, staging: str, target: str, readonly: bool = False,
            timeout: float = 60) -> None:
    driver.node.NodePublishVolume(csi_pb2.NodePublishVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=staging, target_path=target,
        volume_capability=CAP, readonly=readonly,
    ), timeout=timeout)


def unpublish(driver: Driver, volume: Any, target: str, timeout: float = 60) -> None:
    driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target), timeout=timeout
    )


def unstage(driver: Driver, volume: Any, staging: str, timeout: float = 60) -> None:
    driver.node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=staging), timeout=timeout
    )


def volume_stats(driver: Driver, volume: Any, path: str, timeout: float = 60) -> Any:
    return driver.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=path), timeout=timeout
    )


def mounts_under(driver: Driver) -> dict[str, str]:
    """{path relative to the kubelet root: fstype} of the driver's mounts under its kubelet root."""
    out = driver.ns("findmnt", "-rn", "-o", "TARGET,FSTYPE,OPTIONS").stdout
    found = {}
    for line in out.splitlines():
        target, fstype, options = line.split(" ")
        if target.startswith(driver.root + "/"):
            found[os.path.relpath(target, driver.root)] = fstype + (",ro" if "ro" in options.split(",") else "")
    return found
