"""GCP labels on the instances and backups the driver creates: the driver's own, the user's, the cluster's.

Label syntax (GCP's rules) is :data:`csi.filestore.LABEL_KEY`/:data:`~csi.filestore.LABEL_VALUE`; here is
which labels the driver writes, how a user's labels are read, and which ones a user may not set.
"""

from __future__ import annotations

import re

from csi import validation
from csi.filestore import LABEL_KEY, LABEL_VALUE, MAX_LABELS, region_of

#: The labels parameter of a StorageClass and of a VolumeSnapshotClass: ``k1=v1,k2=v2``.
P_LABELS = "labels"
#: The external-provisioner's metadata parameters (with --extra-create-metadata).
P_PVC_NAME = "csi.storage.k8s.io/pvc/name"
P_PVC_NAMESPACE = "csi.storage.k8s.io/pvc/namespace"
P_PV_NAME = "csi.storage.k8s.io/pv/name"

#: Labels the driver sets from the external-provisioner's metadata parameters.
METADATA_LABELS = {
    P_PVC_NAME: "kubernetes_io_created-for_pvc_name",
    P_PVC_NAMESPACE: "kubernetes_io_created-for_pvc_namespace",
    P_PV_NAME: "kubernetes_io_created-for_pv_name",
}
LABEL_CREATED_BY = "storage_gke_io_created-by"
#: The label a multishare instance carries the StorageClass's instance-storageclass-label in.
LABEL_STORAGE_CLASS = "storage_gke_io_storage-class-id"
#: The labels naming the cluster (--gke-cluster-name) and its location on multishare instances, which
#: gcp-filestore-csi-driver's multishare reconciler reads to tell the instances its cluster manages.
LABEL_CLUSTER_NAME = "storage_gke_io_cluster_name"
LABEL_CLUSTER_LOCATION = "storage_gke_io_cluster_location"
#: An instance takes a new share only when these labels equal the new instance's would-be labels
#: (gcp-filestore-csi-driver's isMatchedInstance); the two cluster labels also decide which
#: instances a controller may grow, shrink or delete: never another cluster's.
MULTISHARE_MATCH_LABELS = (LABEL_STORAGE_CLASS, LABEL_CLUSTER_LOCATION, LABEL_CLUSTER_NAME)
CLUSTER_LABELS = (LABEL_CLUSTER_NAME, LABEL_CLUSTER_LOCATION)


def parse_labels(text: str, field: str = "parameters") -> dict[str, str]:
    """``k1=v1,k2=v2`` checked against GCP's label rules; errors name ``field``."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
            raise validation.invalid(
                f"{field}: label {item!r} is not key=value with a lowercase key of at most 63 "
                "characters [a-z0-9_-] starting with a letter, and a value of at most 63 [a-z0-9_-]"
            )
        if key in labels:
            raise validation.invalid(f"{field}: label {key!r} is given twice")
        labels[key] = value
    if len(labels) > MAX_LABELS:
        raise validation.invalid(f"{field}: more than {MAX_LABELS} labels")
    return labels


def cluster_labels(name: str, zone: str, regional: bool) -> dict[str, str]:
    """``--gke-cluster-name`` (may be empty) and the cluster's location (its zone; its region with
    ``--is-regional``) as multishare instance labels, as gcp-filestore-csi-driver sets them.

    Both are always set: they are how a controller tells its own cluster's instances (see
    :data:`MULTISHARE_MATCH_LABELS`), and an instance without them is never one of them.
    """
    if not LABEL_VALUE.match(name):
        raise validation.invalid(f"--gke-cluster-name {name!r} is not a label value (at most 63 [a-z0-9_-])")
    return {LABEL_CLUSTER_NAME: name, LABEL_CLUSTER_LOCATION: region_of(zone) if regional else zone}


def created_by(driver_name: str) -> str:
    """The value of LABEL_CREATED_BY on the instances this driver creates."""
    return label_value(driver_name.replace(".", "_"))


def label_value(text: str) -> str:
    """A metadata value (a Kubernetes name) made into a valid label value."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def parse_extra_labels(text: str) -> dict[str, str]:
    """``--extra-labels``: labels as in a StorageClass, none of them one the driver sets itself."""
    labels = parse_labels(text, "--extra-labels")
    reserved = sorted(
        set(labels)
        & {LABEL_CREATED_BY, LABEL_CLUSTER_NAME, LABEL_CLUSTER_LOCATION, *METADATA_LABELS.values()}
    )
    if reserved:
        raise validation.invalid(f"--extra-labels: label(s) {reserved} are set by the driver itself")
    return labels
