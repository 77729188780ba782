"""Controller + Identity over a real gRPC unix socket, against the Filestore emulator via the gcp client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi.controller.capacity import pick_capacity_gib
from csi.filestore import GIB
from csi.identity import IdentityServicer
from csi.proto import csi_pb2
from csi.volume_id import VolumeRef, cloud_name
from tests.support.controllerutil import (
    BLOCK,
    DRIVER,
    TIB,
    ZONE,
    Driver,
    code_of,
    create,
    mount_cap,
    running_driver,
)

Mode = csi_pb2.VolumeCapability.AccessMode


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    with running_driver(tmp_path) as d:
        yield d


# --- identity ----------------------------------------------------------------


def test_identity(driver: Driver) -> None:
    info = driver.ident.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
    assert (info.name, info.vendor_version) == (DRIVER, "1.0")
    caps = driver.ident.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest()).capabilities
    services = {c.service.type for c in caps if c.HasField("service")}
    Service = csi_pb2.PluginCapability.Service
    assert services == {Service.CONTROLLER_SERVICE, Service.VOLUME_ACCESSIBILITY_CONSTRAINTS}
    assert any(c.volume_expansion.type == csi_pb2.PluginCapability.VolumeExpansion.ONLINE for c in caps)
    probe = driver.ident.Probe(csi_pb2.ProbeRequest())
    assert probe.HasField("ready") and probe.ready.value is True


def test_probe_not_ready_until_checks_pass() -> None:
    answers = iter(["cloud unreachable", None])
    identity = IdentityServicer(DRIVER, "1.0", controller=True, checks=[lambda: next(answers)])
    assert identity.ready() is False
    assert identity.ready() is True
    assert identity.ready() is True  # not re-checked once ready


# --- CreateVolume ------------------------------------------------------------


def test_create_defaults_and_idempotency(driver: Driver) -> None:
    vol = create(driver, "pvc-1")
    assert vol.volume_id == f"modeInstance/{ZONE}/pvc-1/vol1"
    assert vol.capacity_bytes == 100 * GIB
    assert vol.volume_context["volume"] == "vol1"
    assert vol.volume_context["fileProtocol"] == "NFS_V3"
    assert vol.volume_context["ip"].startswith("127.")
    assert list(vol.accessible_topology) == []  # reachable from every zone of its network
    again = create(driver, "pvc-1")
    assert again == vol
    assert len(driver.ctl.ListVolumes(csi_pb2.ListVolumesRequest()).entries) == 1


def test_create_labels_from_metadata(driver: Driver) -> None:
    create(
        driver,
        "pvc-2",
        parameters={
            "csi.storage.k8s.io/pvc/name": "data",
            "csi.storage.k8s.io/pvc/namespace": "ns1",
            "csi.storage.k8s.io/pv/name": "pvc-2",
            "Labels": "team=storage,env=test",
        },
    )
    instance = driver.servicer._cloud.get_instance(ZONE, "pvc-2")
    assert instance.labels["kubernetes_io_created-for_pvc_name"] == "data"
    assert instance.labels["kubernetes_io_created-for_pvc_namespace"] == "ns1"
    assert instance.labels["storage_gke_io_created-by"] == "filestore_csi_storage_gke_io"
    assert instance.labels["team"] == "storage"


def test_create_incompatible_existing_is_already_exists(driver: Driver) -> None:
    create(driver, "pvc-3", capacity_range=csi_pb2.CapacityRange(required_bytes=TIB, limit_bytes=TIB))
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-3",
        volume_capabilities=[mount_cap()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=2 * TIB, limit_bytes=2 * TIB),
    )
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.ALREADY_EXISTS
    other_tier = csi_pb2.CreateVolumeRequest(
        name="pvc-3", volume_capabilities=[mount_cap()], parameters={"tier": "enterprise"}
    )
    # enterprise lives in the region, another location than the zonal instance of the same name: not a
    # second volume of one name, but the spec's "Volume already exists but is incompatible".
    assert code_of(driver.ctl.CreateVolume, other_tier) == grpc.StatusCode.ALREADY_EXISTS
    assert [i.location for i in driver.cloud.list_instances("-") if i.name == "pvc-3"] == [ZONE]


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"volume_capabilities": [mount_cap()]}, grpc.StatusCode.INVALID_ARGUMENT),  # no name
        ({"name": "x"}, grpc.StatusCode.INVALID_ARGUMENT),  # no capabilities
        ({"name": "x", "volume_capabilities": [BLOCK]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"name": "x", "volume_capabilities": [mount_cap(Mode.UNKNOWN)]}, grpc.StatusCode.INVALID_ARGUMENT),
        (
            {"name": "x", "volume_capabilities": [mount_cap(flags=("rbind",))]},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ({"name": "x\x00y", "volume_capabilities": [mount_cap()]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"name": "x" * 129, "volume_capabilities": [mount_cap()]}, grpc.StatusCode.INVALID_ARGUMENT),
        (
            {"name": "x", "volume_capabilities": [mount_cap()], "parameters": {"bogus": "1"}},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"name": "x", "volume_capabilities": [mount_cap()], "parameters": {"tier": "gold"}},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"name": "x", "volume_capabilities": [mount_cap()], "parameters": {"protocol": "NFS_V4_1"}},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"name": "x", "volume_capabilities": [mount_cap()], "parameters": {"labels": "Bad Key=v"}},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "capacity_range": csi_pb2.CapacityRange(required_bytes=70 * TIB),
            },
            grpc.StatusCode.OUT_OF_RANGE,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "capacity_range": csi_pb2.CapacityRange(limit_bytes=10 * GIB),
            },
            grpc.StatusCode.OUT_OF_RANGE,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "capacity_range": csi_pb2.CapacityRange(required_bytes=200 * GIB, limit_bytes=150 * GIB),
            },
            grpc.StatusCode.OUT_OF_RANGE,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "volume_content_source": csi_pb2.VolumeContentSource(
                    volume=csi_pb2.VolumeContentSource.VolumeSource(
                        volume_id="modeInstance/us-central1-a/a/vol1"
                    )
                ),
            },
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "volume_content_source": csi_pb2.VolumeContentSource(
                    snapshot=csi_pb2.VolumeContentSource.SnapshotSource(
                        snapshot_id="projects/proj/locations/us-central1/backups/nope"
                    )
                ),
            },
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "volume_content_source": csi_pb2.VolumeContentSource(
                    snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id="garbage")
                ),
            },
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            {
                "name": "x",
                "volume_capabilities": [mount_cap()],
                "accessibility_requirements": csi_pb2.TopologyRequirement(
                    requisite=[csi_pb2.Topology(segments={"other": "a"})]
                ),
            },
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
def test_create_errors(driver: Driver, request_kwargs: dict[str, object], code: grpc.StatusCode) -> None:
    request = csi_pb2.CreateVolumeRequest(**request_kwargs)  # type: ignore[arg-type]
    assert code_of(driver.ctl.CreateVolume, request) == code
    assert driver.ctl.ListVolumes(csi_pb2.ListVolumesRequest()).entries == []


def test_create_max_length_name_and_odd_names(driver: Driver) -> None:
    long_name = "N" * 128
    vol = create(driver, long_name)
    instance = VolumeRef.parse(vol.volume_id)
    assert instance is not None and len(instance.instance) <= 63
    assert create(driver, long_name).volume_id == vol.volume_id
    assert cloud_name("Sanity_Vol") != cloud_name("sanity-vol")
    assert cloud_name("9lives").startswith("v-")


def test_create_topology_and_regional(driver: Driver) -> None:
    req = csi_pb2.TopologyRequirement(
        requisite=[
            csi_pb2.Topology(segments={"topology.gke.io/zone": z}) for z in ("us-central1-b", "us-central1-c")
        ],
        preferred=[csi_pb2.Topology(segments={"topology.gke.io/zone": "us-central1-c"})],
    )
    vol = create(driver, "zonal-one", accessibility_requirements=req)
    assert vol.volume_id.startswith("modeInstance/us-central1-c/")
    assert list(vol.accessible_topology) == []  # a pod in us-central1-b may mount it too
    regional = create(
        driver,
        "reg-one",
        accessibility_requirements=req,
        parameters={"tier": "regional", "protocol": "nfs_v4_1"},
    )
    assert regional.volume_id == "modeInstance/us-central1/reg-one/vol1"
    assert list(regional.accessible_topology) == []
    requisite_only = csi_pb2.TopologyRequirement(requisite=req.requisite)
    vol = create(driver, "zonal-two", accessibility_requirements=requisite_only)
    assert vol.volume_id.startswith("modeInstance/us-central1-b/")
    assert regional.volume_context["fileProtocol"] == "NFS_V4_1"
    assert regional.capacity_bytes == 100 * GIB


def test_capacity_bands() -> None:
    assert pick_capacity_gib("BASIC_HDD", None) == 100
    assert pick_capacity_gib("BASIC_SSD", csi_pb2.CapacityRange(required_bytes=GIB)) == 2560
    assert pick_capacity_gib("ZONAL", csi_pb2.CapacityRange(required_bytes=9990 * GIB)) == 10240
    assert pick_capacity_gib("BASIC_HDD", csi_pb2.CapacityRange(required_bytes=GIB + 1)) == 100
    assert pick_capacity_gib("BASIC_HDD", csi_pb2.CapacityRange(required_bytes=150 * GIB + 1)) == 151


def test_concurrent_creates_of_one_name_make_one_instance(driver: Driver) -> None:
    driver.state.op_delay = 0.5
    results: list[object] = []

    def run() -> None:
        try:
            results.append(create(driver, "race").volume_id)
        except grpc.RpcError as exc:
            results.append(exc.code())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)) == sorted(
        map(str, [f"modeInstance/{ZONE}/race/vol1", grpc.StatusCode.ABORTED])
    )
    assert len(driver.servicer._cloud.list_instances("-")) == 1


def test_create_times_out_then_completes_on_retry(driver: Driver) -> None:
    driver.state.op_delay = 1.0
    driver.servicer._timeout = 0.1
    request = csi_pb2.CreateVolumeRequest(name="slow", volume_capabilities=[mount_cap()])
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.ABORTED  # CREATING
    driver.servicer._timeout = 5.0
    for _ in range(50):
        try:
            vol = driver.ctl.CreateVolume(request).volume
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.ABORTED
            threading.Event().wait(0.1)
    assert vol.volume_id == f"modeInstance/{ZONE}/slow/vol1"
    assert len(driver.servicer._cloud.list_instances("-")) == 1


# --- DeleteVolume, ValidateVolumeCapabilities, Expand ------------------------


def test_delete_is_idempotent(driver: Driver) -> None:
    vol = create(driver, "gone")
    for volume_id in (vol.volume_id, vol.volume_id, "not-ours", "modeInstance/us-central1-a/never/vol1"):
        driver.ctl.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    assert driver.ctl.ListVolumes(csi_pb2.ListVolumesRequest()).entries == []
    assert code_of(driver.ctl.DeleteVolume, csi_pb2.DeleteVolumeRequest()) == grpc.StatusCode.INVALID_ARGUMENT


def test_validate_volume_capabilities(driver: Driver) -> None:
    vol = create(driver, "val")
    ok = driver.ctl.ValidateVolumeCapabilities(
        csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=vol.volume_id, volume_capabilities=[mount_cap()], volume_context=vol.volume_context
        )
    )
    assert list(ok.confirmed.volume_capabilities) == [mount_cap()]
    assert dict(ok.confirmed.volume_context) == dict(vol.volume_context)
    block = driver.ctl.ValidateVolumeCapabilities(
        csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=vol.volume_id, volume_capabilities=[BLOCK])
    )
    assert not block.HasField("confirmed") and "file storage" in block.message
    v = driver.ctl.ValidateVolumeCapabilities
    R = csi_pb2.ValidateVolumeCapabilitiesRequest
    assert code_of(v, R(volume_capabilities=[mount_cap()])) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(v, R(volume_id=vol.volume_id)) == grpc.StatusCode.INVALID_ARGUMENT
    missing = "modeInstance/us-central1-a/nope/vol1"
    assert code_of(v, R(volume_id=missing, volume_capabilities=[mount_cap()])) == grpc.StatusCode.NOT_FOUND
    assert code_of(v, R(volume_id="garbage", volume_capabilities=[mount_cap()])) == grpc.StatusCode.NOT_FOUND


def test_expand(driver: Driver) -> None:
    vol = create(driver, "grow", capacity_range=csi_pb2.CapacityRange(required_bytes=TIB))
    e = driver.ctl.ControllerExpandVolume
    R = csi_pb2.ControllerExpandVolumeRequest
    grown = e(R(volume_id=vol.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=2 * TIB)))
    assert (grown.capacity_bytes, grown.node_expansion_required) == (2 * TIB, False)
    same = e(R(volume_id=vol.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=TIB)))
    assert same.capacity_bytes == 2 * TIB
    assert (
        code_of(e, R(capacity_range=csi_pb2.CapacityRange(required_bytes=TIB)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code_of(e, R(volume_id=vol.volume_id)) == grpc.StatusCode.INVALID_ARGUMENT
    too_big = csi_pb2.CapacityRange(required_bytes=100 * TIB)
    assert code_of(e, R(volume_id=vol.volume_id, capacity_range=too_big)) == grpc.StatusCode.OUT_OF_RANGE
    missing = R(volume_id="modeInstance/us-central1-a/nope/vol1", capacity_range=too_big)
    assert code_of(e, missing) == grpc.StatusCode.NOT_FOUND


# --- snapshots ---------------------------------------------------------------


def test_snapshots_lifecycle(driver: Driver) -> None:
    vol = create(driver, "src")
    other = create(driver, "src2")
    snap = driver.ctl.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snap-1", source_volume_id=vol.volume_id)
    )
    s = snap.snapshot
    assert s.snapshot_id == "projects/proj/locations/us-central1/backups/snap-1"
    assert (s.source_volume_id, s.ready_to_use, s.size_bytes) == (vol.volume_id, True, vol.capacity_bytes)
    again = driver.ctl.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snap-1", source_volume_id=vol.volume_id)
    )
    assert again.snapshot.snapshot_id == s.snapshot_id
    clash = csi_pb2.CreateSnapshotRequest(name="snap-1", source_volume_id=other.volume_id)
    assert code_of(driver.ctl.CreateSnapshot, clash) == grpc.StatusCode.ALREADY_EXISTS
    c = driver.ctl.CreateSnapshot
    assert (
        code_of(c, csi_pb2.CreateSnapshotRequest(source_volume_id=vol.volume_id))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code_of(c, csi_pb2.CreateSnapshotRequest(name="n")) == grpc.StatusCode.INVALID_ARGUMENT
    nope = csi_pb2.CreateSnapshotRequest(name="n", source_volume_id="modeInstance/us-central1-a/nope/vol1")
    assert code_of(c, nope) == grpc.StatusCode.NOT_FOUND

    restored = create(
        driver,
        "restored",
        volume_content_source=csi_pb2.VolumeContentSource(
            snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=s.snapshot_id)
        ),
    )
    assert restored.content_source.snapshot.snapshot_id == s.snapshot_id

    listed = driver.ctl.ListSnapshots(csi_pb2.ListSnapshotsRequest())
    assert [e.snapshot.snapshot_id for e in listed.entries] == [s.snapshot_id]
    by_id = driver.ctl.ListSnapshots(csi_pb2.ListSnapshotsRequest(snapshot_id=s.snapshot_id))
    assert len(by_id.entries) == 1
    unknown = driver.ctl.ListSnapshots(
        csi_pb2.ListSnapshotsRequest(snapshot_id="projects/p/locations/x-y/backups/z")
    )
    assert unknown.entries == []
    by_source = driver.ctl.ListSnapshots(csi_pb2.ListSnapshotsRequest(source_volume_id=other.volume_id))
    assert by_source.entries == []
    L = driver.ctl.ListSnapshots
    assert code_of(L, csi_pb2.ListSnapshotsRequest(max_entries=-1)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(L, csi_pb2.ListSnapshotsRequest(starting_token="bad")) == grpc.StatusCode.ABORTED

    for snapshot_id in (s.snapshot_id, s.snapshot_id, "garbage"):
        driver.ctl.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_id))
    assert driver.ctl.ListSnapshots(csi_pb2.ListSnapshotsRequest()).entries == []
    assert (
        code_of(driver.ctl.DeleteSnapshot, csi_pb2.DeleteSnapshotRequest())
        == grpc.StatusCode.INVALID_ARGUMENT
    )


# --- ListVolumes, capabilities, unimplemented --------------------------------


def test_list_volumes_pagination(driver: Driver) -> None:
    ids = sorted(create(driver, f"vol-{i}").volume_id for i in range(5))
    first = driver.ctl.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=2))
    assert [e.volume.volume_id for e in first.entries] == ids[:2]
    driver.ctl.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=ids[1]))  # the token's own entry
    rest = driver.ctl.ListVolumes(csi_pb2.ListVolumesRequest(starting_token=first.next_token))
    assert [e.volume.volume_id for e in rest.entries] == ids[2:]
    assert rest.next_token == ""
    L = driver.ctl.ListVolumes
    assert code_of(L, csi_pb2.ListVolumesRequest(starting_token="invalid-token")) == grpc.StatusCode.ABORTED
    assert code_of(L, csi_pb2.ListVolumesRequest(max_entries=-1)) == grpc.StatusCode.INVALID_ARGUMENT


def test_capabilities_and_unimplemented(driver: Driver) -> None:
    caps = driver.ctl.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest()).capabilities
    RPC = csi_pb2.ControllerServiceCapability.RPC
    assert {c.rpc.type for c in caps} == {
        RPC.CREATE_DELETE_VOLUME,
        RPC.EXPAND_VOLUME,
        RPC.CREATE_DELETE_SNAPSHOT,
        RPC.LIST_SNAPSHOTS,
        RPC.LIST_VOLUMES,
        RPC.MODIFY_VOLUME,
        RPC.SINGLE_NODE_MULTI_WRITER,  # as the node service: the CO then sends the finer single-node modes
    }
    for method, request in (
        (driver.ctl.ControllerPublishVolume, csi_pb2.ControllerPublishVolumeRequest()),
        (driver.ctl.ControllerUnpublishVolume, csi_pb2.ControllerUnpublishVolumeRequest()),
        (driver.ctl.GetCapacity, csi_pb2.GetCapacityRequest()),
        (driver.ctl.ControllerGetVolume, csi_pb2.ControllerGetVolumeRequest()),
    ):
        assert code_of(method, request) == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    "mode",
    [
        csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER,
        csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER,
    ],
)
def test_finer_single_node_modes_are_provisioned_and_confirmed(
    driver: Driver, mode: csi_pb2.VolumeCapability.AccessMode.Mode
) -> None:
    """What a CO sends once SINGLE_NODE_MULTI_WRITER is advertised (ReadWriteOncePod, ReadWriteOnce)."""
    cap = mount_cap(mode)
    vol = create(driver, f"fine-{mode}", volume_capabilities=[cap])
    assert vol.volume_id
    confirmed = driver.ctl.ValidateVolumeCapabilities(
        csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=vol.volume_id, volume_capabilities=[cap])
    )
    assert confirmed.confirmed.volume_capabilities == [cap], confirmed.message


def test_quota_is_resource_exhausted(driver: Driver) -> None:
    driver.state.max_instances = 1
    create(driver, "q1")
    request = csi_pb2.CreateVolumeRequest(name="q2", volume_capabilities=[mount_cap()])
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.RESOURCE_EXHAUSTED
