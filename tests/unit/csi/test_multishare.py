"""Multishare volumes end to end: the controller over a real gRPC socket, the v1beta1 client, the emulator."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi.cloud import MultishareInstance, OperationPending, Share
from csi.cloud.emulator import EmulatorState, start_emulator
from csi.cloud.gcp import GcpFilestore
from csi.cloud.gcp_multishare import GcpMultishare
from csi.controller.labels import LABEL_STORAGE_CLASS, cluster_labels
from csi.controller.service import ControllerServicer
from csi.filestore import GIB
from csi.identity import IdentityServicer
from csi.locks import VolumeLocks
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.server import CsiServer
from csi.volume_id import ShareRef

ZONE = "us-central1-a"
REGION = "us-central1"
DRIVER = "filestore.csi.storage.gke.io"
Mode = csi_pb2.VolumeCapability.AccessMode
CAP = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER),
)
RETRYABLE = (grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
#: The cluster every controller here runs in unless a test says otherwise.
CLUSTER = cluster_labels("test-cluster", ZONE, regional=False)


@dataclass
class Env:
    ctl: csi_pb2_grpc.ControllerStub
    state: EmulatorState
    cloud: GcpMultishare


@contextlib.contextmanager
def running(tmp_path: Path, **servicer_options: Any) -> Iterator[Env]:
    """The controller (options passed to ControllerServicer) over a unix socket, on an emulator."""
    state = EmulatorState(op_delay=0.05, export_root=tmp_path / "exports")
    emulator, endpoint = start_emulator(state=state, max_workers=40)
    v1 = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02, poll_maximum=0.05)
    cloud = GcpMultishare(v1)
    servicer_options.setdefault("cluster_labels", CLUSTER)
    servicer = ControllerServicer(
        v1,
        driver_name=DRIVER,
        zone=ZONE,
        locks=VolumeLocks(),
        operation_timeout=10.0,
        multishare=cloud,
        **servicer_options,
    )
    identity = IdentityServicer(DRIVER, "1.0", controller=True, checks=[])
    server = CsiServer(f"unix://{tmp_path}/csi.sock", identity, controller=servicer, workers=40)
    server.start()
    channel = grpc.insecure_channel(server.address.replace("unix://", "unix:"))
    try:
        yield Env(csi_pb2_grpc.ControllerStub(channel), state, cloud)
    finally:
        channel.close()
        server.stop(0).wait()
        v1.close()
        emulator.stop(0).wait()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with running(tmp_path) as e:
        yield e


def sc(label: str = "sc-a", **extra: str) -> dict[str, str]:
    return {"multishare": "true", "instance-storageclass-label": label, "tier": "enterprise", **extra}


def create_request(name: str, gib: int | None = 100, params: dict[str, str] | None = None) -> Any:
    request = csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[CAP], parameters=params or sc())
    if gib is not None:
        request.capacity_range.required_bytes = gib * GIB
    return request


def create(env: Env, name: str, gib: int | None = 100, params: dict[str, str] | None = None) -> Any:
    return env.ctl.CreateVolume(create_request(name, gib, params)).volume


def delete(env: Env, volume_id: str) -> None:
    env.ctl.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


def retried(fn: Any, request: Any, timeout: float = 60) -> Any:
    """Call as a CO does: again on the retryable codes, until it succeeds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(request)
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def code_of(fn: Any, request: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    code: grpc.StatusCode = info.value.code()
    return code


def instances(env: Env) -> list[MultishareInstance]:
    return env.cloud.list_multishare_instances("-")


def shares(env: Env) -> list[Share]:
    return env.cloud.list_shares(REGION, "-")


def test_two_volumes_share_one_instance_and_it_goes_with_the_last(env: Env) -> None:
    a = create(env, "pvc-aaaa-1111")
    b = create(env, "pvc-bbbb-2222", gib=200)
    ra, rb = ShareRef.parse(a.volume_id), ShareRef.parse(b.volume_id)
    assert ra is not None and rb is not None
    # GFD's handle: modeMultishare/<label>/<project>/<location>/<instance>/<share>, share named as GFD does
    assert a.volume_id == f"modeMultishare/sc-a/proj/{REGION}/{ra.instance}/pvc_aaaa_1111"
    assert ra.instance == rb.instance and ra.instance.startswith("fs-")
    assert a.capacity_bytes == 100 * GIB and b.capacity_bytes == 200 * GIB
    [inst] = instances(env)
    assert a.volume_context["ip"] == inst.ip and a.volume_context["fileProtocol"] == "NFS_V3"
    assert (
        inst.labels[LABEL_STORAGE_CLASS] == "sc-a" and inst.capacity_gib == 1024 and inst.tier == "ENTERPRISE"
    )
    assert sorted(s.name for s in shares(env)) == ["pvc_aaaa_1111", "pvc_bbbb_2222"]
    assert env.state.export_root is not None
    assert sorted(p.name for p in (env.state.export_root / inst.name).iterdir()) == [
        "pvc_aaaa_1111",
        "pvc_bbbb_2222",
    ]

    delete(env, a.volume_id)
    assert [s.name for s in shares(env)] == ["pvc_bbbb_2222"] and len(instances(env)) == 1
    delete(env, a.volume_id)  # again: nothing left to do
    delete(env, b.volume_id)
    assert instances(env) == [] and shares(env) == []
    assert env.cloud._v1.list_instances() == []


def test_create_is_idempotent_and_checks_what_exists(env: Env) -> None:
    first = create(env, "pvc-1", gib=150)
    assert create(env, "pvc-1", gib=150) == first
    assert code_of(env.ctl.CreateVolume, create_request("pvc-1", 500)) == grpc.StatusCode.ALREADY_EXISTS
    other_class = create_request("pvc-1", None, sc("other-sc"))
    assert code_of(env.ctl.CreateVolume, other_class) == grpc.StatusCode.ALREADY_EXISTS
    assert len(shares(env)) == 1


def test_only_instances_with_the_same_label_and_settings_are_shared(env: Env) -> None:
    a = create(env, "pvc-a")
    b = create(env, "pvc-b", params=sc("sc-b"))
    c = create(env, "pvc-c", params=sc("sc-a", network="other-net"))
    d = create(env, "pvc-d", params=sc("sc-a", protocol="NFS_V4_1"))
    e = create(env, "pvc-e", params=sc("sc-a", **{"connect-mode": "PRIVATE_SERVICE_ACCESS"}))
    refs = [ShareRef.parse(v.volume_id) for v in (a, b, c, d, e)]
    assert len({r.instance for r in refs if r}) == 5
    assert d.volume_context["fileProtocol"] == "NFS_V4_1"
    assert create(env, "pvc-f").volume_context["ip"] == a.volume_context["ip"]


def test_instance_grows_in_steps_and_shrinks_back(env: Env) -> None:
    vols = [create(env, f"pvc-{i}", gib=400) for i in range(3)]
    [inst] = instances(env)
    assert inst.capacity_gib == 1280  # 1200 GiB of shares, in 256 GiB steps
    delete(env, vols[2].volume_id)
    [inst] = instances(env)
    assert inst.capacity_gib == 1024  # 800 GiB of shares: back to the 1 TiB floor
    for v in vols[:2]:
        delete(env, v.volume_id)
    assert instances(env) == []


def test_at_most_max_shares_per_instance(env: Env) -> None:
    vols = [create(env, f"pvc-{i}") for i in range(11)]
    counts = sorted(len(env.cloud.list_shares(REGION, i.name)) for i in instances(env))
    assert counts == [1, 10]
    for v in vols:
        delete(env, v.volume_id)
    assert instances(env) == []


def test_max_volume_size_sets_share_count_and_band(env: Env) -> None:
    params = sc(**{"max-volume-size": "128Gi"})
    small = create(env, "pvc-small", gib=10, params=params)
    assert small.capacity_bytes == 10 * GIB
    [inst] = instances(env)
    assert inst.max_share_count == 80
    assert inst.description == (
        'GoogleReservedOverrides={"CustomMultiShareConfig":{"MaxShareCount": 80, "MinShareSizeGB":10}}'
    )
    too_big = create_request("pvc-big", 200, params)
    assert code_of(env.ctl.CreateVolume, too_big) == grpc.StatusCode.OUT_OF_RANGE
    # the default form: 100 GiB floor, shares of at most 1 TiB
    assert create(env, "pvc-default", gib=1).capacity_bytes == 100 * GIB
    assert code_of(env.ctl.CreateVolume, create_request("pvc-huge", 1025)) == grpc.StatusCode.OUT_OF_RANGE


@pytest.mark.parametrize(
    "params",
    [
        {"multishare": "true", "tier": "enterprise"},  # no label
        {"multishare": "true", "instance-storageclass-label": ""},
        {"multishare": "true", "instance-storageclass-label": "Bad Label"},
        # Filestore (and GFD) make multishare instances on the enterprise tier only
        *(
            {"multishare": "true", "instance-storageclass-label": "a", "tier": tier}
            for tier in (
                "standard",
                "premium",
                "basic_hdd",
                "basic_ssd",
                "high_scale_ssd",
                "zonal",
                "regional",
            )
        ),
        # instance-wide settings no share's PVC can own (GFD: "invalid parameter")
        *(
            sc(**{key: value})
            for key, value in (
                ("max-iops", "17000"),
                ("max_iops", "17000"),
                ("max-iops-per-tb", "5000"),
                ("resource-tags", "123456/env/prod"),
                ("nfs-export-options-on-create", '[{"ipRanges": ["10.0.0.0/24"]}]'),
            )
        ),
        {"multishare": "true", "instance-storageclass-label": "a", "max-volume-size": "300Gi"},
        {"multishare": "yes", "instance-storageclass-label": "a"},
        {"instance-storageclass-label": "a"},  # needs multishare
    ],
)
def test_bad_multishare_parameters(env: Env, params: dict[str, str]) -> None:
    request = csi_pb2.CreateVolumeRequest(name="pvc-x", volume_capabilities=[CAP], parameters=params)
    assert code_of(env.ctl.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert instances(env) == []


@pytest.mark.parametrize(
    "request_fields",
    [
        {"mutable_parameters": {"max-iops": "17000"}},  # a VolumeAttributesClass: performance again
        {
            "volume_content_source": csi_pb2.VolumeContentSource(
                snapshot=csi_pb2.VolumeContentSource.SnapshotSource(
                    snapshot_id="projects/proj/locations/us-central1/backups/b"
                )
            )
        },
        {
            "volume_content_source": csi_pb2.VolumeContentSource(
                volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id="modeInstance/us-central1-a/i/vol1")
            )
        },
    ],
    ids=["mutable-performance", "from-snapshot", "clone"],
)
def test_multishare_refuses_what_gfd_refuses_beyond_parameters(
    env: Env, request_fields: dict[str, Any]
) -> None:
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-x", volume_capabilities=[CAP], parameters=sc(), **request_fields
    )
    with pytest.raises(grpc.RpcError) as info:
        env.ctl.CreateVolume(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "multishare" in str(info.value.details())
    assert instances(env) == []


def test_expand_grows_the_instance_first(env: Env) -> None:
    vols = [create(env, f"pvc-{i}", gib=500) for i in range(2)]
    assert instances(env)[0].capacity_gib == 1024
    expand = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=vols[0].volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=900 * GIB)
    )
    response = env.ctl.ControllerExpandVolume(expand)
    assert response.capacity_bytes == 900 * GIB and not response.node_expansion_required
    assert instances(env)[0].capacity_gib == 1536
    assert env.ctl.ControllerExpandVolume(expand).capacity_bytes == 900 * GIB  # again: no change
    too_big = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=vols[0].volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=2048 * GIB)
    )
    assert code_of(env.ctl.ControllerExpandVolume, too_big) == grpc.StatusCode.OUT_OF_RANGE
    gone = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=vols[0].volume_id.replace("pvc_0", "pvc_9"),
        capacity_range=csi_pb2.CapacityRange(required_bytes=200 * GIB),
    )
    assert code_of(env.ctl.ControllerExpandVolume, gone) == grpc.StatusCode.NOT_FOUND


def test_validate_and_delete_of_share_volumes(env: Env) -> None:
    vol = create(env, "pvc-v")
    validate = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=vol.volume_id, volume_capabilities=[CAP])
    assert env.ctl.ValidateVolumeCapabilities(validate).confirmed.volume_capabilities == [CAP]
    delete(env, vol.volume_id)
    assert code_of(env.ctl.ValidateVolumeCapabilities, validate) == grpc.StatusCode.NOT_FOUND


def test_a_share_backed_up_as_a_snapshot_and_restored_as_an_instance_volume(env: Env) -> None:
    vol = create(env, "pvc-snap", gib=150)
    other = create(env, "pvc-other")
    ref = ShareRef.parse(vol.volume_id)
    assert ref is not None and env.state.export_root is not None
    (env.state.export_root / ref.instance / ref.share / "data.txt").write_text("in the share\n")
    (env.state.export_root / ref.instance / "pvc_other" / "other.txt").write_text("elsewhere\n")

    request = csi_pb2.CreateSnapshotRequest(name="snap-share", source_volume_id=vol.volume_id)
    snap = retried(env.ctl.CreateSnapshot, request).snapshot
    assert snap.source_volume_id == vol.volume_id and snap.size_bytes == 150 * GIB and snap.ready_to_use
    assert retried(env.ctl.CreateSnapshot, request).snapshot.snapshot_id == snap.snapshot_id  # idempotent
    clash = csi_pb2.CreateSnapshotRequest(name="snap-share", source_volume_id=other.volume_id)
    assert code_of(env.ctl.CreateSnapshot, clash) == grpc.StatusCode.ALREADY_EXISTS
    listed = env.ctl.ListSnapshots(csi_pb2.ListSnapshotsRequest(source_volume_id=vol.volume_id))
    assert [e.snapshot.snapshot_id for e in listed.entries] == [snap.snapshot_id]
    assert listed.entries[0].snapshot.source_volume_id == vol.volume_id

    # A multishare volume cannot start from it (as in GFD); an instance volume can, with the share's data.
    from_snap = csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)
    )
    share_restore = csi_pb2.CreateVolumeRequest(
        name="pvc-restored-share", volume_capabilities=[CAP], parameters=sc(), volume_content_source=from_snap
    )
    assert code_of(env.ctl.CreateVolume, share_restore) == grpc.StatusCode.INVALID_ARGUMENT
    restored = retried(
        env.ctl.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name="pvc-restored",
            volume_capabilities=[CAP],
            parameters={"tier": "standard"},
            volume_content_source=from_snap,
            accessibility_requirements=csi_pb2.TopologyRequirement(
                preferred=[csi_pb2.Topology(segments={"topology.gke.io/zone": ZONE})]
            ),
        ),
    ).volume
    restored_dir = env.state.export_root / restored.volume_id.split("/")[2] / "vol1"
    assert sorted(p.name for p in restored_dir.iterdir()) == ["data.txt"]
    assert (restored_dir / "data.txt").read_text() == "in the share\n"

    env.ctl.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id))
    assert env.ctl.ListSnapshots(csi_pb2.ListSnapshotsRequest(source_volume_id=vol.volume_id)).entries == []


def test_a_gfd_volume_is_served_and_its_emptied_instance_deleted(env: Env) -> None:
    """A share made as gcp-filestore-csi-driver makes it; a delete whose share is already gone still
    deletes the instance left empty (an interrupted DeleteVolume's retry)."""
    inst = env.cloud.create_multishare_instance(
        MultishareInstance(
            "fs-gfd", REGION, "ENTERPRISE", 1024, 10, labels={LABEL_STORAGE_CLASS: "gfd-sc", **CLUSTER}
        ),
        wait=5,
    )
    env.cloud.create_share(Share("pvc_gfd", "fs-gfd", REGION, 100), wait=5)
    volume_id = f"modeMultishare/gfd-sc/proj/{REGION}/fs-gfd/pvc_gfd"
    validate = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=volume_id, volume_capabilities=[CAP])
    assert env.ctl.ValidateVolumeCapabilities(validate).confirmed.volume_capabilities == [CAP]
    # A CreateVolume of the same PVC name finds it rather than making another.
    again = create(env, "pvc-gfd", params=sc("gfd-sc"))
    assert again.volume_id == volume_id and again.volume_context["ip"] == inst.ip
    env.cloud.delete_share(REGION, "fs-gfd", "pvc_gfd", wait=5)
    assert [i.name for i in instances(env)] == ["fs-gfd"]
    delete(env, volume_id)
    assert instances(env) == []


def test_emulator_refuses_what_the_ops_manager_must_never_do(env: Env) -> None:
    """The emulator is strict: a bug that over-packs, deletes a used instance or runs two operations
    on one instance fails loudly in the tests above instead of passing silently."""
    cloud = env.cloud
    cloud.create_multishare_instance(MultishareInstance("fs-x", REGION, "ENTERPRISE", 1024, 2), wait=5)
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):  # not a step multiple
        cloud.resize_multishare_instance(REGION, "fs-x", 1100, wait=5)
    cloud.create_share(Share("s1", "fs-x", REGION, 600), wait=5)
    with pytest.raises(Exception, match="FAILED_PRECONDITION"):  # 600 + 600 > 1024
        cloud.create_share(Share("s2", "fs-x", REGION, 600), wait=5)
    cloud.create_share(Share("s2", "fs-x", REGION, 100), wait=5)
    with pytest.raises(Exception, match="FAILED_PRECONDITION"):  # max_share_count 2
        cloud.create_share(Share("s3", "fs-x", REGION, 100), wait=5)
    with pytest.raises(Exception, match="FAILED_PRECONDITION"):  # shares on it
        cloud.delete_multishare_instance(REGION, "fs-x", wait=5)
    with pytest.raises(Exception, match="DEADLINE_EXCEEDED"):
        cloud.resize_share(REGION, "fs-x", "s2", 200, wait=0)  # started, not waited for
    with pytest.raises(Exception, match="in progress"):  # one operation per instance
        cloud.delete_share(REGION, "fs-x", "s1", wait=5)


def test_thirty_concurrent_creates_and_deletes(env: Env) -> None:
    """30 creates at once pack into 3 instances; then creates and deletes interleave; nothing is
    over-packed (the emulator would refuse) and no empty instance is left behind."""
    names = [f"pvc-{i:02d}" for i in range(30)]

    def make(name: str) -> Any:
        request = csi_pb2.CreateVolumeRequest(
            name=name,
            volume_capabilities=[CAP],
            parameters=sc(),
            capacity_range=csi_pb2.CapacityRange(required_bytes=100 * GIB),
        )
        return retried(env.ctl.CreateVolume, request).volume

    def remove(volume_id: str) -> None:
        retried(env.ctl.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id))

    with ThreadPoolExecutor(30) as pool:
        volumes = list(pool.map(make, names))
    per_instance = {i.name: len(env.cloud.list_shares(REGION, i.name)) for i in instances(env)}
    assert sorted(per_instance.values()) == [10, 10, 10], per_instance
    assert len({v.volume_id for v in volumes}) == 30

    # Delete 20 while 15 new ones are created, in a shuffled order.
    random.seed(7)
    jobs: list[tuple[str, str]] = [("delete", v.volume_id) for v in volumes[:20]]
    jobs += [("create", f"pvc-new-{i:02d}") for i in range(15)]
    random.shuffle(jobs)
    made: list[Any] = []
    lock = threading.Lock()

    def run(job: tuple[str, str]) -> None:
        kind, arg = job
        if kind == "delete":
            remove(arg)
        else:
            volume = make(arg)
            with lock:
                made.append(volume)

    with ThreadPoolExecutor(35) as pool:
        list(pool.map(run, jobs))
    live = {s.name for s in shares(env)}
    assert live == {ShareRef.parse(v.volume_id).share for v in volumes[20:] + made}  # type: ignore[union-attr]
    counts = [len(env.cloud.list_shares(REGION, i.name)) for i in instances(env)]
    assert all(0 < c <= 10 for c in counts), counts  # no empty instance, none over-packed

    with ThreadPoolExecutor(30) as pool:
        list(pool.map(remove, [v.volume_id for v in volumes[20:] + made]))
    assert shares(env) == [] and instances(env) == []


def test_list_volumes_shows_shares_not_their_instances(env: Env) -> None:
    vols = sorted((create(env, f"pvc-{i}") for i in range(3)), key=lambda v: v.volume_id)
    listed = env.ctl.ListVolumes(csi_pb2.ListVolumesRequest())
    assert [e.volume for e in listed.entries] == vols
    first = env.ctl.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=2))
    rest = env.ctl.ListVolumes(csi_pb2.ListVolumesRequest(starting_token=first.next_token))
    assert [e.volume.volume_id for e in (*first.entries, *rest.entries)] == [v.volume_id for v in vols]


def test_operations_that_outlast_the_wait_are_picked_up_by_the_retry(env: Env) -> None:
    """An instance create and a share create that run past the wait answer a retryable error; the
    CO's retries then find the instance and the share instead of making others."""
    from csi.controller.multishare import MultishareOps
    from csi.controller.parameters import parse_volume_params
    from csi.controller.share_spec import multishare_spec
    from csi.errors import CsiError

    ops = MultishareOps(env.cloud, CLUSTER, timeout=0.05)
    env.state.op_delay = 0.6
    request = csi_pb2.CreateVolumeRequest(name="pvc-slow", volume_capabilities=[CAP], parameters=sc())
    spec = multishare_spec(
        "pvc-slow", request, parse_volume_params(request.parameters, DRIVER), [REGION], CLUSTER
    )
    outcomes = []
    deadline = time.monotonic() + 30
    found = None
    while found is None and time.monotonic() < deadline:
        found = ops.find_share([REGION], spec.share)
        if found is not None and found[1].state != "READY":
            outcomes.append("share not ready")
            found = None
        elif found is None:
            try:
                found = ops.create(spec)
            except OperationPending:
                outcomes.append("pending")
            except CsiError as exc:
                assert exc.code == grpc.StatusCode.ABORTED, exc
                outcomes.append("aborted")
        time.sleep(0.1)
    assert found is not None and found[1].state == "READY", outcomes
    assert outcomes[0] == "pending" and "aborted" in outcomes  # the instance was CREATING meanwhile
    assert len(instances(env)) == 1 and [s.name for s in shares(env)] == ["pvc_slow"]
    env.state.op_delay = 0.05
    ref = ShareRef("sc-a", "proj", REGION, found[0].name, "pvc_slow")
    MultishareOps(env.cloud, CLUSTER, timeout=10).delete(ref)
    assert instances(env) == []


def test_v1_sees_a_multishare_instance_without_a_file_share(env: Env) -> None:
    create(env, "pvc-v1")
    [inst] = env.cloud._v1.list_instances()
    assert inst.share_name == "" and inst.tier == "ENTERPRISE" and inst.labels[LABEL_STORAGE_CLASS] == "sc-a"
    assert env.cloud._v1.get_instance(REGION, inst.name).ip == inst.ip


def test_reserved_ipv4_cidr_picks_instances_inside_it(env: Env) -> None:
    a = create(env, "pvc-a", params=sc(**{"reserved-ipv4-cidr": "127.0.100.0/24"}))
    b = create(env, "pvc-b", params=sc(**{"reserved-ipv4-cidr": "127.0.100.0/24"}))
    assert ShareRef.parse(a.volume_id).instance == ShareRef.parse(b.volume_id).instance  # type: ignore[union-attr]
    [inst] = instances(env)
    assert inst.reserved_ip_range == "127.0.100.0/26"  # a /26 block of the range for an enterprise instance
    c = create(env, "pvc-c", params=sc(**{"reserved-ipv4-cidr": "10.9.0.0/24"}))
    assert ShareRef.parse(c.volume_id).instance != ShareRef.parse(a.volume_id).instance  # type: ignore[union-attr]


def test_mount_options_reach_the_node_and_instance_only_parameters_are_refused(env: Env) -> None:
    vol = create(env, "pvc-mo", params=sc(**{"mount-options": "hard,timeo=600"}))
    assert vol.volume_context["mountOptions"] == "hard,timeo=600"
    for extra in (
        {"max-iops": "17000"},
        {"resource-tags": "123456/env/prod"},
        {"nfs-export-options-on-create": '[{"ipRanges": ["10.0.0.0/24"]}]'},
    ):
        request = csi_pb2.CreateVolumeRequest(
            name="pvc-no", volume_capabilities=[CAP], parameters=sc(**extra)
        )
        with pytest.raises(grpc.RpcError) as info:
            env.ctl.CreateVolume(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "multishare" in str(
            info.value.details()
        )


def test_the_v1beta1_client_reads_every_page(env: Env) -> None:
    for i in range(3):
        create(env, f"pvc-page-{i}")
    create(env, "pvc-page-other", params=sc("sc-other"))
    paged = GcpMultishare(env.cloud._v1, page_size=1)
    assert [s.name for s in paged.list_shares(REGION, "-")] == [s.name for s in shares(env)]
    assert len(paged.list_shares(REGION, "-")) == 4
    assert sorted(i.name for i in paged.list_multishare_instances("-")) == sorted(
        i.name for i in instances(env)
    )
    assert len(paged.list_multishare_instances(REGION)) == 2


def test_modify_volume_of_a_share_is_refused(env: Env) -> None:
    vol = create(env, "pvc-mod")
    request = csi_pb2.ControllerModifyVolumeRequest(
        volume_id=vol.volume_id, mutable_parameters={"max-iops": "17000"}
    )
    assert code_of(env.ctl.ControllerModifyVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_multishare_instances_carry_the_cluster_labels_as_gfd_sets_them(tmp_path: Path) -> None:
    labels = cluster_labels("prod-east", ZONE, regional=True)
    with running(tmp_path, cluster_labels=labels) as e:
        create(e, "pvc-in-cluster")
        [instance] = instances(e)
        assert instance.labels["storage_gke_io_cluster_name"] == "prod-east"
        assert instance.labels["storage_gke_io_cluster_location"] == REGION  # regional: the zone's region
        assert instance.labels["storage_gke_io_created-by"] == "filestore_csi_storage_gke_io"
        clash = csi_pb2.CreateVolumeRequest(
            name="pvc-clash",
            volume_capabilities=[CAP],
            parameters=sc(labels="storage_gke_io_cluster_name=other"),
        )
        assert code_of(e.ctl.CreateVolume, clash) == grpc.StatusCode.INVALID_ARGUMENT
        assert len(shares(e)) == 1  # nothing made for the refused one
    assert cluster_labels("prod-east", ZONE, regional=False)["storage_gke_io_cluster_location"] == ZONE
    # without --gke-cluster-name the name label is empty, as GFD would set it; the location is still there
    assert cluster_labels("", ZONE, regional=True) == {
        "storage_gke_io_cluster_name": "",
        "storage_gke_io_cluster_location": REGION,
    }


# --- two clusters, one project: GFD's isMatchedInstance ----------------------------


class RecordingMultishare(GcpMultishare):
    """The real v1beta1 client that notes the labels of every instance it changes (or changes a share
    of) before it does, so a test can tell which cluster's instance each mutation hit."""

    def __init__(self, v1: GcpFilestore) -> None:
        super().__init__(v1)
        self.touched: list[tuple[str, str, dict[str, str]]] = []  # (verb, instance, its labels)
        self._lock = threading.Lock()

    def _note(self, verb: str, location: str, instance: str) -> None:
        labels = dict(self.get_multishare_instance(location, instance).labels)
        with self._lock:
            self.touched.append((verb, instance, labels))

    def resize_multishare_instance(
        self, location: str, name: str, capacity_gib: int, *, wait: float
    ) -> MultishareInstance:
        self._note("resize", location, name)
        return super().resize_multishare_instance(location, name, capacity_gib, wait=wait)

    def delete_multishare_instance(self, location: str, name: str, *, wait: float) -> None:
        self._note("delete", location, name)
        super().delete_multishare_instance(location, name, wait=wait)

    def create_share(self, share: Share, *, wait: float) -> Share:
        self._note("create-share", share.location, share.instance)
        return super().create_share(share, wait=wait)

    def resize_share(
        self, location: str, instance: str, name: str, capacity_gib: int, *, wait: float
    ) -> Share:
        self._note("resize-share", location, instance)
        return super().resize_share(location, instance, name, capacity_gib, wait=wait)


def _stop(server: CsiServer) -> None:
    server.stop(0).wait()


@dataclass
class Cluster:
    labels: dict[str, str]
    ctl: csi_pb2_grpc.ControllerStub
    cloud: RecordingMultishare


@contextlib.contextmanager
def clusters_on_one_emulator(tmp_path: Path, *where: tuple[str, str]) -> Iterator[list[Cluster]]:
    """A controller per (cluster name, zone), all on one emulator (one project), each on its socket."""
    state = EmulatorState(op_delay=0.05, export_root=tmp_path / "exports")
    emulator, endpoint = start_emulator(state=state, max_workers=60)
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: emulator.stop(0).wait())
        found = []
        for index, (name, zone) in enumerate(where):
            v1 = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02, poll_maximum=0.05)
            stack.callback(v1.close)
            cloud = RecordingMultishare(v1)
            labels = cluster_labels(name, zone, regional=False)
            servicer = ControllerServicer(
                v1,
                driver_name=DRIVER,
                zone=zone,
                locks=VolumeLocks(),
                operation_timeout=10.0,
                multishare=cloud,
                cluster_labels=labels,
            )
            identity = IdentityServicer(DRIVER, "1.0", controller=True, checks=[])
            server = CsiServer(
                f"unix://{tmp_path}/csi-{index}.sock", identity, controller=servicer, workers=20
            )
            server.start()
            stack.callback(_stop, server)
            channel = grpc.insecure_channel(server.address.replace("unix://", "unix:"))
            stack.callback(channel.close)
            found.append(Cluster(labels, csi_pb2_grpc.ControllerStub(channel), cloud))
        yield found


def _own(instance_labels: Mapping[str, str], cluster: Cluster) -> bool:
    return all(instance_labels.get(k) == v for k, v in cluster.labels.items())


def test_two_clusters_never_touch_each_others_instances(tmp_path: Path) -> None:
    """Three controllers (two clusters in one zone, one of the same name in another zone: a different
    cluster location) with one StorageClass, creating and deleting PVCs of the same names at once:
    each share lands on its own cluster's instance, and no controller resizes or deletes, or puts a
    share on, an instance that is not its cluster's, nor on an instance without cluster labels."""
    where = [("alpha", ZONE), ("beta", ZONE), ("alpha", "us-central1-b")]
    with clusters_on_one_emulator(tmp_path, *where) as clusters:
        admin = clusters[0].cloud
        # An instance from before the cluster labels (or a hand-made one): the same class, room for shares.
        legacy = admin.create_multishare_instance(
            MultishareInstance(
                "fs-legacy", REGION, "ENTERPRISE", 1024, 10, labels={LABEL_STORAGE_CLASS: "sc-a"}
            ),
            wait=5,
        )
        owner: dict[str, int] = {}  # volume id -> index of the cluster that made it
        lock = threading.Lock()

        def make(job: tuple[int, str]) -> None:
            index, name = job
            request = csi_pb2.CreateVolumeRequest(
                name=name,
                volume_capabilities=[CAP],
                parameters=sc(),
                capacity_range=csi_pb2.CapacityRange(required_bytes=100 * GIB),
            )
            volume = retried(clusters[index].ctl.CreateVolume, request).volume
            with lock:
                assert owner.setdefault(volume.volume_id, index) == index, "two clusters got one volume"

        def remove(volume_id: str) -> None:
            retried(
                clusters[owner[volume_id]].ctl.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id)
            )
            with lock:
                del owner[volume_id]

        def check() -> None:
            live = {(s.instance, s.name) for s in admin.list_shares(REGION, "-")}
            made = {
                (ref.instance, ref.share): index
                for volume_id, index in owner.items()
                if (ref := ShareRef.parse(volume_id)) is not None
            }
            assert live == set(made), "every share is a live volume of exactly one cluster"
            labels = {i.name: i.labels for i in admin.list_multishare_instances("-")}
            for (instance, share), index in made.items():
                assert _own(labels[instance], clusters[index]), (
                    f"{share} of cluster {where[index]} on {labels[instance]}"
                )
            for index, cluster in enumerate(clusters):
                foreign = [t for t in cluster.cloud.touched if not _own(t[2], cluster)]
                assert foreign == [], f"cluster {where[index]} touched {foreign}"
            assert admin.list_shares(REGION, "fs-legacy") == []
            assert admin.get_multishare_instance(REGION, "fs-legacy").capacity_gib == legacy.capacity_gib

        # 12 PVCs per cluster, the same names in every cluster, all at once: two instances each.
        names = [f"pvc-{i:02d}" for i in range(12)]
        with ThreadPoolExecutor(36) as pool:
            list(pool.map(make, [(index, name) for name in names for index in range(3)]))
        check()
        per_cluster = [
            sorted(
                len(admin.list_shares(REGION, i.name))
                for i in admin.list_multishare_instances("-")
                if _own(i.labels, c)
            )
            for c in clusters
        ]
        assert [(len(counts), sum(counts)) for counts in per_cluster] == [(2, 12)] * 3, per_cluster

        # Deletes and creates interleaved: each cluster's last share on an instance goes while the
        # other clusters fill theirs, so a cluster that adopted a foreign instance would delete it.
        random.seed(17)
        jobs: list[tuple[str, Any]] = [
            ("delete", v) for v in sorted(owner) if not v.endswith(("_10", "_11"))
        ][:24]
        jobs += [("create", (index, f"pvc-new-{i:02d}")) for i in range(6) for index in range(3)]
        random.shuffle(jobs)

        def run(job: tuple[str, Any]) -> None:
            if job[0] == "delete":
                remove(job[1])
            else:
                make(job[1])

        with ThreadPoolExecutor(42) as pool:
            list(pool.map(run, jobs))
        check()

        with ThreadPoolExecutor(30) as pool:
            list(pool.map(remove, sorted(owner)))
        check()
        assert [i.name for i in admin.list_multishare_instances("-")] == ["fs-legacy"]
        assert all(c.cloud.touched for c in clusters)  # each did work, all of it on its own instances


def test_a_share_on_another_clusters_instance_is_not_grown_into_or_retired(tmp_path: Path) -> None:
    """A volume id that names another cluster's instance (a static PV brought over): its share may
    be deleted, and grown within the room the instance has, but the instance is never grown, shrunk
    or deleted; and a CreateVolume of the same name makes this cluster a share of its own."""
    with clusters_on_one_emulator(tmp_path, ("alpha", ZONE), ("beta", ZONE)) as (alpha, beta):

        def beta_volume(name: str, gib: int) -> Any:
            return beta.ctl.CreateVolume(
                csi_pb2.CreateVolumeRequest(
                    name=name,
                    volume_capabilities=[CAP],
                    parameters=sc(),
                    capacity_range=csi_pb2.CapacityRange(required_bytes=gib * GIB),
                )
            ).volume

        x, y = beta_volume("pvc-x", 500), beta_volume("pvc-y", 700)
        ref = ShareRef.parse(x.volume_id)
        assert ref is not None
        assert alpha.cloud.get_multishare_instance(REGION, ref.instance).capacity_gib == 1280
        # alpha's CreateVolume of the same PVC name does not adopt beta's share
        ours = alpha.ctl.CreateVolume(
            csi_pb2.CreateVolumeRequest(name="pvc-x", volume_capabilities=[CAP], parameters=sc())
        ).volume
        ours_ref = ShareRef.parse(ours.volume_id)
        assert ours_ref is not None and ours_ref.instance != ref.instance

        def grow(gib: int) -> csi_pb2.ControllerExpandVolumeRequest:
            return csi_pb2.ControllerExpandVolumeRequest(
                volume_id=x.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=gib * GIB)
            )

        # 600 + 700 GiB would need beta's instance grown past 1280 GiB: refused; 520 fits as it is
        assert code_of(alpha.ctl.ControllerExpandVolume, grow(600)) == grpc.StatusCode.OUT_OF_RANGE
        assert alpha.ctl.ControllerExpandVolume(grow(520)).capacity_bytes == 520 * GIB
        assert alpha.cloud.get_multishare_instance(REGION, ref.instance).capacity_gib == 1280
        # deleting x would shrink an own instance to 1 TiB (700 GiB left); beta's stays as it is
        alpha.ctl.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=x.volume_id))
        assert alpha.cloud.get_multishare_instance(REGION, ref.instance).capacity_gib == 1280
        # and emptied by alpha, it is not deleted by alpha
        alpha.ctl.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=y.volume_id))
        assert alpha.cloud.list_shares(REGION, ref.instance) == []
        assert alpha.cloud.get_multishare_instance(REGION, ref.instance).state == "READY"
        assert [(verb, _own(labels, alpha)) for verb, _, labels in alpha.cloud.touched] == [
            ("create-share", True),
            ("resize-share", False),
        ]


def test_a_controller_without_enable_multishare_refuses_multishare_volumes_naming_the_flag(
    tmp_path: Path,
) -> None:
    """As gcp-filestore-csi-driver without --enable-multishare; GFD answers INVALID_ARGUMENT, ours
    FAILED_PRECONDITION for CreateVolume and DeleteVolume alike: the request is right, the controller
    is not."""
    from tests.support.controllerutil import running_driver

    share = ShareRef("sc-a", "proj", REGION, "fs-1", "pvc_1").volume_id
    with running_driver(tmp_path) as driver:
        for call, request in (
            (
                driver.ctl.CreateVolume,
                csi_pb2.CreateVolumeRequest(name="pvc-1", volume_capabilities=[CAP], parameters=sc()),
            ),
            (driver.ctl.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=share)),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call(request)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "started with --enable-multishare" in (info.value.details() or "")
