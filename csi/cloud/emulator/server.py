"""The emulator's gRPC server: google.cloud.filestore.v1.CloudFilestoreManager,
google.cloud.filestore.v1beta1.CloudFilestoreManager (multishare instances and shares) and
google.longrunning.Operations, served with generic handlers over the real message types, so the
real client library (and its LRO polling) talks to it unchanged.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from google.cloud import filestore_v1
from google.longrunning import operations_pb2

from csi.cloud.emulator.errors import ApiError
from csi.cloud.emulator.state import EmulatorState
from csi.proto import filestore_v1beta1_pb2 as v1beta1

FILESTORE_SERVICE = "google.cloud.filestore.v1.CloudFilestoreManager"
FILESTORE_V1BETA1_SERVICE = "google.cloud.filestore.v1beta1.CloudFilestoreManager"
OPERATIONS_SERVICE = "google.longrunning.Operations"
# WaitOperation without a timeout waits at most this long, like the service does.
MAX_WAIT_SECONDS = 60.0


def _handler(
    state: EmulatorState, method: str, request_type: Any, body: Callable[[Any], Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            state.check_fault(method)
            return state.run(lambda: body(request))
        except ApiError as exc:
            context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,
        response_serializer=lambda msg: msg.SerializeToString(),
    )


def _wait_operation(state: EmulatorState, request: operations_pb2.WaitOperationRequest) -> Any:
    limit = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else MAX_WAIT_SECONDS
    time.sleep(min(limit, state.run(lambda: state.seconds_until_done(request.name))))
    return state.run(lambda: state.get_operation(request.name))


def handlers(state: EmulatorState) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """The two services' handlers over ``state``."""
    pb = {
        name: getattr(filestore_v1, name).pb()
        for name in (
            "GetInstanceRequest",
            "ListInstancesRequest",
            "CreateInstanceRequest",
            "UpdateInstanceRequest",
            "DeleteInstanceRequest",
            "GetBackupRequest",
            "ListBackupsRequest",
            "CreateBackupRequest",
            "DeleteBackupRequest",
        )
    }
    filestore = {
        "GetInstance": (pb["GetInstanceRequest"], lambda r: state.get_instance(r.name)),
        "ListInstances": (
            pb["ListInstancesRequest"],
            lambda r: state.list_instances(r.parent, r.page_size, r.page_token),
        ),
        "CreateInstance": (pb["CreateInstanceRequest"], state.create_instance),
        "UpdateInstance": (pb["UpdateInstanceRequest"], state.update_instance),
        "DeleteInstance": (pb["DeleteInstanceRequest"], lambda r: state.delete_instance(r.name)),
        "GetBackup": (pb["GetBackupRequest"], lambda r: state.get_backup(r.name)),
        "ListBackups": (
            pb["ListBackupsRequest"],
            lambda r: state.list_backups(r.parent, r.page_size, r.page_token),
        ),
        "CreateBackup": (pb["CreateBackupRequest"], state.create_backup),
        "DeleteBackup": (pb["DeleteBackupRequest"], lambda r: state.delete_backup(r.name)),
    }
    operations: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "GetOperation": (operations_pb2.GetOperationRequest, lambda r: state.get_operation(r.name)),
        "ListOperations": (
            operations_pb2.ListOperationsRequest,
            lambda r: state.list_operations(r.name, r.page_size, r.page_token),
        ),
        "DeleteOperation": (operations_pb2.DeleteOperationRequest, lambda r: state.delete_operation(r.name)),
        "CancelOperation": (operations_pb2.CancelOperationRequest, lambda r: state.cancel_operation(r.name)),
    }
    multishare: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "GetInstance": (v1beta1.GetInstanceRequest, lambda r: state.ms_get_instance(r.name)),
        "ListInstances": (
            v1beta1.ListInstancesRequest,
            lambda r: state.ms_list_instances(r.parent, r.page_size, r.page_token),
        ),
        "CreateInstance": (v1beta1.CreateInstanceRequest, state.ms_create_instance),
        "UpdateInstance": (v1beta1.UpdateInstanceRequest, state.ms_update_instance),
        "DeleteInstance": (v1beta1.DeleteInstanceRequest, lambda r: state.ms_delete_instance(r.name)),
        "GetShare": (v1beta1.GetShareRequest, lambda r: state.get_share(r.name)),
        "ListShares": (
            v1beta1.ListSharesRequest,
            lambda r: state.list_shares(r.parent, r.page_size, r.page_token),
        ),
        "CreateShare": (v1beta1.CreateShareRequest, state.create_share),
        "UpdateShare": (v1beta1.UpdateShareRequest, state.update_share),
        "DeleteShare": (v1beta1.DeleteShareRequest, lambda r: state.delete_share(r.name)),
        "CreateBackup": (v1beta1.CreateBackupRequest, state.ms_create_backup),
    }
    ops_handlers = {m: _handler(state, m, t, f) for m, (t, f) in operations.items()}

    def wait(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            state.check_fault("WaitOperation")
            return _wait_operation(state, request)
        except ApiError as exc:
            context.abort(exc.code, exc.message)

    ops_handlers["WaitOperation"] = grpc.unary_unary_rpc_method_handler(
        wait,
        request_deserializer=operations_pb2.WaitOperationRequest.FromString,
        response_serializer=lambda msg: msg.SerializeToString(),
    )
    return [
        grpc.method_handlers_generic_handler(
            FILESTORE_SERVICE, {m: _handler(state, m, t, f) for m, (t, f) in filestore.items()}
        ),
        grpc.method_handlers_generic_handler(
            FILESTORE_V1BETA1_SERVICE,
            {m: _handler(state, f"v1beta1.{m}", t, f) for m, (t, f) in multishare.items()},
        ),
        grpc.method_handlers_generic_handler(OPERATIONS_SERVICE, ops_handlers),
    ]


def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    state: EmulatorState | None = None,
    max_workers: int = 8,
) -> tuple[grpc.Server, str]:
    """Start the emulator on ``host:port`` (0 picks a free port); returns (server, "host:port").

    ``host`` must be a loopback address. Stop it with ``server.stop(grace)``.
    """
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the emulator listens on loopback only, not {host}")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="filestore-emu")
    )
    for h in handlers(state or EmulatorState()):
        server.add_generic_rpc_handlers((h,))
    bracketed = f"[{host}]" if ":" in host else host
    bound = server.add_insecure_port(f"{bracketed}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the emulator to {bracketed}:{port}")
    server.start()
    return server, f"{bracketed}:{bound}"


__all__ = [
    "FILESTORE_SERVICE",
    "FILESTORE_V1BETA1_SERVICE",
    "OPERATIONS_SERVICE",
    "handlers",
    "start_emulator",
]
