"""The gRPC server: endpoints, the interceptor (logging with redaction, metrics, error mapping), metrics
HTTP."""

from __future__ import annotations

import logging
import os
import socket
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message

from csi import server as server_module
from csi.errors import CsiError
from csi.identity import IdentityServicer
from csi.metrics import Metrics, MetricsServer, parse_http_endpoint
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.server import CsiServer, Endpoint, redacted
from mountkit.errors import CorruptedMountError, InvalidOptionError, MountConflictError

SECRET = "hunter2-very-secret"


class Controller(csi_pb2_grpc.ControllerServicer):
    """Answers CreateVolume by raising whatever the request's name asks for."""

    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: object
    ) -> csi_pb2.CreateVolumeResponse:
        errors: dict[str, BaseException] = {
            "csi": CsiError(grpc.StatusCode.NOT_FOUND, "no such thing"),
            "conflict": MountConflictError(16, "mount", "/t"),
            "corrupt": CorruptedMountError(116, "stat", "/t"),
            "option": InvalidOptionError("parse options", "empty"),
            "boom": RuntimeError(f"internal detail {SECRET}"),
        }
        if request.name in errors:
            raise errors[request.name]
        return csi_pb2.CreateVolumeResponse(volume=csi_pb2.Volume(volume_id=request.name))


def identity(ready: bool = True) -> IdentityServicer:
    return IdentityServicer(
        "drv.example.com", "1.2.3", controller=True, checks=[lambda: None if ready else "no"]
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[CsiServer, grpc.Channel]]:
    server = CsiServer(f"unix://{tmp_path}/sock/csi.sock", identity(), controller=Controller(), workers=2)
    server.start()
    channel = grpc.insecure_channel(f"unix:{tmp_path}/sock/csi.sock")
    yield server, channel
    channel.close()
    server.stop(0).wait()


def test_endpoint_parsing() -> None:
    assert Endpoint.parse("unix:///run/csi.sock") == Endpoint("unix", "/run/csi.sock")
    assert Endpoint.parse("unix:/run/csi.sock") == Endpoint("unix", "/run/csi.sock")
    assert Endpoint.parse("/run/csi.sock") == Endpoint("unix", "/run/csi.sock")
    assert Endpoint.parse("tcp://127.0.0.1:0") == Endpoint("tcp", "127.0.0.1:0")
    for bad in ("unix://relative", "tcp://nohost", "http://x:1", "127.0.0.1:1"):
        with pytest.raises(ValueError):
            Endpoint.parse(bad)
    assert parse_http_endpoint(":9808") == ("", 9808)
    assert parse_http_endpoint("[::1]:9808") == ("::1", 9808)


def test_unix_socket_mode_and_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on: what a crashed driver leaves
    server = CsiServer(f"unix://{path}", identity())
    server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        with grpc.insecure_channel(f"unix:{path}") as channel:
            info = csi_pb2_grpc.IdentityStub(channel).GetPluginInfo(csi_pb2.GetPluginInfoRequest())
        assert info.name == "drv.example.com"
    finally:
        server.stop(0).wait()
    assert not path.exists()


def test_refuses_to_remove_a_non_socket(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        CsiServer(f"unix://{path}", identity())
    assert path.read_text() == "precious"


def test_tcp_loopback_picks_a_free_port() -> None:
    server = CsiServer("tcp://127.0.0.1:0", identity())
    server.start()
    try:
        host, _, port = server.address.removeprefix("tcp://").rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            probe = csi_pb2_grpc.IdentityStub(channel).Probe(csi_pb2.ProbeRequest())
        assert probe.ready.value is True
    finally:
        server.stop(0).wait()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("csi", grpc.StatusCode.NOT_FOUND),
        ("conflict", grpc.StatusCode.ALREADY_EXISTS),
        ("corrupt", grpc.StatusCode.UNAVAILABLE),
        ("option", grpc.StatusCode.INVALID_ARGUMENT),
        ("boom", grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_become_status_codes(
    served: tuple[CsiServer, grpc.Channel], name: str, code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        csi_pb2_grpc.ControllerStub(served[1]).CreateVolume(csi_pb2.CreateVolumeRequest(name=name))
    assert info.value.code() == code
    assert SECRET not in (info.value.details() or "")


def test_unimplemented_default_is_unimplemented(served: tuple[CsiServer, grpc.Channel]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        csi_pb2_grpc.ControllerStub(served[1]).GetCapacity(csi_pb2.GetCapacityRequest())
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_logs_are_redacted(served: tuple[CsiServer, grpc.Channel], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cap = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(
            mount_flags=["hard", f"password={SECRET}", f"vers=3,sec_key={SECRET}"]
        ),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=1),
    )
    stub = csi_pb2_grpc.ControllerStub(served[1])
    stub.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name="ok", secrets={"key": SECRET}, parameters={"tier": "standard"}, volume_capabilities=[cap]
        )
    )
    with pytest.raises(grpc.RpcError):
        stub.CreateVolume(csi_pb2.CreateVolumeRequest(name="csi", secrets={"key": SECRET}))
    text = caplog.text
    assert "CreateVolume OK" in text and "CreateVolume NOT_FOUND" in text
    assert "tier" in text and "hard" in text and "password=<redacted>" in text and "vers=3" in text
    assert SECRET not in text


def test_redacted_handles_node_requests() -> None:
    request = csi_pb2.NodeStageVolumeRequest(volume_id="v", secrets={"a": SECRET, "b": SECRET})
    text = redacted(request)
    assert SECRET not in text and text.count("***") == 2 and 'volume_id: "v"' in text


def test_redacted_is_text_format_on_one_line() -> None:
    cap = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=["a\nb", f"password={SECRET}"]),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=3),
    )
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id="v\n1", target_path="/t", volume_capability=cap, readonly=True
    )
    text = redacted(request)
    assert "\n" not in text and SECRET not in text
    assert text == (
        'volume_id: "v\\n1" target_path: "/t" volume_capability { mount { mount_flags: "a\\nb" '
        'mount_flags: "password=<redacted>" } access_mode { mode: MULTI_NODE_READER_ONLY } } readonly: true'
    )


def test_metrics_endpoint(served: tuple[CsiServer, grpc.Channel]) -> None:
    server, channel = served
    stub = csi_pb2_grpc.ControllerStub(channel)
    stub.CreateVolume(csi_pb2.CreateVolumeRequest(name="ok"))
    with pytest.raises(grpc.RpcError):
        stub.CreateVolume(csi_pb2.CreateVolumeRequest(name="csi"))
    ready = [True]
    http = MetricsServer("127.0.0.1:0", server.metrics, lambda: ready[0])
    http.start()
    try:
        base = f"http://127.0.0.1:{http.port}"
        body = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'csi_operations_total{grpc_status_code="OK",method="CreateVolume"} 1.0' in body
        assert 'csi_operations_total{grpc_status_code="NOT_FOUND",method="CreateVolume"} 1.0' in body
        assert 'csi_operation_duration_seconds_count{grpc_status_code="OK",method="CreateVolume"} 1.0' in body
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
        ready[0] = False
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert info.value.code == 503
    finally:
        http.stop()


def test_metrics_registries_are_per_server() -> None:
    first, second = Metrics(), Metrics()
    first.record("Probe", "OK", 0.01)
    assert b"Probe" in first.exposition() and b"Probe" not in second.exposition()


def _slow_redacted(message: Message) -> str:
    """What :func:`redacted` printed before its fast path: always a copy, always the redaction walk."""
    copy = type(message)()
    copy.CopyFrom(message)
    server_module._redact_in_place(copy)
    return " ".join(line.strip(" ") for line in str(copy).split("\n") if line)


def _mount_cap(*flags: str) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=3),
    )


@pytest.mark.parametrize(
    ("message", "holds_secret"),
    [
        (
            csi_pb2.NodePublishVolumeRequest(volume_id="v", volume_capability=_mount_cap("hard", "vers=3")),
            False,
        ),
        (
            csi_pb2.NodePublishVolumeRequest(volume_id="v", volume_capability=_mount_cap(f"pass={SECRET}")),
            True,
        ),
        (csi_pb2.NodePublishVolumeRequest(volume_id="v", secrets={"k": SECRET}), True),
        (csi_pb2.NodeStageVolumeRequest(volume_id="v", volume_context={"ip": "10.0.0.2"}), False),
        (csi_pb2.CreateVolumeRequest(name="n", volume_capabilities=[_mount_cap(), _mount_cap("ro")]), False),
        (
            csi_pb2.CreateVolumeRequest(
                name="n", volume_capabilities=[_mount_cap(), _mount_cap(f"x,token={SECRET}")]
            ),
            True,
        ),
        (csi_pb2.CreateSnapshotRequest(name="s", secrets={"a": SECRET}), True),
        (csi_pb2.NodeUnpublishVolumeRequest(volume_id="v", target_path="/t"), False),
        (csi_pb2.ControllerPublishVolumeRequest(volume_id="v", secrets={}), False),
    ],
)
def test_redacted_fast_path_prints_what_the_full_walk_does(message: Message, holds_secret: bool) -> None:
    """A request with nothing to redact is printed without the copy and walk, and identically."""
    assert server_module._needs_redaction(message) is holds_secret
    assert redacted(message) == _slow_redacted(message)
    assert (SECRET in str(message)) is holds_secret and SECRET not in redacted(message)
