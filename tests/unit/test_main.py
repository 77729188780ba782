"""The driver command: flags, and a graceful stop on SIGTERM with the server as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from csi.cloud.emulator import EmulatorState, start_emulator
from csi.main import main
from csi.proto import csi_pb2, csi_pb2_grpc


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("filestore-csi-driver ")


def test_node_mode_needs_node_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--mode", "node", "--node-id", ""])
    assert info.value.code == 2
    assert "--node-id" in capsys.readouterr().err


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
