"""``--feature-lock-release`` on the controller: which volumes CreateVolume marks ``supportLockRelease``.

GFD (``pkg/csi_driver/controller.go`` fileInstanceToCSIVolume, ``multishare_controller.go``
generateCSICreateVolumeResponse) marks an NFSv3 instance whose tier is ENTERPRISE, and every share of a
multishare instance; nothing with the feature off. We mark shares only when NFSv3 (the node acts on
nothing else). The controller runs over a real gRPC socket on the Filestore emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csi.controller.labels import cluster_labels
from csi.proto import csi_pb2
from tests.support.controllerutil import TIB, create, running_driver

MARK = {"supportLockRelease": "true"}
SIZE = csi_pb2.CapacityRange(required_bytes=TIB)


def context(tmp_path: Path, parameters: dict[str, str], *, lock_release: bool) -> dict[str, str]:
    """The volume context CreateVolume answers, and checks that ListVolumes and a repeat agree."""
    with running_driver(tmp_path, lock_release=lock_release) as d:
        volume = create(d, "pvc-1", capacity_range=SIZE, parameters=parameters)
        again = create(d, "pvc-1", capacity_range=SIZE, parameters=parameters)  # idempotent: the existing one
        listed = d.ctl.ListVolumes(csi_pb2.ListVolumesRequest()).entries
    assert again == volume and [entry.volume for entry in listed] == [volume]
    return dict(volume.volume_context)


def test_an_nfsv3_enterprise_instance_is_marked(tmp_path: Path) -> None:
    got = context(tmp_path, {"tier": "enterprise"}, lock_release=True)
    assert got["fileProtocol"] == "NFS_V3"
    assert got.items() >= MARK.items()


@pytest.mark.parametrize(
    "parameters",
    [
        pytest.param({"tier": "enterprise", "protocol": "NFS_V4_1"}, id="enterprise-nfsv4.1"),
        pytest.param({"tier": "zonal"}, id="zonal"),
        pytest.param({"tier": "regional"}, id="regional"),
        pytest.param({"tier": "standard"}, id="basic-hdd"),
        pytest.param({"tier": "premium"}, id="basic-ssd"),
    ],
)
def test_other_instances_are_not_marked(tmp_path: Path, parameters: dict[str, str]) -> None:
    got = context(tmp_path, parameters, lock_release=True)
    assert "supportLockRelease" not in got
    assert got["fileProtocol"] == parameters.get("protocol", "NFS_V3")


def test_feature_off_marks_nothing(tmp_path: Path) -> None:
    assert "supportLockRelease" not in context(tmp_path, {"tier": "enterprise"}, lock_release=False)


def share_context(tmp_path: Path, protocol: str, *, lock_release: bool) -> dict[str, str]:
    parameters = {"multishare": "true", "instance-storageclass-label": "sc-a", "tier": "enterprise"}
    if protocol != "NFS_V3":
        parameters["protocol"] = protocol
    labels = cluster_labels("test-cluster", "us-central1-a", regional=False)
    with running_driver(tmp_path, multishare=True, cluster_labels=labels, lock_release=lock_release) as d:
        request = csi_pb2.CapacityRange(required_bytes=100 * 1024**3)
        volume = create(d, "pvc-1", capacity_range=request, parameters=parameters)
        listed = d.ctl.ListVolumes(csi_pb2.ListVolumesRequest()).entries
    assert volume.volume_id.startswith("modeMultishare/sc-a/")
    assert [entry.volume for entry in listed] == [volume]
    return dict(volume.volume_context)


def test_an_nfsv3_share_is_marked(tmp_path: Path) -> None:
    assert share_context(tmp_path, "NFS_V3", lock_release=True).items() >= MARK.items()


@pytest.mark.parametrize(
    ("protocol", "lock_release"),
    [pytest.param("NFS_V3", False, id="feature-off"), pytest.param("NFS_V4_1", True, id="nfsv4.1")],
)
def test_other_shares_are_not_marked(tmp_path: Path, protocol: str, lock_release: bool) -> None:
    got = share_context(tmp_path, protocol, lock_release=lock_release)
    assert "supportLockRelease" not in got
    assert got["fileProtocol"] == protocol
