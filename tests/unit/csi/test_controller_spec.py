"""Rows of the CSI spec's Errors tables (and field rules) that csi-sanity does not exercise.

Each test names the RPC and the row; the csi-sanity cases themselves are in ``tests/sanity``, and what
tests/unit/csi/test_controller.py already checks is not repeated here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi.cloud import OperationPending
from csi.filestore import GIB
from csi.proto import csi_pb2 as C
from tests.support.controllerutil import BLOCK, TIB, ZONE, Driver, code_of, create, mount_cap, running_driver


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    with running_driver(tmp_path) as d:
        yield d


def _snapshot(d: Driver, name: str, volume: C.Volume) -> C.Snapshot:
    snapshot: C.Snapshot = d.ctl.CreateSnapshot(
        C.CreateSnapshotRequest(name=name, source_volume_id=volume.volume_id)
    ).snapshot
    return snapshot


def _from(snapshot: C.Snapshot) -> C.VolumeContentSource:
    return C.VolumeContentSource(
        snapshot=C.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)
    )


# --- CreateVolume: "Unsupported capacity_range" OUT_OF_RANGE -----------------------------


def test_create_volume_from_a_snapshot_no_larger_than_its_limit_is_out_of_range(driver: Driver) -> None:
    """ "The size of the volume MUST NOT be less than the size of the source snapshot"."""
    source = create(driver, "src", capacity_range=C.CapacityRange(required_bytes=TIB))
    snapshot = _snapshot(driver, "snap", source)
    assert snapshot.size_bytes == TIB
    small = C.CreateVolumeRequest(
        name="small",
        volume_capabilities=[mount_cap()],
        volume_content_source=_from(snapshot),
        capacity_range=C.CapacityRange(required_bytes=100 * GIB, limit_bytes=500 * GIB),
    )
    assert code_of(driver.ctl.CreateVolume, small) == grpc.StatusCode.OUT_OF_RANGE
    assert driver.ctl.ListVolumes(C.ListVolumesRequest()).entries[0].volume.volume_id == source.volume_id
    rounded = create(
        driver,
        "rounded",
        volume_content_source=_from(snapshot),
        capacity_range=C.CapacityRange(required_bytes=100 * GIB),
    )
    assert rounded.capacity_bytes == TIB  # a smaller request is rounded up to the snapshot's size


# --- DeleteVolume: a volume with snapshots --------------------------------------------


def test_delete_volume_with_snapshots_succeeds_and_its_snapshots_outlive_it(driver: Driver) -> None:
    """Filestore backups are independent of their instance (gcp-filestore-csi-driver deletes such a
    volume too): no "Volume has snapshots" FAILED_PRECONDITION; the snapshot stays listed and usable."""
    source = create(driver, "src")
    snapshot = _snapshot(driver, "snap", source)
    driver.ctl.DeleteVolume(C.DeleteVolumeRequest(volume_id=source.volume_id))
    listed = driver.ctl.ListSnapshots(C.ListSnapshotsRequest(source_volume_id=source.volume_id)).entries
    assert [e.snapshot.snapshot_id for e in listed] == [snapshot.snapshot_id]
    assert listed[0].snapshot.ready_to_use
    restored = create(driver, "restored", volume_content_source=_from(snapshot))
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id


# --- ValidateVolumeCapabilities: confirm only what was validated ----------------------


def test_validate_volume_capabilities_confirms_only_parameters_it_validated(driver: Driver) -> None:
    volume = create(driver, "val")
    validate = driver.ctl.ValidateVolumeCapabilities

    def request(**fields: object) -> C.ValidateVolumeCapabilitiesRequest:
        return C.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume_id,
            volume_capabilities=[mount_cap()],
            **fields,  # type: ignore[arg-type]
        )

    ok = validate(request(parameters={"tier": "standard", "network": "default"}))
    assert dict(ok.confirmed.parameters) == {"tier": "standard", "network": "default"}
    for fields, reason in (
        ({"parameters": {"bogus": "1"}}, "bogus"),
        ({"parameters": {"tier": "premium"}}, "tier"),
        ({"mutable_parameters": {"max-iops": "many"}}, "max-iops"),
        ({"mutable_parameters": {"max-iops": "3000"}}, "BASIC_HDD"),
    ):
        response = validate(request(**fields))
        assert not response.HasField("confirmed") and reason in response.message, (fields, response.message)


def test_validate_volume_capabilities_of_a_malformed_capability_is_invalid_argument(driver: Driver) -> None:
    volume = create(driver, "val")
    no_mode = C.VolumeCapability(mount=C.VolumeCapability.MountVolume())
    no_type = C.VolumeCapability(
        access_mode=C.VolumeCapability.AccessMode(mode=C.VolumeCapability.AccessMode.SINGLE_NODE_WRITER)
    )
    for capability in (no_mode, no_type):
        request = C.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume_id, volume_capabilities=[capability]
        )
        assert code_of(driver.ctl.ValidateVolumeCapabilities, request) == grpc.StatusCode.INVALID_ARGUMENT


# --- ControllerExpandVolume -------------------------------------------------------------


def test_expand_volume_errors_table(driver: Driver) -> None:
    volume = create(driver, "grow")
    expand = driver.ctl.ControllerExpandVolume
    size = C.CapacityRange(required_bytes=2 * TIB)
    # "Exceeds capabilities": INVALID_ARGUMENT
    block = C.ControllerExpandVolumeRequest(
        volume_id=volume.volume_id, capacity_range=size, volume_capability=BLOCK
    )
    assert code_of(expand, block) == grpc.StatusCode.INVALID_ARGUMENT
    # "Volume does not exist": NOT_FOUND, for an id not of this driver's form too
    for volume_id in ("garbage", f"modeInstance/{ZONE}/nope/vol1"):
        assert code_of(expand, C.ControllerExpandVolumeRequest(volume_id=volume_id, capacity_range=size)) == (
            grpc.StatusCode.NOT_FOUND
        )
    # "Unsupported capacity_range": OUT_OF_RANGE (limit below required, or below the new size)
    for capacity in (
        C.CapacityRange(required_bytes=2 * TIB, limit_bytes=TIB),
        C.CapacityRange(required_bytes=1500 * GIB, limit_bytes=1400 * GIB),
    ):
        request = C.ControllerExpandVolumeRequest(volume_id=volume.volume_id, capacity_range=capacity)
        assert code_of(expand, request) == grpc.StatusCode.OUT_OF_RANGE
    assert (
        driver.ctl.ListVolumes(C.ListVolumesRequest()).entries[0].volume.capacity_bytes
        == volume.capacity_bytes
    )


# --- ControllerModifyVolume: "Volume does not exist" NOT_FOUND --------------------------


def test_modify_volume_of_a_missing_volume_is_not_found_even_with_nothing_to_change(driver: Driver) -> None:
    modify = driver.ctl.ControllerModifyVolume
    for volume_id in (f"modeInstance/{ZONE}/nope/vol1", "garbage"):
        request = C.ControllerModifyVolumeRequest(volume_id=volume_id, mutable_parameters={"max-iops": ""})
        assert code_of(modify, request) == grpc.StatusCode.NOT_FOUND
    volume = create(driver, "here")
    modify(C.ControllerModifyVolumeRequest(volume_id=volume.volume_id, mutable_parameters={"max-iops": ""}))


def test_modify_volume_with_no_mutable_parameters_checks_the_volume_and_changes_nothing(
    driver: Driver,
) -> None:
    """csi-sanity's ModifyVolume specs without --csi.testvolumemutableparameters: an empty map is NOT_FOUND
    for a missing volume (not INVALID_ARGUMENT), and accepted, with nothing changed, for an existing one."""
    modify = driver.ctl.ControllerModifyVolume
    for volume_id in ("non-existing-volume-id", f"modeInstance/{ZONE}/nope/vol1"):
        assert (
            code_of(modify, C.ControllerModifyVolumeRequest(volume_id=volume_id)) == grpc.StatusCode.NOT_FOUND
        )
    volume = create(driver, "empty-modify")
    before = driver.cloud.get_instance(ZONE, "empty-modify")
    modify(C.ControllerModifyVolumeRequest(volume_id=volume.volume_id))
    after = driver.cloud.get_instance(ZONE, "empty-modify")
    assert (after.performance, after.capacity_gib, after.tier) == (
        before.performance,
        before.capacity_gib,
        before.tier,
    )
    # unknown keys are still refused, once the volume is found
    request = C.ControllerModifyVolumeRequest(
        volume_id=volume.volume_id, mutable_parameters={"XXX_FakeKey": "x"}
    )
    assert code_of(modify, request) == grpc.StatusCode.INVALID_ARGUMENT
    request = C.ControllerModifyVolumeRequest(
        volume_id="non-existing-volume-id", mutable_parameters={"XXX_FakeKey": "x"}
    )
    assert code_of(modify, request) == grpc.StatusCode.NOT_FOUND


# --- ListSnapshots / DeleteSnapshot while a snapshot is being cut -----------------------


def test_a_snapshot_being_cut_is_not_listed_and_its_delete_is_aborted(driver: Driver) -> None:
    """ListSnapshots "SHALL NOT list a snapshot that is being created but has not been cut"; DeleteSnapshot
    of it is "Operation pending for snapshot": ABORTED, and it is deleted once done."""
    volume = create(driver, "src")
    driver.state.hold()
    backup_name = f"projects/proj/locations/{ZONE.rsplit('-', 1)[0]}/backups/cutting"
    with pytest.raises(OperationPending):
        driver.cloud.create_backup(
            ZONE.rsplit("-", 1)[0], "cutting", f"projects/proj/locations/{ZONE}/instances/src", "vol1", wait=0
        )
    assert driver.ctl.ListSnapshots(C.ListSnapshotsRequest()).entries == []
    assert driver.ctl.ListSnapshots(C.ListSnapshotsRequest(snapshot_id=backup_name)).entries == []
    delete = C.DeleteSnapshotRequest(snapshot_id=backup_name)
    assert code_of(driver.ctl.DeleteSnapshot, delete) == grpc.StatusCode.ABORTED
    driver.state.release()
    listed = driver.ctl.ListSnapshots(C.ListSnapshotsRequest(source_volume_id=volume.volume_id)).entries
    assert [e.snapshot.snapshot_id for e in listed] == [backup_name] and listed[0].snapshot.ready_to_use
    driver.ctl.DeleteSnapshot(delete)
    assert driver.ctl.ListSnapshots(C.ListSnapshotsRequest()).entries == []


def test_create_snapshot_blocks_until_the_snapshot_is_cut(driver: Driver) -> None:
    """CreateSnapshot "MUST block until the snapshot is cut": past the operation timeout a retryable
    DEADLINE_EXCEEDED, a repeat while it is still not cut "Operation pending for snapshot" ABORTED, then
    the snapshot, ready."""
    volume, other = create(driver, "src"), create(driver, "other")
    request = C.CreateSnapshotRequest(name="slow", source_volume_id=volume.volume_id)
    driver.state.hold()
    assert code_of(driver.ctl.CreateSnapshot, request) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert code_of(driver.ctl.CreateSnapshot, request) == grpc.StatusCode.ABORTED
    clash = C.CreateSnapshotRequest(name="slow", source_volume_id=other.volume_id)
    assert code_of(driver.ctl.CreateSnapshot, clash) == grpc.StatusCode.ALREADY_EXISTS
    driver.state.release()
    snapshot = driver.ctl.CreateSnapshot(request).snapshot
    assert snapshot.ready_to_use and snapshot.source_volume_id == volume.volume_id


def test_create_volume_same_name_with_another_content_source_is_already_exists(driver: Driver) -> None:
    """ "Volume already exists but is incompatible" with the request's ``volume_content_source``: a volume
    made empty is not the one asked for from a snapshot, nor the reverse."""
    source = create(driver, "src")
    snapshot = _snapshot(driver, "snap", source)
    plain = C.CreateVolumeRequest(
        name="src", volume_capabilities=[mount_cap()], volume_content_source=_from(snapshot)
    )
    assert code_of(driver.ctl.CreateVolume, plain) == grpc.StatusCode.ALREADY_EXISTS
    restored = create(driver, "restored", volume_content_source=_from(snapshot))
    again = create(driver, "restored", volume_content_source=_from(snapshot))
    assert again.volume_id == restored.volume_id
    empty = C.CreateVolumeRequest(name="restored", volume_capabilities=[mount_cap()])
    assert code_of(driver.ctl.CreateVolume, empty) == grpc.StatusCode.ALREADY_EXISTS


def test_calls_on_a_volume_still_being_created_are_aborted(driver: Driver) -> None:
    """The spec's general row "Operation pending for volume": ABORTED for DeleteVolume,
    ControllerExpandVolume, ControllerModifyVolume and CreateSnapshot while the volume's creation runs;
    each works once it is done."""
    zonal = {"tier": "zonal"}
    driver.state.hold()
    request = C.CreateVolumeRequest(name="v", volume_capabilities=[mount_cap()], parameters=zonal)
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.DEADLINE_EXCEEDED
    volume_id = f"modeInstance/{ZONE}/v/vol1"
    calls = (
        (
            driver.ctl.ControllerExpandVolume,
            C.ControllerExpandVolumeRequest(
                volume_id=volume_id, capacity_range=C.CapacityRange(required_bytes=2 * TIB)
            ),
        ),
        (
            driver.ctl.ControllerModifyVolume,
            C.ControllerModifyVolumeRequest(volume_id=volume_id, mutable_parameters={"max-iops": "4000"}),
        ),
        (driver.ctl.CreateSnapshot, C.CreateSnapshotRequest(name="s", source_volume_id=volume_id)),
        (driver.ctl.DeleteVolume, C.DeleteVolumeRequest(volume_id=volume_id)),
    )
    for call, call_request in calls:
        assert code_of(call, call_request) == grpc.StatusCode.ABORTED, call
    driver.state.release()
    assert driver.ctl.CreateVolume(request).volume.volume_id == volume_id
    for call, call_request in calls:
        call(call_request)
    assert driver.ctl.ListVolumes(C.ListVolumesRequest()).entries == []
