"""csi-sanity's "ListSnapshots", "DeleteSnapshot", "CreateSnapshot" and "ExpandVolume" [Controller Server]
cases (pkg/sanity/controller.go), one test each."""

from __future__ import annotations

import grpc
import pytest

from csi.proto import csi_pb2 as C
from tests.support.sanityutil import (
    MAX_NAME_LENGTH,
    TEST_VOLUME_EXPAND_SIZE,
    TEST_VOLUME_SIZE,
    TestContext,
    capability,
    code_of,
    make_create_snapshot_req,
    make_create_volume_req,
    unique_string,
    unique_string_with_length,
    valid_volume_id,
    verify_snapshot_info,
)

pytestmark = pytest.mark.privileged


def _list(sc: TestContext, **fields: object) -> list[C.Snapshot]:
    response = sc.controller.ListSnapshots(C.ListSnapshotsRequest(**fields))  # type: ignore[arg-type]
    return [entry.snapshot for entry in response.entries]


def _three_snapshots(sc: TestContext, tag: str) -> C.CreateSnapshotResponse:
    """An unrelated snapshot, the target one, another unrelated one (each of its own volume)."""
    sc.must_create_snapshot_from_volume_request(
        make_create_volume_req(unique_string(f"listSnapshots-volume-unrelated-{tag}-1")),
        unique_string(f"listSnapshots-snapshot-unrelated-{tag}-1"),
    )
    target, _ = sc.must_create_snapshot_from_volume_request(
        make_create_volume_req(unique_string(f"listSnapshots-volume-target-{tag}")),
        unique_string(f"listSnapshots-snapshot-target-{tag}"),
    )
    sc.must_create_snapshot_from_volume_request(
        make_create_volume_req(unique_string(f"listSnapshots-volume-unrelated-{tag}-2")),
        unique_string(f"listSnapshots-snapshot-unrelated-{tag}-2"),
    )
    return target


# --- ListSnapshots ----------------------------------------------------------------


def test_list_snapshots_should_return_appropriate_values_no_optional_values_added(sc: TestContext) -> None:
    sc.must_create_snapshot_from_volume_request(
        make_create_volume_req(unique_string("listSnapshots-volume-0")),
        unique_string("listSnapshots-snapshot-0"),
    )
    snapshots = _list(sc)
    assert snapshots
    for snapshot in snapshots:
        verify_snapshot_info(snapshot)


def test_list_snapshots_should_return_snapshots_that_match_the_specified_snapshot_id(sc: TestContext) -> None:
    target = _three_snapshots(sc, "s")
    snapshots = _list(sc, snapshot_id=target.snapshot.snapshot_id)
    assert len(snapshots) == 1
    verify_snapshot_info(snapshots[0])
    assert snapshots[0].snapshot_id == target.snapshot.snapshot_id


def test_list_snapshots_should_return_empty_when_the_specified_snapshot_id_does_not_exist(
    sc: TestContext,
) -> None:
    assert _list(sc, snapshot_id="none-exist-id") == []


def test_list_snapshots_should_return_snapshots_that_match_the_specified_source_volume_id(
    sc: TestContext,
) -> None:
    target = _three_snapshots(sc, "v")
    snapshots = _list(sc, source_volume_id=target.snapshot.source_volume_id)
    assert len(snapshots) == 1
    verify_snapshot_info(snapshots[0])
    assert snapshots[0].source_volume_id == target.snapshot.source_volume_id


def test_list_snapshots_should_return_empty_when_the_specified_source_volume_id_does_not_exist(
    sc: TestContext,
) -> None:
    assert _list(sc, source_volume_id=valid_volume_id()) == []


def test_list_snapshots_check_the_presence_of_new_snapshots_in_the_snapshot_list(sc: TestContext) -> None:
    total = len(_list(sc))
    snapshot, _ = sc.must_create_snapshot_from_volume_request(
        make_create_volume_req(unique_string("listSnapshots-volume-3")),
        unique_string("listSnapshots-snapshot-3"),
    )
    verify_snapshot_info(snapshot.snapshot)
    assert len(_list(sc)) == total + 1
    sc.delete_snapshot(C.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot.snapshot_id))
    assert len(_list(sc)) == total


def test_list_snapshots_should_return_next_token_when_a_limited_number_of_entries_are_requested(
    sc: TestContext,
) -> None:
    total = len(_list(sc))
    for i in range(total + 1, 6):
        snapshot, _ = sc.must_create_snapshot_from_volume_request(
            make_create_volume_req(unique_string(f"volume{i}")), unique_string(f"snapshot{i}")
        )
        verify_snapshot_info(snapshot.snapshot)
    total = max(total, 5)
    first = sc.controller.ListSnapshots(C.ListSnapshotsRequest(max_entries=2))
    assert len(first.entries) == 2 and first.next_token
    rest = sc.controller.ListSnapshots(C.ListSnapshotsRequest(starting_token=first.next_token))
    assert len(rest.entries) == total - 2  # all the remaining entries at once
    assert not rest.next_token


# --- DeleteSnapshot ---------------------------------------------------------------


def test_delete_snapshot_should_fail_when_no_snapshot_id_is_provided(sc: TestContext) -> None:
    assert (
        code_of(sc.controller.DeleteSnapshot, C.DeleteSnapshotRequest()) == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_delete_snapshot_should_succeed_when_an_invalid_snapshot_id_is_used(sc: TestContext) -> None:
    sc.delete_snapshot(C.DeleteSnapshotRequest(snapshot_id="reallyfakesnapshotid"))


def test_delete_snapshot_should_return_appropriate_values_no_optional_values_added(sc: TestContext) -> None:
    volume = sc.create_volume(make_create_volume_req(unique_string("DeleteSnapshot-volume-1")))
    snapshot = sc.must_create_snapshot(
        make_create_snapshot_req(unique_string("DeleteSnapshot-snapshot-1"), volume.volume.volume_id)
    )
    # Resources.Cleanup deletes it (OK); we also check it is gone afterwards, and that a repeat is OK.
    sc.delete_snapshot(C.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot.snapshot_id))
    assert _list(sc, snapshot_id=snapshot.snapshot.snapshot_id) == []
    sc.delete_snapshot(C.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot.snapshot_id))


# --- CreateSnapshot ---------------------------------------------------------------


def test_create_snapshot_should_fail_when_no_name_is_provided(sc: TestContext) -> None:
    request = C.CreateSnapshotRequest(source_volume_id="testId")
    assert code_of(sc.create_snapshot, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_create_snapshot_should_fail_when_no_source_volume_id_is_provided(sc: TestContext) -> None:
    request = C.CreateSnapshotRequest(name="name")
    assert code_of(sc.create_snapshot, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_create_snapshot_should_succeed_when_requesting_to_create_a_snapshot_with_already_existing_name_and_same_source_volume_id(
    sc: TestContext,
) -> None:
    volume = sc.must_create_volume(make_create_volume_req(unique_string("CreateSnapshot-volume-1")))
    request = make_create_snapshot_req(unique_string("CreateSnapshot-snapshot-1"), volume.volume.volume_id)
    first = sc.must_create_snapshot(request)
    second = sc.must_create_snapshot(request)
    assert second.snapshot.snapshot_id == first.snapshot.snapshot_id


def test_create_snapshot_should_fail_when_requesting_to_create_a_snapshot_with_already_existing_name_and_different_source_volume_id(
    sc: TestContext,
) -> None:
    name = unique_string("CreateSnapshot-snapshot-2")
    sc.must_create_snapshot_from_volume_request(
        make_create_volume_req(unique_string("CreateSnapshot-volume-2")), name
    )
    volume2 = sc.must_create_volume(make_create_volume_req(unique_string("CreateSnapshot-volume-3")))
    request = make_create_snapshot_req(name, volume2.volume.volume_id)
    assert code_of(sc.create_snapshot, request) == grpc.StatusCode.ALREADY_EXISTS


def test_create_snapshot_should_succeed_when_creating_snapshot_with_maximum_length_name(
    sc: TestContext,
) -> None:
    volume = sc.must_create_volume(make_create_volume_req(unique_string("CreateSnapshot-volume-maxlen-name")))
    name = unique_string_with_length("CreateSnapshot-snapshot-maxlen", MAX_NAME_LENGTH)
    request = make_create_snapshot_req(name, volume.volume.volume_id)
    first = sc.must_create_snapshot(request)
    assert sc.must_create_snapshot(request).snapshot.snapshot_id == first.snapshot.snapshot_id


# --- ExpandVolume -----------------------------------------------------------------


def test_expand_volume_should_fail_if_no_volume_id_is_given(sc: TestContext) -> None:
    request = C.ControllerExpandVolumeRequest(
        capacity_range=C.CapacityRange(required_bytes=TEST_VOLUME_EXPAND_SIZE)
    )
    assert code_of(sc.controller.ControllerExpandVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_expand_volume_should_fail_if_no_capacity_range_is_given(sc: TestContext) -> None:
    request = C.ControllerExpandVolumeRequest()
    assert code_of(sc.controller.ControllerExpandVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_expand_volume_should_work(sc: TestContext) -> None:
    request = C.CreateVolumeRequest(
        name=unique_string("sanity-expand-volume"),
        volume_capabilities=[capability()],
        capacity_range=C.CapacityRange(required_bytes=TEST_VOLUME_SIZE),
    )
    volume = sc.must_create_volume(request).volume
    response = sc.controller.ControllerExpandVolume(
        C.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id,
            capacity_range=C.CapacityRange(required_bytes=TEST_VOLUME_EXPAND_SIZE),
            volume_capability=capability(),
        ),
        timeout=120,
    )
    assert response.capacity_bytes == TEST_VOLUME_EXPAND_SIZE
