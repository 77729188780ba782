"""csi.node.nsm's probe against RPC servers on loopback, uses_nlm, and NodeStageVolume's lock-recovery check.

The RPC servers here speak just enough ONC RPC over UDP (a portmapper's GETPORT, a NULL procedure)
to answer the probe the way rpcbind and rpc.statd do; they bind ephemeral loopback ports.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi.errors import to_status
from csi.locks import VolumeLocks
from csi.node import kubelet, nsm
from csi.node.service import NodeServicer
from csi.proto import csi_pb2
from csi.version import DEFAULT_DRIVER_NAME
from mountkit.fake import FakeMounter
from mountkit.nfs import uses_nlm


class UdpRpcServer:
    """Answers ONC RPC calls over UDP on loopback: ``programs`` maps (program, version) to a handler."""

    def __init__(self, programs: dict[tuple[int, int], object]) -> None:
        self.programs = programs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.calls: list[tuple[int, int, int]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                return
            xid, _call, _rpcvers, prog, vers, proc = struct.unpack_from(">6I", data)
            self.calls.append((prog, vers, proc))
            handler = self.programs.get((prog, vers))
            head = struct.pack(">5I", xid, 1, 0, 0, 0)  # REPLY, MSG_ACCEPTED, verifier AUTH_NONE
            if handler is None:
                reply = head + struct.pack(">I", 1)  # PROG_UNAVAIL
            else:
                assert callable(handler)
                reply = head + struct.pack(">I", 0) + handler(proc, data[40:])
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.sock.close()


def _closed_udp_port() -> int:
    """A loopback UDP port nothing listens on (ICMP port unreachable: ECONNREFUSED)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def statd() -> Iterator[UdpRpcServer]:
    server = UdpRpcServer({(nsm.NSM_PROGRAM, nsm.NSM_VERSION): lambda proc, args: b""})
    yield server
    server.close()


def portmapper(ports: dict[int, int]) -> UdpRpcServer:
    def getport(proc: int, args: bytes) -> bytes:
        assert proc == nsm.PMAPPROC_GETPORT
        prog, _vers, prot, _port = struct.unpack(">4I", args[:16])
        assert prot == nsm.IPPROTO_UDP
        return struct.pack(">I", ports.get(prog, 0))

    return UdpRpcServer({(nsm.PMAP_PROGRAM, nsm.PMAP_VERSION): getport})


def test_probe_finds_a_registered_statd_that_answers(statd: UdpRpcServer) -> None:
    pmap = portmapper({nsm.NSM_PROGRAM: statd.port})
    try:
        status = nsm.probe(rpcbind_port=pmap.port)
    finally:
        pmap.close()
    assert status == nsm.NsmStatus(True, f"rpc.statd answers at 127.0.0.1:{statd.port}")
    assert statd.calls == [(nsm.NSM_PROGRAM, nsm.NSM_VERSION, 0)]  # the NULL procedure


def test_probe_without_rpcbind() -> None:
    port = _closed_udp_port()
    status = nsm.probe(rpcbind_port=port, timeout=0.5)
    assert not status.ready and status.detail.startswith(f"rpcbind does not answer at 127.0.0.1:{port}")


def test_probe_with_rpcbind_but_no_statd_registered() -> None:
    pmap = portmapper({})
    try:
        status = nsm.probe(rpcbind_port=pmap.port)
    finally:
        pmap.close()
    assert status == nsm.NsmStatus(
        False, f"rpcbind at 127.0.0.1:{pmap.port} answers, but no rpc.statd is registered"
    )


def test_probe_with_a_registration_left_by_a_dead_statd() -> None:
    dead = _closed_udp_port()
    pmap = portmapper({nsm.NSM_PROGRAM: dead})
    try:
        status = nsm.probe(rpcbind_port=pmap.port, timeout=0.5)
    finally:
        pmap.close()
    assert not status.ready and status.detail.startswith(
        f"rpc.statd is registered at port {dead} but does not answer"
    )


def test_a_program_rpcbind_does_not_serve_is_an_rpc_error() -> None:
    pmap = portmapper({})
    try:
        with pytest.raises(nsm.RpcError, match="not accepted"):
            nsm.rpc_call(nsm.NSM_PROGRAM, nsm.NSM_VERSION, 0, port=pmap.port)
    finally:
        pmap.close()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["vers=3"], True),
        ([], True),  # mountkit's default version is 3
        (["nfsvers=3", "hard,timeo=600"], True),
        (["vers=3", "nolock"], False),
        (["vers=3", "nolock", "lock"], True),
        (["vers=3,local_lock=all"], False),
        (["vers=3", "local_lock=posix"], True),  # flock still goes to NLM
        (["vers=3", "local_lock=flock"], True),
        (["vers=3", "local_lock=all", "local_lock=none"], True),
        (["vers=4.1"], False),
        (["vers=4"], False),
    ],
)
def test_uses_nlm(options: list[str], expected: bool) -> None:
    assert uses_nlm(options) is expected


class _Stager:
    def __init__(self, root: Path, status: nsm.NsmStatus, lock_check: str) -> None:
        self.probes = 0
        self.mounter = FakeMounter()

        def probe() -> nsm.NsmStatus:
            self.probes += 1
            return status

        self.svc = NodeServicer(
            "n", "z", str(root), self.mounter, VolumeLocks(), 2.0, nsm_probe=probe, lock_check=lock_check
        )
        self.staging = Path(kubelet.staging_path(str(root), DEFAULT_DRIVER_NAME, "pv"))
        self.staging.parent.mkdir(parents=True)

    def stage(self, protocol: str = "NFS_V3", flags: tuple[str, ...] = ()) -> None:
        mode = csi_pb2.VolumeCapability.AccessMode
        self.svc.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id="vol",
                staging_target_path=str(self.staging),
                volume_capability=csi_pb2.VolumeCapability(
                    mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
                    access_mode=mode(mode=mode.MULTI_NODE_MULTI_WRITER),
                ),
                volume_context={"ip": "10.0.0.2", "volume": "vol1", "fileProtocol": protocol},
            ),
            None,
        )  # type: ignore[arg-type]


NO_STATD = nsm.NsmStatus(False, "rpcbind at 127.0.0.1:111 answers, but no rpc.statd is registered")


def test_stage_of_a_v3_volume_with_locks_and_no_statd_is_failed_precondition(tmp_path: Path) -> None:
    node = _Stager(tmp_path, NO_STATD, "refuse")
    with pytest.raises(Exception) as info:
        node.stage()
    code, message = to_status(info.value)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert NO_STATD.detail in message and "nolock" in message and "local_lock=all" in message
    assert node.mounter.list().find(str(node.staging)) is None and not node.staging.exists()


@pytest.mark.parametrize(
    ("protocol", "flags"), [("NFS_V3", ("nolock",)), ("NFS_V3", ("local_lock=all",)), ("NFS_V4_1", ())]
)
def test_stage_without_nlm_needs_no_statd(tmp_path: Path, protocol: str, flags: tuple[str, ...]) -> None:
    node = _Stager(tmp_path, NO_STATD, "refuse")
    node.stage(protocol, flags)
    assert node.mounter.list().find(str(node.staging)) is not None and node.probes == 0


def test_stage_with_statd_answering_mounts(tmp_path: Path) -> None:
    node = _Stager(tmp_path, nsm.NsmStatus(True, "rpc.statd answers at 127.0.0.1:600"), "refuse")
    node.stage()
    assert node.mounter.list().find(str(node.staging)) is not None and node.probes == 1


def test_lock_check_warn_logs_and_stages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node = _Stager(tmp_path, NO_STATD, "warn")
    node.stage()
    assert node.mounter.list().find(str(node.staging)) is not None
    assert any(r.levelname == "WARNING" and NO_STATD.detail in r.getMessage() for r in caplog.records)


def test_lock_check_off_does_not_probe(tmp_path: Path) -> None:
    node = _Stager(tmp_path, NO_STATD, "off")
    node.stage()
    assert node.mounter.list().find(str(node.staging)) is not None and node.probes == 0
