"""The whole driver over real NFS: each emulated Filestore instance is a kernel NFS server of its own.

The driver runs as a process in a private mount namespace (as on a node); the test is the CO and
checks files from inside that namespace (nsenter) and on the instances' data directories.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from csi.proto import csi_pb2
from tests.support.csiutil import (
    CAP,
    Driver,
    create_volume,
    mount_rows,
    mounts_under,
    publish,
    run_driver,
    stage,
    unpublish,
    unstage,
    until_done,
)
from tests.support.nfsserver import Filestore

pytestmark = pytest.mark.privileged


def _server_of(filestore: Filestore, volume: Any) -> str:
    """The instance name whose NFS server answers at the volume's address."""
    ip = volume.volume_context["ip"]
    names = [name for name, server in filestore.servers.items() if server.ip == ip]
    assert len(names) == 1, f"no single NFS server at {ip}: {filestore.servers}"
    return names[0]


def _lifecycle(driver: Driver, filestore: Filestore) -> None:
    t = time.monotonic()
    va = create_volume(driver, "pvc-a")
    vb = create_volume(driver, "pvc-b", tier="zonal", protocol="NFS_V4_1")
    print(f"CreateVolume x2: {time.monotonic() - t:.1f} s")
    ia, ib = _server_of(filestore, va), _server_of(filestore, vb)
    assert va.volume_context["ip"] != vb.volume_context["ip"]
    assert va.volume_context["volume"] == vb.volume_context["volume"] == "vol1"  # same path, other server

    sa, sb = driver.staging("pvc-a"), driver.staging("pvc-b")
    t = time.monotonic()
    stage(driver, va, sa)
    stage(driver, vb, sb)
    stage(driver, va, sa)  # a repeat is a no-op
    print(f"NodeStageVolume x3: {time.monotonic() - t:.1f} s")

    writer, reader, other = (
        driver.target("writer", "pvc-a"),
        driver.target("reader", "pvc-a"),
        driver.target("other", "pvc-b"),
    )
    t = time.monotonic()
    publish(driver, va, sa, writer)
    publish(driver, va, sa, reader, readonly=True)
    publish(driver, vb, sb, other)
    print(f"NodePublishVolume x3: {time.monotonic() - t:.1f} s")
    rel = os.path.relpath
    assert mounts_under(driver) == {
        rel(sa, driver.root): "nfs",
        rel(sb, driver.root): "nfs4",
        rel(writer, driver.root): "nfs",
        rel(reader, driver.root): "nfs,ro",
        rel(other, driver.root): "nfs4",
    }

    driver.sh(f"echo from-writer > {writer}/a.txt && echo from-other > {other}/b.txt")
    assert driver.ns("cat", f"{reader}/a.txt").stdout == "from-writer\n"
    denied = driver.sh(f"echo nope > {reader}/ro.txt", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
    assert driver.ns("ls", "-A", writer).stdout.split() == ["a.txt"]
    assert driver.ns("ls", "-A", other).stdout.split() == ["b.txt"]
    with open(os.path.join(filestore.data_dir(ia), "a.txt")) as f:
        assert f.read() == "from-writer\n"
    assert sorted(os.listdir(filestore.data_dir(ia))) == ["a.txt"]
    assert sorted(os.listdir(filestore.data_dir(ib))) == ["b.txt"]

    t = time.monotonic()
    for volume, target in ((va, writer), (va, reader), (vb, other)):
        unpublish(driver, volume, target)
        unpublish(driver, volume, target)  # already gone is OK
    assert mounts_under(driver) == {rel(sa, driver.root): "nfs", rel(sb, driver.root): "nfs4"}
    unstage(driver, va, sa)
    unstage(driver, vb, sb)
    print(f"NodeUnpublish x6 + NodeUnstage x2: {time.monotonic() - t:.1f} s")
    assert mounts_under(driver) == {}
    assert not os.path.exists(sa) and not os.path.exists(writer)
    with open(os.path.join(filestore.data_dir(ia), "a.txt")) as f:
        assert f.read() == "from-writer\n"

    t = time.monotonic()
    for volume in (va, vb):
        until_done(driver.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    print(f"DeleteVolume x2: {time.monotonic() - t:.1f} s")
    assert sorted(filestore.closed) == sorted([ia, ib]) and not filestore.servers
    assert not os.path.exists(filestore.data_dir(ia)) and not os.path.exists(filestore.data_dir(ib))


def test_volume_lifecycle_over_real_nfs(filestore: Filestore) -> None:
    started = time.monotonic()
    with run_driver(
        "--cloud=emulator", f"--emulator-endpoint={filestore.endpoint}", "--probe-timeout=5"
    ) as driver:
        print(f"driver up: {time.monotonic() - started:.1f} s")
        _lifecycle(driver, filestore)
    print(f"lifecycle total: {time.monotonic() - started:.1f} s")


def _multishare_volume(driver: Driver, name: str) -> Any:
    return until_done(
        driver.controller.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name=name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=100 << 30),
            volume_capabilities=[CAP],
            parameters={"multishare": "true", "instance-storageclass-label": "sc-ms", "tier": "enterprise"},
        ),
    ).volume


def test_multishare_volumes_over_real_nfs(filestore: Filestore) -> None:
    """Two multishare volumes on one emulated instance, each a real export ``<ip>:/<share>``."""
    flags = ("--cloud=emulator", f"--emulator-endpoint={filestore.endpoint}", "--probe-timeout=5")
    with run_driver(*flags, timeout=300) as driver:  # the guest's emulated CPU starts Python slowly
        va, vb = _multishare_volume(driver, "pvc-ms-a"), _multishare_volume(driver, "pvc-ms-b")
        ia, ib = va.volume_id.split("/"), vb.volume_id.split("/")
        assert ia[:5] == ib[:5] and ia[0] == "modeMultishare"  # one instance
        assert (ia[5], ib[5]) == ("pvc_ms_a", "pvc_ms_b")
        instance = _server_of(filestore, va)
        assert _server_of(filestore, vb) == instance and list(filestore.servers) == [instance]

        sa, sb = driver.staging("pvc-ms-a"), driver.staging("pvc-ms-b")
        stage(driver, va, sa)
        stage(driver, vb, sb)
        ta, tb = driver.target("pod-a", "pvc-ms-a"), driver.target("pod-b", "pvc-ms-b")
        publish(driver, va, sa, ta)
        publish(driver, vb, sb, tb)
        sources = {
            os.path.relpath(target, driver.root): source
            for target, (source,) in mount_rows(driver, "SOURCE").items()
        }
        ip = va.volume_context["ip"]
        assert sources[os.path.relpath(sa, driver.root)] == f"{ip}:/pvc_ms_a"
        assert sources[os.path.relpath(sb, driver.root)] == f"{ip}:/pvc_ms_b"

        driver.sh(f"echo share-a > {ta}/a.txt && echo share-b > {tb}/b.txt")
        assert driver.ns("ls", "-A", ta).stdout.split() == ["a.txt"]  # isolation between shares
        assert driver.ns("ls", "-A", tb).stdout.split() == ["b.txt"]
        with open(os.path.join(filestore.data_dir(instance, "pvc_ms_a"), "a.txt")) as f:
            assert f.read() == "share-a\n"
        assert os.listdir(filestore.data_dir(instance, "pvc_ms_b")) == ["b.txt"]

        for volume, target, staging in ((va, ta, sa), (vb, tb, sb)):
            unpublish(driver, volume, target)
            unstage(driver, volume, staging)
        assert mounts_under(driver) == {}
        until_done(driver.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=va.volume_id))
        assert list(filestore.servers) == [instance]  # the other share keeps the instance
        assert not os.path.exists(filestore.data_dir(instance, "pvc_ms_a"))
        until_done(driver.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=vb.volume_id))
        assert filestore.closed == [instance] and not filestore.servers
