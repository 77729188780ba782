"""Multishare volumes in the controller service: a CreateVolume with ``multishare: "true"`` becomes a
share on a shared instance (:mod:`csi.controller.multishare` packs them), and a share is named as a
volume the way gcp-filestore-csi-driver names it."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from csi import validation
from csi.cloud import (
    Backup,
    MultishareInstance,
    Share,
    instance_name,
)
from csi.controller.base import ControllerBase
from csi.controller.capacity import (
    fits,
)
from csi.controller.labels import LABEL_STORAGE_CLASS
from csi.controller.parameters import VolumeParams
from csi.controller.share_spec import multishare_spec
from csi.controller.topology import pick_zone, zones
from csi.errors import CsiError
from csi.filestore import (
    CTX_IP,
    CTX_PROTOCOL,
    GIB,
    READY,
    region_of,
)
from csi.proto import csi_pb2
from csi.volume_id import ShareRef, VolumeRef


class ShareVolumes(ControllerBase):
    """The multishare half of :class:`~csi.controller.ControllerServicer`."""

    def _create_share(
        self, name: str, request: csi_pb2.CreateVolumeRequest, volume_params: VolumeParams
    ) -> csi_pb2.Volume:
        """CreateVolume for ``multishare: "true"``: a share on a shared instance."""
        ops = self._share_ops(name)
        assert self._multishare_cloud is not None and volume_params.instance_label is not None
        if request.HasField("volume_content_source"):
            raise validation.invalid("volume_content_source: multishare volumes cannot be restored or cloned")
        zone = pick_zone(request.accessibility_requirements, self._zone)
        requested = zones(request.accessibility_requirements.preferred, "preferred") + zones(
            request.accessibility_requirements.requisite, "requisite"
        )
        regions = list(dict.fromkeys(region_of(z) for z in [zone, *requested]))
        spec = multishare_spec(name, request, volume_params, regions, self._cluster_labels)
        with self._locks.acquire(name):
            found = ops.find_share(regions, spec.share)
            if found is None:
                found = ops.create(spec)
            instance, share = found
            if share.state != READY:
                raise CsiError(grpc.StatusCode.ABORTED, f"volume {name} is {share.state}; retry later")
            capacity_range = request.capacity_range if request.HasField("capacity_range") else None
            if instance.labels.get(LABEL_STORAGE_CLASS) != volume_params.instance_label or not fits(
                share.capacity_gib, capacity_range
            ):
                raise CsiError(
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

    def _share_labels(self) -> dict[str, str]:
        """Full name → storage-class label of every multishare instance (to name share backups' sources)."""
        if self._multishare_cloud is None:
            return {}
        project = self._multishare_cloud.project
        return {
            instance_name(project, i.location, i.name): i.labels.get(LABEL_STORAGE_CLASS, "")
            for i in self._multishare_cloud.list_multishare_instances("-")
        }

    def _share_volume_id(self, backup: Backup, share_labels: Mapping[str, str]) -> str | None:
        """The multishare volume id a backup was taken of; None when its source is no multishare
        instance."""
        label = share_labels.get(backup.source_instance)
        ref = VolumeRef.from_instance_name(backup.source_instance, backup.source_file_share)
        if label is None or ref is None or self._multishare_cloud is None:
            return None
        share = ShareRef(label, self._multishare_cloud.project, ref.location, ref.instance, ref.share)
        return share.volume_id
