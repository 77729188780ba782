"""FilestoreCloud over the real google-cloud-filestore (v1) client.

Production uses Application Default Credentials. For the emulator the same client gets a gRPC
transport on an insecure loopback channel: every call, retry, LRO poll and error takes the same
path as against the real API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.api_core import operation as goperation
from google.api_core.future import polling
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import filestore_v1
from google.cloud.common import OperationMetadata
from google.cloud.filestore_v1.services.cloud_filestore_manager.transports import (
    CloudFilestoreManagerGrpcTransport,
)
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from csi.cloud import (
    Backup,
    CloudError,
    ErrorKind,
    Instance,
    NfsExportRule,
    OperationPending,
    Performance,
    instance_name,
)
from csi.filestore import DEFAULT_CONNECT_MODE

__all__ = ["GcpFilestore", "backup_from_pb", "instance_from_pb"]

_KINDS = {
    grpc.StatusCode.NOT_FOUND: ErrorKind.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorKind.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: ErrorKind.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: ErrorKind.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorKind.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.ABORTED: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.CANCELLED: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorKind.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: ErrorKind.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorKind.FAILED_PRECONDITION,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorKind.DEADLINE_EXCEEDED,
}


def _cloud_error(exc: gexc.GoogleAPIError) -> CloudError:
    if isinstance(exc, gexc.RetryError) and isinstance(exc.cause, gexc.GoogleAPIError):
        return _cloud_error(exc.cause)
    if isinstance(exc, gexc.RetryError):
        return CloudError(ErrorKind.UNAVAILABLE, str(exc))
    code = getattr(exc, "grpc_status_code", None)
    kind = _KINDS.get(code, ErrorKind.INTERNAL) if code is not None else ErrorKind.INTERNAL
    return CloudError(kind, getattr(exc, "message", None) or str(exc))


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn google.api_core errors into CloudError, so callers see one error type."""
    try:
        yield
    except gexc.GoogleAPIError as exc:
        raise _cloud_error(exc) from exc


def _enum_name(value: object, default: str = "") -> str:
    name = getattr(value, "name", "")
    return default if not name or name.endswith("_UNSPECIFIED") else str(name)


def instance_from_pb(pb: filestore_v1.Instance) -> Instance:
    """Our record of an API instance (first file share, first network)."""
    parts = pb.name.split("/")
    share = pb.file_shares[0] if pb.file_shares else filestore_v1.FileShareConfig()
    net = pb.networks[0] if pb.networks else filestore_v1.NetworkConfig()
    return Instance(
        name=parts[-1],
        location=parts[3] if len(parts) > 3 else "",
        tier=_enum_name(pb.tier),
        capacity_gib=int(share.capacity_gb),
        network=net.network,
        connect_mode=_enum_name(net.connect_mode, DEFAULT_CONNECT_MODE),
        reserved_ip_range=net.reserved_ip_range or None,
        ip=net.ip_addresses[0] if net.ip_addresses else None,
        share_name=share.name,
        labels=dict(pb.labels),
        state=_enum_name(pb.state),
        protocol=_enum_name(pb.protocol, "NFS_V3"),
        kms_key=pb.kms_key_name or None,
        source_backup=share.source_backup or None,
        performance=performance_from_pb(pb.performance_config),
        tags=dict(pb.tags),
        nfs_export_options=tuple(_export_rule(rule) for rule in share.nfs_export_options),
    )


def performance_from_pb(config: filestore_v1.Instance.PerformanceConfig) -> Performance | None:
    """Our record of a ``performance_config`` (None when unset: the tier's default)."""
    mode = filestore_v1.Instance.PerformanceConfig.pb(config).WhichOneof("mode")
    if mode == "fixed_iops":
        return Performance(fixed_iops=int(config.fixed_iops.max_iops))
    if mode == "iops_per_tb":
        return Performance(iops_per_tb=int(config.iops_per_tb.max_iops_per_tb))
    return None


def _performance_pb(performance: Performance) -> filestore_v1.Instance.PerformanceConfig:
    if performance.fixed_iops is not None:
        return filestore_v1.Instance.PerformanceConfig(
            fixed_iops=filestore_v1.Instance.FixedIOPS(max_iops=performance.fixed_iops)
        )
    return filestore_v1.Instance.PerformanceConfig(
        iops_per_tb=filestore_v1.Instance.IOPSPerTB(max_iops_per_tb=performance.iops_per_tb or 0)
    )


def _export_rule(pb: filestore_v1.NfsExportOptions) -> NfsExportRule:
    return NfsExportRule(
        ip_ranges=tuple(pb.ip_ranges),
        access_mode=_enum_name(pb.access_mode, "READ_WRITE"),
        squash_mode=_enum_name(pb.squash_mode, "NO_ROOT_SQUASH"),
        anon_uid=int(pb.anon_uid) or None,
        anon_gid=int(pb.anon_gid) or None,
    )


def _export_rule_pb(rule: NfsExportRule) -> filestore_v1.NfsExportOptions:
    Options = filestore_v1.NfsExportOptions
    return Options(
        ip_ranges=list(rule.ip_ranges),
        access_mode=_enum(Options.AccessMode, rule.access_mode, "access mode"),
        squash_mode=_enum(Options.SquashMode, rule.squash_mode, "squash mode"),
        anon_uid=rule.anon_uid or 0,
        anon_gid=rule.anon_gid or 0,
    )


def backup_from_pb(pb: filestore_v1.Backup) -> Backup:
    """Our record of an API backup."""
    created: Any = pb.create_time  # proto-plus hands out a datetime, typed as Timestamp
    return Backup(
        name=pb.name,
        source_instance=pb.source_instance,
        source_file_share=pb.source_file_share,
        capacity_gib=int(pb.capacity_gb),
        state=_enum_name(pb.state),
        create_time=datetime.fromtimestamp(created.timestamp(), tz=UTC),
        storage_bytes=int(pb.storage_bytes),
        labels=dict(pb.labels),
    )


def _enum(enum_type: Any, name: str, what: str) -> Any:
    """The member of a proto-plus enum named ``name`` (an API enum name such as "BASIC_HDD")."""
    try:
        return enum_type[name]
    except KeyError:
        raise CloudError(ErrorKind.INVALID_ARGUMENT, f"unknown {what} {name!r}") from None


def _instance_pb(project: str, instance: Instance) -> filestore_v1.Instance:
    share = filestore_v1.FileShareConfig(
        name=instance.share_name,
        capacity_gb=instance.capacity_gib,
        source_backup=instance.source_backup or "",
        nfs_export_options=[_export_rule_pb(rule) for rule in instance.nfs_export_options],
    )
    net = filestore_v1.NetworkConfig(
        network=instance.network,
        modes=[filestore_v1.NetworkConfig.AddressMode.MODE_IPV4],
        reserved_ip_range=instance.reserved_ip_range or "",
        connect_mode=_enum(filestore_v1.NetworkConfig.ConnectMode, instance.connect_mode, "connect mode"),
    )
    pb = filestore_v1.Instance(
        tier=_enum(filestore_v1.Instance.Tier, instance.tier, "tier"),
        labels=dict(instance.labels),
        file_shares=[share],
        networks=[net],
        kms_key_name=instance.kms_key or "",
        tags=dict(instance.tags),
    )
    if instance.performance is not None:
        pb.performance_config = _performance_pb(instance.performance)
    if instance.protocol != "NFS_V3":  # the API default; only the newer tiers accept the field
        pb.protocol = _enum(filestore_v1.Instance.FileProtocol, instance.protocol, "protocol")
    return pb


class GcpFilestore:
    """FilestoreCloud backed by ``CloudFilestoreManagerClient``.

    ``endpoint`` ("host:port") points the client at an emulator over an insecure channel with
    anonymous credentials; ``poll_initial``/``poll_maximum`` set the LRO polling backoff (seconds).
    ``page_size`` bounds list pages (None: the server's default); lists always fetch every page.
    """

    def __init__(
        self,
        project: str,
        *,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        rpc_timeout: float = 60.0,
        poll_initial: float = 1.0,
        poll_maximum: float = 10.0,
        page_size: int | None = None,
    ) -> None:
        self.project = project
        self._rpc_timeout = rpc_timeout
        self._page_size = page_size
        self._polling = polling.DEFAULT_POLLING.with_delay(initial=poll_initial, maximum=poll_maximum)
        if endpoint is not None:
            transport = CloudFilestoreManagerGrpcTransport(
                channel=grpc.insecure_channel(endpoint),
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            )
            self._client = filestore_v1.CloudFilestoreManagerClient(transport=transport)
        else:
            self._client = filestore_v1.CloudFilestoreManagerClient(credentials=credentials)

    def close(self) -> None:
        """Release the channel (the emulator one, or the client's own)."""
        self._client.transport.close()  # type: ignore[no-untyped-call]

    @property
    def transport(self) -> CloudFilestoreManagerGrpcTransport:
        """The client's gRPC transport: its channel and operations client also serve the v1beta1 calls."""
        transport = self._client.transport
        assert isinstance(transport, CloudFilestoreManagerGrpcTransport)
        return transport

    def wait_operation(self, op: goperation.Operation, wait: float) -> object:
        """The operation's result within ``wait`` seconds, or OperationPending (as every mutation here)."""
        return self._wait(op, wait)

    # -- helpers --

    def _parent(self, location: str) -> str:
        return f"projects/{self.project}/locations/{location}"

    def _wait(self, op: goperation.Operation, wait: float) -> object:
        """The operation's result within ``wait`` seconds, or OperationPending."""
        name = op.operation.name
        future: Any = op  # api_core's futures are untyped
        with _translated():
            if wait <= 0:
                if not future.done():
                    raise OperationPending(name, f"operation {name} is still running")
                return future.result()
            try:
                return future.result(timeout=wait, polling=self._polling)
            except TimeoutError:
                raise OperationPending(name, f"operation {name} still running after {wait:g}s") from None

    # -- instances --

    def get_instance(self, location: str, name: str) -> Instance:
        with _translated():
            pb = self._client.get_instance(
                name=instance_name(self.project, location, name), timeout=self._rpc_timeout
            )
        return instance_from_pb(pb)

    def create_instance(self, instance: Instance, *, wait: float) -> Instance:
        pb = _instance_pb(self.project, instance)
        with _translated():
            op = self._client.create_instance(
                parent=self._parent(instance.location),
                instance_id=instance.name,
                instance=pb,
                timeout=self._rpc_timeout,
            )
        result = self._wait(op, wait)
        assert isinstance(result, filestore_v1.Instance)
        return instance_from_pb(result)

    def delete_instance(self, location: str, name: str, *, wait: float) -> None:
        with _translated():
            op = self._client.delete_instance(
                name=instance_name(self.project, location, name), timeout=self._rpc_timeout
            )
        self._wait(op, wait)

    def expand_instance(self, location: str, name: str, capacity_gib: int, *, wait: float) -> Instance:
        current = self.get_instance(location, name)
        share = filestore_v1.FileShareConfig(name=current.share_name, capacity_gb=capacity_gib)
        # file_shares is replaced whole: keep the export rules the share has.
        share.nfs_export_options = [_export_rule_pb(rule) for rule in current.nfs_export_options]
        pb = filestore_v1.Instance(name=instance_name(self.project, location, name), file_shares=[share])
        return self._update(pb, "file_shares", wait)

    def set_performance(self, location: str, name: str, performance: Performance, *, wait: float) -> Instance:
        pb = filestore_v1.Instance(
            name=instance_name(self.project, location, name), performance_config=_performance_pb(performance)
        )
        return self._update(pb, "performance_config", wait)

    def _update(self, pb: filestore_v1.Instance, path: str, wait: float) -> Instance:
        with _translated():
            op = self._client.update_instance(
                instance=pb, update_mask=field_mask_pb2.FieldMask(paths=[path]), timeout=self._rpc_timeout
            )
        result = self._wait(op, wait)
        assert isinstance(result, filestore_v1.Instance)
        return instance_from_pb(result)

    def update_running(self, location: str, name: str) -> bool:
        target = instance_name(self.project, location, name)
        request = operations_pb2.ListOperationsRequest(name=self._parent(location))
        while True:
            with _translated():
                response: Any = self._client.list_operations(request=request, timeout=self._rpc_timeout)
            for op in response.operations:
                meta = OperationMetadata.pb()()
                if (
                    not op.done
                    and op.metadata.Unpack(meta)
                    and (meta.target, meta.verb) == (target, "update")
                ):
                    return True
            if not response.next_page_token:
                return False
            request.page_token = response.next_page_token

    def list_instances(self, location: str = "-") -> list[Instance]:
        request = filestore_v1.ListInstancesRequest(parent=self._parent(location))
        if self._page_size is not None:
            request.page_size = self._page_size
        with _translated():
            return [
                instance_from_pb(pb)
                for pb in self._client.list_instances(request=request, timeout=self._rpc_timeout)
            ]

    # -- backups --

    def create_backup(
        self,
        region: str,
        backup_id: str,
        source_instance: str,
        share: str,
        *,
        wait: float,
        labels: Mapping[str, str] | None = None,
    ) -> Backup:
        backup = filestore_v1.Backup(
            source_instance=source_instance, source_file_share=share, labels=dict(labels or {})
        )
        with _translated():
            op = self._client.create_backup(
                parent=self._parent(region), backup=backup, backup_id=backup_id, timeout=self._rpc_timeout
            )
        result = self._wait(op, wait)
        assert isinstance(result, filestore_v1.Backup)
        return backup_from_pb(result)

    def get_backup(self, full_name: str) -> Backup:
        with _translated():
            return backup_from_pb(self._client.get_backup(name=full_name, timeout=self._rpc_timeout))

    def delete_backup(self, full_name: str, *, wait: float) -> None:
        with _translated():
            op = self._client.delete_backup(name=full_name, timeout=self._rpc_timeout)
        self._wait(op, wait)

    def list_backups(self, region: str = "-") -> list[Backup]:
        request = filestore_v1.ListBackupsRequest(parent=self._parent(region))
        if self._page_size is not None:
            request.page_size = self._page_size
        with _translated():
            return [
                backup_from_pb(pb)
                for pb in self._client.list_backups(request=request, timeout=self._rpc_timeout)
            ]
