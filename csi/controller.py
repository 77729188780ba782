"""The CSI Controller service: Filestore instances as volumes, backups as snapshots.

Every RPC validates first, then takes the per-volume lock, then talks to the
cloud.  Creation is idempotent by name (the instance id is derived from it),
deletion is idempotent by id, and a long-running cloud operation that outlasts
``operation_timeout`` surfaces as a retryable DEADLINE_EXCEEDED: the CO calls
again and finds the instance (or backup) in progress or done.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from google.protobuf import timestamp_pb2

from csi import validation
from csi.cloud import Backup, CloudError, ErrorKind, FilestoreCloud, Instance, OperationPending
from csi.errors import CsiError
from csi.locks import VolumeLocks
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.volume_id import MAX_ID_BYTES, BackupRef, VolumeRef, cloud_name, region_of

log = logging.getLogger(__name__)

GIB = 1 << 30
TOPOLOGY_KEY_ZONE = "topology.gke.io/zone"

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
_SNAPSHOT_METADATA = frozenset(
    {
        "csi.storage.k8s.io/volumesnapshot/name",
        "csi.storage.k8s.io/volumesnapshot/namespace",
        "csi.storage.k8s.io/volumesnapshotcontent/name",
    }
)

#: Labels the driver sets from the external-provisioner's metadata parameters.
_METADATA_LABELS = {
    P_PVC_NAME: "kubernetes_io_created-for_pvc_name",
    P_PVC_NAMESPACE: "kubernetes_io_created-for_pvc_namespace",
    P_PV_NAME: "kubernetes_io_created-for_pv_name",
}
LABEL_CREATED_BY = "storage_gke_io_created-by"

# Volume context keys the node service reads.
CTX_IP = "ip"
CTX_VOLUME = "volume"
CTX_PROTOCOL = "fileProtocol"

_TIERS = {
    "standard": "BASIC_HDD",
    "basic_hdd": "BASIC_HDD",
    "premium": "BASIC_SSD",
    "basic_ssd": "BASIC_SSD",
    "enterprise": "ENTERPRISE",
    "high_scale_ssd": "HIGH_SCALE_SSD",
    "zonal": "ZONAL",
    "regional": "REGIONAL",
}
_TIB = 1024  # GiB
#: Capacity bands per tier, in GiB (a size must fall inside one band).
TIER_CAPACITY_GIB: dict[str, tuple[tuple[int, int], ...]] = {
    "BASIC_HDD": ((100, 639 * _TIB // 10),),
    "BASIC_SSD": ((5 * _TIB // 2, 639 * _TIB // 10),),
    "ENTERPRISE": ((_TIB, 10 * _TIB),),
    "HIGH_SCALE_SSD": ((10 * _TIB, 100 * _TIB),),
    "ZONAL": ((_TIB, 9984), (10 * _TIB, 100 * _TIB)),
    "REGIONAL": ((100, 9984), (10 * _TIB, 100 * _TIB)),
}
_REGIONAL_TIERS = frozenset({"ENTERPRISE", "REGIONAL"})
_NFS_V41_TIERS = frozenset({"ZONAL", "REGIONAL", "ENTERPRISE"})
_PROTOCOLS = {"NFS_V3", "NFS_V4_1"}
_CONNECT_MODES = {"DIRECT_PEERING", "PRIVATE_SERVICE_ACCESS"}
#: Size of the block carved out of ``reserved-ipv4-cidr`` for one instance, per tier.
_IP_RANGE_PREFIX = {"BASIC_HDD": 29, "BASIC_SSD": 29, "ENTERPRISE": 26, "REGIONAL": 26}
_IP_RANGE_PREFIX_DEFAULT = 24
#: Instance states in which waiting is the answer.
_TRANSIENT_STATES = frozenset({"CREATING", "REPAIRING", "RESTORING", "REVERTING", "PROMOTING"})

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MAX_LABELS = 64

_T = TypeVar("_T")
_RPC = csi_pb2.ControllerServiceCapability.RPC
CONTROLLER_CAPABILITIES = (
    _RPC.CREATE_DELETE_VOLUME,
    _RPC.EXPAND_VOLUME,
    _RPC.CREATE_DELETE_SNAPSHOT,
    _RPC.LIST_SNAPSHOTS,
    _RPC.LIST_VOLUMES,
)


def _error(code: grpc.StatusCode, message: str) -> CsiError:
    return CsiError(code, message)


# --- parameters --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolumeParams:
    """A StorageClass's parameters, checked."""

    tier: str = "BASIC_HDD"
    network: str = "default"
    connect_mode: str = "DIRECT_PEERING"
    reserved_ip_range: str | None = None
    reserved_ipv4_cidr: str | None = None
    kms_key: str | None = None
    protocol: str = "NFS_V3"
    labels: Mapping[str, str] = field(default_factory=dict)


def parse_volume_params(params: Mapping[str, str], driver_name: str) -> VolumeParams:
    """Check CreateVolume parameters (keys case-insensitive); unknown keys are INVALID_ARGUMENT."""
    validation.check_map(params, "parameters")
    values: dict[str, str] = {}
    user_labels: dict[str, str] = {}
    labels = {LABEL_CREATED_BY: _label_value(driver_name.replace(".", "_"))}
    for raw_key, value in params.items():
        key = raw_key.lower()
        if key in _METADATA_LABELS:
            labels[_METADATA_LABELS[key]] = _label_value(value)
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

    tier = _TIERS.get(values.get(P_TIER, "standard").lower())
    if tier is None:
        raise validation.invalid(f"parameters: unknown tier {values[P_TIER]!r} (one of {sorted(_TIERS)})")
    connect_mode = values.get(P_CONNECT_MODE, "DIRECT_PEERING").upper()
    if connect_mode not in _CONNECT_MODES:
        raise validation.invalid(f"parameters: connect-mode must be one of {sorted(_CONNECT_MODES)}")
    protocol = values.get(P_PROTOCOL, "NFS_V3").upper().replace(".", "_")
    if protocol not in _PROTOCOLS:
        raise validation.invalid(f"parameters: protocol must be one of {sorted(_PROTOCOLS)}")
    if protocol == "NFS_V4_1" and tier not in _NFS_V41_TIERS:
        raise validation.invalid(f"parameters: NFS_V4_1 needs one of the tiers {sorted(_NFS_V41_TIERS)}")
    ip_range = values.get(P_RESERVED_IP_RANGE) or None
    cidr = values.get(P_RESERVED_IPV4_CIDR) or None
    if ip_range and cidr:
        raise validation.invalid("parameters: give reserved-ip-range or reserved-ipv4-cidr, not both")
    if connect_mode == "PRIVATE_SERVICE_ACCESS":
        if cidr or (ip_range and _is_cidr(ip_range)):
            raise validation.invalid(
                "parameters: with PRIVATE_SERVICE_ACCESS, reserved-ip-range must name an allocated range"
            )
    elif ip_range and not _is_cidr(ip_range):
        raise validation.invalid("parameters: reserved-ip-range must be a CIDR block with DIRECT_PEERING")
    if cidr and not _is_cidr(cidr):
        raise validation.invalid("parameters: reserved-ipv4-cidr must be a CIDR block")
    return VolumeParams(
        tier=tier,
        network=values.get(P_NETWORK) or "default",
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


def _label_value(text: str) -> str:
    """A metadata value (a Kubernetes name) made into a valid label value."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


# --- capacity ----------------------------------------------------------------


def pick_capacity_gib(tier: str, capacity_range: csi_pb2.CapacityRange | None, floor_gib: int = 0) -> int:
    """The smallest size (GiB) the tier allows within the range; OUT_OF_RANGE when there is none.

    No range gives the tier's minimum; a required size below the minimum is
    rounded up to it (or to ``floor_gib``, e.g. a backup's size).
    """
    required = capacity_range.required_bytes if capacity_range is not None else 0
    limit = capacity_range.limit_bytes if capacity_range is not None else 0
    if required < 0 or limit < 0:
        raise validation.invalid("capacity_range: required_bytes and limit_bytes must not be negative")
    if limit and required > limit:
        raise _error(grpc.StatusCode.OUT_OF_RANGE, f"limit_bytes {limit} is below required_bytes {required}")
    wanted = max(-(-required // GIB), floor_gib)
    for low, high in TIER_CAPACITY_GIB[tier]:
        size = max(wanted, low)
        if size <= high and (not limit or size * GIB <= limit):
            return size
    bands = ", ".join(f"{low}-{high} GiB" for low, high in TIER_CAPACITY_GIB[tier])
    raise _error(
        grpc.StatusCode.OUT_OF_RANGE,
        f"no size for tier {tier} ({bands}) fits required_bytes {required} and limit_bytes {limit}",
    )


def _fits(capacity_gib: int, capacity_range: csi_pb2.CapacityRange | None) -> bool:
    if capacity_range is None:
        return True
    size = capacity_gib * GIB
    return size >= capacity_range.required_bytes and (
        not capacity_range.limit_bytes or size <= capacity_range.limit_bytes
    )


# --- the servicer ------------------------------------------------------------


class ControllerServicer(csi_pb2_grpc.ControllerServicer):
    """Provisions Filestore instances (one share each) and backups through a :class:`FilestoreCloud`."""

    def __init__(
        self,
        cloud: FilestoreCloud,
        *,
        driver_name: str,
        zone: str,
        locks: VolumeLocks,
        operation_timeout: float = 300.0,
    ) -> None:
        self._cloud = cloud
        self._driver_name = driver_name
        self._zone = zone
        self._locks = locks
        self._timeout = operation_timeout
        self._ip_mutex = threading.Lock()
        self._ip_reserving: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()

    def check_cloud(self) -> str | None:
        """A readiness check: None when the cloud answers a cheap call (a NOT_FOUND counts)."""
        try:
            self._cloud.get_instance(self._zone or "-", "csi-readiness-probe")
        except CloudError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                return f"the cloud does not answer: {exc}"
        return None

    # -- volumes --

    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        name = validation.check_string(request.name, "name")
        validation.check_capabilities(request.volume_capabilities)
        params = parse_volume_params(request.parameters, self._driver_name)
        source_ref = self._content_source(request)
        capacity_range = request.capacity_range if request.HasField("capacity_range") else None
        pick_capacity_gib(params.tier, capacity_range)  # OUT_OF_RANGE before any cloud call
        zone, zones = self._pick_zones(request.accessibility_requirements, params.tier)
        location = region_of(zone) if params.tier in _REGIONAL_TIERS else zone
        ref = VolumeRef(location, cloud_name(name))

        with self._locks.acquire(ref.instance):
            source: Backup | None = None
            if source_ref is not None:
                source = self._source_backup(source_ref)
            size = pick_capacity_gib(params.tier, capacity_range, source.capacity_gib if source else 0)
            wanted = Instance(
                name=ref.instance,
                location=location,
                tier=params.tier,
                capacity_gib=size,
                network=params.network,
                connect_mode=params.connect_mode,
                reserved_ip_range=params.reserved_ip_range,
                share_name=ref.share,
                labels=params.labels,
                protocol=params.protocol,
                kms_key=params.kms_key,
                source_backup=source.name if source else None,
            )
            instance = self._find_instance(location, ref.instance)
            if instance is None:
                instance = self._create(wanted, params.reserved_ipv4_cidr)
            self._check_compatible(name, instance, wanted, capacity_range)
            _check_ready(name, instance)
        volume = self._volume(instance, zones)
        if source is not None:
            volume.content_source.snapshot.snapshot_id = source.name
        return csi_pb2.CreateVolumeResponse(volume=volume)

    def _content_source(self, request: csi_pb2.CreateVolumeRequest) -> BackupRef | None:
        if not request.HasField("volume_content_source"):
            return None
        kind = request.volume_content_source.WhichOneof("type")
        if kind == "volume":
            raise validation.invalid("volume_content_source: cloning volumes is not supported")
        if kind != "snapshot":
            raise validation.invalid("volume_content_source: a snapshot source is required")
        snapshot_id = validation.check_string(
            request.volume_content_source.snapshot.snapshot_id, "volume_content_source.snapshot.snapshot_id"
        )
        ref = BackupRef.parse(snapshot_id)
        if ref is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"snapshot {snapshot_id} does not exist")
        return ref

    def _source_backup(self, ref: BackupRef) -> Backup:
        backup = self._get_backup(ref.snapshot_id)
        if backup is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"snapshot {ref.snapshot_id} does not exist")
        if backup.state != "READY":
            raise _error(
                grpc.StatusCode.UNAVAILABLE, f"snapshot {ref.snapshot_id} is {backup.state}, not READY"
            )
        return backup

    def _pick_zones(self, requirement: csi_pb2.TopologyRequirement, tier: str) -> tuple[str, list[str]]:
        """The zone to create in (preferred, then requisite, then our own), and the volume's zones."""
        preferred = _zones(requirement.preferred, "accessibility_requirements.preferred")
        requisite = _zones(requirement.requisite, "accessibility_requirements.requisite")
        candidates = preferred + requisite + ([self._zone] if self._zone else [])
        if not candidates:
            raise validation.invalid(
                "no zone: give accessibility_requirements or start the driver with --zone"
            )
        zone = candidates[0]
        if tier not in _REGIONAL_TIERS:
            return zone, [zone]
        region = region_of(zone)
        requested = [z for z in dict.fromkeys(preferred + requisite) if region_of(z) == region]
        return zone, requested or [zone]

    def _find_instance(self, location: str, name: str) -> Instance | None:
        try:
            return self._cloud.get_instance(location, name)
        except CloudError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return None
            raise

    def _create(self, wanted: Instance, cidr: str | None) -> Instance:
        with self._reserved_range(wanted, cidr) as ip_range:
            if ip_range:
                wanted = dataclasses.replace(wanted, reserved_ip_range=ip_range)
            try:
                return self._cloud.create_instance(wanted, wait=self._timeout)
            except OperationPending:
                raise
            except CloudError as exc:
                if exc.kind is not ErrorKind.ALREADY_EXISTS:
                    raise
        # Lost a race with another creator of the same id: judge what is there.
        found = self._find_instance(wanted.location, wanted.name)
        if found is None:
            raise _error(grpc.StatusCode.ABORTED, f"instance {wanted.name} appeared and vanished; retry")
        return found

    @contextmanager
    def _reserved_range(self, wanted: Instance, cidr: str | None) -> Iterator[str | None]:
        """A free block of ``cidr`` for the instance, held against concurrent creates until it exists."""
        if not cidr:
            yield None
            return
        prefix = _IP_RANGE_PREFIX.get(wanted.tier, _IP_RANGE_PREFIX_DEFAULT)
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen > prefix:
            raise validation.invalid(f"parameters: reserved-ipv4-cidr {cidr} is smaller than a /{prefix}")
        used = [
            ipaddress.ip_network(other.reserved_ip_range, strict=False)
            for other in self._cloud.list_instances("-")
            if other.network == wanted.network
            and other.reserved_ip_range
            and _is_cidr(other.reserved_ip_range)
        ]
        with self._ip_mutex:
            taken = used + list(self._ip_reserving)
            block = next(
                (
                    sub
                    for sub in network.subnets(new_prefix=prefix)
                    if not any(sub.version == t.version and sub.overlaps(t) for t in taken)
                ),
                None,
            )
            if block is None:
                raise _error(grpc.StatusCode.RESOURCE_EXHAUSTED, f"no free /{prefix} block left in {cidr}")
            self._ip_reserving.add(block)
        try:
            yield str(block)
        finally:
            with self._ip_mutex:
                self._ip_reserving.discard(block)

    def _check_compatible(
        self, name: str, found: Instance, wanted: Instance, capacity_range: csi_pb2.CapacityRange | None
    ) -> None:
        differences = [
            what
            for what, ok in (
                ("tier", found.tier == wanted.tier),
                ("capacity", _fits(found.capacity_gib, capacity_range)),
                ("network", not found.network or found.network == wanted.network),
                ("connect-mode", not found.connect_mode or found.connect_mode == wanted.connect_mode),
                ("protocol", not found.protocol or found.protocol == wanted.protocol),
                ("kms key", not found.kms_key or found.kms_key == wanted.kms_key),
                ("source", not found.source_backup or found.source_backup == wanted.source_backup),
            )
            if not ok
        ]
        if differences:
            raise _error(
                grpc.StatusCode.ALREADY_EXISTS,
                f"volume {name} exists with a different {', '.join(differences)}",
            )

    def _volume(self, instance: Instance, zones: Sequence[str] | None = None) -> csi_pb2.Volume:
        ref = VolumeRef(instance.location, instance.name, instance.share_name)
        if zones is None:
            zones = [instance.location] if instance.tier not in _REGIONAL_TIERS else []
        return csi_pb2.Volume(
            volume_id=ref.volume_id,
            capacity_bytes=instance.capacity_gib * GIB,
            volume_context={
                CTX_IP: instance.ip or "",
                CTX_VOLUME: instance.share_name,
                CTX_PROTOCOL: instance.protocol,
            },
            accessible_topology=[csi_pb2.Topology(segments={TOPOLOGY_KEY_ZONE: zone}) for zone in zones],
        )

    def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=1024)
        ref = VolumeRef.parse(volume_id)
        if ref is None:
            log.info("DeleteVolume: %s is not one of our volume ids; nothing to delete", volume_id)
            return csi_pb2.DeleteVolumeResponse()
        with self._locks.acquire(ref.instance):
            instance = self._find_instance(ref.location, ref.instance)
            if instance is None:
                return csi_pb2.DeleteVolumeResponse()
            if instance.state == "DELETING":
                raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, f"volume {volume_id} is still being deleted")
            _deleted(lambda: self._cloud.delete_instance(ref.location, ref.instance, wait=self._timeout))
        return csi_pb2.DeleteVolumeResponse()

    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=1024)
        if not request.volume_capabilities:
            raise validation.invalid("volume_capabilities is required")
        for index, capability in enumerate(request.volume_capabilities):
            validation.check_capability_shape(capability, f"volume_capabilities[{index}]")
        self._existing(volume_id)
        reasons = [
            reason
            for index, capability in enumerate(request.volume_capabilities)
            if (reason := validation.unsupported_reason(capability, f"volume_capabilities[{index}]"))
        ]
        if reasons:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(reasons))
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
            mutable_parameters=request.mutable_parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    def _existing(self, volume_id: str) -> Instance:
        """The instance behind ``volume_id``; NOT_FOUND for foreign ids and missing instances."""
        ref = VolumeRef.parse(volume_id)
        instance = self._find_instance(ref.location, ref.instance) if ref else None
        if instance is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"volume {volume_id} does not exist")
        return instance

    def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        created_by = _label_value(self._driver_name.replace(".", "_"))
        volumes = sorted(
            (
                self._volume(instance)
                for instance in self._cloud.list_instances("-")
                if instance.labels.get(LABEL_CREATED_BY) == created_by
            ),
            key=lambda volume: volume.volume_id,
        )
        page, token = _paginate(volumes, lambda v: v.volume_id, request, VolumeRef.parse)
        return csi_pb2.ListVolumesResponse(
            entries=[csi_pb2.ListVolumesResponse.Entry(volume=volume) for volume in page], next_token=token
        )

    def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=_RPC(type=kind)) for kind in CONTROLLER_CAPABILITIES
            ]
        )

    def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=1024)
        if not request.HasField("capacity_range"):
            raise validation.invalid("capacity_range is required")
        if request.HasField("volume_capability"):
            validation.check_capability(request.volume_capability)
        ref = VolumeRef.parse(volume_id)
        if ref is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"volume {volume_id} does not exist")
        with self._locks.acquire(ref.instance):
            instance = self._existing(volume_id)
            if instance.state != "READY":
                code = (
                    grpc.StatusCode.UNAVAILABLE
                    if instance.state in _TRANSIENT_STATES
                    else grpc.StatusCode.FAILED_PRECONDITION
                )
                raise _error(code, f"volume {volume_id} is {instance.state}, not READY")
            size = pick_capacity_gib(instance.tier, request.capacity_range)
            if size > instance.capacity_gib:
                instance = self._cloud.expand_instance(ref.location, ref.instance, size, wait=self._timeout)
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=instance.capacity_gib * GIB, node_expansion_required=False
        )

    # -- snapshots --

    def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateSnapshotResponse:
        name = validation.check_string(request.name, "name")
        volume_id = validation.check_string(request.source_volume_id, "source_volume_id", max_bytes=1024)
        _check_snapshot_params(request.parameters)
        ref = VolumeRef.parse(volume_id)
        if ref is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"source volume {volume_id} does not exist")
        region = region_of(ref.location)
        prefix = len(BackupRef(self._cloud.project, region, "").snapshot_id)
        backup_ref = BackupRef(self._cloud.project, region, cloud_name(name, min(63, MAX_ID_BYTES - prefix)))
        with self._locks.acquire(f"snapshot/{backup_ref.backup}", ref.instance):
            instance = self._existing(volume_id)
            source = f"projects/{self._cloud.project}/locations/{ref.location}/instances/{ref.instance}"
            backup = self._get_backup(backup_ref.snapshot_id)
            if backup is None:
                try:
                    backup = self._cloud.create_backup(
                        region, backup_ref.backup, source, ref.share, wait=self._timeout
                    )
                except OperationPending:
                    # Cut but not finished: report it not ready; the CO polls with CreateSnapshot.
                    backup = self._get_backup(backup_ref.snapshot_id)
                    if backup is None:
                        raise
            if backup.source_instance != source or backup.source_file_share != ref.share:
                raise _error(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"snapshot {name} exists for another source volume",
                )
        return csi_pb2.CreateSnapshotResponse(snapshot=_snapshot(backup, instance.share_name))

    def _get_backup(self, full_name: str) -> Backup | None:
        try:
            return self._cloud.get_backup(full_name)
        except CloudError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return None
            raise

    def DeleteSnapshot(
        self, request: csi_pb2.DeleteSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteSnapshotResponse:
        snapshot_id = validation.check_string(request.snapshot_id, "snapshot_id", max_bytes=1024)
        ref = BackupRef.parse(snapshot_id)
        if ref is None:
            return csi_pb2.DeleteSnapshotResponse()
        with self._locks.acquire(f"snapshot/{ref.backup}"):
            backup = self._get_backup(snapshot_id)
            if backup is None:
                return csi_pb2.DeleteSnapshotResponse()
            if backup.state == "DELETING":
                raise _error(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"snapshot {snapshot_id} is still being deleted"
                )
            _deleted(lambda: self._cloud.delete_backup(snapshot_id, wait=self._timeout))
        return csi_pb2.DeleteSnapshotResponse()

    def ListSnapshots(
        self, request: csi_pb2.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListSnapshotsResponse:
        backups: Iterable[Backup]
        if request.snapshot_id:
            ref = BackupRef.parse(request.snapshot_id)
            found = self._get_backup(request.snapshot_id) if ref else None
            backups = [found] if found else []
        else:
            backups = self._cloud.list_backups("-")
        snapshots = sorted(
            (
                snapshot
                for backup in backups
                if (snapshot := _snapshot(backup, backup.source_file_share)).source_volume_id
                and (not request.source_volume_id or snapshot.source_volume_id == request.source_volume_id)
            ),
            key=lambda snapshot: snapshot.snapshot_id,
        )
        page, token = _paginate(snapshots, lambda s: s.snapshot_id, request, BackupRef.parse)
        return csi_pb2.ListSnapshotsResponse(
            entries=[csi_pb2.ListSnapshotsResponse.Entry(snapshot=snapshot) for snapshot in page],
            next_token=token,
        )

    # -- not offered --

    def _unimplemented(self, what: str) -> CsiError:
        return _error(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by this driver")

    def ControllerPublishVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerPublishVolume")

    def ControllerUnpublishVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerUnpublishVolume")

    def GetCapacity(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("GetCapacity")

    def ControllerGetVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerGetVolume")

    def ControllerModifyVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerModifyVolume")


# --- helpers -----------------------------------------------------------------


def _zones(topologies: Iterable[csi_pb2.Topology], field_name: str) -> list[str]:
    zones = []
    for topology in topologies:
        unknown = set(topology.segments) - {TOPOLOGY_KEY_ZONE}
        if unknown:
            raise validation.invalid(f"{field_name}: unknown topology key(s) {sorted(unknown)}")
        zone = topology.segments.get(TOPOLOGY_KEY_ZONE, "")
        if not zone:
            raise validation.invalid(f"{field_name}: a topology has no {TOPOLOGY_KEY_ZONE}")
        zones.append(validation.check_string(zone, field_name))
    return zones


def _check_ready(name: str, instance: Instance) -> None:
    if instance.state in ("", "READY"):
        return
    if instance.state in _TRANSIENT_STATES:
        raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, f"volume {name} is {instance.state}; retry later")
    if instance.state == "DELETING":
        raise _error(grpc.StatusCode.ABORTED, f"volume {name} is being deleted; retry later")
    raise _error(grpc.StatusCode.INTERNAL, f"volume {name} is in state {instance.state}")


def _check_snapshot_params(params: Mapping[str, str]) -> None:
    validation.check_map(params, "parameters")
    for key, value in params.items():
        lowered = key.lower()
        if lowered == P_SNAPSHOT_TYPE:
            if value.lower() != "backup":
                raise validation.invalid("parameters: only snapshots of type 'backup' are supported")
        elif lowered not in _SNAPSHOT_METADATA:
            raise validation.invalid(f"parameters: unknown parameter {key!r}")


def _snapshot(backup: Backup, share: str) -> csi_pb2.Snapshot:
    source = VolumeRef.from_instance_name(backup.source_instance, share)
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(backup.create_time)
    return csi_pb2.Snapshot(
        snapshot_id=backup.name,
        source_volume_id=source.volume_id if source else "",
        size_bytes=backup.capacity_gib * GIB,
        creation_time=created,
        ready_to_use=backup.state == "READY",
    )


def _paginate(
    items: Sequence[_T],
    key: Callable[[_T], str],
    request: csi_pb2.ListVolumesRequest | csi_pb2.ListSnapshotsRequest,
    parse_token: Callable[[str], object | None],
) -> tuple[Sequence[_T], str]:
    """One page of ``items`` (sorted by ``key``) after the key in ``starting_token``.

    The token is the last key of the previous page, so deleting that entry
    between pages does not make the next page skip or repeat one.
    """
    if request.max_entries < 0:
        raise validation.invalid("max_entries must not be negative")
    start = 0
    if request.starting_token:
        if parse_token(request.starting_token) is None:
            raise _error(grpc.StatusCode.ABORTED, f"starting_token {request.starting_token!r} is not valid")
        start = next((i for i, item in enumerate(items) if key(item) > request.starting_token), len(items))
    end = len(items) if not request.max_entries else start + request.max_entries
    page = items[start:end]
    return page, key(page[-1]) if page and end < len(items) else ""


def _deleted(delete: Callable[[], None]) -> None:
    """Run a cloud delete; the resource vanishing first is success (CSI deletes are idempotent).

    A delete still running (OperationPending) is not: the CO must retry until it is done.
    """
    try:
        delete()
    except CloudError as exc:
        if exc.kind is not ErrorKind.NOT_FOUND or isinstance(exc, OperationPending):
            raise
