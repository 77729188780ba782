"""The driver command: flags, and a graceful stop on SIGTERM with the server as a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from csi.cloud.emulator import EmulatorState, start_emulator
from csi.main import EMULATOR_ZONE, build_parser, emulator_node_id, main
from csi.proto import csi_pb2, csi_pb2_grpc
from tests.support.metadata_server import MetadataServer

_CAP = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(
        mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
    ),
)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("filestore-csi-driver ")


def test_node_mode_without_flags_or_metadata_fails_at_start(
    metadata_server: MetadataServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither --node-id nor an answer from the metadata server: exit 1 naming the flag to give."""
    monkeypatch.delenv("NODE_ID", raising=False)
    metadata_server.values["instance/zone"] = "projects/1/zones/us-east1-c"
    assert main(["--mode", "node", "--node-id", ""]) == 1
    assert "cannot run: --node-id was not given" in caplog.text
    assert "instance/name" in caplog.text


@pytest.mark.parametrize("labels", ["Team=x", "a=b,a=c", "storage_gke_io_created-by=me", "x"])
def test_extra_labels_are_checked_like_labels(labels: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--cloud", "emulator", "--extra-labels", labels])
    assert info.value.code == 2
    assert "--extra-labels" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Prod", "a" * 64, "prod.east"])
def test_a_cluster_name_that_is_no_label_value_stops_the_driver(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--cloud", "emulator", "--gke-cluster-name", name])
    assert info.value.code == 2
    assert "--gke-cluster-name" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["controller", "all"])
def test_multishare_on_gcp_without_a_cluster_name_stops_the_driver(
    mode: str, capsys: pytest.CaptureFixture[str], metadata_server: MetadataServer
) -> None:
    """As gcp-filestore-csi-driver: unlabelled, its instances would be shared with every nameless cluster."""
    with pytest.raises(SystemExit) as info:
        main(["--mode", mode, "--enable-multishare", "--project", "p", "--zone", "us-central1-a"])
    assert info.value.code == 2
    assert "--enable-multishare needs --gke-cluster-name" in capsys.readouterr().err
    assert metadata_server.requests == []  # refused before anything is asked


def test_multishare_on_the_emulator_needs_no_cluster_name(tmp_path: Path) -> None:
    """The emulator serves multishare volumes without a name (and without the flag: tests and the demo)."""
    sock = tmp_path / "csi.sock"
    parameters = {"multishare": "true", "instance-storageclass-label": "sc", "tier": "enterprise"}
    volumes = []
    for flags in (["--enable-multishare"], []):
        driver = _start(["--mode", "controller", "--cloud", "emulator", *flags], sock)
        try:
            with grpc.insecure_channel(f"unix:{sock}") as channel:
                request = csi_pb2.CreateVolumeRequest(
                    name="shared", volume_capabilities=[_CAP], parameters=parameters
                )
                volumes.append(csi_pb2_grpc.ControllerStub(channel).CreateVolume(request, timeout=60).volume)
        finally:
            _stop(driver)
    assert [v.volume_id.split("/")[:2] for v in volumes] == [["modeMultishare", "sc"]] * 2


def _start(argv: list[str], sock: Path) -> subprocess.Popen[str]:
    driver = subprocess.Popen(
        [sys.executable, "-m", "csi.main", f"--endpoint=unix://{sock}", "--grace=1", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "NODE_ID"},
    )
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return driver


def _stop(driver: subprocess.Popen[str]) -> str:
    driver.send_signal(signal.SIGTERM)
    try:
        driver.wait(60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    return driver.communicate()[1]


def test_node_reports_the_zone_and_name_of_its_vm(tmp_path: Path, metadata_server: MetadataServer) -> None:
    """Without --zone and --node-id, NodeGetInfo answers what the metadata server says."""
    metadata_server.values.update(
        {"instance/zone": "projects/123/zones/us-east1-c", "instance/name": "gke-pool-1-abcd"}
    )
    sock = tmp_path / "csi.sock"
    driver = _start([f"--kubelet-root={tmp_path}", "--mode=node"], sock)
    try:
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            info = csi_pb2_grpc.NodeStub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
    finally:
        _stop(driver)
    assert info.node_id == "gke-pool-1-abcd"
    assert dict(info.accessible_topology.segments) == {"topology.gke.io/zone": "us-east1-c"}
    assert metadata_server.refused == []


def test_the_readme_emulator_line_runs(tmp_path: Path, metadata_server: MetadataServer) -> None:
    """`filestore-csi-driver --mode all --cloud emulator` starts with the documented defaults."""
    sock = tmp_path / "csi.sock"
    driver = _start(["--mode", "all", "--cloud", "emulator", f"--kubelet-root={tmp_path}"], sock)
    try:
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            info = csi_pb2_grpc.NodeStub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
            request = csi_pb2.CreateVolumeRequest(name="readme", volume_capabilities=[_CAP])
            volume = csi_pb2_grpc.ControllerStub(channel).CreateVolume(request, timeout=30).volume
    finally:
        _stop(driver)
    assert info.node_id == emulator_node_id()
    assert dict(info.accessible_topology.segments) == {"topology.gke.io/zone": EMULATOR_ZONE}
    assert volume.volume_id == f"modeInstance/{EMULATOR_ZONE}/readme/vol1"
    assert metadata_server.requests == []  # the emulator never asks the metadata server


def test_sigterm_lets_in_flight_calls_finish(tmp_path: Path) -> None:
    emulator, endpoint = start_emulator(state=EmulatorState(op_delay=1.5))
    sock = tmp_path / "csi.sock"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi.main",
            "--mode",
            "controller",
            "--cloud",
            "emulator",
            "--emulator-endpoint",
            endpoint,
            "--project",
            "proj",
            "--zone",
            "us-central1-a",
            "--endpoint",
            f"unix://{sock}",
            "--grace",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        channel = grpc.insecure_channel(f"unix:{sock}")
        stub = csi_pb2_grpc.ControllerStub(channel)
        result: list[object] = []
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(mode=1),
        )

        def create() -> None:
            try:
                request = csi_pb2.CreateVolumeRequest(name="inflight", volume_capabilities=[cap])
                result.append(stub.CreateVolume(request, timeout=20).volume.volume_id)
            except grpc.RpcError as exc:
                result.append(exc.code())

        thread = threading.Thread(target=create)
        thread.start()
        time.sleep(0.5)  # the call is now waiting on the emulator's operation
        os.kill(driver.pid, signal.SIGTERM)
        thread.join(20)
        assert result == ["modeInstance/us-central1-a/inflight/vol1"]
        assert driver.wait(20) == 0
        channel.close()
        assert not sock.exists()
        _, err = driver.communicate()
        assert "received SIGTERM" in err and "CreateVolume OK" in err
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        emulator.stop(0).wait()


def test_help_shows_every_default() -> None:
    """Each flag's help ends with its default (or says what leaving it out does)."""
    parser = build_parser()
    blocks: list[str] = []
    for line in parser.format_help().split("options:\n", 1)[1].splitlines():
        if line.startswith("  -"):
            blocks.append(line)
        elif blocks:
            blocks[-1] += " " + line.strip()
    flags = [b for b in blocks if not b.lstrip().startswith(("-h, --help", "--version"))]
    assert (
        len(flags) == len([a for a in parser._actions if a.option_strings]) - 2
    )  # all but --help, --version
    for block in flags:
        assert "(default" in block, block
    text = " ".join(flags)
    assert "(default: unix:///csi/csi.sock)" in text and "(default: /var/lib/kubelet;" in text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(sock: Path, port: int) -> tuple[bool, int]:
    """Probe over the driver's unix socket, and GET /healthz: (ready, HTTP status)."""
    with grpc.insecure_channel(f"unix:{sock}") as channel:
        probe = csi_pb2_grpc.IdentityStub(channel).Probe(csi_pb2.ProbeRequest(), timeout=10)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            status = int(reply.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    return probe.ready.value, status


def test_the_readme_emulator_line_is_ready_without_a_kubelet_root(tmp_path: Path) -> None:
    """`filestore-csi-driver --mode all --cloud emulator` (with /healthz served) is ready at once.

    No --kubelet-root: the node uses a private directory of its own, named on stdout, not kubelet's
    (which a fresh machine does not have), and removes it at exit when it is empty.
    """
    sock, port = tmp_path / "csi.sock", _free_port()
    driver = _start(["--mode", "all", "--cloud", "emulator", f"--http-endpoint=127.0.0.1:{port}"], sock)
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        root = re.fullmatch(rf"listening on unix://{sock}, kubelet root (\S+)\n", line)
        assert root is not None, line
        assert os.path.isdir(root[1]) and (os.stat(root[1]).st_mode & 0o777) == 0o700
        assert _ready(sock, port) == (True, 200)
    finally:
        _stop(driver)
    assert not os.path.exists(root[1])  # empty again: removed


def test_a_node_is_not_ready_until_its_kubelet_root_exists(
    tmp_path: Path, metadata_server: MetadataServer
) -> None:
    """A node in a DaemonSet (--cloud gcp) whose kubelet root is absent answers ready=false and 503."""
    metadata_server.values.update({"instance/zone": "projects/1/zones/us-east1-c", "instance/name": "vm-1"})
    root, sock, port = tmp_path / "kubelet", tmp_path / "csi.sock", _free_port()
    driver = _start(["--mode=node", f"--kubelet-root={root}", f"--http-endpoint=127.0.0.1:{port}"], sock)
    try:
        assert _ready(sock, port) == (False, 503)
        root.mkdir()
        assert _ready(sock, port) == (True, 200)
    finally:
        log = _stop(driver)
    assert f"not ready: the kubelet root {root} does not exist" in log
