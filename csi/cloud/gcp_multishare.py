"""MultishareCloud over Filestore's v1beta1 gRPC API (multishare instances and their shares).

Why gRPC with our own transcription of the v1beta1 messages (``csi/proto/filestore_v1beta1.proto``):
the shares API exists only in v1beta1, and google-cloud-filestore ships v1 alone.  The real service
serves ``google.cloud.filestore.v1beta1.CloudFilestoreManager`` over gRPC on the same endpoint as v1,
so these calls ride the v1 client's own authenticated channel, and its operations client and LRO
polling (google-api-core) wait for them exactly as for v1 calls.  The emulator already is a gRPC
server with google.longrunning, so it serves v1beta1 beside v1 over one state.  (The REST route,
google-api-python-client with its bundled discovery document, would add an HTTP stack and an HTTP
server in the emulator for no gain in fidelity.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from google.api_core import gapic_v1
from google.api_core import operation as goperation
from google.cloud.common import OperationMetadata
from google.protobuf import empty_pb2, field_mask_pb2

from csi.cloud import Backup, CloudError, ErrorKind, MultishareInstance, Share, instance_name
from csi.cloud.gcp import GcpFilestore, _translated
from csi.filestore import DEFAULT_CONNECT_MODE, DEFAULT_PROTOCOL
from csi.proto import filestore_v1beta1_pb2 as pb
from csi.proto import filestore_v1beta1_pb2_grpc as pb_grpc

__all__ = ["GcpMultishare", "multishare_instance_from_pb", "multishare_instance_pb", "share_from_pb"]

_Instance = pb.Instance
_Network = pb.NetworkConfig


def _enum_name(enum: Any, value: int, default: str = "") -> str:
    name = str(enum.Name(value)) if value in enum.values() else ""
    return default if not name or name.endswith("_UNSPECIFIED") else name


def _enum_value(enum: Any, name: str, what: str) -> Any:
    try:
        return enum.Value(name)
    except ValueError:
        raise CloudError(ErrorKind.INVALID_ARGUMENT, f"unknown {what} {name!r}") from None


def _short(full_name: str, index: int) -> str:
    parts = full_name.split("/")
    return parts[index] if len(parts) > index else ""


def multishare_instance_from_pb(msg: pb.Instance) -> MultishareInstance:
    """Our record of a v1beta1 instance (first network)."""
    net = msg.networks[0] if msg.networks else _Network()
    return MultishareInstance(
        name=_short(msg.name, 5),
        location=_short(msg.name, 3),
        tier=_enum_name(_Instance.Tier, msg.tier),
        capacity_gib=int(msg.capacity_gb),
        max_share_count=int(msg.max_share_count),
        network=net.network,
        connect_mode=_enum_name(_Network.ConnectMode, net.connect_mode, DEFAULT_CONNECT_MODE),
        reserved_ip_range=net.reserved_ip_range or None,
        ip=net.ip_addresses[0] if net.ip_addresses else None,
        labels=dict(msg.labels),
        state=_enum_name(_Instance.State, msg.state),
        protocol=_enum_name(_Instance.FileProtocol, msg.protocol, DEFAULT_PROTOCOL),
        kms_key=msg.kms_key_name or None,
        capacity_step_gib=int(msg.capacity_step_size_gb),
        description=msg.description,
    )


def multishare_instance_pb(instance: MultishareInstance) -> pb.Instance:
    """The v1beta1 message that creates ``instance``."""
    msg = _Instance(
        tier=_enum_value(_Instance.Tier, instance.tier, "tier"),
        labels=dict(instance.labels),
        networks=[
            _Network(
                network=instance.network,
                modes=[_Network.MODE_IPV4],
                reserved_ip_range=instance.reserved_ip_range or "",
                connect_mode=_enum_value(_Network.ConnectMode, instance.connect_mode, "connect mode"),
            )
        ],
        kms_key_name=instance.kms_key or "",
        description=instance.description,
        capacity_gb=instance.capacity_gib,
        max_share_count=instance.max_share_count,
        multi_share_enabled=True,
    )
    if instance.protocol != DEFAULT_PROTOCOL:
        msg.protocol = _enum_value(_Instance.FileProtocol, instance.protocol, "protocol")
    return msg


def share_from_pb(msg: pb.Share) -> Share:
    """Our record of a v1beta1 share."""
    return Share(
        name=_short(msg.name, 7),
        instance=_short(msg.name, 5),
        location=_short(msg.name, 3),
        capacity_gib=int(msg.capacity_gb),
        labels=dict(msg.labels),
        state=_enum_name(pb.Share.State, msg.state),
        mount_name=msg.mount_name,
    )


class GcpMultishare:
    """MultishareCloud on the channel of a :class:`GcpFilestore` (the real service or the emulator)."""

    def __init__(self, v1: GcpFilestore, *, rpc_timeout: float = 60.0, page_size: int | None = None) -> None:
        self.project = v1.project
        self._v1 = v1
        self._timeout = rpc_timeout
        self._page_size = page_size
        transport = v1.transport
        self._operations = transport.operations_client
        stub = pb_grpc.CloudFilestoreManagerStub(transport.grpc_channel)  # type: ignore[no-untyped-call]
        wrap: Any = gapic_v1.method.wrap_method  # adds timeouts and turns grpc errors into api_core's
        self._call: dict[str, Callable[..., Any]] = {
            name: wrap(getattr(stub, name), default_timeout=rpc_timeout)
            for name in (
                "ListInstances",
                "GetInstance",
                "CreateInstance",
                "UpdateInstance",
                "DeleteInstance",
                "ListShares",
                "GetShare",
                "CreateShare",
                "DeleteShare",
                "UpdateShare",
                "CreateBackup",
            )
        }

    # -- helpers --

    def _rpc(self, method: str, request: Any, routing: tuple[str, str]) -> Any:
        """One unary call, with the routing header the service expects, errors as CloudError."""
        metadata = (gapic_v1.routing_header.to_grpc_metadata((routing,)),)  # type: ignore[no-untyped-call]
        with _translated():
            return self._call[method](request, metadata=metadata)

    def _mutate(
        self, method: str, request: Any, routing: tuple[str, str], result_type: Any, wait: float
    ) -> Any:
        op_pb = self._rpc(method, request, routing)
        future = goperation.from_gapic(  # type: ignore[no-untyped-call]
            op_pb, self._operations, result_type, metadata_type=OperationMetadata.pb()
        )
        return self._v1.wait_operation(future, wait)

    def _pages(self, method: str, request: Any, field: str) -> Iterator[Any]:
        if self._page_size is not None:
            request.page_size = self._page_size
        while True:
            response = self._rpc(method, request, ("parent", request.parent))
            yield from getattr(response, field)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def _share_name(self, location: str, instance: str, name: str) -> str:
        return f"{instance_name(self.project, location, instance)}/shares/{name}"

    # -- instances --

    def get_multishare_instance(self, location: str, name: str) -> MultishareInstance:
        full = instance_name(self.project, location, name)
        return multishare_instance_from_pb(
            self._rpc("GetInstance", pb.GetInstanceRequest(name=full), ("name", full))
        )

    def list_multishare_instances(self, location: str = "-") -> list[MultishareInstance]:
        request = pb.ListInstancesRequest(parent=f"projects/{self.project}/locations/{location}")
        return [
            multishare_instance_from_pb(msg)
            for msg in self._pages("ListInstances", request, "instances")
            if msg.multi_share_enabled
        ]

    def create_multishare_instance(self, instance: MultishareInstance, *, wait: float) -> MultishareInstance:
        parent = f"projects/{self.project}/locations/{instance.location}"
        request = pb.CreateInstanceRequest(
            parent=parent, instance_id=instance.name, instance=multishare_instance_pb(instance)
        )
        result = self._mutate("CreateInstance", request, ("parent", parent), pb.Instance, wait)
        return multishare_instance_from_pb(result)

    def resize_multishare_instance(
        self, location: str, name: str, capacity_gib: int, *, wait: float
    ) -> MultishareInstance:
        full = instance_name(self.project, location, name)
        request = pb.UpdateInstanceRequest(
            instance=pb.Instance(name=full, capacity_gb=capacity_gib),
            update_mask=field_mask_pb2.FieldMask(paths=["capacity_gb"]),
        )
        result = self._mutate("UpdateInstance", request, ("instance.name", full), pb.Instance, wait)
        return multishare_instance_from_pb(result)

    def delete_multishare_instance(self, location: str, name: str, *, wait: float) -> None:
        full = instance_name(self.project, location, name)
        self._mutate(
            "DeleteInstance", pb.DeleteInstanceRequest(name=full), ("name", full), empty_pb2.Empty, wait
        )

    # -- shares --

    def list_shares(self, location: str, instance: str = "-") -> list[Share]:
        request = pb.ListSharesRequest(parent=instance_name(self.project, location, instance))
        return [share_from_pb(msg) for msg in self._pages("ListShares", request, "shares")]

    def get_share(self, location: str, instance: str, name: str) -> Share:
        full = self._share_name(location, instance, name)
        return share_from_pb(self._rpc("GetShare", pb.GetShareRequest(name=full), ("name", full)))

    def create_share(self, share: Share, *, wait: float) -> Share:
        parent = instance_name(self.project, share.location, share.instance)
        request = pb.CreateShareRequest(
            parent=parent,
            share_id=share.name,
            share=pb.Share(
                mount_name=share.mount_name or share.name,
                capacity_gb=share.capacity_gib,
                labels=dict(share.labels),
            ),
        )
        return share_from_pb(self._mutate("CreateShare", request, ("parent", parent), pb.Share, wait))

    def resize_share(
        self, location: str, instance: str, name: str, capacity_gib: int, *, wait: float
    ) -> Share:
        full = self._share_name(location, instance, name)
        request = pb.UpdateShareRequest(
            share=pb.Share(name=full, capacity_gb=capacity_gib),
            update_mask=field_mask_pb2.FieldMask(paths=["capacity_gb"]),
        )
        return share_from_pb(self._mutate("UpdateShare", request, ("share.name", full), pb.Share, wait))

    def create_share_backup(
        self,
        region: str,
        backup_id: str,
        source_instance: str,
        share: str,
        *,
        wait: float,
        labels: Mapping[str, str] | None = None,
    ) -> Backup:
        parent = f"projects/{self.project}/locations/{region}"
        request = pb.CreateBackupRequest(
            parent=parent,
            backup_id=backup_id,
            backup=pb.Backup(
                source_instance=source_instance, source_file_share=share, labels=dict(labels or {})
            ),
        )
        self._mutate("CreateBackup", request, ("parent", parent), pb.Backup, wait)
        return self._v1.get_backup(
            f"{parent}/backups/{backup_id}"
        )  # backups are one resource in v1 and v1beta1

    def delete_share(self, location: str, instance: str, name: str, *, wait: float) -> None:
        full = self._share_name(location, instance, name)
        self._mutate("DeleteShare", pb.DeleteShareRequest(name=full), ("name", full), empty_pb2.Empty, wait)
