"""The project's example StorageClasses and VolumeAttributesClasses, read from deploy/kubernetes/examples/,
provisioned through CreateVolume as csi-provisioner sends it: so the examples themselves are tested.

csi-provisioner passes a class's parameters as CreateVolume's ``parameters`` (with its own
``csi.storage.k8s.io/pvc/...`` metadata) and a PVC's VolumeAttributesClass as ``mutable_parameters``;
the CSI spec gives ``mutable_parameters`` precedence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from csi.cloud import Performance
from csi.proto import csi_pb2
from csi.volume_id import ShareRef, VolumeRef
from tests.support.controllerutil import DRIVER, TIB, Driver, mount_cap, running_driver

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes" / "examples"


def _examples(kind: str) -> dict[str, dict[str, Any]]:
    docs = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == kind
    ]
    return {doc["metadata"]["name"]: doc for doc in docs}


STORAGE_CLASSES = _examples("StorageClass")
ATTRIBUTE_CLASSES = _examples("VolumeAttributesClass")

#: What each example StorageClass gives with an example VolumeAttributesClass: the class's
#: performance, or the refusal (custom performance is a zonal/regional-tier setting of a whole instance).
WITH_ATTRIBUTES_CLASS = {
    "filestore-standard": "custom performance needs one of the tiers",
    "filestore-zonal-performance": None,
    "filestore-multishare": "cannot be used with multishare",
    "filestore-multishare-128": "cannot be used with multishare",
}


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    with running_driver(tmp_path, multishare=True) as d:
        yield d


def _request(name: str, storage_class: str, attributes_class: str | None) -> csi_pb2.CreateVolumeRequest:
    sc = STORAGE_CLASSES[storage_class]
    assert sc["provisioner"] == DRIVER
    parameters = {
        **sc.get("parameters", {}),
        "csi.storage.k8s.io/pvc/name": name,
        "csi.storage.k8s.io/pvc/namespace": "default",
        "csi.storage.k8s.io/pv/name": f"pv-{name}",
    }
    mutable = {}
    if attributes_class is not None:
        vac = ATTRIBUTE_CLASSES[attributes_class]
        assert vac["driverName"] == DRIVER
        mutable = vac["parameters"]
    size = 100 * (1 << 30) if parameters.get("multishare") == "true" else TIB
    return csi_pb2.CreateVolumeRequest(
        name=f"pvc-{name}",
        parameters=parameters,
        mutable_parameters=mutable,
        volume_capabilities=[mount_cap()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
    )


def _performance(d: Driver, volume: csi_pb2.Volume) -> Performance | None:
    ref = VolumeRef.parse(volume.volume_id)
    assert ref is not None, volume.volume_id
    return d.cloud.get_instance(ref.location, ref.instance).performance


def test_the_table_names_every_example_storage_class() -> None:
    assert set(WITH_ATTRIBUTES_CLASS) == set(STORAGE_CLASSES)
    assert ATTRIBUTE_CLASSES, "no VolumeAttributesClass example to test"


@pytest.mark.parametrize("storage_class", sorted(STORAGE_CLASSES))
def test_every_example_storage_class_provisions(driver: Driver, storage_class: str) -> None:
    volume = driver.ctl.CreateVolume(_request("plain", storage_class, None)).volume
    if ShareRef.parse(volume.volume_id) is None:
        performance = STORAGE_CLASSES[storage_class]["parameters"]
        wanted = performance.get("max-iops-per-tb")
        assert _performance(driver, volume) == (Performance(iops_per_tb=int(wanted)) if wanted else None)


@pytest.mark.parametrize("attributes_class", sorted(ATTRIBUTE_CLASSES))
@pytest.mark.parametrize("storage_class", sorted(STORAGE_CLASSES))
def test_every_example_pair_with_an_attributes_class(
    driver: Driver, storage_class: str, attributes_class: str
) -> None:
    request = _request("vac", storage_class, attributes_class)
    refusal = WITH_ATTRIBUTES_CLASS[storage_class]
    if refusal is None:
        volume = driver.ctl.CreateVolume(request).volume
        wanted = ATTRIBUTE_CLASSES[attributes_class]["parameters"]
        expected = Performance(
            fixed_iops=int(wanted["max-iops"]) if "max-iops" in wanted else None,
            iops_per_tb=int(wanted["max-iops-per-tb"]) if "max-iops-per-tb" in wanted else None,
        )
        assert _performance(driver, volume) == expected  # the class's, not the StorageClass's
    else:
        with pytest.raises(grpc.RpcError) as info:
            driver.ctl.CreateVolume(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refusal in str(info.value.details())
        assert driver.cloud.list_instances() == []
