"""Request parameters: StorageClass and VolumeSnapshotClass parameters, parsed and checked.

Everything here runs before any lock or cloud call, and every failure is INVALID_ARGUMENT naming
the parameter.  What Filestore itself accepts (tiers, protocols, connect modes) comes from
:mod:`csi.filestore`; the GCP label rules live here because only parameters carry labels.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from csi import validation
from csi.filestore import (
    CONNECT_MODES,
    DEFAULT_CONNECT_MODE,
    DEFAULT_NETWORK,
    DEFAULT_PROTOCOL,
    DEFAULT_TIER_ALIAS,
    NFS_V41_TIERS,
    PROTOCOLS,
    TIER_ALIASES,
)

# StorageClass parameters (matched case-insensitively).
P_TIER = "tier"
P_NETWORK = "network"
P_CONNECT_MODE = "connect-mode"
P_RESERVED_IP_RANGE = "reserved-ip-range"
P_RESERVED_IPV4_CIDR = "reserved-ipv4-cidr"
P_KMS_KEY = "instance-encryption-kms-key"
P_LABELS = "labels"
P_PROTOCOL = "protocol"
P_PVC_NAME = "csi.storage.k8s.io/pvc/name"
P_PVC_NAMESPACE = "csi.storage.k8s.io/pvc/namespace"
P_PV_NAME = "csi.storage.k8s.io/pv/name"
#: VolumeSnapshotClass parameters.
P_SNAPSHOT_TYPE = "type"
SNAPSHOT_METADATA = frozenset(
    {
        "csi.storage.k8s.io/volumesnapshot/name",
        "csi.storage.k8s.io/volumesnapshot/namespace",
        "csi.storage.k8s.io/volumesnapshotcontent/name",
    }
)

#: Labels the driver sets from the external-provisioner's metadata parameters.
METADATA_LABELS = {
    P_PVC_NAME: "kubernetes_io_created-for_pvc_name",
    P_PVC_NAMESPACE: "kubernetes_io_created-for_pvc_namespace",
    P_PV_NAME: "kubernetes_io_created-for_pv_name",
}
LABEL_CREATED_BY = "storage_gke_io_created-by"

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MAX_LABELS = 64


@dataclass(frozen=True, slots=True)
class VolumeParams:
    """A StorageClass's parameters, checked."""

    tier: str = TIER_ALIASES[DEFAULT_TIER_ALIAS]
    network: str = DEFAULT_NETWORK
    connect_mode: str = DEFAULT_CONNECT_MODE
    reserved_ip_range: str | None = None
    reserved_ipv4_cidr: str | None = None
    kms_key: str | None = None
    protocol: str = DEFAULT_PROTOCOL
    labels: Mapping[str, str] = field(default_factory=dict)


def parse_volume_params(params: Mapping[str, str], driver_name: str) -> VolumeParams:
    """Check CreateVolume parameters (keys case-insensitive); unknown keys are INVALID_ARGUMENT."""
    validation.check_map(params, "parameters")
    values: dict[str, str] = {}
    user_labels: dict[str, str] = {}
    labels = {LABEL_CREATED_BY: created_by(driver_name)}
    for raw_key, value in params.items():
        key = raw_key.lower()
        if key in METADATA_LABELS:
            labels[METADATA_LABELS[key]] = label_value(value)
        elif key == P_LABELS:
            user_labels = parse_labels(value)
        elif key in (
            P_TIER,
            P_NETWORK,
            P_CONNECT_MODE,
            P_RESERVED_IP_RANGE,
            P_RESERVED_IPV4_CIDR,
            P_KMS_KEY,
            P_PROTOCOL,
        ):
            values[key] = value
        else:
            raise validation.invalid(f"parameters: unknown parameter {raw_key!r}")
    for key in user_labels:
        if key in labels:
            raise validation.invalid(f"parameters: label {key!r} is reserved for the driver")
    labels.update(user_labels)

    tier = TIER_ALIASES.get(values.get(P_TIER, DEFAULT_TIER_ALIAS).lower())
    if tier is None:
        raise validation.invalid(f"parameters: unknown tier {values[P_TIER]!r} (one of {sorted(TIER_ALIASES)})")
    connect_mode = values.get(P_CONNECT_MODE, DEFAULT_CONNECT_MODE).upper()
    if connect_mode not in CONNECT_MODES:
        raise validation.invalid(f"parameters: connect-mode must be one of {sorted(CONNECT_MODES)}")
    protocol = values.get(P_PROTOCOL, DEFAULT_PROTOCOL).upper().replace(".", "_")
    if protocol not in PROTOCOLS:
        raise validation.invalid(f"parameters: protocol must be one of {sorted(PROTOCOLS)}")
    if protocol == "NFS_V4_1" and tier not in NFS_V41_TIERS:
        raise validation.invalid(f"parameters: NFS_V4_1 needs one of the tiers {sorted(NFS_V41_TIERS)}")
    ip_range = values.get(P_RESERVED_IP_RANGE) or None
    cidr = values.get(P_RESERVED_IPV4_CIDR) or None
    if ip_range and cidr:
        raise validation.invalid("parameters: give reserved-ip-range or reserved-ipv4-cidr, not both")
    if connect_mode == "PRIVATE_SERVICE_ACCESS":
        if cidr or (ip_range and is_cidr(ip_range)):
            raise validation.invalid(
                "parameters: with PRIVATE_SERVICE_ACCESS, reserved-ip-range must name an allocated range"
            )
    elif ip_range and not is_cidr(ip_range):
        raise validation.invalid("parameters: reserved-ip-range must be a CIDR block with DIRECT_PEERING")
    if cidr and not is_cidr(cidr):
        raise validation.invalid("parameters: reserved-ipv4-cidr must be a CIDR block")
    return VolumeParams(
        tier=tier,
        network=values.get(P_NETWORK) or DEFAULT_NETWORK,
        connect_mode=connect_mode,
        reserved_ip_range=ip_range,
        reserved_ipv4_cidr=cidr,
        kms_key=values.get(P_KMS_KEY) or None,
        protocol=protocol,
        labels=labels,
    )


def parse_labels(text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` checked against GCP's label rules."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise validation.invalid(
                f"parameters: label {item!r} is not key=value with a lowercase key of at most 63 "
                "characters [a-z0-9_-] starting with a letter, and a value of at most 63 [a-z0-9_-]"
            )
        if key in labels:
            raise validation.invalid(f"parameters: label {key!r} is given twice")
        labels[key] = value
    if len(labels) > _MAX_LABELS:
        raise validation.invalid(f"parameters: more than {_MAX_LABELS} labels")
    return labels


def created_by(driver_name: str) -> str:
    """The value of LABEL_CREATED_BY on the instances this driver creates."""
    return label_value(driver_name.replace(".", "_"))


def label_value(text: str) -> str:
    """A metadata value (a Kubernetes name) made into a valid label value."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def is_cidr(text: str) -> bool:
    """Whether ``text`` is an address block written with a prefix length (``10.0.0.0/24``)."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def check_snapshot_params(params: Mapping[str, str]) -> None:
    """Check CreateSnapshot parameters: only ``type: backup`` and the snapshotter's metadata."""
    validation.check_map(params, "parameters")
    for key, value in params.items():
        lowered = key.lower()
        if lowered == P_SNAPSHOT_TYPE:
            if value.lower() != "backup":
                raise validation.invalid("parameters: only snapshots of type 'backup' are supported")
        elif lowered not in SNAPSHOT_METADATA:
            raise validation.invalid(f"parameters: unknown parameter {key!r}")
