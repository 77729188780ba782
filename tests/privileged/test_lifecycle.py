"""The whole driver (``filestore-csi-driver --mode all --cloud emulator``) through a volume's life.

The driver runs as its own process in a private mount namespace; the test is the CO.  NodeStage's
real NFS mount is attempted and must come back with a clear status (this kernel has no NFS client;
with one, nothing serves NFS at the emulator's address); then a tmpfs stand-in is mounted at the
staging path inside the driver's namespace and the rest of the lifecycle runs against it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from csi.proto import csi_pb2
from tests.support.csiutil import (
    Driver,
    create_volume,
    mount_rows,
    publish,
    run_driver,
    stage,
    unpublish,
    unstage,
    until_done,
)

pytestmark = pytest.mark.privileged

if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
    pytest.skip("needs util-linux nsenter and findmnt", allow_module_level=True)


@pytest.fixture
def driver() -> Iterator[Driver]:
    with run_driver("--cloud=emulator", "--probe-timeout=3", timeout=60) as running:
        yield running


def _mounted(driver: Driver) -> dict[str, str]:
    return {
        os.path.relpath(target, driver.root): "ro" if "ro" in options.split(",") else "rw"
        for target, (options,) in mount_rows(driver, "OPTIONS").items()
    }


def test_volume_lifecycle_through_the_whole_driver(driver: Driver) -> None:
    volume = create_volume(driver, "pvc-life")
    context = dict(volume.volume_context)
    assert context["volume"] and context["ip"]

    staging = driver.staging("pv")
    try:
        stage(driver, volume, staging, timeout=60)
        nfs_ok = True
    except grpc.RpcError as exc:
        nfs_ok = False
        details = exc.details() or ""
        if "no NFS client" in details:
            assert (
                exc.code() == grpc.StatusCode.INTERNAL and f"{context['ip']}:/{context['volume']}" in details
            )
        else:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), details
        assert _mounted(driver) == {} and not os.path.exists(staging)  # a failed stage leaves no directory
    if not nfs_ok:
        os.makedirs(staging)
        driver.ns("mount", "-t", "tmpfs", "-o", "size=4m", "stand-in", staging)

    targets = []
    for pod, readonly in (("writer", False), ("reader", True)):
        targets.append(driver.target(pod, "pvc-life"))
        publish(driver, volume, staging, targets[-1], readonly=readonly, timeout=30)
    writer, reader = (os.path.relpath(target, driver.root) for target in targets)
    assert _mounted(driver) == {os.path.relpath(staging, driver.root): "rw", writer: "rw", reader: "ro"}
    driver.sh(f"echo lifecycle > {targets[0]}/f")
    assert driver.ns("cat", f"{targets[1]}/f").stdout == "lifecycle\n"

    for target in targets:
        unpublish(driver, volume, target, timeout=30)
    assert _mounted(driver) == {os.path.relpath(staging, driver.root): "rw"}
    unstage(driver, volume, staging, timeout=30)
    assert _mounted(driver) == {} and not os.path.exists(staging)
    until_done(driver.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    until_done(driver.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


@pytest.mark.parametrize("flags", [[], ["--multishare"]], ids=["instance", "multishare"])
def test_demo_runs_end_to_end(flags: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "csi.demo", *flags], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[8] DeleteVolume" in out.stdout and "EROFS" in out.stdout
    if "no NFS client" in out.stdout:
        assert "staging a tmpfs stand-in" in out.stdout
    if flags:
        assert "volume_id modeMultishare/demo-sc/demo-project/us-central1/fs-" in out.stdout
        assert ":/pvc_demo at the staging path" in out.stdout
        assert "the share is gone, and the instance it left empty" in out.stdout
