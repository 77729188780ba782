"""The node service over gRPC with real mounts, in a driver process of its own mount namespace.

The driver runs under ``unshare --mount --propagation private`` (nothing it mounts reaches the
host); the test talks to it over its unix socket and looks into its namespace with ``nsenter``
(findmnt for the mount table, sh for file contents through the pod paths).  This kernel has no
NFS client, so a tmpfs pre-mounted at the staging path stands in for the staged share; the NFS
attempt itself is checked for a clear status.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from csi.node import kubelet
from csi.proto import csi_pb2
from tests.support.csiutil import Driver, mount_rows, run_server

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)

SERVER = """
import logging, sys
from csi.identity import IdentityServicer
from csi.locks import VolumeLocks
from csi.node.service import NodeServicer
from csi.server import CsiServer, serve_until_signalled
from mountkit import Mounter
logging.basicConfig(level=logging.INFO)
sock, root = sys.argv[1:3]
node = NodeServicer("node-1", "us-central1-a", root, Mounter(probe_timeout=2.0), VolumeLocks(), 2.0)
identity = IdentityServicer("filestore.csi.storage.gke.io", "test", controller=False)
serve_until_signalled(CsiServer("unix://" + sock, identity, node=node), 1.0)
"""

_Mode = csi_pb2.VolumeCapability.AccessMode


def capability(mode: _Mode.Mode = _Mode.MULTI_NODE_MULTI_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=mode)
    )


@pytest.fixture
def driver() -> Iterator[Driver]:
    """The node service alone (no csi.main, no cloud), started by SERVER in its own namespace."""
    with run_server(
        lambda root, sock: [sys.executable, "-c", SERVER, sock, root],
        prefix="filestore-node-test-",
        timeout=30,
    ) as running:
        os.makedirs(os.path.join(running.root, "plugins", "staging"))
        os.makedirs(os.path.join(running.root, "pods"))
        yield running


def mounts(driver: Driver) -> dict[str, tuple[str, str, set[str]]]:
    """The driver's mounts under the kubelet root: target -> (fstype, source, options)."""
    return {
        target: (fstype, source, set(options.split(",")))
        for target, (fstype, source, options) in mount_rows(driver, "FSTYPE", "SOURCE", "OPTIONS").items()
    }


def path(driver: Driver, *parts: str) -> str:
    return os.path.join(driver.root, *parts)


def stage_stand_in(driver: Driver, name: str = "vol") -> str:
    """A tmpfs at a staging path in the driver's namespace, standing in for the staged NFS share."""
    staging = path(driver, "plugins", "staging", name)
    os.mkdir(staging)
    driver.ns("mount", "-t", "tmpfs", "-o", "size=4m", f"share-{name}", staging)
    return staging


def pod_target(driver: Driver, pod: str) -> str:
    return driver.target(pod, "pvc-1")


def publish(
    driver: Driver,
    staging: str,
    target: str,
    *,
    readonly: bool = False,
    mode: _Mode.Mode = _Mode.MULTI_NODE_MULTI_WRITER,
) -> None:
    driver.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id="vol",
            staging_target_path=staging,
            target_path=target,
            volume_capability=capability(mode),
            readonly=readonly,
        ),
        timeout=30,
    )


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def test_publish_rw_and_ro_share_data_and_ro_refuses_writes(driver: Driver) -> None:
    staging = stage_stand_in(driver)
    writer, reader = pod_target(driver, "pod-a"), pod_target(driver, "pod-b")
    publish(driver, staging, writer)
    publish(driver, staging, reader, readonly=True)

    table = mounts(driver)
    assert table[writer][:2] == ("tmpfs", "share-vol") and "rw" in table[writer][2]
    assert table[reader][:2] == ("tmpfs", "share-vol") and "ro" in table[reader][2]

    driver.ns("sh", "-c", f"echo written-by-a > {writer}/data")
    assert driver.ns("cat", f"{reader}/data").stdout == "written-by-a\n"
    refused = driver.ns("sh", "-c", f"echo x > {reader}/other", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr

    # idempotent: the same publish again is OK; the other ro state is ALREADY_EXISTS
    publish(driver, staging, reader, readonly=True)
    assert code_of(lambda: publish(driver, staging, reader)) == grpc.StatusCode.ALREADY_EXISTS
    assert mounts(driver)[reader][2] >= {"ro"}

    for target in (writer, reader):
        request = csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol", target_path=target)
        driver.node.NodeUnpublishVolume(request, timeout=30)
        assert target not in mounts(driver) and not os.path.exists(target)
        driver.node.NodeUnpublishVolume(request, timeout=30)  # again: still OK

    # the share itself kept the data
    assert driver.ns("cat", f"{staging}/data").stdout == "written-by-a\n"
    unstage = csi_pb2.NodeUnstageVolumeRequest(volume_id="vol", staging_target_path=staging)
    driver.node.NodeUnstageVolume(unstage, timeout=30)
    assert mounts(driver) == {} and not os.path.exists(staging)
    driver.node.NodeUnstageVolume(unstage, timeout=30)


def test_reader_only_access_mode_publishes_read_only(driver: Driver) -> None:
    staging = stage_stand_in(driver)
    target = pod_target(driver, "pod-a")
    publish(driver, staging, target, mode=_Mode.MULTI_NODE_READER_ONLY)
    assert "ro" in mounts(driver)[target][2]
    refused = driver.ns("touch", f"{target}/x", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_publish_of_an_unstaged_volume_is_failed_precondition(driver: Driver) -> None:
    staging = path(driver, "plugins", "staging", "never")
    os.mkdir(staging)
    target = pod_target(driver, "pod-a")
    assert code_of(lambda: publish(driver, staging, target)) == grpc.StatusCode.FAILED_PRECONDITION
    assert not os.path.exists(target) and mounts(driver) == {}


def test_publish_onto_something_else_is_already_exists(driver: Driver) -> None:
    staging = stage_stand_in(driver, "one")
    other = stage_stand_in(driver, "two")
    target = pod_target(driver, "pod-a")
    publish(driver, other, target)
    assert code_of(lambda: publish(driver, staging, target)) == grpc.StatusCode.ALREADY_EXISTS
    assert mounts(driver)[target][1] == "share-two"


def test_single_writer_at_a_second_target_is_failed_precondition_from_the_mount_table(driver: Driver) -> None:
    """SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod): one target per node, judged from the kernel."""
    ssw = _Mode.SINGLE_NODE_SINGLE_WRITER
    staging = stage_stand_in(driver)
    first, second, third = (pod_target(driver, pod) for pod in ("pod-a", "pod-b", "pod-c"))
    publish(driver, staging, first, mode=ssw)
    publish(driver, staging, first, mode=ssw)  # the same target: idempotent
    assert code_of(lambda: publish(driver, staging, second, mode=ssw)) == grpc.StatusCode.FAILED_PRECONDITION
    assert set(mounts(driver)) == {staging, first} and not os.path.exists(second)

    # A bind this driver process never made (as a previous instance, before a restart, would have
    # left it) counts the same: the answer comes from the mount table, not from memory.
    driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol", target_path=first), timeout=30
    )
    os.mkdir(third)
    driver.ns("mount", "--bind", staging, third)
    assert code_of(lambda: publish(driver, staging, second, mode=ssw)) == grpc.StatusCode.FAILED_PRECONDITION
    assert set(mounts(driver)) == {staging, third} and not os.path.exists(second)
    driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol", target_path=third), timeout=30
    )
    publish(driver, staging, second, mode=ssw)
    assert set(mounts(driver)) == {staging, second}


def test_single_node_multi_writer_publishes_at_many_targets(driver: Driver) -> None:
    staging = stage_stand_in(driver)
    targets = [pod_target(driver, pod) for pod in ("pod-a", "pod-b")]
    for target in targets:
        publish(driver, staging, target, mode=_Mode.SINGLE_NODE_MULTI_WRITER)
    assert set(mounts(driver)) == {staging, *targets}


def test_unpublish_never_deletes_data_in_an_unmounted_target(driver: Driver) -> None:
    target = pod_target(driver, "pod-a")
    os.mkdir(target)
    with open(os.path.join(target, "precious"), "w") as out:
        out.write("keep me")
    driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol", target_path=target), timeout=30
    )
    with open(os.path.join(target, "precious")) as inp:
        assert inp.read() == "keep me"


def test_unpublish_of_a_missing_target_is_ok(driver: Driver) -> None:
    target = kubelet.publish_target(driver.root, "gone", "pvc-1")
    driver.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol", target_path=target), timeout=30
    )


def test_volume_stats_of_a_published_volume(driver: Driver) -> None:
    staging = stage_stand_in(driver)
    target = pod_target(driver, "pod-a")
    publish(driver, staging, target)
    driver.ns("sh", "-c", f"head -c 1048576 /dev/zero > {target}/mib")
    stats = driver.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id="vol", volume_path=target), timeout=30
    )
    by_unit = {u.unit: u for u in stats.usage}
    size = by_unit[csi_pb2.VolumeUsage.BYTES]
    assert size.total == 4 << 20 and size.used >= 1 << 20 and size.available == size.total - size.used
    inodes = by_unit[csi_pb2.VolumeUsage.INODES]
    assert inodes.used >= 2 and inodes.total >= inodes.used
    assert not stats.volume_condition.abnormal

    unmounted = pod_target(driver, "pod-b")
    os.mkdir(unmounted)
    for missing in (unmounted, pod_target(driver, "pod-c"), "some/path"):  # the last as csi-test sends it
        assert (
            code_of(
                lambda missing=missing: driver.node.NodeGetVolumeStats(
                    csi_pb2.NodeGetVolumeStatsRequest(volume_id="vol", volume_path=missing),
                    timeout=30,
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )


def test_stage_attempts_nfs_and_reports_a_clear_status(driver: Driver) -> None:
    staging = path(driver, "plugins", "staging", "nfs")
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id="vol",
        staging_target_path=staging,
        volume_capability=capability(),
        volume_context={"ip": "127.0.0.1", "volume": "vol1"},
    )
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        driver.node.NodeStageVolume(request, timeout=60)
    assert time.monotonic() - start < 30
    if "no NFS client" in (info.value.details() or ""):
        assert info.value.code() == grpc.StatusCode.INTERNAL
    else:  # a kernel with NFS: nothing serves 127.0.0.1 here, the mount fails some other clear way
        assert info.value.code() != grpc.StatusCode.OK
    assert staging not in mounts(driver) and not os.path.exists(staging)  # no half-made directory either
