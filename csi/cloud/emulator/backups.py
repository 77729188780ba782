"""The emulator's backups: Filestore v1 backups of an instance's share (and, through the multishare
mixin, of a v1beta1 share), whose data is a copy of the share's directory under the export root.

A mixin of :class:`~csi.cloud.emulator.state.EmulatorState` over the same lock and operations.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from google.cloud import filestore_v1
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from csi.cloud.emulator.checks import check_id, now_pb, parse_parent
from csi.cloud.emulator.errors import ApiError, not_found
from csi.cloud.emulator.operations import OperationsMixin, Pb
from csi.filestore import region_of

BackupPb = filestore_v1.Backup.pb()
_InstanceState = filestore_v1.Instance.State
_BackupState = filestore_v1.Backup.State


class BackupsMixin(OperationsMixin):
    """The backup RPC bodies; each runs under the state's lock (``EmulatorState.run``)."""

    # Provided by EmulatorState.
    export_root: Path | None
    _backups: dict[str, Pb]

    if TYPE_CHECKING:

        def _instance(self, name: str) -> Pb: ...

        def _share_dir(self, instance_id: str, share: str) -> Path | None: ...

        def _list(
            self, store: dict[str, Pb], parent: str, collection: str, page_size: int, page_token: str
        ) -> tuple[list[Pb], str]: ...

    def _backup(self, name: str) -> Pb:
        backup = self._backups.get(name)
        if backup is None:
            raise not_found(name)
        return backup

    def _backup_dir(self, name: str) -> Path | None:
        return None if self.export_root is None else self.export_root / ".backups" / name.rsplit("/", 1)[1]

    def get_backup(self, name: str) -> Pb:
        return self._backup(name)

    def list_backups(self, parent: str, page_size: int, page_token: str) -> Pb:
        page, token = self._list(self._backups, parent, "backups", page_size, page_token)
        return filestore_v1.ListBackupsResponse.pb()(backups=page, next_page_token=token)

    def create_backup(self, request: Pb) -> operations_pb2.Operation:
        _, region = parse_parent(request.parent, allow_any=False)
        check_id("backup", request.backup_id)
        if region_of(region) != region:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"backups live in a region, not {region!r}")
        source = self._instance(request.backup.source_instance)  # any region: cross-region backups
        if request.backup.source_file_share != source.file_shares[0].name:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "source_file_share is not the instance's share")
        if source.state != _InstanceState.READY:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, f"instance is {_InstanceState(source.state).name}"
            )
        share_dir = self._share_dir(source.name.rsplit("/", 1)[1], source.file_shares[0].name)
        return self._start_backup(request, source.file_shares[0].capacity_gb, source.tier, share_dir)

    def _start_backup(
        self,
        request: Pb,
        capacity_gb: int,
        tier: int,
        share_dir: Path | None,
        respond: Callable[[Pb], Pb] = lambda b: b,
    ) -> operations_pb2.Operation:
        """Start a checked CreateBackup of a share holding ``capacity_gb`` whose data is in ``share_dir``;
        ``respond`` turns the stored (v1) backup into the operation's response."""
        project, region = parse_parent(request.parent, allow_any=False)
        name = f"{request.parent}/backups/{request.backup_id}"
        if name in self._backups:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Resource '{name}' already exists")
        backup = BackupPb()
        backup.ParseFromString(request.backup.SerializeToString())  # v1 and v1beta1 Backups share fields
        backup.name = name
        backup.state = _BackupState.CREATING
        backup.create_time.CopyFrom(now_pb())
        backup.capacity_gb = capacity_gb
        backup.source_instance_tier = tier
        self._backups[name] = backup

        def complete() -> Pb:
            target = self._backup_dir(name)
            stored = 0
            if share_dir is not None and target is not None and share_dir.is_dir():
                shutil.copytree(share_dir, target, dirs_exist_ok=True)
                stored = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            backup.storage_bytes = stored
            backup.state = _BackupState.READY
            return respond(backup)

        def abort() -> None:
            self._backups.pop(name, None)

        return self._start(region, project, name, "create", complete, abort)

    def delete_backup(self, name: str) -> operations_pb2.Operation:
        backup = self._backup(name)
        if backup.state != _BackupState.READY:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, f"backup is {_BackupState(backup.state).name}"
            )
        backup.state = _BackupState.DELETING
        project, region = name.split("/")[1], name.split("/")[3]

        def complete() -> Pb:
            self._backups.pop(name, None)
            target = self._backup_dir(name)
            if target is not None:
                shutil.rmtree(target, ignore_errors=True)
            return empty_pb2.Empty()

        return self._start(region, project, name, "delete", complete)
