"""VolumeSnapshotClass parameters: a snapshot is a Filestore backup, in a region, with labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from csi import validation
from csi.controller.labels import LABEL_CREATED_BY, P_LABELS, created_by, label_value, parse_labels
from csi.filestore import LOCATION, region_of

#: VolumeSnapshotClass parameters.
P_SNAPSHOT_TYPE = "type"
P_SNAPSHOT_LOCATION = "location"
#: The label a backup carries with the VolumeSnapshot's name (as gcp-filestore-csi-driver sets it).
LABEL_SNAPSHOT_NAME = "storage_gke_io_created-for_csi_snapshot_name"
SNAPSHOT_METADATA = frozenset(
    {
        "csi.storage.k8s.io/volumesnapshot/name",
        "csi.storage.k8s.io/volumesnapshot/namespace",
        "csi.storage.k8s.io/volumesnapshotcontent/name",
    }
)


@dataclass(frozen=True, slots=True)
class SnapshotParams:
    """A VolumeSnapshotClass's parameters, checked: the backup's region (None: the volume's own)
    and the labels the backup carries."""

    location: str | None
    labels: Mapping[str, str]


def check_snapshot_params(params: Mapping[str, str], driver_name: str, snapshot_name: str) -> SnapshotParams:
    """Check CreateSnapshot parameters: ``type: backup``, ``location`` (a region), ``labels`` and
    the snapshotter's metadata.  Labels are the driver's, the user's and the snapshot's name."""
    validation.check_map(params, "parameters")
    location = None
    labels = {LABEL_CREATED_BY: created_by(driver_name), LABEL_SNAPSHOT_NAME: label_value(snapshot_name)}
    user_labels: dict[str, str] = {}
    for key, value in params.items():
        lowered = key.lower()
        if lowered == P_SNAPSHOT_TYPE:
            if value.lower() != "backup":
                raise validation.invalid("parameters: only snapshots of type 'backup' are supported")
        elif lowered == P_SNAPSHOT_LOCATION:
            if not value or region_of(value) != value or not LOCATION.match(value):
                raise validation.invalid(f"parameters: location {value!r} must be a region, e.g. us-central1")
            location = value
        elif lowered == P_LABELS:
            user_labels = parse_labels(value)
        elif lowered not in SNAPSHOT_METADATA:
            raise validation.invalid(f"parameters: unknown parameter {key!r}")
    for key in user_labels:
        if key in labels:
            raise validation.invalid(f"parameters: label {key!r} is reserved for the driver")
    labels.update(user_labels)
    return SnapshotParams(location, labels)
