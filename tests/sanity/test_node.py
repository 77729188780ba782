"""csi-sanity's "Node Service" cases (pkg/sanity/node.go), one test each, against the whole driver.

This kernel has no NFS client, so where a case needs a staged share, NodeStageVolume is called as
csi-sanity calls it and must fail clearly (INTERNAL naming the share, nothing mounted), and then a
tmpfs stand-in is mounted at the staging path in the driver's namespace (as tests/privileged/
test_lifecycle.py does); the rest of the case runs against it.  Where the kernel has NFS, the stage
itself must succeed.  NodeExpandVolume is not advertised: csi-sanity skips its cases.
"""

from __future__ import annotations

import os

import grpc
import pytest

from csi.proto import csi_pb2 as C
from tests.support.csiutil import mount_rows
from tests.support.sanityutil import (
    IDEMPOTENT_COUNT,
    TestContext,
    capability,
    code_of,
    create_for_node,
    node_publish,
    node_stage,
    run_controller_test,
    unique_string,
    valid_volume_id,
)

pytestmark = pytest.mark.privileged

_RPC = C.NodeServiceCapability.RPC
_Service = C.PluginCapability.Service


# --- NodeGetCapabilities, NodeGetInfo ---------------------------------------------


def test_node_get_capabilities_should_return_appropriate_capabilities(sc: TestContext) -> None:
    caps = sc.node.NodeGetCapabilities(C.NodeGetCapabilitiesRequest()).capabilities
    allowed = {
        _RPC.UNKNOWN,
        _RPC.STAGE_UNSTAGE_VOLUME,
        _RPC.GET_VOLUME_STATS,
        _RPC.EXPAND_VOLUME,
        _RPC.VOLUME_CONDITION,
        _RPC.SINGLE_NODE_MULTI_WRITER,
        _RPC.VOLUME_MOUNT_GROUP,
    }
    assert caps and all(cap.rpc.type in allowed for cap in caps)


def test_node_get_info_should_return_appropriate_values(sc: TestContext) -> None:
    info = sc.node.NodeGetInfo(C.NodeGetInfoRequest())
    assert info.node_id and info.max_volumes_per_node >= 0
    plugin_caps = sc.identity.GetPluginCapabilities(C.GetPluginCapabilitiesRequest()).capabilities
    if any(cap.service.type == _Service.VOLUME_ACCESSIBILITY_CONSTRAINTS for cap in plugin_caps):
        assert info.HasField("accessible_topology") and info.accessible_topology.segments


# --- NodePublishVolume, NodeUnpublishVolume ---------------------------------------


def test_node_publish_volume_should_fail_when_no_volume_id_is_provided(sc: TestContext) -> None:
    assert (
        code_of(sc.node.NodePublishVolume, C.NodePublishVolumeRequest()) == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_node_publish_volume_should_fail_when_no_target_path_is_provided(sc: TestContext) -> None:
    request = C.NodePublishVolumeRequest(volume_id=valid_volume_id())
    assert code_of(sc.node.NodePublishVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_publish_volume_should_fail_when_no_volume_capability_is_provided(sc: TestContext) -> None:
    request = C.NodePublishVolumeRequest(volume_id=valid_volume_id(), target_path=sc.target_path + "/target")
    assert code_of(sc.node.NodePublishVolume, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert not os.path.exists(sc.target_path + "/target")


def test_node_publish_volume_should_fail_when_a_single_node_single_writer_volume_is_already_mounted_at_a_different_target_path(
    sc: TestContext,
) -> None:
    """ "with single node multi writer capability": the second target is outside kubelet's layout
    (``<mountdir>/other_target``), and must be FAILED_PRECONDITION with nothing left there."""
    caps = sc.node.NodeGetCapabilities(C.NodeGetCapabilitiesRequest()).capabilities
    assert _RPC.SINGLE_NODE_MULTI_WRITER in {cap.rpc.type for cap in caps}
    ssw = C.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER
    volume = create_for_node(sc, unique_string("sanity-node-publish-single-node-single-writer"), mode=ssw)
    node_stage(sc, volume, mode=ssw)
    node_publish(sc, volume, mode=ssw)
    with pytest.raises(grpc.RpcError) as info:
        node_publish(sc, volume, mode=ssw, target="other_target")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not os.path.lexists(sc.target_path + "/other_target")
    assert set(mount_rows(sc.driver)) == {sc.staging_path, sc.target_path + "/target"}


def test_node_unpublish_volume_should_fail_when_no_volume_id_is_provided(sc: TestContext) -> None:
    assert (
        code_of(sc.node.NodeUnpublishVolume, C.NodeUnpublishVolumeRequest())
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_node_unpublish_volume_should_fail_when_no_target_path_is_provided(sc: TestContext) -> None:
    request = C.NodeUnpublishVolumeRequest(volume_id=valid_volume_id())
    assert code_of(sc.node.NodeUnpublishVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_unpublish_volume_should_remove_target_path(sc: TestContext) -> None:
    volume = create_for_node(sc, unique_string("sanity-node-unpublish-volume"))
    target = sc.target_path + "/target"
    assert sc.node.NodeGetInfo(C.NodeGetInfoRequest()).node_id
    node_stage(sc, volume)
    node_publish(sc, volume)
    assert os.path.isdir(target)
    sc.node.NodeUnpublishVolume(C.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target))
    assert not os.path.lexists(target)  # the SP deletes what it created at the path
    assert set(mount_rows(sc.driver)) == {sc.staging_path}


# --- NodeStageVolume, NodeUnstageVolume -------------------------------------------


def test_node_stage_volume_should_fail_when_no_volume_id_is_provided(sc: TestContext) -> None:
    request = C.NodeStageVolumeRequest(
        staging_target_path=sc.staging_path,
        volume_capability=capability(),
        publish_context={"device": "/dev/mock"},
    )
    assert code_of(sc.node.NodeStageVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_stage_volume_should_fail_when_no_staging_target_path_is_provided(sc: TestContext) -> None:
    request = C.NodeStageVolumeRequest(
        volume_id=valid_volume_id(), volume_capability=capability(), publish_context={"device": "/dev/mock"}
    )
    assert code_of(sc.node.NodeStageVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_stage_volume_should_fail_when_no_volume_capability_is_provided(sc: TestContext) -> None:
    volume = sc.must_create_volume(
        C.CreateVolumeRequest(
            name=unique_string("sanity-node-stage-nocaps"), volume_capabilities=[capability()]
        )
    ).volume
    request = C.NodeStageVolumeRequest(
        volume_id=volume.volume_id,
        staging_target_path=sc.staging_path,
        publish_context={"device": "/dev/mock"},
    )
    assert code_of(sc.node.NodeStageVolume, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert mount_rows(sc.driver) == {}


def test_node_unstage_volume_should_fail_when_no_volume_id_is_provided(sc: TestContext) -> None:
    request = C.NodeUnstageVolumeRequest(staging_target_path=sc.staging_path)
    assert code_of(sc.node.NodeUnstageVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_unstage_volume_should_fail_when_no_staging_target_path_is_provided(sc: TestContext) -> None:
    request = C.NodeUnstageVolumeRequest(volume_id=valid_volume_id())
    assert code_of(sc.node.NodeUnstageVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


# --- NodeGetVolumeStats -----------------------------------------------------------


def test_node_get_volume_stats_should_fail_when_no_volume_id_is_provided(sc: TestContext) -> None:
    request = C.NodeGetVolumeStatsRequest(volume_path="some/path")
    assert code_of(sc.node.NodeGetVolumeStats, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_get_volume_stats_should_fail_when_no_volume_path_is_provided(sc: TestContext) -> None:
    request = C.NodeGetVolumeStatsRequest(volume_id=valid_volume_id())
    assert code_of(sc.node.NodeGetVolumeStats, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_node_get_volume_stats_should_fail_when_volume_is_not_found(sc: TestContext) -> None:
    request = C.NodeGetVolumeStatsRequest(volume_id=valid_volume_id(), volume_path="some/path")
    assert code_of(sc.node.NodeGetVolumeStats, request) == grpc.StatusCode.NOT_FOUND


def test_node_get_volume_stats_should_fail_when_volume_does_not_exist_on_the_specified_path(
    sc: TestContext,
) -> None:
    volume = create_for_node(sc, unique_string("sanity-node-get-volume-stats"))
    node_stage(sc, volume)
    node_publish(sc, volume)
    request = C.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path="some/path")
    assert code_of(sc.node.NodeGetVolumeStats, request) == grpc.StatusCode.NOT_FOUND


# --- the whole node path ----------------------------------------------------------


def test_node_service_should_work(sc: TestContext) -> None:
    run_controller_test(sc, 1)


def test_node_service_should_be_idempotent(sc: TestContext) -> None:
    run_controller_test(sc, IDEMPOTENT_COUNT)
