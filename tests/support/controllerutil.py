"""The controller under test: the servicer over a real gRPC unix socket, on the Filestore emulator
reached through the real google-cloud-filestore client (shared by the controller test modules)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi.cloud.emulator import EmulatorState, start_emulator
from csi.cloud.gcp import GcpFilestore
from csi.controller.service import ControllerServicer
from csi.filestore import GIB
from csi.identity import IdentityServicer
from csi.locks import VolumeLocks
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.server import CsiServer

ZONE = "us-central1-a"
DRIVER = "filestore.csi.storage.gke.io"
Mode = csi_pb2.VolumeCapability.AccessMode
TIB = 1024 * GIB


def mount_cap(
    mode: int = Mode.MULTI_NODE_MULTI_WRITER, flags: tuple[str, ...] = ()
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


BLOCK = csi_pb2.VolumeCapability(
    block=csi_pb2.VolumeCapability.BlockVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
)


@dataclass
class Driver:
    ctl: csi_pb2_grpc.ControllerStub
    ident: csi_pb2_grpc.IdentityStub
    state: EmulatorState
    servicer: ControllerServicer
    cloud: GcpFilestore


@contextlib.contextmanager
def running_driver(tmp_path: Path, *, multishare: bool = False, **servicer_options: Any) -> Iterator[Driver]:
    """The controller (options passed to ControllerServicer) over a unix socket, on an emulator;
    with ``multishare`` it also serves multishare volumes (the v1beta1 client on the same channel)."""
    state = EmulatorState(op_delay=0.05)
    emulator, endpoint = start_emulator(state=state)
    cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02, poll_maximum=0.1)
    if multishare:
        from csi.cloud.gcp_multishare import GcpMultishare

        servicer_options["multishare"] = GcpMultishare(cloud)
    servicer = ControllerServicer(
        cloud, driver_name=DRIVER, zone=ZONE, locks=VolumeLocks(), operation_timeout=5.0, **servicer_options
    )
    identity = IdentityServicer(DRIVER, "1.0", controller=True, checks=[servicer.check_cloud])
    server = CsiServer(f"unix://{tmp_path}/csi.sock", identity, controller=servicer, workers=8)
    server.start()
    channel = grpc.insecure_channel(server.address.replace("unix://", "unix:"))
    try:
        yield Driver(
            csi_pb2_grpc.ControllerStub(channel), csi_pb2_grpc.IdentityStub(channel), state, servicer, cloud
        )
    finally:
        channel.close()
        server.stop(0).wait()
        cloud.close()
        emulator.stop(0).wait()


def create(d: Driver, name: str, **kwargs: object) -> csi_pb2.Volume:
    kwargs.setdefault("volume_capabilities", [mount_cap()])
    response = d.ctl.CreateVolume(csi_pb2.CreateVolumeRequest(name=name, **kwargs))  # type: ignore[arg-type]
    volume: csi_pb2.Volume = response.volume
    return volume


def code_of(fn: object, request: object) -> grpc.StatusCode:
    """The status code ``fn(request)`` fails with (the test fails if it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        fn(request)  # type: ignore[operator]
    code: grpc.StatusCode = info.value.code()
    return code
