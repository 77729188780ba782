"""Security posture of the running driver: no secrets in its logs, a 0660 socket, nothing mounted
outside the kubelet root, and no mount helper ever spawned (PATH holds recording fakes)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator

import grpc
import pytest

from csi.node import kubelet
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.version import DEFAULT_DRIVER_NAME
from tests.support.reliability import NsDriver, report

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)

SECRET = "S3CR3T-do-not-log"
_Mode = csi_pb2.VolumeCapability.AccessMode
HELPERS = ("mount", "umount", "mount.nfs", "mount.nfs4", "umount.nfs", "fusermount", "nsenter-fake")


@pytest.fixture
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NsDriver, str]]:
    fakebin = str(tmp_path_factory.mktemp("fakebin"))
    called = os.path.join(fakebin, "called")
    for name in HELPERS:
        path = os.path.join(fakebin, name)
        with open(path, "w") as out:
            out.write(f'#!/bin/sh\necho {name} "$@" >> {called}\nexit 1\n')
        os.chmod(path, 0o755)
    d = NsDriver(
        "all", env={**os.environ, "PATH": f"{fakebin}:{os.environ.get('PATH', '')}"}, log_level="DEBUG"
    )
    try:
        d.start()
        yield d, called
    finally:
        d.close()


def cap(flags: list[str]) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=flags),
        access_mode=_Mode(mode=_Mode.MULTI_NODE_MULTI_WRITER),
    )


def test_no_secrets_logged_socket_0660_paths_confined_no_helpers(driver: tuple[NsDriver, str]) -> None:
    d, called = driver
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    secrets = {"password": SECRET, "token": SECRET}
    flags = [f"password={SECRET}", f"sec=sys,password={SECRET}", f"credentials={SECRET}"]
    staging = kubelet.staging_path(d.root, DEFAULT_DRIVER_NAME, "pv")
    target = kubelet.publish_target(d.root, "p", "pv")
    os.makedirs(os.path.dirname(staging))
    os.makedirs(os.path.dirname(target))
    codes = []
    with grpc.insecure_channel(f"unix://{d.sock}") as channel:
        node = csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
        ctl = csi_pb2_grpc.ControllerStub(channel)  # type: ignore[no-untyped-call]
        calls = [
            (
                ctl.CreateVolume,
                csi_pb2.CreateVolumeRequest(
                    name="pvc-sec", volume_capabilities=[cap(flags)], secrets=secrets
                ),
            ),
            (
                ctl.DeleteVolume,
                csi_pb2.DeleteVolumeRequest(volume_id="modeInstance/us-central1-a/x/vol1", secrets=secrets),
            ),
            (
                ctl.CreateSnapshot,
                csi_pb2.CreateSnapshotRequest(name="s", source_volume_id="v", secrets=secrets),
            ),
            (
                node.NodeStageVolume,
                csi_pb2.NodeStageVolumeRequest(
                    volume_id="pv",
                    staging_target_path=staging,
                    volume_capability=cap(flags),
                    volume_context={"ip": "127.0.0.1", "volume": "vol1"},
                    secrets=secrets,
                ),
            ),
            (
                node.NodePublishVolume,
                csi_pb2.NodePublishVolumeRequest(
                    volume_id="pv",
                    staging_target_path=staging,
                    target_path=target,
                    volume_capability=cap(flags),
                    secrets=secrets,
                ),
            ),
            (
                node.NodePublishVolume,
                csi_pb2.NodePublishVolumeRequest(
                    volume_id="pv",
                    staging_target_path=staging,
                    target_path="/etc/evil",
                    volume_capability=cap([]),
                ),
            ),
            (
                node.NodeUnpublishVolume,
                csi_pb2.NodeUnpublishVolumeRequest(volume_id="pv", target_path="/etc"),
            ),
            (
                node.NodeStageVolume,
                csi_pb2.NodeStageVolumeRequest(
                    volume_id="pv",
                    staging_target_path=d.root + "/../../etc",
                    volume_capability=cap([]),
                    volume_context={"ip": "127.0.0.1", "volume": "vol1"},
                ),
            ),
        ]
        for call, request in calls:
            try:
                call(request, timeout=30)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
                assert SECRET not in (exc.details() or "")
    assert codes[-3:] == [grpc.StatusCode.INVALID_ARGUMENT] * 3, codes
    assert d.mounts() == []
    with open(d.log) as inp:
        log = inp.read()
    assert "NodeStageVolume" in log  # the calls were logged, redacted
    assert SECRET not in log
    assert not os.path.exists(called), "a mount helper was spawned"
    report(
        "security",
        rpcs=len(calls),
        secrets_planted=len(calls[:5]) * 2,
        secrets_logged=log.count(SECRET),
        helpers_spawned=0,
        socket_mode="0660",
        log_bytes=len(log),
    )
