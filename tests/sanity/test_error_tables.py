"""The CSI spec's Errors tables, row by row, against the whole driver over gRPC (docs/conformance.md).

csi-sanity's own cases are in the other modules here; these are the rows (and general rules) it does
not exercise, asked of ``csi.main --mode all --cloud emulator`` over its unix socket.  Each test names
its RPC and row; every failure is checked for the code, an empty ``details`` (the spec's Error
Scheme) and, at the node, for nothing left mounted or made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from csi.proto import csi_pb2
from tests.support.csiutil import mount_rows
from tests.support.sanityutil import (
    TEST_VOLUME_SIZE,
    TestContext,
    capability,
    create_for_node,
    make_create_volume_req,
    node_stage,
    unique_string,
)

_Mode = csi_pb2.VolumeCapability.AccessMode
TIB = 1 << 40
BLOCK = csi_pb2.VolumeCapability(
    block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=_Mode(mode=_Mode.SINGLE_NODE_WRITER)
)
#: the trailing metadata key that would carry google.rpc.Status details
_DETAILS_KEY = "grpc-status-details-bin"


def refused(call: Callable[..., Any], request: Any) -> tuple[grpc.StatusCode, str]:
    """(code, message) of a call that must fail; the spec's Error Scheme: a message, no details."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=120)
    error: Any = info.value
    assert error.details(), "the status message must describe the error"
    assert _DETAILS_KEY not in dict(error.trailing_metadata() or ()), "the status details must be empty"
    return error.code(), error.details()


# --- the general rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rpc, request_type",
    [
        ("ControllerPublishVolume", csi_pb2.ControllerPublishVolumeRequest),
        ("ControllerUnpublishVolume", csi_pb2.ControllerUnpublishVolumeRequest),
        ("GetCapacity", csi_pb2.GetCapacityRequest),
        ("ControllerGetVolume", csi_pb2.ControllerGetVolumeRequest),
    ],
)
def test_unadvertised_controller_rpcs_are_unimplemented(sc: TestContext, rpc: str, request_type: Any) -> None:
    """ "Call not implemented": UNIMPLEMENTED, and the capability is not advertised."""
    code, _ = refused(
        getattr(sc.controller, rpc),
        request_type(volume_id="v", node_id="n") if "Publish" in rpc else request_type(),
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED
    advertised = {
        c.rpc.type
        for c in sc.controller.ControllerGetCapabilities(
            csi_pb2.ControllerGetCapabilitiesRequest()
        ).capabilities
    }
    _RPC = csi_pb2.ControllerServiceCapability.RPC
    assert not advertised & {_RPC.PUBLISH_UNPUBLISH_VOLUME, _RPC.GET_CAPACITY, _RPC.GET_VOLUME}


def test_node_expand_volume_is_unimplemented(sc: TestContext) -> None:
    code, _ = refused(
        sc.node.NodeExpandVolume, csi_pb2.NodeExpandVolumeRequest(volume_id="v", volume_path=sc.target_path)
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED
    advertised = {
        c.rpc.type for c in sc.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest()).capabilities
    }
    assert csi_pb2.NodeServiceCapability.RPC.EXPAND_VOLUME not in advertised


# --- CreateVolume ------------------------------------------------------------------------------


def test_create_volume_cloning_a_volume_is_invalid_argument(sc: TestContext) -> None:
    """ "Source incompatible or not supported": INVALID_ARGUMENT (CLONE_VOLUME is not advertised)."""
    request = make_create_volume_req(unique_string("errtable-clone"))
    request.volume_content_source.volume.volume_id = "modeInstance/us-central1-a/some/vol1"
    code, message = refused(sc.controller.CreateVolume, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "volume_content_source" in message


def test_create_volume_existing_name_with_other_parameters_is_already_exists(sc: TestContext) -> None:
    """ "Volume already exists but is incompatible" with the parameters (another tier) or the
    accessibility requirements (another zone): ALREADY_EXISTS, and no second volume of the name."""
    name = unique_string("errtable-params")
    sc.must_create_volume(make_create_volume_req(name))
    other = csi_pb2.CreateVolumeRequest(
        name=name,
        volume_capabilities=[capability()],
        parameters={"tier": "enterprise"},
        capacity_range=csi_pb2.CapacityRange(required_bytes=TIB),
    )
    elsewhere = make_create_volume_req(name)
    elsewhere.accessibility_requirements.preferred.add().segments["topology.gke.io/zone"] = "us-east1-b"
    before = _volume_count(sc)
    for request in (other, elsewhere):  # a regional tier, another zone: another location, one name
        code, message = refused(sc.controller.CreateVolume, request)
        assert code == grpc.StatusCode.ALREADY_EXISTS and "exists" in message
    assert _volume_count(sc) == before, "a second volume of one name was made"


@pytest.mark.parametrize(
    "required, limit",
    [
        (1 << 50, 0),  # above the tier's largest size
        (TEST_VOLUME_SIZE, TEST_VOLUME_SIZE // 2),  # limit below required
        (TEST_VOLUME_SIZE // 2, TEST_VOLUME_SIZE // 2),  # the tier's band starts above the limit
    ],
)
def test_create_volume_unsupported_capacity_range_is_out_of_range(
    sc: TestContext, required: int, limit: int
) -> None:
    """ "Unsupported capacity_range": OUT_OF_RANGE, before any instance is made."""
    request = make_create_volume_req(unique_string("errtable-range"))
    request.capacity_range.CopyFrom(csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit))
    before = _volume_count(sc)
    code, _ = refused(sc.controller.CreateVolume, request)
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert _volume_count(sc) == before, "a refused CreateVolume made a volume"


def _volume_count(sc: TestContext) -> int:
    return len(sc.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=120).entries)


def _block(request: csi_pb2.CreateVolumeRequest) -> None:
    del request.volume_capabilities[:]
    request.volume_capabilities.append(BLOCK)


def _unknown_parameter(request: csi_pb2.CreateVolumeRequest) -> None:
    request.parameters["no-such-parameter"] = "x"


def _unknown_topology_key(request: csi_pb2.CreateVolumeRequest) -> None:
    request.accessibility_requirements.requisite.add().segments["no/such-key"] = "x"


@pytest.mark.parametrize("change", [_block, _unknown_parameter, _unknown_topology_key])
def test_create_volume_invalid_or_unsupported_field_is_invalid_argument(
    sc: TestContext, change: Callable[[csi_pb2.CreateVolumeRequest], None]
) -> None:
    """The general "Invalid or unsupported field in the request" row: INVALID_ARGUMENT."""
    request = make_create_volume_req(unique_string("errtable-field"))
    change(request)
    code, _ = refused(sc.controller.CreateVolume, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# --- ListVolumes, ListSnapshots, CreateSnapshot -------------------------------------------------


@pytest.mark.parametrize(
    "rpc, request_type",
    [
        ("ListVolumes", csi_pb2.ListVolumesRequest),
        ("ListSnapshots", csi_pb2.ListSnapshotsRequest),
    ],
)
def test_list_invalid_starting_token_is_aborted_and_negative_max_entries_invalid(
    sc: TestContext, rpc: str, request_type: Any
) -> None:
    call = getattr(sc.controller, rpc)
    assert refused(call, request_type(starting_token="not-a-token"))[0] == grpc.StatusCode.ABORTED
    assert refused(call, request_type(max_entries=-1))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_create_snapshot_of_a_missing_volume_is_not_found(sc: TestContext) -> None:
    for source in ("modeInstance/us-central1-a/errtable-gone/vol1", "not-our-id"):
        code, _ = refused(
            sc.controller.CreateSnapshot,
            csi_pb2.CreateSnapshotRequest(name=unique_string("errtable-snap"), source_volume_id=source),
        )
        assert code == grpc.StatusCode.NOT_FOUND


# --- ControllerExpandVolume ---------------------------------------------------------------------


def test_expand_volume_errors_table(sc: TestContext) -> None:
    """Exceeds capabilities INVALID_ARGUMENT; does not exist NOT_FOUND; unsupported range OUT_OF_RANGE.
    (Volume in use, FAILED_PRECONDITION, cannot happen: expansion is ONLINE.)"""
    volume = sc.must_create_volume(make_create_volume_req(unique_string("errtable-expand"))).volume
    grow = csi_pb2.CapacityRange(required_bytes=TEST_VOLUME_SIZE * 2)
    expand = sc.controller.ControllerExpandVolume
    code, _ = refused(
        expand,
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=grow, volume_capability=BLOCK
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    for missing in ("modeInstance/us-central1-a/errtable-gone/vol1", "not-our-id"):
        code, _ = refused(
            expand, csi_pb2.ControllerExpandVolumeRequest(volume_id=missing, capacity_range=grow)
        )
        assert code == grpc.StatusCode.NOT_FOUND
    for bad in (
        csi_pb2.CapacityRange(required_bytes=1 << 50),
        csi_pb2.CapacityRange(required_bytes=TEST_VOLUME_SIZE * 2, limit_bytes=TEST_VOLUME_SIZE),
    ):
        code, _ = refused(
            expand, csi_pb2.ControllerExpandVolumeRequest(volume_id=volume.volume_id, capacity_range=bad)
        )
        assert code == grpc.StatusCode.OUT_OF_RANGE
    listed = sc.controller.ListVolumes(csi_pb2.ListVolumesRequest()).entries
    assert [e.volume.capacity_bytes for e in listed if e.volume.volume_id == volume.volume_id] == [
        volume.capacity_bytes
    ], "a refused expansion changed the volume"


# --- the node ----------------------------------------------------------------------------------


def _nothing_left(sc: TestContext, *made: str) -> None:
    assert mount_rows(sc.driver) == {}
    for path in made:
        assert not os.path.lexists(path), f"{path} was left behind"


def test_node_stage_exceeding_capabilities_is_failed_precondition(sc: TestContext) -> None:
    """NodeStageVolume "Exceeds capabilities" (block access on a file volume): FAILED_PRECONDITION."""
    volume = create_for_node(sc, unique_string("errtable-stage-block"))
    staging = os.path.join(sc.staging_path, "block")
    code, message = refused(
        sc.node.NodeStageVolume,
        csi_pb2.NodeStageVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=staging,
            volume_capability=BLOCK,
            volume_context=volume.volume_context,
        ),
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "block" in message
    _nothing_left(sc, staging)


@pytest.mark.parametrize(
    "context, field",
    [
        ({"volume": "vol1"}, "volume_context.ip"),
        ({"ip": "192.0.2.1"}, "volume_context.volume"),
        ({"ip": "192.0.2.1", "volume": "vol1", "fileProtocol": "SMB"}, "fileProtocol"),
    ],
)
def test_node_stage_invalid_volume_context_is_invalid_argument(
    sc: TestContext, context: dict[str, str], field: str
) -> None:
    staging = os.path.join(sc.staging_path, "bad-context")
    code, message = refused(
        sc.node.NodeStageVolume,
        csi_pb2.NodeStageVolumeRequest(
            volume_id="errtable-vol",
            staging_target_path=staging,
            volume_capability=capability(),
            volume_context=context,
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in message
    _nothing_left(sc, staging)


def test_node_publish_errors_table(sc: TestContext) -> None:
    """Exceeds capabilities and staging target path not set: FAILED_PRECONDITION; published but
    incompatible (the other read-only state): ALREADY_EXISTS.  No refusal mounts or makes anything."""
    volume = create_for_node(sc, unique_string("errtable-publish"))
    target = sc.target_path + "/target"

    def publish(**fields: Any) -> csi_pb2.NodePublishVolumeRequest:
        args: dict[str, Any] = {
            "volume_id": volume.volume_id,
            "target_path": target,
            "staging_target_path": sc.staging_path,
            "volume_capability": capability(),
            "volume_context": volume.volume_context,
        }
        args.update(fields)
        return csi_pb2.NodePublishVolumeRequest(**args)

    # Not staged yet: FAILED_PRECONDITION, the target not made.
    assert refused(sc.node.NodePublishVolume, publish())[0] == grpc.StatusCode.FAILED_PRECONDITION
    _nothing_left(sc, target)
    assert (
        refused(sc.node.NodePublishVolume, publish(staging_target_path=""))[0]
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    _nothing_left(sc, target)

    node_stage(sc, volume)
    staged = mount_rows(sc.driver)
    assert (
        refused(sc.node.NodePublishVolume, publish(volume_capability=BLOCK))[0]
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert mount_rows(sc.driver) == staged and not os.path.lexists(target)

    sc.node.NodePublishVolume(publish(), timeout=120)
    sc.node.NodePublishVolume(publish(), timeout=120)  # idempotent
    published = mount_rows(sc.driver, "OPTIONS")
    assert refused(sc.node.NodePublishVolume, publish(readonly=True))[0] == grpc.StatusCode.ALREADY_EXISTS
    assert mount_rows(sc.driver, "OPTIONS") == published, "a refused publish changed the mounts"


def test_node_unpublish_and_unstage_of_what_is_not_there_are_ok(sc: TestContext) -> None:
    """ "Volume does not exist" there: the spec's idempotency rule answers OK, and nothing is made."""
    target = sc.target_path + "/never"
    sc.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="errtable-vol", target_path=target), timeout=120
    )
    sc.node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(
            volume_id="errtable-vol", staging_target_path=sc.staging_path + "/never"
        ),
        timeout=120,
    )
    _nothing_left(sc, target, sc.staging_path + "/never")
