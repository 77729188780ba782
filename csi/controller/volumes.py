"""The volume RPCs of the controller service: Filestore instances (or shares) as volumes.

Every RPC validates first, then takes the per-volume lock, then talks to the
cloud.  Creation is idempotent by name (the instance id is derived from it),
deletion is idempotent by id, and a long-running cloud operation that outlasts
``operation_timeout`` surfaces as a retryable DEADLINE_EXCEEDED: the CO calls
again and finds the instance (or backup) in progress or done.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc

from csi import validation
from csi.cloud import (
    Backup,
    CloudError,
    ErrorKind,
    Instance,
    MultishareInstance,
    OperationPending,
)
from csi.controller.capacity import (
    check_performance,
    expand_capacity_gib,
    fits,
    performance_problem,
    pick_capacity_gib,
)
from csi.controller.labels import LABEL_CREATED_BY, created_by
from csi.controller.lifecycle import deleted, require_ready
from csi.controller.pagination import paginate
from csi.controller.parameters import parse_mutable_params, parse_volume_params
from csi.controller.shares import ShareVolumes
from csi.controller.topology import pick_zone
from csi.errors import CsiError
from csi.filestore import (
    CREATING,
    CTX_IP,
    CTX_MOUNT_OPTIONS,
    CTX_PROTOCOL,
    CTX_VOLUME,
    DELETING,
    ERROR,
    GIB,
    LOCK_RELEASE_TIERS,
    PENDING_STATES,
    READY,
    REGIONAL_TIERS,
    TRANSIENT_STATES,
    USABLE_STATES,
    region_of,
)
from csi.proto import csi_pb2
from csi.volume_id import BackupRef, ShareRef, VolumeRef, cloud_name

log = logging.getLogger(__name__)


class VolumeRpcs(ShareVolumes):
    """The volume RPCs of :class:`~csi.controller.ControllerServicer`."""

    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        name = validation.check_string(request.name, "name")
        validation.check_capabilities(request.volume_capabilities)
        volume_params = parse_volume_params(
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
        zone = pick_zone(request.accessibility_requirements, self._zone)
        location = region_of(zone) if volume_params.tier in REGIONAL_TIERS else zone
        ref = VolumeRef(location, cloud_name(name))

        with self._locks.acquire(ref.instance):
            source: Backup | None = None
            if source_ref is not None:
                source = self._source_backup(source_ref)
            size = pick_capacity_gib(volume_params.tier, capacity_range, source.capacity_gib if source else 0)
            check_performance(volume_params.tier, size, volume_params.performance)
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
                self._refuse_if_elsewhere(name, ref.instance, location)
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
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"snapshot {snapshot_id} does not exist")
        return ref

    def _source_backup(self, ref: BackupRef) -> Backup:
        backup = self._get_backup(ref.snapshot_id)
        if backup is None:
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"snapshot {ref.snapshot_id} does not exist")
        if backup.state != READY:
            raise CsiError(
                grpc.StatusCode.UNAVAILABLE, f"snapshot {ref.snapshot_id} is {backup.state}, not READY"
            )
        return backup

    def _refuse_if_elsewhere(self, name: str, instance_id: str, location: str) -> None:
        """ALREADY_EXISTS when this volume name already has our instance in another location.

        The instance id comes from the name alone, so a repeat asking for another tier (zonal
        against regional) or another zone would otherwise make a second volume of one name; the
        spec makes that "Volume already exists but is incompatible".  One list call, only before a
        create (the caller holds the name's lock: ``ref.instance`` whatever the location).
        """
        ours = created_by(self._driver_name)
        for found in self._cloud.list_instances("-"):
            if (
                found.name == instance_id
                and found.location != location
                and found.labels.get(LABEL_CREATED_BY) == ours
            ):
                raise CsiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"volume {name} exists in {found.location}; this request would make it in {location}",
                )

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
                    log.warning(
                        "creating %s failed (%s); it is left in state %s", wanted.name, exc, left.state
                    )
                    return left
        # Lost a race with another creator of the same id: judge what is there.
        found = self._find_instance(wanted.location, wanted.name)
        if found is None:
            raise CsiError(grpc.StatusCode.ABORTED, f"instance {wanted.name} appeared and vanished; retry")
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
            raise CsiError(
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
        if state in USABLE_STATES:
            return
        if state in PENDING_STATES:
            raise CsiError(grpc.StatusCode.ABORTED, f"volume {name} is {state}; retry later")
        if state in TRANSIENT_STATES:
            raise CsiError(grpc.StatusCode.UNAVAILABLE, f"volume {name} is {state}; retry later")
        if state == ERROR and instance.labels.get(LABEL_CREATED_BY) == created_by(self._driver_name):
            deleted(lambda: self._cloud.delete_instance(instance.location, instance.name, wait=self._timeout))
            raise CsiError(
                grpc.StatusCode.INTERNAL,
                f"volume {name}: its Filestore instance {instance.name} failed (state ERROR) and was "
                "deleted; a retry creates it again",
            )
        raise CsiError(grpc.StatusCode.INTERNAL, f"volume {name} is in state {state}")

    def _volume(self, instance: Instance) -> csi_pb2.Volume:
        """The CSI volume of an instance, with no accessible topology (see
        :func:`~csi.controller.topology.pick_zone`)."""
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
        volume_id = validation.check_id(request.volume_id, "volume_id")
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
            if instance.state == DELETING:
                raise CsiError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"volume {volume_id} is still being deleted"
                )
            if instance.state == CREATING:
                require_ready(volume_id, instance)
            deleted(lambda: self._cloud.delete_instance(ref.location, ref.instance, wait=self._timeout))
        return csi_pb2.DeleteVolumeResponse()

    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = validation.check_id(request.volume_id, "volume_id")
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
            wanted = parse_volume_params(
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
                    (
                        "multishare",
                        wanted.instance_label is not None,
                        isinstance(instance, MultishareInstance),
                    ),
                )
                if want != have
            ]
        problem = performance_problem(instance.tier, instance.capacity_gib, wanted.performance)
        return mismatches + ([f"mutable_parameters: {problem}"] if problem else [])

    def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        ours = created_by(self._driver_name)
        volumes = [
            self._volume(instance)
            for instance in self._cloud.list_instances("-")
            if instance.labels.get(LABEL_CREATED_BY) == ours and instance.share_name  # not multishare
        ]
        if self._shares is not None:
            volumes += [self._share_volume(i, s) for i, s in self._shares.all_shares(LABEL_CREATED_BY, ours)]
        volumes.sort(key=lambda volume: volume.volume_id)
        page, token = paginate(
            volumes, lambda v: v.volume_id, request, lambda t: VolumeRef.parse(t) or ShareRef.parse(t)
        )
        return csi_pb2.ListVolumesResponse(
            entries=[csi_pb2.ListVolumesResponse.Entry(volume=volume) for volume in page], next_token=token
        )

    def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        volume_id = validation.check_id(request.volume_id, "volume_id")
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
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"volume {volume_id} does not exist")
        with self._locks.acquire(ref.instance):
            instance = self._existing(volume_id)
            require_ready(volume_id, instance)
            size = expand_capacity_gib(instance.tier, instance.capacity_gib, request.capacity_range)
            if size > instance.capacity_gib:
                problem = performance_problem(instance.tier, size, instance.performance)
                if problem:
                    raise CsiError(
                        grpc.StatusCode.OUT_OF_RANGE,
                        f"{size} GiB does not suit the volume's performance: {problem}",
                    )
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
        volume_id = validation.check_id(request.volume_id, "volume_id")
        if ShareRef.parse(volume_id) is not None:
            self._volume_instance(volume_id)
            if parse_mutable_params(request.mutable_parameters) is not None:
                raise validation.invalid(
                    f"volume {volume_id} is a share: performance is set per instance, not per share"
                )
            return csi_pb2.ControllerModifyVolumeResponse()
        ref = VolumeRef.parse(volume_id)
        if ref is None:
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"volume {volume_id} does not exist")
        with self._locks.acquire(ref.instance):
            instance = self._existing(volume_id)
            performance = parse_mutable_params(request.mutable_parameters)
            if performance is None:
                return (
                    csi_pb2.ControllerModifyVolumeResponse()
                )  # no keys or only empty values: nothing to change
            check_performance(instance.tier, instance.capacity_gib, performance)
            if instance.performance == performance:
                return csi_pb2.ControllerModifyVolumeResponse()
            require_ready(volume_id, instance)
            self._refuse_if_updating(volume_id, ref)
            self._cloud.set_performance(ref.location, ref.instance, performance, wait=self._timeout)
        return csi_pb2.ControllerModifyVolumeResponse()

    def _refuse_if_updating(self, volume_id: str, ref: VolumeRef) -> None:
        """ABORTED ("operation pending for volume") while another update of the instance runs."""
        if self._cloud.update_running(ref.location, ref.instance):
            raise CsiError(grpc.StatusCode.ABORTED, f"another update of volume {volume_id} is running; retry")
