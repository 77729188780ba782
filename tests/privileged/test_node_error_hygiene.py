"""Every failing node RPC leaves nothing behind: no mount, no directory the driver made (issue 17's rule).

The whole driver (``csi.main --mode node``) runs in a private mount namespace of its own and is asked
over gRPC, as kubelet asks it; each failure path -- a bad target, a mount or bind the kernel refuses, a
read-only parent -- is checked against the driver's mount table (findmnt in its namespace) and the
directory tree.  Directories the CO made stay; only what the driver made goes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from csi.proto import csi_pb2
from tests.support.csiutil import Driver, mount_rows, run_driver

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)

_Mode = csi_pb2.VolumeCapability.AccessMode
MOUNT = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=_Mode.SINGLE_NODE_MULTI_WRITER)
)
BLOCK = csi_pb2.VolumeCapability(
    block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=_Mode(mode=_Mode.SINGLE_NODE_WRITER)
)
#: nothing serves NFS on the loopback of the driver's namespace: a stage there always fails
CONTEXT = {"ip": "127.0.0.1", "volume": "vol1"}


@pytest.fixture
def driver() -> Iterator[Driver]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the driver in a private mount namespace")
    with run_driver("--mode=node", "--probe-timeout=2", timeout=60) as running:
        yield running


def refusal(call: Any, request: Any) -> tuple[grpc.StatusCode, str]:
    """The (code, message) a call fails with; the test fails if it succeeds."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=120)
    error: Any = info.value
    return error.code(), error.details() or ""


def refused(call: Any, request: Any) -> grpc.StatusCode:
    return refusal(call, request)[0]


def stage_request(
    staging: str, capability: csi_pb2.VolumeCapability = MOUNT
) -> csi_pb2.NodeStageVolumeRequest:
    return csi_pb2.NodeStageVolumeRequest(
        volume_id="vol", staging_target_path=staging, volume_capability=capability, volume_context=CONTEXT
    )


def publish_request(
    staging: str, target: str, capability: csi_pb2.VolumeCapability = MOUNT, readonly: bool = False
) -> csi_pb2.NodePublishVolumeRequest:
    return csi_pb2.NodePublishVolumeRequest(
        volume_id="vol",
        staging_target_path=staging,
        target_path=target,
        volume_capability=capability,
        readonly=readonly,
    )


def stand_in(driver: Driver, name: str) -> str:
    """A tmpfs at a staging path in the driver's namespace, standing in for a staged share."""
    staging = driver.staging(name)
    os.mkdir(staging)
    driver.ns("mount", "-t", "tmpfs", "-o", "size=4m", f"share-{name}", staging)
    return staging


def read_only_dir(driver: Driver, path: str) -> None:
    """Make ``path`` (a directory) read-only in the driver's namespace: a read-only bind onto itself."""
    os.makedirs(path, exist_ok=True)
    driver.ns("mount", "--bind", path, path)
    driver.ns("mount", "-o", "remount,bind,ro", path)


# --- NodeStageVolume ----------------------------------------------------------------------------


def test_stage_whose_mount_fails_leaves_no_mount_and_removes_only_the_dir_it_made(driver: Driver) -> None:
    made_by_driver = driver.staging("pv-a")
    assert refused(driver.node.NodeStageVolume, stage_request(made_by_driver)) != grpc.StatusCode.OK
    assert mount_rows(driver) == {} and not os.path.lexists(made_by_driver)
    assert os.path.isdir(os.path.dirname(made_by_driver))  # the CO's parent stays

    made_by_co = driver.staging("pv-b")
    os.mkdir(made_by_co)
    assert refused(driver.node.NodeStageVolume, stage_request(made_by_co)) != grpc.StatusCode.OK
    assert mount_rows(driver) == {} and os.path.isdir(made_by_co) and not os.listdir(made_by_co)


def test_stage_at_a_bad_target_is_refused_before_anything_is_made(driver: Driver, tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link_parent = os.path.join(driver.root, "plugins", "link")
    os.makedirs(os.path.dirname(link_parent), exist_ok=True)
    os.symlink(outside, link_parent)
    for staging, code in (
        (str(outside / "globalmount"), grpc.StatusCode.INVALID_ARGUMENT),  # outside the kubelet root
        (os.path.join(link_parent, "globalmount"), grpc.StatusCode.INVALID_ARGUMENT),  # a symlink leads out
        (driver.root + "/plugins/../../x/globalmount", grpc.StatusCode.INVALID_ARGUMENT),  # not normal form
        (
            os.path.join(driver.root, "plugins", "no-such-dir", "globalmount"),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ):
        assert refused(driver.node.NodeStageVolume, stage_request(staging)) == code, staging
    assert list(outside.iterdir()) == [] and mount_rows(driver) == {}
    assert not os.path.lexists(os.path.join(driver.root, "plugins", "no-such-dir"))


def test_stage_exceeding_capabilities_makes_nothing(driver: Driver) -> None:
    staging = driver.staging("pv-block")
    assert (
        refused(driver.node.NodeStageVolume, stage_request(staging, BLOCK))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert mount_rows(driver) == {} and not os.path.lexists(staging)


def test_stage_under_a_read_only_parent_fails_and_leaves_nothing(driver: Driver) -> None:
    staging = driver.staging("pv-ro")
    parent = os.path.dirname(staging)
    read_only_dir(driver, parent)
    code, message = refusal(driver.node.NodeStageVolume, stage_request(staging))
    assert code == grpc.StatusCode.INTERNAL and "EROFS" in message, message
    assert set(mount_rows(driver)) == {parent}  # only the test's own read-only bind
    assert not os.path.lexists(staging)


# --- NodePublishVolume --------------------------------------------------------------------------


def test_publish_whose_bind_fails_removes_the_target_it_made(driver: Driver) -> None:
    """The kernel refuses to bind an unbindable mount (EINVAL) after the driver made the target."""
    staging = stand_in(driver, "pv-unbindable")
    driver.ns("mount", "--make-unbindable", staging)
    target = driver.target("pod-a", "pv-unbindable")
    code, message = refusal(driver.node.NodePublishVolume, publish_request(staging, target))
    assert code == grpc.StatusCode.INTERNAL and "EINVAL" in message, message
    assert set(mount_rows(driver)) == {staging} and not os.path.lexists(target)
    assert os.path.isdir(os.path.dirname(target))  # the CO's parent stays


def test_publish_refusals_mount_and_make_nothing(driver: Driver, tmp_path: Any) -> None:
    staging = stand_in(driver, "pv-pub")
    unstaged = driver.staging("pv-unstaged")
    os.mkdir(unstaged)
    target = driver.target("pod-a", "pv-pub")
    outside = tmp_path / "outside"
    outside.mkdir()
    link = driver.target("pod-link", "pv-pub")
    os.symlink(outside, os.path.dirname(link) + "/link")
    for request, code in (
        (publish_request(unstaged, target), grpc.StatusCode.FAILED_PRECONDITION),  # not staged
        (publish_request("", target), grpc.StatusCode.FAILED_PRECONDITION),  # staging path not set
        (
            publish_request(staging, target, BLOCK),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),  # exceeds capabilities
        (publish_request(staging, "/tmp/errtable-outside"), grpc.StatusCode.INVALID_ARGUMENT),
        (publish_request(staging, os.path.dirname(link) + "/link/mount"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            publish_request(staging, driver.root + "/pods/none/volumes/x/mount"),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ):
        assert refused(driver.node.NodePublishVolume, request) == code, request
        assert set(mount_rows(driver)) == {staging} and not os.path.lexists(target)
    assert list(outside.iterdir()) == [] and not os.path.lexists("/tmp/errtable-outside")
    assert not os.path.lexists(driver.root + "/pods/none")

    with open(target, "w") as out:  # a file where the target should be: refused, the file untouched
        out.write("keep")
    assert (
        refused(driver.node.NodePublishVolume, publish_request(staging, target))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    with open(target) as inp:
        assert inp.read() == "keep"
    os.unlink(target)

    driver.node.NodePublishVolume(publish_request(staging, target), timeout=120)
    published = mount_rows(driver, "OPTIONS")
    incompatible = publish_request(staging, target, readonly=True)
    assert refused(driver.node.NodePublishVolume, incompatible) == grpc.StatusCode.ALREADY_EXISTS
    assert mount_rows(driver, "OPTIONS") == published


def test_publish_under_a_read_only_parent_fails_and_leaves_nothing(driver: Driver) -> None:
    staging = stand_in(driver, "pv-ro-target")
    target = driver.target("pod-ro", "pv-ro-target")
    parent = os.path.dirname(target)
    read_only_dir(driver, parent)
    code, message = refusal(driver.node.NodePublishVolume, publish_request(staging, target))
    assert code == grpc.StatusCode.INTERNAL and "EROFS" in message, message
    assert set(mount_rows(driver)) == {staging, parent} and not os.path.lexists(target)
