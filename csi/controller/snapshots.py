"""The snapshot RPCs: Filestore backups as CSI snapshots (of an instance's share, or of a multishare
share through the v1beta1 API, as gcp-filestore-csi-driver makes them)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import timestamp_pb2

from csi import validation
from csi.cloud import (
    Backup,
    Instance,
    OperationPending,
    instance_name,
)
from csi.controller.lifecycle import deleted, require_ready
from csi.controller.pagination import paginate
from csi.controller.shares import ShareVolumes
from csi.controller.snapshot_params import check_snapshot_params
from csi.errors import CsiError
from csi.filestore import (
    BACKUP_PENDING_STATES,
    BACKUP_UNCUT_STATE,
    DELETING,
    GIB,
    READY,
    RESOURCE_ID_MAX_LEN,
    region_of,
)
from csi.proto import csi_pb2
from csi.volume_id import MAX_ID_BYTES, BackupRef, ShareRef, VolumeRef, cloud_name


class SnapshotRpcs(ShareVolumes):
    """CreateSnapshot, DeleteSnapshot, ListSnapshots of :class:`~csi.controller.ControllerServicer`."""

    def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateSnapshotResponse:
        name = validation.check_string(request.name, "name")
        volume_id = validation.check_id(request.source_volume_id, "source_volume_id")
        snapshot_params = check_snapshot_params(request.parameters, self._driver_name, name)
        share_ref = ShareRef.parse(volume_id)
        ref = VolumeRef.parse(volume_id) if share_ref is None else share_ref.as_volume_ref()
        if ref is None:
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"source volume {volume_id} does not exist")
        region = snapshot_params.location or region_of(ref.location)
        prefix = len(BackupRef(self._cloud.project, region, "").snapshot_id)
        backup_ref = BackupRef(
            self._cloud.project, region, cloud_name(name, min(RESOURCE_ID_MAX_LEN, MAX_ID_BYTES - prefix))
        )
        with self._locks.acquire(f"snapshot/{backup_ref.backup}", ref.instance):
            instance = self._volume_instance(volume_id, "source volume")
            share = instance.share_name if isinstance(instance, Instance) else ref.share
            source = instance_name(self._cloud.project, ref.location, ref.instance)
            backup = self._get_backup(backup_ref.snapshot_id)
            if backup is None:
                require_ready(volume_id, instance)
                try:
                    create = self._cloud.create_backup
                    if share_ref is not None:
                        # a share's backup is made through the v1beta1 API, as GFD makes it
                        assert self._multishare_cloud is not None
                        create = self._multishare_cloud.create_share_backup
                    backup = create(
                        region,
                        backup_ref.backup,
                        source,
                        ref.share,
                        wait=self._timeout,
                        labels=snapshot_params.labels,
                    )
                except OperationPending:
                    # Cut but not finished: report it not ready; the CO polls with CreateSnapshot.
                    backup = self._get_backup(backup_ref.snapshot_id)
                    if backup is None or backup.state == BACKUP_UNCUT_STATE:
                        raise
            if backup.source_instance != source or backup.source_file_share != ref.share:
                raise CsiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"snapshot {name} exists for another source volume",
                )
            if backup.state == BACKUP_UNCUT_STATE:
                # CreateSnapshot "MUST block until the snapshot is cut": this one is not yet.
                raise CsiError(grpc.StatusCode.ABORTED, f"snapshot {name} is still being cut; retry")
        return csi_pb2.CreateSnapshotResponse(
            snapshot=_snapshot(backup, share, share_ref.volume_id if share_ref else None)
        )

    def DeleteSnapshot(
        self, request: csi_pb2.DeleteSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteSnapshotResponse:
        snapshot_id = validation.check_id(request.snapshot_id, "snapshot_id")
        ref = BackupRef.parse(snapshot_id)
        if ref is None:
            return csi_pb2.DeleteSnapshotResponse()
        with self._locks.acquire(f"snapshot/{ref.backup}"):
            backup = self._get_backup(snapshot_id)
            if backup is None:
                return csi_pb2.DeleteSnapshotResponse()
            if backup.state == DELETING:
                raise CsiError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"snapshot {snapshot_id} is still being deleted"
                )
            if backup.state in BACKUP_PENDING_STATES:
                raise CsiError(
                    grpc.StatusCode.ABORTED,
                    f"snapshot {snapshot_id} is {backup.state}: its creation is pending; retry",
                )
            deleted(lambda: self._cloud.delete_backup(snapshot_id, wait=self._timeout))
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
                and (
                    snapshot := _snapshot(
                        backup, backup.source_file_share, self._share_volume_id(backup, share_labels)
                    )
                ).source_volume_id
                and (not request.source_volume_id or snapshot.source_volume_id == request.source_volume_id)
            ),
            key=lambda snapshot: snapshot.snapshot_id,
        )
        page, token = paginate(snapshots, lambda s: s.snapshot_id, request, BackupRef.parse)
        return csi_pb2.ListSnapshotsResponse(
            entries=[csi_pb2.ListSnapshotsResponse.Entry(snapshot=snapshot) for snapshot in page],
            next_token=token,
        )


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
        ready_to_use=backup.state == READY,
    )
