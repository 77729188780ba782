"""StorageClass parameters (and a VolumeAttributesClass's mutable ones), parsed and checked.

Everything here runs before any lock or cloud call, and every failure is INVALID_ARGUMENT naming
the parameter.  What Filestore itself accepts (tiers, protocols, connect modes) comes from
:mod:`csi.filestore`; the labels the parameters carry are read by :mod:`csi.controller.labels`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from csi import validation
from csi.cloud import NfsExportRule, Performance, export_rules_error
from csi.controller.labels import (
    LABEL_CREATED_BY,
    METADATA_LABELS,
    P_LABELS,
    created_by,
    label_value,
    parse_labels,
)
from csi.controller.reserved_ip import is_cidr
from csi.filestore import (
    CONNECT_MODES,
    DEFAULT_CONNECT_MODE,
    DEFAULT_MULTISHARE_TIER_ALIAS,
    DEFAULT_NETWORK,
    DEFAULT_PROTOCOL,
    DEFAULT_TIER_ALIAS,
    GIB,
    LABEL_VALUE,
    MAX_LABELS,
    MAX_TAGS,
    MAX_VOLUME_SIZES_GIB,
    MULTISHARE_TIERS,
    NFS_V41_TIERS,
    PROTOCOLS,
    TIER_ALIASES,
    tag_error,
)

# StorageClass parameters (matched case-insensitively).
P_TIER = "tier"
P_NETWORK = "network"
P_CONNECT_MODE = "connect-mode"
P_RESERVED_IP_RANGE = "reserved-ip-range"
P_RESERVED_IPV4_CIDR = "reserved-ipv4-cidr"
P_KMS_KEY = "instance-encryption-kms-key"
P_PROTOCOL = "protocol"
#: NFS mount options for every mount of the volume, passed to the node in volume_context (GFD #1123).
P_MOUNT_OPTIONS = "mount-options"
#: Multishare StorageClass parameters (gcp-filestore-csi-driver's names).
P_MULTISHARE = "multishare"
P_INSTANCE_SC_LABEL = "instance-storageclass-label"
P_MAX_VOLUME_SIZE = "max-volume-size"
P_RESOURCE_TAGS = "resource-tags"
P_NFS_EXPORT_OPTIONS = "nfs-export-options-on-create"
#: Custom performance: StorageClass parameters, and the only VolumeAttributesClass (mutable) ones.
P_MAX_IOPS = "max-iops"
P_MAX_IOPS_PER_TB = "max-iops-per-tb"
MUTABLE_PARAMETERS = frozenset({P_MAX_IOPS, P_MAX_IOPS_PER_TB})
#: gcp-filestore-csi-driver spells the performance keys with underscores; both spellings work.
_KEY_ALIASES = {"max_iops": P_MAX_IOPS, "max_iops_per_tb": P_MAX_IOPS_PER_TB}
#: Parameters a multishare StorageClass may not give: custom performance, NFS export rules and
#: resource tags are settings of a whole instance, which a share's PVC cannot own
#: (see docs/gfd-compatibility.md).
MULTISHARE_REFUSED = (P_MAX_IOPS, P_MAX_IOPS_PER_TB, P_NFS_EXPORT_OPTIONS, P_RESOURCE_TAGS)


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
    performance: Performance | None = None
    resource_tags: Mapping[str, str] = field(default_factory=dict)
    nfs_export_options: tuple[NfsExportRule, ...] = ()
    mount_options: str = ""
    #: Multishare: the instance-storageclass-label (None: one instance per volume).
    instance_label: str | None = None
    #: Multishare: the largest share (GiB), which sets how many shares an instance holds.
    max_volume_gib: int = MAX_VOLUME_SIZES_GIB[-1]


def parse_volume_params(
    params: Mapping[str, str],
    driver_name: str,
    mutable: Mapping[str, str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> VolumeParams:
    """Check CreateVolume parameters (keys case-insensitive); unknown keys are INVALID_ARGUMENT.

    ``mutable`` (CreateVolume's mutable_parameters, from a VolumeAttributesClass) may set the
    performance keys only; when it sets any, it replaces every performance key of ``params``.
    ``extra_labels`` (the controller's ``--extra-labels``) go on every instance and win over a
    StorageClass label of the same key, as in gcp-filestore-csi-driver.
    """
    validation.check_map(params, "parameters")
    values: dict[str, str] = {}
    user_labels: dict[str, str] = {}
    labels = {LABEL_CREATED_BY: created_by(driver_name)}
    # A VolumeAttributesClass's performance replaces the StorageClass's whole performance setting
    # (the CSI spec: mutable_parameters take precedence), so max-iops there wins over max-iops-per-tb here.
    performance = _mutable(mutable or {}, "mutable_parameters") or {
        _key(k): v for k, v in params.items() if _key(k) in MUTABLE_PARAMETERS
    }
    for raw_key, value in params.items():
        key = _key(raw_key)
        if key in MUTABLE_PARAMETERS:
            continue
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
            P_RESOURCE_TAGS,
            P_NFS_EXPORT_OPTIONS,
            P_MOUNT_OPTIONS,
            P_MULTISHARE,
            P_INSTANCE_SC_LABEL,
            P_MAX_VOLUME_SIZE,
        ):
            values[key] = value
        else:
            raise validation.invalid(f"parameters: unknown parameter {raw_key!r}")
    for key in user_labels:
        if key in labels:
            raise validation.invalid(f"parameters: label {key!r} is reserved for the driver")
    labels.update(user_labels)
    labels.update(extra_labels or {})
    if len(labels) > MAX_LABELS:
        raise validation.invalid(f"parameters: more than {MAX_LABELS} labels with the driver's own")
    mount_options = values.get(P_MOUNT_OPTIONS, "")
    validation.check_mount_options(mount_options, f"parameters: {P_MOUNT_OPTIONS}")

    multishare = _multishare(values)
    if multishare:
        given = {**values, **performance}
        refused = [key for key in MULTISHARE_REFUSED if given.get(key, "").strip()]
        if refused:
            raise validation.invalid(f"parameters: {', '.join(refused)} cannot be used with multishare")
    default_tier = DEFAULT_MULTISHARE_TIER_ALIAS if multishare else DEFAULT_TIER_ALIAS
    tier = TIER_ALIASES.get(values.get(P_TIER, default_tier).lower())
    if tier is None:
        raise validation.invalid(
            f"parameters: unknown tier {values[P_TIER]!r} (one of {sorted(TIER_ALIASES)})"
        )
    connect_mode = values.get(P_CONNECT_MODE, DEFAULT_CONNECT_MODE).upper()
    if connect_mode not in CONNECT_MODES:
        raise validation.invalid(f"parameters: connect-mode must be one of {sorted(CONNECT_MODES)}")
    protocol = values.get(P_PROTOCOL, DEFAULT_PROTOCOL).upper().replace(".", "_")
    if protocol not in PROTOCOLS:
        raise validation.invalid(f"parameters: protocol must be one of {sorted(PROTOCOLS)}")
    if multishare and tier not in MULTISHARE_TIERS:
        raise validation.invalid(f"parameters: multishare needs one of the tiers {sorted(MULTISHARE_TIERS)}")
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
        performance=parse_performance(performance, "parameters"),
        resource_tags=parse_resource_tags(values.get(P_RESOURCE_TAGS, ""), "parameters"),
        nfs_export_options=parse_nfs_export_options(values.get(P_NFS_EXPORT_OPTIONS, "")),
        mount_options=mount_options,
        instance_label=values[P_INSTANCE_SC_LABEL] if multishare else None,
        max_volume_gib=_max_volume_gib(values) if multishare else MAX_VOLUME_SIZES_GIB[-1],
    )


def _key(raw_key: str) -> str:
    key = raw_key.lower()
    return _KEY_ALIASES.get(key, key)


def _mutable(params: Mapping[str, str], what: str) -> dict[str, str]:
    validation.check_map(params, what)
    values = {}
    for raw_key, value in params.items():
        if _key(raw_key) not in MUTABLE_PARAMETERS:
            raise validation.invalid(
                f"{what}: {raw_key!r} cannot be changed (only {sorted(MUTABLE_PARAMETERS)})"
            )
        values[_key(raw_key)] = value
    return values


def parse_mutable_params(params: Mapping[str, str]) -> Performance | None:
    """ControllerModifyVolume's mutable_parameters: the performance keys, checked for syntax."""
    return parse_performance(_mutable(params, "mutable_parameters"), "mutable_parameters")


def parse_performance(values: Mapping[str, str], what: str) -> Performance | None:
    """``max-iops`` / ``max-iops-per-tb`` (canonical keys) as a Performance; None when neither is set.

    Only the syntax is checked here; whether the tier and size allow the value is
    :func:`csi.filestore.performance_error`, once the size is known.
    """
    numbers: dict[str, int] = {}
    for key in (P_MAX_IOPS, P_MAX_IOPS_PER_TB):
        text = values.get(key, "").strip()
        if not text:
            continue
        if not text.isdigit():
            raise validation.invalid(f"{what}: {key} must be a whole number, not {text!r}")
        numbers[key] = int(text)
    if len(numbers) == 2:
        raise validation.invalid(f"{what}: give {P_MAX_IOPS} or {P_MAX_IOPS_PER_TB}, not both")
    if not numbers:
        return None
    return Performance(fixed_iops=numbers.get(P_MAX_IOPS), iops_per_tb=numbers.get(P_MAX_IOPS_PER_TB))


def parse_resource_tags(text: str, what: str) -> dict[str, str]:
    """``<parentID>/<tagKey>/<tagValue>,...`` (gcp-filestore-csi-driver's format) as the API's
    ``tags`` map ``{"<parentID>/<tagKey>": "<tagValue>"}``, checked so a bad tag fails before any
    instance exists.  A key given twice with different values is refused, not silently resolved.
    """
    tags: dict[str, str] = {}
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    for item in items:
        if item.count("/") != 2:
            raise validation.invalid(f"{what}: resource tag {item!r} is not <parentID>/<tagKey>/<tagValue>")
        key, _, value = item.rpartition("/")
        problem = tag_error(key, value)
        if problem:
            raise validation.invalid(f"{what}: resource tag {item!r}: {problem}")
        if tags.get(key, value) != value:
            raise validation.invalid(f"{what}: resource tag {key!r} is given two values")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise validation.invalid(f"{what}: more than {MAX_TAGS} resource tags")
    return tags


_EXPORT_KEYS = {"ipRanges", "accessMode", "squashMode", "anonUid", "anonGid"}


def parse_nfs_export_options(text: str) -> tuple[NfsExportRule, ...]:
    """``nfs-export-options-on-create``: a JSON list of access rules, as gcp-filestore-csi-driver
    reads it (keys ``ipRanges``, ``accessMode``, ``squashMode``, ``anonUid``, ``anonGid``; unknown
    keys refused; ids as strings like ``"65534"`` or as numbers), checked against the API's rules.
    """
    if not text.strip():
        return ()
    what = f"parameters: {P_NFS_EXPORT_OPTIONS}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise validation.invalid(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise validation.invalid(f"{what} must be a JSON list of access rules")
    rules = tuple(_export_rule(item, f"{what}[{index}]") for index, item in enumerate(data))
    problem = export_rules_error(rules)
    if problem:
        raise validation.invalid(f"{what}: {problem}")
    return rules


def _export_rule(item: object, what: str) -> NfsExportRule:
    if not isinstance(item, dict):
        raise validation.invalid(f"{what} must be a JSON object")
    unknown = set(item) - _EXPORT_KEYS
    if unknown:
        raise validation.invalid(f"{what}: unknown key(s) {sorted(unknown)} (known: {sorted(_EXPORT_KEYS)})")
    ip_ranges = item.get("ipRanges", [])
    if not isinstance(ip_ranges, list) or not all(isinstance(r, str) for r in ip_ranges):
        raise validation.invalid(f"{what}: ipRanges must be a list of strings")
    modes = {}
    for key, default in (("accessMode", "READ_WRITE"), ("squashMode", "NO_ROOT_SQUASH")):
        value = item.get(key, default)
        if not isinstance(value, str):
            raise validation.invalid(f"{what}: {key} must be a string")
        modes[key] = value
    return NfsExportRule(
        ip_ranges=tuple(ip_ranges),
        access_mode=modes["accessMode"],
        squash_mode=modes["squashMode"],
        anon_uid=_anon_id(item.get("anonUid"), f"{what}: anonUid"),
        anon_gid=_anon_id(item.get("anonGid"), f"{what}: anonGid"),
    )


def _anon_id(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise validation.invalid(f"{what} must be a non-negative whole number")


def _multishare(values: Mapping[str, str]) -> bool:
    """Whether the parameters ask for multishare; its label is then required and checked."""
    flag = values.get(P_MULTISHARE, "false").lower()
    if flag not in ("true", "false"):
        raise validation.invalid("parameters: multishare must be 'true' or 'false'")
    if flag == "false":
        for key in (P_INSTANCE_SC_LABEL, P_MAX_VOLUME_SIZE):
            if key in values:
                raise validation.invalid(f"parameters: {key} needs multishare: 'true'")
        return False
    label = values.get(P_INSTANCE_SC_LABEL, "")
    if not label:
        raise validation.invalid(f"parameters: multishare needs a non-empty {P_INSTANCE_SC_LABEL}")
    if not LABEL_VALUE.match(label):
        raise validation.invalid(
            f"parameters: {P_INSTANCE_SC_LABEL} must be a label value (at most 63 of [a-z0-9_-])"
        )
    return True


_QUANTITY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti)?$")
_BINARY_SUFFIX = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def _max_volume_gib(values: Mapping[str, str]) -> int:
    """``max-volume-size`` as a Kubernetes quantity ("128Gi" ... "1Ti"), one of the sizes GFD allows."""
    text = values.get(P_MAX_VOLUME_SIZE)
    if text is None:
        return MAX_VOLUME_SIZES_GIB[-1]
    match = _QUANTITY.match(text.strip())
    size = int(match.group(1)) * _BINARY_SUFFIX[match.group(2)] if match else 0
    allowed = [gib * GIB for gib in MAX_VOLUME_SIZES_GIB]
    if size not in allowed:
        raise validation.invalid(
            f"parameters: {P_MAX_VOLUME_SIZE} {text!r} is not one of "
            + ", ".join(f"'{gib}Gi'" for gib in MAX_VOLUME_SIZES_GIB)
        )
    return size // GIB
