"""The CSI Controller service: Filestore instances as volumes, backups as snapshots.

Every RPC validates first, then takes the per-volume lock, then talks to the
cloud.  Creation is idempotent by name (the instance id is derived from it),
deletion is idempotent by id, and a long-running cloud operation that outlasts
``operation_timeout`` surfaces as a retryable DEADLINE_EXCEEDED: the CO calls
again and finds the instance (or backup) in progress or done.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import grpc
from google.protobuf import timestamp_pb2

from csi import params, validation
from csi.capacity import expand_capacity_gib, fits, pick_capacity_gib
from csi.cloud import (
    Backup,
    CloudError,
    ErrorKind,
    FilestoreCloud,
    Instance,
    MultishareCloud,
    MultishareInstance,
    OperationPending,
    Performance,
    Share,
)
from csi.errors import CsiError
from csi.filestore import (
    BACKUP_PENDING_STATES,
    BACKUP_UNCUT_STATE,
    CTX_IP,
    CTX_MOUNT_OPTIONS,
    CTX_PROTOCOL,
    CTX_SUPPORT_LOCK_RELEASE,
    CTX_VOLUME,
    GIB,
    LOCK_RELEASE_PROTOCOL,
    LOCK_RELEASE_TIERS,
    PENDING_STATES,
    REGIONAL_TIERS,
    RESOURCE_ID_MAX_LEN,
    TOPOLOGY_KEY_ZONE,
    TRANSIENT_STATES,
    performance_error,
    region_of,
)
from csi.locks import VolumeLocks
from csi.multishare import MultishareOps, multishare_spec
from csi.params import LABEL_CREATED_BY, LABEL_STORAGE_CLASS, check_snapshot_params, parse_mutable_params
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.reserved_ip import ReservedIpAllocator
from csi.volume_id import MAX_ID_BYTES, BackupRef, ShareRef, VolumeRef, cloud_name

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_RPC = csi_pb2.ControllerServiceCapability.RPC
CONTROLLER_CAPABILITIES = (
    _RPC.CREATE_DELETE_VOLUME,
    _RPC.EXPAND_VOLUME,
    _RPC.CREATE_DELETE_SNAPSHOT,
    _RPC.LIST_SNAPSHOTS,
    _RPC.LIST_VOLUMES,
    _RPC.MODIFY_VOLUME,
    # As the node service says: a CO then passes ReadWriteOnce and ReadWriteOncePod to CreateVolume as
    # SINGLE_NODE_MULTI_WRITER and SINGLE_NODE_SINGLE_WRITER, not both as SINGLE_NODE_WRITER (CSI spec).
    _RPC.SINGLE_NODE_MULTI_WRITER,
)


def _error(code: grpc.StatusCode, message: str) -> CsiError:
    return CsiError(code, message)


# --- the servicer ------------------------------------------------------------


class ControllerServicer(csi_pb2_grpc.ControllerServicer):
    """Provisions Filestore instances (one share each) and backups through a :class:`FilestoreCloud`,
    and shares of multishare instances through a :class:`MultishareCloud` (see :mod:`csi.multishare`)."""

    def __init__(
        self,
        cloud: FilestoreCloud,
        *,
        driver_name: str,
        zone: str,
        locks: VolumeLocks,
        operation_timeout: float = 300.0,
        resource_tags: Mapping[str, str] | None = None,
        extra_labels: Mapping[str, str] | None = None,
        multishare: MultishareCloud | None = None,
        cluster_labels: Mapping[str, str] | None = None,
        lock_release: bool = False,
    ) -> None:
        self._cloud = cloud
        self._lock_release = lock_release  # --feature-lock-release: mark the volumes whose locks can be released
        self._driver_name = driver_name
        self._zone = zone
        self._extra_labels = dict(extra_labels or {})
        # params.cluster_labels: on the multishare instances this controller creates, and the only ones it touches
        self._cluster_labels = dict(
            cluster_labels if cluster_labels is not None else params.cluster_labels("", zone, regional=False)
        )
        self._locks = locks
        self._timeout = operation_timeout
        self._reserved_ips = ReservedIpAllocator(cloud)
        self._resource_tags = dict(resource_tags or {})  # --resource-tags; a StorageClass's win per key
        self._shares = (
            MultishareOps(
                multishare, self._cluster_labels, timeout=operation_timeout, reserved_ips=self._reserved_ips
            )
            if multishare is not None
            else None
        )
        self._multishare_cloud = multishare

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
        volume_params = params.parse_volume_params(
            request.parameters, self._driver_name, request.mutable_parameters, self._extra_labels
        )
        if volume_params.instance_label is not None:
            share_volume = self._create_share(name, request, volume_params)
            if volume_params.mount_options:
                share_volume.volume_context[CTX_MOUNT_OPTIONS] = volume_params.mount_options
            return csi_pb2.CreateVolumeResponse(volume=share_volume)
        source_ref = self._content_source(request)
        capacity_range = request.capacity_range if request.HasField("capacity_range") else None
        pick_capacity_gib(volume_params.tier, capacity_range)  # OUT_OF_RANGE before any cloud call
        zone = self._pick_zone(request.accessibility_requirements)
        location = region_of(zone) if volume_params.tier in REGIONAL_TIERS else zone
        ref = VolumeRef(location, cloud_name(name))

        with self._locks.acquire(ref.instance):
            source: Backup | None = None
            if source_ref is not None:
                source = self._source_backup(source_ref)
            size = pick_capacity_gib(volume_params.tier, capacity_range, source.capacity_gib if source else 0)
            _check_performance(volume_params.tier, size, volume_params.performance)
            wanted = Instance(
                name=ref.instance,
                location=location,
                tier=volume_params.tier,
                capacity_gib=size,
                network=volume_params.network,
                connect_mode=volume_params.connect_mode,
                reserved_ip_range=volume_params.reserved_ip_range,
                share_name=ref.share,
                labels=volume_params.labels,
                protocol=volume_params.protocol,
                kms_key=volume_params.kms_key,
                source_backup=source.name if source else None,
                performance=volume_params.performance,
                tags={**self._resource_tags, **volume_params.resource_tags},
                nfs_export_options=volume_params.nfs_export_options,
            )
            instance = self._find_instance(location, ref.instance)
            if instance is None:
                instance = self._create(wanted, volume_params.reserved_ipv4_cidr)
            self._check_compatible(name, instance, wanted, capacity_range)
            self._check_ready(name, instance)
        volume = self._volume(instance)
        if volume_params.mount_options:
            volume.volume_context[CTX_MOUNT_OPTIONS] = volume_params.mount_options
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

    def _pick_zone(self, requirement: csi_pb2.TopologyRequirement) -> str:
        """The zone to create in: the first preferred, else the first requisite, else our own.

        Only the instance's location comes from topology: the volume itself is returned without
        accessible topology, because a Filestore instance is reachable from every zone of its
        network (as in gcp-filestore-csi-driver since its PR #150).
        """
        preferred = _zones(requirement.preferred, "accessibility_requirements.preferred")
        requisite = _zones(requirement.requisite, "accessibility_requirements.requisite")
        candidates = preferred + requisite + ([self._zone] if self._zone else [])
        if not candidates:
            raise validation.invalid(
                "no zone: give accessibility_requirements or start the driver with --zone"
            )
        return candidates[0]

    def _find_instance(self, location: str, name: str) -> Instance | None:
        try:
            return self._cloud.get_instance(location, name)
        except CloudError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return None
            raise

    def _create(self, wanted: Instance, cidr: str | None) -> Instance:
        with self._reserved_ips.reserve(wanted, cidr) as ip_range:
            if ip_range:
                wanted = dataclasses.replace(wanted, reserved_ip_range=ip_range)
            try:
                return self._cloud.create_instance(wanted, wait=self._timeout)
            except OperationPending:
                raise
            except CloudError as exc:
                if exc.kind is not ErrorKind.ALREADY_EXISTS:
                    # A failed create may have left the instance behind (Filestore keeps it, in
                    # ERROR): judge what is there, so that it is deleted rather than leaked.
                    left = self._find_instance(wanted.location, wanted.name)
                    if left is None:
                        raise
                    log.warning("creating %s failed (%s); it is left in state %s", wanted.name, exc, left.state)
                    return left
        # Lost a race with another creator of the same id: judge what is there.
        found = self._find_instance(wanted.location, wanted.name)
        if found is None:
            raise _error(grpc.StatusCode.ABORTED, f"instance {wanted.name} appeared and vanished; retry")
        return found

    def _check_compatible(
        self, name: str, found: Instance, wanted: Instance, capacity_range: csi_pb2.CapacityRange | None
    ) -> None:
        differences = [
            what
            for what, ok in (
                ("tier", found.tier == wanted.tier),
                ("capacity", fits(found.capacity_gib, capacity_range)),
                ("network", not found.network or found.network == wanted.network),
                ("connect-mode", not found.connect_mode or found.connect_mode == wanted.connect_mode),
                ("protocol", not found.protocol or found.protocol == wanted.protocol),
                ("kms key", not found.kms_key or found.kms_key == wanted.kms_key),
                ("content source", found.source_backup == wanted.source_backup),
            )
            if not ok
        ]
        if differences:
            raise _error(
                grpc.StatusCode.ALREADY_EXISTS,
                f"volume {name} exists with a different {', '.join(differences)}",
            )

    def _check_ready(self, name: str, instance: Instance) -> None:
        """Return when the instance is READY; otherwise raise, never leaking what we created.

        The external-provisioner gives up on a final code (INTERNAL...) and, if the PVC is then
        deleted, never calls DeleteVolume: so a state in which the instance exists and may yet
        become READY gets a code it retries (ABORTED: the creation an earlier call started is still
        pending; UNAVAILABLE: a passing state such as REPAIRING), and an instance in ERROR that this
        driver created is deleted before the error is returned.
        """
        state = instance.state
        if state in ("", "READY"):
            return
        if state in PENDING_STATES:
            raise _error(grpc.StatusCode.ABORTED, f"volume {name} is {state}; retry later")
        if state in TRANSIENT_STATES:
            raise _error(grpc.StatusCode.UNAVAILABLE, f"volume {name} is {state}; retry later")
        if state == "ERROR" and instance.labels.get(LABEL_CREATED_BY) == params.created_by(self._driver_name):
            _deleted(lambda: self._cloud.delete_instance(instance.location, instance.name, wait=self._timeout))
            raise _error(
                grpc.StatusCode.INTERNAL,
                f"volume {name}: its Filestore instance {instance.name} failed (state ERROR) and was "
                "deleted; a retry creates it again",
            )
        raise _error(grpc.StatusCode.INTERNAL, f"volume {name} is in state {state}")

    def _volume(self, instance: Instance) -> csi_pb2.Volume:
        """The CSI volume of an instance, with no accessible topology (see :meth:`_pick_zone`)."""
        ref = VolumeRef(instance.location, instance.name, instance.share_name)
        return csi_pb2.Volume(
            volume_id=ref.volume_id,
            capacity_bytes=instance.capacity_gib * GIB,
            volume_context={
                CTX_IP: instance.ip or "",
                CTX_VOLUME: instance.share_name,
                CTX_PROTOCOL: instance.protocol,
                **self._lock_release_context(instance.protocol, instance.tier in LOCK_RELEASE_TIERS),
            },
        )

    def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=validation.MAX_INCOMING_ID_BYTES)
        share_ref = ShareRef.parse(volume_id)
        if share_ref is not None:
            with self._locks.acquire(volume_id):
                self._share_ops(volume_id).delete(share_ref)
            return csi_pb2.DeleteVolumeResponse()
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
            if instance.state == "CREATING":
                _require_ready(volume_id, instance)
            _deleted(lambda: self._cloud.delete_instance(ref.location, ref.instance, wait=self._timeout))
        return csi_pb2.DeleteVolumeResponse()

    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=validation.MAX_INCOMING_ID_BYTES)
        if not request.volume_capabilities:
            raise validation.invalid("volume_capabilities is required")
        for index, capability in enumerate(request.volume_capabilities):
            validation.check_capability_shape(capability, f"volume_capabilities[{index}]")
        instance = self._volume_instance(volume_id)
        reasons = [
            reason
            for index, capability in enumerate(request.volume_capabilities)
            if (reason := validation.unsupported_reason(capability, f"volume_capabilities[{index}]"))
        ]
        reasons += self._parameter_mismatches(request, instance)
        if reasons:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(reasons))
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
            mutable_parameters=request.mutable_parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    def _parameter_mismatches(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, instance: Instance | MultishareInstance
    ) -> list[str]:
        """Why the request's (mutable) parameters do not describe ``instance``: Confirmed.parameters
        holds "the volume creation parameters validated by the plugin", so none go unchecked."""
        if not request.parameters and not request.mutable_parameters:
            return []
        try:
            wanted = params.parse_volume_params(
                request.parameters, self._driver_name, request.mutable_parameters, self._extra_labels
            )
        except CsiError as exc:
            return [exc.message]
        mismatches = []
        if request.parameters:
            mismatches = [
                f"parameters: {what} {want} is not the volume's {have}"
                for what, want, have in (
                    ("tier", wanted.tier, instance.tier),
                    ("network", wanted.network, instance.network or wanted.network),
                    ("protocol", wanted.protocol, instance.protocol or wanted.protocol),
                    ("multishare", wanted.instance_label is not None, isinstance(instance, MultishareInstance)),
                )
                if want != have
            ]
        problem = _performance_problem(instance.tier, instance.capacity_gib, wanted.performance)
        return mismatches + ([f"mutable_parameters: {problem}"] if problem else [])

    def _volume_instance(self, volume_id: str, what: str = "volume") -> Instance | MultishareInstance:
        """The instance behind an instance volume or a share volume; NOT_FOUND when either is gone."""
        share_ref = ShareRef.parse(volume_id)
        if share_ref is None:
            return self._existing(volume_id, what)
        found = self._share_ops(volume_id).get(share_ref)
        if found is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"{what} {volume_id} does not exist")
        return found[0]

    def _existing(self, volume_id: str, what: str = "volume") -> Instance:
        """The instance behind ``volume_id``; NOT_FOUND for foreign ids and missing instances."""
        ref = VolumeRef.parse(volume_id)
        instance = self._find_instance(ref.location, ref.instance) if ref else None
        if instance is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"{what} {volume_id} does not exist")
        return instance

    def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        created_by = params.created_by(self._driver_name)
        volumes = [
            self._volume(instance)
            for instance in self._cloud.list_instances("-")
            if instance.labels.get(LABEL_CREATED_BY) == created_by and instance.share_name  # not multishare
        ]
        if self._shares is not None:
            volumes += [self._share_volume(i, s) for i, s in self._shares.all_shares(LABEL_CREATED_BY, created_by)]
        volumes.sort(key=lambda volume: volume.volume_id)
        page, token = _paginate(
            volumes, lambda v: v.volume_id, request, lambda t: VolumeRef.parse(t) or ShareRef.parse(t)
        )
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
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=validation.MAX_INCOMING_ID_BYTES)
        if not request.HasField("capacity_range"):
            raise validation.invalid("capacity_range is required")
        if request.HasField("volume_capability"):
            validation.check_capability(request.volume_capability)
        share_ref = ShareRef.parse(volume_id)
        if share_ref is not None:
            with self._locks.acquire(volume_id):
                share = self._share_ops(volume_id).expand(share_ref, request.capacity_range)
            return csi_pb2.ControllerExpandVolumeResponse(
                capacity_bytes=share.capacity_gib * GIB, node_expansion_required=False
            )
        ref = VolumeRef.parse(volume_id)
        if ref is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"volume {volume_id} does not exist")
        with self._locks.acquire(ref.instance):
            instance = self._existing(volume_id)
            _require_ready(volume_id, instance)
            size = expand_capacity_gib(instance.tier, instance.capacity_gib, request.capacity_range)
            if size > instance.capacity_gib:
                problem = _performance_problem(instance.tier, size, instance.performance)
                if problem:
                    raise _error(grpc.StatusCode.OUT_OF_RANGE, f"{size} GiB does not suit the volume's performance: {problem}")
                self._refuse_if_updating(volume_id, ref)
                instance = self._cloud.expand_instance(ref.location, ref.instance, size, wait=self._timeout)
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=instance.capacity_gib * GIB, node_expansion_required=False
        )

    def ControllerModifyVolume(
        self, request: csi_pb2.ControllerModifyVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerModifyVolumeResponse:
        """Apply the performance keys; the volume is looked up first, so a missing one is NOT_FOUND
        whatever the parameters say, and an empty map (proto3 cannot tell it from an unset one) is
        nothing to change."""
        volume_id = validation.check_string(request.volume_id, "volume_id", max_bytes=validation.MAX_INCOMING_ID_BYTES)
        if ShareRef.parse(volume_id) is not None:
            self._volume_instance(volume_id)
            if parse_mutable_params(request.mutable_parameters) is not None:
                raise validation.invalid(f"volume {volume_id} is a share: performance is set per instance, not per share")
            return csi_pb2.ControllerModifyVolumeResponse()
        ref = VolumeRef.parse(volume_id)
        if ref is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"volume {volume_id} does not exist")
        with self._locks.acquire(ref.instance):
            instance = self._existing(volume_id)
            performance = parse_mutable_params(request.mutable_parameters)
            if performance is None:
                return csi_pb2.ControllerModifyVolumeResponse()  # no keys or only empty values: nothing to change
            _check_performance(instance.tier, instance.capacity_gib, performance)
            if instance.performance == performance:
                return csi_pb2.ControllerModifyVolumeResponse()
            _require_ready(volume_id, instance)
            self._refuse_if_updating(volume_id, ref)
            self._cloud.set_performance(ref.location, ref.instance, performance, wait=self._timeout)
        return csi_pb2.ControllerModifyVolumeResponse()

    def _refuse_if_updating(self, volume_id: str, ref: VolumeRef) -> None:
        """ABORTED ("operation pending for volume") while another update of the instance runs."""
        if self._cloud.update_running(ref.location, ref.instance):
            raise _error(grpc.StatusCode.ABORTED, f"another update of volume {volume_id} is running; retry")

    # -- multishare volumes --

    def _share_ops(self, volume_id: str) -> MultishareOps:
        if self._shares is None:
            raise _error(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"volume {volume_id}: multishare volumes need a controller with the Filestore v1beta1 API",
            )
        return self._shares

    def _create_share(
        self, name: str, request: csi_pb2.CreateVolumeRequest, volume_params: params.VolumeParams
    ) -> csi_pb2.Volume:
        """CreateVolume for ``multishare: "true"``: a share on a shared instance."""
        ops = self._share_ops(name)
        assert self._multishare_cloud is not None and volume_params.instance_label is not None
        if request.HasField("volume_content_source"):
            raise validation.invalid("volume_content_source: multishare volumes cannot be restored or cloned")
        zone = self._pick_zone(request.accessibility_requirements)
        requested = _zones(request.accessibility_requirements.preferred, "preferred") + _zones(
            request.accessibility_requirements.requisite, "requisite"
        )
        regions = list(dict.fromkeys(region_of(z) for z in [zone, *requested]))
        spec = multishare_spec(name, request, volume_params, regions, self._cluster_labels)
        with self._locks.acquire(name):
            found = ops.find_share(regions, spec.share)
            if found is None:
                found = ops.create(spec)
            instance, share = found
            if share.state != "READY":
                raise _error(grpc.StatusCode.ABORTED, f"volume {name} is {share.state}; retry later")
            capacity_range = request.capacity_range if request.HasField("capacity_range") else None
            if instance.labels.get(LABEL_STORAGE_CLASS) != volume_params.instance_label or not fits(
                share.capacity_gib, capacity_range
            ):
                raise _error(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"volume {name} exists with a different storage class label or capacity",
                )
        return self._share_volume(instance, share)

    def _share_volume(self, instance: MultishareInstance, share: Share) -> csi_pb2.Volume:
        """A share as a CSI volume: GFD's handle and volume_context (ip), plus the protocol.

        No accessible topology: a multishare instance is regional, reachable from every zone.
        """
        assert self._multishare_cloud is not None
        label = instance.labels.get(LABEL_STORAGE_CLASS, "")
        ref = ShareRef(label, self._multishare_cloud.project, instance.location, instance.name, share.name)
        return csi_pb2.Volume(
            volume_id=ref.volume_id,
            capacity_bytes=share.capacity_gib * GIB,
            volume_context={
                CTX_IP: instance.ip or "",
                CTX_PROTOCOL: instance.protocol,
                **self._lock_release_context(instance.protocol, True),  # a share: whatever the tier, as GFD
            },
        )

    def _lock_release_context(self, protocol: str, tier_supports: bool) -> dict[str, str]:
        """``supportLockRelease: "true"`` as GFD sets it: feature on, NFSv3, and for an instance ENTERPRISE.

        GFD marks a share whatever its protocol, and its node then acts on NFSv3 volumes only; we
        mark NFSv3 shares only, which any node treats the same way.
        """
        wanted = self._lock_release and protocol == LOCK_RELEASE_PROTOCOL and tier_supports
        return {CTX_SUPPORT_LOCK_RELEASE: "true"} if wanted else {}

    # -- snapshots --

    def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateSnapshotResponse:
        name = validation.check_string(request.name, "name")
        volume_id = validation.check_string(request.source_volume_id, "source_volume_id", max_bytes=validation.MAX_INCOMING_ID_BYTES)
        snapshot_params = check_snapshot_params(request.parameters, self._driver_name, name)
        share_ref = ShareRef.parse(volume_id)
        ref = VolumeRef.parse(volume_id) if share_ref is None else share_ref.as_volume_ref()
        if ref is None:
            raise _error(grpc.StatusCode.NOT_FOUND, f"source volume {volume_id} does not exist")
        region = snapshot_params.location or region_of(ref.location)
        prefix = len(BackupRef(self._cloud.project, region, "").snapshot_id)
        backup_ref = BackupRef(self._cloud.project, region, cloud_name(name, min(RESOURCE_ID_MAX_LEN, MAX_ID_BYTES - prefix)))
        with self._locks.acquire(f"snapshot/{backup_ref.backup}", ref.instance):
            instance = self._volume_instance(volume_id, "source volume")
            share = instance.share_name if isinstance(instance, Instance) else ref.share
            source = f"projects/{self._cloud.project}/locations/{ref.location}/instances/{ref.instance}"
            backup = self._get_backup(backup_ref.snapshot_id)
            if backup is None:
                _require_ready(volume_id, instance)
                try:
                    if share_ref is None:
                        backup = self._cloud.create_backup(
                            region, backup_ref.backup, source, ref.share, wait=self._timeout,
                            labels=snapshot_params.labels,
                        )
                    else:  # a share's backup is made through the v1beta1 API, as GFD makes it
                        assert self._multishare_cloud is not None
                        backup = self._multishare_cloud.create_share_backup(
                            region, backup_ref.backup, source, ref.share, wait=self._timeout,
                            labels=snapshot_params.labels,
                        )
                except OperationPending:
                    # Cut but not finished: report it not ready; the CO polls with CreateSnapshot.
                    backup = self._get_backup(backup_ref.snapshot_id)
                    if backup is None or backup.state == BACKUP_UNCUT_STATE:
                        raise
            if backup.source_instance != source or backup.source_file_share != ref.share:
                raise _error(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"snapshot {name} exists for another source volume",
                )
            if backup.state == BACKUP_UNCUT_STATE:
                # CreateSnapshot "MUST block until the snapshot is cut": this one is not yet.
                raise _error(grpc.StatusCode.ABORTED, f"snapshot {name} is still being cut; retry")
        return csi_pb2.CreateSnapshotResponse(
            snapshot=_snapshot(backup, share, share_ref.volume_id if share_ref else None)
        )

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
        snapshot_id = validation.check_string(request.snapshot_id, "snapshot_id", max_bytes=validation.MAX_INCOMING_ID_BYTES)
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
            if backup.state in BACKUP_PENDING_STATES:
                raise _error(
                    grpc.StatusCode.ABORTED, f"snapshot {snapshot_id} is {backup.state}: its creation is pending; retry"
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
        share_labels = self._share_labels()
        snapshots = sorted(
            (
                snapshot
                for backup in backups
                if backup.state != BACKUP_UNCUT_STATE
                and (snapshot := _snapshot(
                    backup, backup.source_file_share, self._share_volume_id(backup, share_labels)
                )).source_volume_id
                and (not request.source_volume_id or snapshot.source_volume_id == request.source_volume_id)
            ),
            key=lambda snapshot: snapshot.snapshot_id,
        )
        page, token = _paginate(snapshots, lambda s: s.snapshot_id, request, BackupRef.parse)
        return csi_pb2.ListSnapshotsResponse(
            entries=[csi_pb2.ListSnapshotsResponse.Entry(snapshot=snapshot) for snapshot in page],
            next_token=token,
        )

    def _share_labels(self) -> dict[str, str]:
        """Full name → storage-class label of every multishare instance (to name share backups' sources)."""
        if self._multishare_cloud is None:
            return {}
        project = self._multishare_cloud.project
        return {
            f"projects/{project}/locations/{i.location}/instances/{i.name}": i.labels.get(LABEL_STORAGE_CLASS, "")
            for i in self._multishare_cloud.list_multishare_instances("-")
        }

    def _share_volume_id(self, backup: Backup, share_labels: Mapping[str, str]) -> str | None:
        """The multishare volume id a backup was taken of, or None when its source is no multishare instance."""
        label = share_labels.get(backup.source_instance)
        ref = VolumeRef.from_instance_name(backup.source_instance, backup.source_file_share)
        if label is None or ref is None or self._multishare_cloud is None:
            return None
        share = ShareRef(label, self._multishare_cloud.project, ref.location, ref.instance, ref.share)
        return share.volume_id

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


def _require_ready(volume_id: str, instance: Instance | MultishareInstance) -> None:
    """Return when the instance is READY.  Otherwise: ABORTED while an operation of its own runs
    (CREATING, DELETING: the spec's general "operation pending for volume"), UNAVAILABLE in a passing
    state (REPAIRING...), FAILED_PRECONDITION in any other (ERROR...)."""
    state = instance.state
    if state in ("", "READY"):
        return
    if state in PENDING_STATES:
        code = grpc.StatusCode.ABORTED
    elif state in TRANSIENT_STATES:
        code = grpc.StatusCode.UNAVAILABLE
    else:
        code = grpc.StatusCode.FAILED_PRECONDITION
    raise _error(code, f"volume {volume_id} is {state}, not READY; retry later")


def _performance_problem(tier: str, capacity_gib: int, performance: Performance | None) -> str | None:
    """Why the tier at this size refuses the performance setting; None when it accepts it."""
    if performance is None:
        return None
    return performance_error(
        tier, capacity_gib, fixed_iops=performance.fixed_iops, iops_per_tb=performance.iops_per_tb
    )


def _check_performance(tier: str, capacity_gib: int, performance: Performance | None) -> None:
    """INVALID_ARGUMENT when the tier at this size refuses the performance setting."""
    problem = _performance_problem(tier, capacity_gib, performance)
    if problem:
        raise validation.invalid(f"performance: {problem}")


def _snapshot(backup: Backup, share: str, source_volume_id: str | None = None) -> csi_pb2.Snapshot:
    """The CSI snapshot of a backup; its source is an instance volume unless ``source_volume_id`` says."""
    source = VolumeRef.from_instance_name(backup.source_instance, share)
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(backup.create_time)
    return csi_pb2.Snapshot(
        snapshot_id=backup.name,
        source_volume_id=source_volume_id or (source.volume_id if source else ""),
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
