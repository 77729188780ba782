"""Custom performance, ControllerModifyVolume, resource tags, NFS export options, backup location and
labels, and the expansion checks: the controller over gRPC, against the emulator via the real client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi.cloud import NfsExportRule, OperationPending, Performance
from csi.filestore import GIB
from csi.main import main
from csi.proto import csi_pb2
from tests.support.controllerutil import DRIVER, TIB, ZONE, Driver, create, mount_cap, running_driver

REGION = "us-central1"
Modify = csi_pb2.ControllerModifyVolumeRequest
Expand = csi_pb2.ControllerExpandVolumeRequest


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    with running_driver(
        tmp_path, resource_tags={"123456789012/env": "dev", "123456789012/team": "infra"}
    ) as d:
        yield d


def fails(fn: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)  # type: ignore[operator]
    return info.value


def size(tib: float) -> csi_pb2.CapacityRange:
    return csi_pb2.CapacityRange(required_bytes=int(tib * TIB))


def zonal(d: Driver, name: str, tib: float = 1, **parameters: str) -> csi_pb2.Volume:
    return create(d, name, capacity_range=size(tib), parameters={"tier": "zonal", **parameters})


def instance_of(d: Driver, volume: csi_pb2.Volume):  # type: ignore[no-untyped-def]
    _, location, name, _ = volume.volume_id.split("/")
    return d.cloud.get_instance(location, name)


# --- performance at creation -----------------------------------------------------


def test_create_with_performance(driver: Driver) -> None:
    fixed = zonal(driver, "fixed", 1, **{"max-iops": "3000"})
    assert instance_of(driver, fixed).performance == Performance(fixed_iops=3000)
    # gcp-filestore-csi-driver's spelling of the keys works too
    dense = zonal(driver, "dense", 10, max_iops_per_tb="4000")
    assert instance_of(driver, dense).performance == Performance(iops_per_tb=4000)
    # a VolumeAttributesClass's mutable_parameters at creation, overriding the StorageClass
    vac = create(
        driver,
        "vac",
        capacity_range=size(2),
        parameters={"tier": "regional", "max-iops": "5000"},
        mutable_parameters={"max-iops": "6000"},
    )
    assert instance_of(driver, vac).performance == Performance(fixed_iops=6000)
    # the class's setting replaces the StorageClass's whole performance setting, of either kind
    per_tb = create(
        driver,
        "vac-per-tb",
        capacity_range=size(1),
        parameters={"tier": "zonal", "max-iops": "3000"},
        mutable_parameters={"max-iops-per-tb": "4000"},
    )
    assert instance_of(driver, per_tb).performance == Performance(iops_per_tb=4000)
    fixed_over_per_tb = create(
        driver,
        "vac-fixed",
        capacity_range=size(1),
        parameters={"tier": "zonal", "max_iops_per_tb": "5000"},
        mutable_parameters={"MAX_IOPS": "20000"},
    )
    assert instance_of(driver, fixed_over_per_tb).performance == Performance(fixed_iops=20000)
    plain = zonal(driver, "plain")
    assert instance_of(driver, plain).performance is None


@pytest.mark.parametrize(
    ("tier", "tib", "parameters", "mutable", "reason"),
    [
        ("standard", 1, {"max-iops": "3000"}, {}, "custom performance needs one of the tiers"),
        ("enterprise", 1, {}, {"max-iops-per-tb": "5000"}, "custom performance needs one of the tiers"),
        ("zonal", 1, {"max-iops": "1900"}, {}, "max IOPS must be 2000-166000"),
        ("zonal", 1, {"max-iops": "166100"}, {}, "max IOPS must be 2000-166000"),
        ("zonal", 5, {"max-iops": "2050"}, {}, "multiple of 100"),
        ("zonal", 10, {"max-iops": "5500"}, {}, "multiple of 1000"),
        ("zonal", 5, {"max-iops-per-tb": "3900"}, {}, "4000-17000"),
        ("zonal", 10, {"max-iops-per-tb": "8000"}, {}, "3000-7500"),
        ("zonal", 10, {"max-iops-per-tb": "3500"}, {}, "multiple of 1000"),
        ("zonal", 30, {"max-iops-per-tb": "7000"}, {}, "above 166000"),
        ("zonal", 1, {"max-iops": "3000", "max-iops-per-tb": "4000"}, {}, "not both"),
        ("zonal", 1, {}, {"max-iops": "3000", "max-iops-per-tb": "4000"}, "not both"),
        ("zonal", 1, {"max-iops": "lots"}, {}, "whole number"),
        ("zonal", 1, {}, {"tier": "regional"}, "cannot be changed"),
    ],
)
def test_create_refuses_performance_the_tier_does_not_allow(
    driver: Driver, tier: str, tib: float, parameters: dict[str, str], mutable: dict[str, str], reason: str
) -> None:
    error = fails(
        driver.ctl.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name="perf",
            capacity_range=size(tib),
            volume_capabilities=[mount_cap()],
            parameters={"tier": tier, **parameters},
            mutable_parameters=mutable,
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in (error.details() or "")
    assert driver.cloud.list_instances() == []


def test_emulator_refuses_what_the_driver_refuses(driver: Driver) -> None:
    """The API itself validates performance_config, so a driver bug could not slip past the tests."""
    from csi.cloud import Instance

    bad = Instance(
        name="raw", location=ZONE, tier="ZONAL", capacity_gib=1024, performance=Performance(fixed_iops=2050)
    )
    with pytest.raises(
        Exception, match="INVALID_ARGUMENT: performance_config: max IOPS must be a multiple of 100"
    ):
        driver.cloud.create_instance(bad, wait=5)


# --- ControllerModifyVolume ------------------------------------------------------


def test_modify_volume_applies_and_validates(driver: Driver) -> None:
    vol = zonal(driver, "mod", 2)
    modify = driver.ctl.ControllerModifyVolume
    modify(Modify(volume_id=vol.volume_id, mutable_parameters={"max-iops-per-tb": "5000"}))
    assert instance_of(driver, vol).performance == Performance(iops_per_tb=5000)
    modify(Modify(volume_id=vol.volume_id, mutable_parameters={"max-iops-per-tb": "5000"}))  # idempotent
    modify(Modify(volume_id=vol.volume_id, mutable_parameters={"MAX_IOPS": "9000"}))
    assert instance_of(driver, vol).performance == Performance(fixed_iops=9000)

    for params, reason in (
        ({"max-iops-per-tb": "17100"}, "4000-17000"),
        ({"max-iops": "2050"}, "multiple of 100"),
        ({"max-iops": "3000", "max-iops-per-tb": "4000"}, "not both"),
        ({"tier": "regional"}, "cannot be changed"),
    ):
        error = fails(modify, Modify(volume_id=vol.volume_id, mutable_parameters=params))
        assert (error.code(), reason in (error.details() or "")) == (grpc.StatusCode.INVALID_ARGUMENT, True)
    assert instance_of(driver, vol).performance == Performance(fixed_iops=9000)

    basic = create(driver, "basic")
    error = fails(modify, Modify(volume_id=basic.volume_id, mutable_parameters={"max-iops": "3000"}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = Modify(volume_id=f"modeInstance/{ZONE}/nope/vol1", mutable_parameters={"max-iops": "3000"})
    assert fails(modify, missing).code() == grpc.StatusCode.NOT_FOUND
    assert (
        fails(modify, Modify(mutable_parameters={"max-iops": "3000"})).code()
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_update_running_is_aborted_until_it_ends(driver: Driver) -> None:
    vol = zonal(driver, "busy", 2)
    driver.state.op_delay = 0.6
    with pytest.raises(OperationPending):
        driver.cloud.expand_instance(ZONE, "busy", 3 * 1024, wait=0)
    assert driver.cloud.update_running(ZONE, "busy") is True
    modify = Modify(volume_id=vol.volume_id, mutable_parameters={"max-iops": "4000"})
    error = fails(driver.ctl.ControllerModifyVolume, modify)
    assert error.code() == grpc.StatusCode.ABORTED and "another update" in (error.details() or "")
    expand = Expand(volume_id=vol.volume_id, capacity_range=size(4))
    assert fails(driver.ctl.ControllerExpandVolume, expand).code() == grpc.StatusCode.ABORTED
    # the emulator, like the API, refuses a second update too
    with pytest.raises(Exception, match="FAILED_PRECONDITION"):
        driver.cloud.set_performance(ZONE, "busy", Performance(fixed_iops=4000), wait=0)
    driver.state.op_delay = 0.05
    _wait_idle(driver, "busy")
    driver.ctl.ControllerModifyVolume(modify)
    grown = driver.ctl.ControllerExpandVolume(expand)
    assert grown.capacity_bytes == 4 * TIB
    assert instance_of(driver, vol).performance == Performance(fixed_iops=4000)


def _wait_idle(d: Driver, name: str) -> None:
    import time

    deadline = time.monotonic() + 5
    while d.cloud.update_running(ZONE, name):
        assert time.monotonic() < deadline, "the update never finished"
        time.sleep(0.05)


# --- expansion within the tier's band ------------------------------------------------


def test_expand_stays_in_the_band(driver: Driver) -> None:
    expand = driver.ctl.ControllerExpandVolume
    small = zonal(driver, "small", 9)
    assert expand(Expand(volume_id=small.volume_id, capacity_range=size(9.75))).capacity_bytes == 9984 * GIB
    error = fails(expand, Expand(volume_id=small.volume_id, capacity_range=size(10)))
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE and "1024-9984" in (error.details() or "")
    with pytest.raises(Exception, match="another range"):  # the emulator refuses it as the API does
        driver.cloud.expand_instance(ZONE, "small", 10 * 1024, wait=5)

    regional = create(driver, "reg", capacity_range=size(9), parameters={"tier": "regional"})
    grown = expand(
        Expand(volume_id=regional.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=10239 * GIB))
    )
    assert grown.capacity_bytes == 10239 * GIB
    assert (
        fails(expand, Expand(volume_id=regional.volume_id, capacity_range=size(10))).code()
        == grpc.StatusCode.OUT_OF_RANGE
    )


def test_expand_keeps_performance_valid(driver: Driver) -> None:
    vol = zonal(driver, "dense", 10, **{"max-iops-per-tb": "7000"})
    expand = driver.ctl.ControllerExpandVolume
    assert expand(Expand(volume_id=vol.volume_id, capacity_range=size(23))).capacity_bytes == 23 * TIB
    error = fails(expand, Expand(volume_id=vol.volume_id, capacity_range=size(24)))  # 24 x 7000 > 166000
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE and "above 166000" in (error.details() or "")
    assert instance_of(driver, vol).capacity_gib == 23 * 1024


# --- resource tags -----------------------------------------------------------


def test_resource_tags_from_storage_class_and_flag(driver: Driver) -> None:
    vol = create(
        driver, "tagged", parameters={"resource-tags": "123456789012/env/prod, my-project/cost/c-42"}
    )
    full = f"projects/proj/locations/{ZONE}/instances/tagged"
    assert driver.state.bound_tags(full) == {
        "123456789012/env": "prod",  # the StorageClass wins over --resource-tags
        "123456789012/team": "infra",  # from --resource-tags
        "my-project/cost": "c-42",
    }
    assert instance_of(driver, vol).tags == {}  # input only: the API never returns them


@pytest.mark.parametrize(
    "tags",
    [
        "123456789012/env",  # no value
        "123456789012/env/prod/x",  # one part too many
        "Bad_Parent/env/prod",  # parent is neither an org id nor a project id
        "123456789012/-env/prod",  # key must start alphanumeric
        "123456789012/env/pr od",  # value with a space
        "123456789012/env/prod,123456789012/env/dev",  # one key, two values
        ",".join(f"123456789012/k{i}/v" for i in range(51)),  # more than 50
    ],
)
def test_bad_resource_tags_fail_before_any_instance(driver: Driver, tags: str) -> None:
    error = fails(
        driver.ctl.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name="t", volume_capabilities=[mount_cap()], parameters={"resource-tags": tags}
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "resource" in (error.details() or "")
    assert driver.cloud.list_instances() == []


def test_resource_tags_flag_is_checked_at_startup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--mode", "controller", "--project", "p", "--resource-tags", "123/env"])
    assert info.value.code == 2
    assert "<parentID>/<tagKey>/<tagValue>" in capsys.readouterr().err


# --- NFS export options --------------------------------------------------------


def test_nfs_export_options_on_create(driver: Driver) -> None:
    rules = [
        {"ipRanges": ["10.0.0.0/24", "10.1.0.5"], "accessMode": "READ_WRITE", "squashMode": "NO_ROOT_SQUASH"},
        {
            "ipRanges": ["10.2.0.0/16"],
            "accessMode": "READ_ONLY",
            "squashMode": "ROOT_SQUASH",
            "anonUid": "1003",
            "anonGid": 1004,
        },
    ]
    vol = zonal(driver, "exports", 1, **{"nfs-export-options-on-create": json.dumps(rules)})
    expected = (
        NfsExportRule(("10.0.0.0/24", "10.1.0.5"), "READ_WRITE", "NO_ROOT_SQUASH"),
        NfsExportRule(("10.2.0.0/16",), "READ_ONLY", "ROOT_SQUASH", anon_uid=1003, anon_gid=1004),
    )
    assert instance_of(driver, vol).nfs_export_options == expected
    driver.ctl.ControllerExpandVolume(Expand(volume_id=vol.volume_id, capacity_range=size(2)))
    assert instance_of(driver, vol).nfs_export_options == expected  # an expansion keeps the rules


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("[{", "not valid JSON"),
        ('{"ipRanges": ["10.0.0.0/24"]}', "JSON list"),
        ('[{"ipRanges": ["10.0.0.0/24"], "squash": "x"}]', "unknown key"),
        ('[{"ipRanges": []}]', "at least one"),
        ('[{"ipRanges": ["10.0.0.300"]}]', "not an IPv4 address"),
        ('[{"ipRanges": ["10.0.0.1/24"]}]', "host bits"),
        ('[{"ipRanges": ["10.0.0.0/24"]}, {"ipRanges": ["10.0.0.128/25"]}]', "overlaps"),
        ('[{"ipRanges": ["10.0.0.0/24"], "accessMode": "WRITE"}]', "accessMode must be one of"),
        ('[{"ipRanges": ["10.0.0.0/24"], "anonUid": "7"}]', "need squashMode ROOT_SQUASH"),
        ('[{"ipRanges": ["10.0.0.0/24"], "squashMode": "ROOT_SQUASH", "anonGid": "-1"}]', "non-negative"),
        (json.dumps([{"ipRanges": [f"10.0.{i}.0/24" for i in range(65)]}]), "at most 64"),
    ],
)
def test_bad_nfs_export_options(driver: Driver, options: str, reason: str) -> None:
    error = fails(
        driver.ctl.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name="e", volume_capabilities=[mount_cap()], parameters={"nfs-export-options-on-create": options}
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nfs-export-options-on-create" in (error.details() or "") and reason in (error.details() or "")
    assert driver.cloud.list_instances() == []


# --- backups: location and labels -------------------------------------------------


def test_backup_in_another_region_with_labels(driver: Driver) -> None:
    vol = create(driver, "src")
    snap = driver.ctl.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(
            name="snapshot-1",
            source_volume_id=vol.volume_id,
            parameters={"type": "backup", "location": "us-east1", "labels": "team=storage"},
        )
    ).snapshot
    assert snap.snapshot_id == "projects/proj/locations/us-east1/backups/snapshot-1"
    assert snap.source_volume_id == vol.volume_id
    backup = driver.cloud.get_backup(snap.snapshot_id)
    assert dict(backup.labels) == {
        "storage_gke_io_created-by": DRIVER.replace(".", "_"),
        "storage_gke_io_created-for_csi_snapshot_name": "snapshot-1",
        "team": "storage",
    }
    restored = create(
        driver,
        "restored",
        volume_content_source=csi_pb2.VolumeContentSource(
            snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)
        ),
    )
    assert restored.content_source.snapshot.snapshot_id == snap.snapshot_id

    default = driver.ctl.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snapshot-2", source_volume_id=vol.volume_id)
    ).snapshot
    assert default.snapshot_id == f"projects/proj/locations/{REGION}/backups/snapshot-2"

    for params in ({"location": "us-east1-b"}, {"location": ""}, {"labels": "storage_gke_io_created-by=x"}):
        request = csi_pb2.CreateSnapshotRequest(
            name="snapshot-3", source_volume_id=vol.volume_id, parameters=params
        )
        assert fails(driver.ctl.CreateSnapshot, request).code() == grpc.StatusCode.INVALID_ARGUMENT
