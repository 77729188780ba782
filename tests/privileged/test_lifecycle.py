"""The whole driver (``filestore-csi-driver --mode all --cloud emulator``) through a volume's life.

The driver runs as its own process in a private mount namespace; the test is the CO.  NodeStage's
real NFS mount is attempted and must come back with a clear status (this kernel has no NFS client;
with one, nothing serves NFS at the emulator's address); then a tmpfs stand-in is mounted at the
staging path inside the driver's namespace and the rest of the lifecycle runs against it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from nsutil import unshare_argv

from csi.proto import csi_pb2, csi_pb2_grpc

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)

_Mode = csi_pb2.VolumeCapability.AccessMode
CAP = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=_Mode.MULTI_NODE_MULTI_WRITER)
)


@pytest.fixture
def driver() -> Iterator[tuple[int, str, Any]]:
    workdir = tempfile.mkdtemp(prefix="filestore-lifecycle-")
    root = os.path.join(workdir, "kubelet")
    os.makedirs(root)
    sock = os.path.join(workdir, "csi.sock")
    argv = [
        sys.executable, "-c", "import sys; from csi.main import main; sys.exit(main())",
        "--mode=all", "--cloud=emulator", "--project=test-project", "--zone=us-central1-a",
        "--node-id=node-1", f"--kubelet-root={root}", f"--endpoint=unix://{sock}", "--probe-timeout=3",
    ]
    proc = subprocess.Popen(unshare_argv(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    channel = grpc.insecure_channel(f"unix://{sock}")
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        yield proc.pid, root, channel
    finally:
        channel.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir)


def _ns(pid: int, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", *argv], capture_output=True, text=True, check=True,
        timeout=30,
    ).stdout


def _mounted(pid: int, root: str) -> dict[str, str]:
    table = {}
    for line in _ns(pid, "findmnt", "-rn", "-o", "TARGET,OPTIONS").splitlines():
        target, options = line.split(" ")
        if target.startswith(root + "/"):
            table[os.path.relpath(target, root)] = "ro" if "ro" in options.split(",") else "rw"
    return table


def _until_done(call: Any, request: Any) -> Any:
    """Call as the provisioner does: again while the cloud operation is pending."""
    for _ in range(300):
        try:
            return call(request, timeout=30)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED):
                raise
    raise AssertionError("operation never finished")


def test_volume_lifecycle_through_the_whole_driver(driver: tuple[int, str, Any]) -> None:
    pid, root, channel = driver
    controller, node = csi_pb2_grpc.ControllerStub(channel), csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
    volume = _until_done(controller.CreateVolume, csi_pb2.CreateVolumeRequest(
        name="pvc-life", capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 40),
        volume_capabilities=[CAP], parameters={"tier": "standard", "network": "default"},
    )).volume
    context = dict(volume.volume_context)
    assert context["volume"] and context["ip"]

    staging = os.path.join(root, "plugins", "pv", "globalmount")
    os.makedirs(os.path.dirname(staging))
    stage = csi_pb2.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=staging, volume_capability=CAP, volume_context=context,
    )
    try:
        node.NodeStageVolume(stage, timeout=60)
        nfs_ok = True
    except grpc.RpcError as exc:
        nfs_ok = False
        details = exc.details() or ""
        if "no NFS client" in details:
            assert exc.code() == grpc.StatusCode.INTERNAL and f"{context['ip']}:/{context['volume']}" in details
        else:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), details
        assert _mounted(pid, root) == {}
    if not nfs_ok:
        _ns(pid, "mount", "-t", "tmpfs", "-o", "size=4m", "stand-in", staging)

    targets = []
    for pod, readonly in (("writer", False), ("reader", True)):
        parent = os.path.join(root, "pods", pod, "volumes", "kubernetes.io~csi", "pvc-life")
        os.makedirs(parent)
        targets.append(os.path.join(parent, "mount"))
        node.NodePublishVolume(csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=staging, target_path=targets[-1],
            volume_capability=CAP, readonly=readonly,
        ), timeout=30)
    assert _mounted(pid, root) == {
        "plugins/pv/globalmount": "rw",
        "pods/writer/volumes/kubernetes.io~csi/pvc-life/mount": "rw",
        "pods/reader/volumes/kubernetes.io~csi/pvc-life/mount": "ro",
    }
    _ns(pid, "sh", "-c", f"echo lifecycle > {targets[0]}/f")
    assert _ns(pid, "cat", f"{targets[1]}/f") == "lifecycle\n"

    for target in targets:
        node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target), timeout=30
        )
    assert _mounted(pid, root) == {"plugins/pv/globalmount": "rw"}
    node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=staging), timeout=30
    )
    assert _mounted(pid, root) == {} and not os.path.exists(staging)
    _until_done(controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    _until_done(controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


def test_demo_runs_end_to_end() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "csi.demo"], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[8] DeleteVolume" in out.stdout and "EROFS" in out.stdout
    if "no NFS client" in out.stdout:
        assert "staging a tmpfs stand-in" in out.stdout
