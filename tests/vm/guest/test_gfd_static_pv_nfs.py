"""gcp-filestore-csi-driver's static PersistentVolumes stage and publish on a real NFS server.

tests/unit/csi/test_gfd_static_pv.py checks what GFD's static PVs x mount options hand to mountkit; here
the same table reaches the kernel. One NFS server (its own network namespace, as an instance's)
exports every share the PVs name; each PV's ``ip`` becomes that server's address, its mountOptions
the capability's mount flags, as kubelet sends them.

The emulated guest CPU is slow, so the driver mounts each (share, NFS version) once: every example
of such a group stages at the group's staging path, the first one mounting it and the others being
the repeat the CSI spec makes a no-op (the driver checks the repeat against the live mount: same
share, same version). Each example is then published at a pod target of its own.

Files are read and written through ``/proc/<driver pid>/root``, which resolves paths in the
driver's mount namespace: the pod's view, without starting a process per check.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

import pytest

from csi.proto import csi_pb2
from mountkit.table import MountTable
from tests.support.csiutil import Driver, run_driver
from tests.support.gfd_static_pvs import GFD_STATIC_PVS, MOUNT_OPTIONS, pv_capability, static_pv
from tests.support.nfsserver import NfsServer

pytestmark = pytest.mark.privileged

#: the NFS server's address: TEST-NET-1 like the guest's end of the link, outside the emulator's pool
SERVER_IP = "192.0.2.40"
FILE = "from-server.txt"


@dataclass(frozen=True)
class Example:
    """One static PV with one set of mount options, as kubelet stages and publishes it."""

    name: str
    volume_id: str
    capability: csi_pb2.VolumeCapability
    context: dict[str, str]
    readonly: bool
    version: str
    fstype: str

    @property
    def share(self) -> str:
        return self.context["volume"]


def _examples() -> list[Example]:
    examples = []
    for source in sorted(GFD_STATIC_PVS):
        for options in sorted(MOUNT_OPTIONS):
            flags, version, fstype = MOUNT_OPTIONS[options]
            spec = static_pv(source, flags)["spec"]
            csi = spec["csi"]
            examples.append(
                Example(
                    f"{source} [{options}]",
                    csi["volumeHandle"],
                    pv_capability(spec),
                    {**csi["volumeAttributes"], "ip": SERVER_IP},
                    csi.get("readOnly", False),
                    version,
                    fstype,
                )
            )
    return examples


def _in_driver(driver: Driver, path: str) -> str:
    """``path`` as the driver's mount namespace (the pod's view) resolves it."""
    return f"/proc/{driver.pid}/root{path}"


def _stage(driver: Driver, example: Example, staging: str) -> None:
    driver.node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=example.volume_id,
            staging_target_path=staging,
            volume_capability=example.capability,
            volume_context=example.context,
        ),
        timeout=120,
    )


def _publish(driver: Driver, example: Example, staging: str, target: str, readonly: bool) -> None:
    driver.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=example.volume_id,
            staging_target_path=staging,
            target_path=target,
            volume_capability=example.capability,
            volume_context=example.context,
            readonly=readonly,
        ),
        timeout=60,
    )


def _check_and_tear_down(driver: Driver, data_dirs: dict[str, str]) -> None:
    examples = _examples()
    assert {e.share for e in examples} == set(data_dirs)
    groups: dict[tuple[str, str], str] = {}  # (share, version): staging path
    targets: dict[str, tuple[Example, str]] = {}  # target: (example, its staging path)

    t = time.monotonic()
    for i, example in enumerate(examples):
        key = (example.share, example.version)
        staging = groups.setdefault(key, driver.staging(f"{example.share}-v{example.version}"))
        _stage(driver, example, staging)
        target = driver.target(f"pod-{i}", "pv")
        _publish(driver, example, staging, target, example.readonly)
        targets[target] = (example, staging)
    firsts = {staging: next(e for e, s in targets.values() if s == staging) for staging in groups.values()}
    readonly: dict[str, tuple[Example, str]] = {}
    for staging, first in firsts.items():
        target = driver.target(f"pod-ro-{first.share}-v{first.version}", "pv")
        _publish(driver, first, staging, target, readonly=True)
        readonly[target] = (first, staging)
    print(
        f"NodeStage x{len(examples)} ({len(groups)} mounts), NodePublish x{len(targets) + len(readonly)}: "
        f"{time.monotonic() - t:.1f} s"
    )

    table = MountTable.read(driver.pid)
    assert sorted(m.mount_point for m in table.under(driver.root)) == sorted(
        (*groups.values(), *targets, *readonly)
    )
    for staging, first in firsts.items():
        staged = table.find(staging)
        assert staged is not None and staged.source == f"{SERVER_IP}:/{first.share}", staged
        assert (staged.fs_type, staged.readonly) == (first.fstype, False), staged
        assert [o for o in staged.super_options if o.startswith("vers=")] == [f"vers={first.version}"], staged
    for target, (example, _) in {**targets, **readonly}.items():
        published = table.find(target)
        assert published is not None and published.source == f"{SERVER_IP}:/{example.share}", example.name
        assert published.fs_type == example.fstype, example.name
        assert published.readonly == (target in readonly or example.readonly), example.name
        with open(os.path.join(_in_driver(driver, target), FILE)) as f:
            assert f.read() == f"{example.share} on the server\n", example.name
    for target, (example, _) in readonly.items():
        with pytest.raises(OSError) as denied:
            open(os.path.join(_in_driver(driver, target), "ro.txt"), "w").close()
        assert denied.value.errno == errno.EROFS, example.name
    written: dict[str, dict[str, str]] = {share: {FILE: f"{share} on the server\n"} for share in data_dirs}
    for i, (target, (example, _)) in enumerate(targets.items()):  # and the server gets what a pod writes
        with open(os.path.join(_in_driver(driver, target), f"pod-{i}.txt"), "w") as f:
            f.write(example.name)
        written[example.share][f"pod-{i}.txt"] = example.name
    for share, data_dir in data_dirs.items():
        on_server = {}
        for name in os.listdir(data_dir):
            with open(os.path.join(data_dir, name)) as f:
                on_server[name] = f.read()
        assert on_server == written[share]

    t = time.monotonic()
    for target, (example, _) in {**targets, **readonly}.items():
        driver.node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=example.volume_id, target_path=target), timeout=60
        )
    for example, staging in targets.values():  # kubelet unstages each PV; the group's first one unmounts
        driver.node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=example.volume_id, staging_target_path=staging),
            timeout=60,
        )
    print(
        f"NodeUnpublish x{len(targets) + len(readonly)}, NodeUnstage x{len(targets)}: "
        f"{time.monotonic() - t:.1f} s"
    )
    assert MountTable.read(driver.pid).under(driver.root) == []
    assert not any(os.path.exists(path) for path in (*groups.values(), *targets, *readonly))


def test_gfd_static_pvs_over_real_nfs(export_dir: str) -> None:
    started = time.monotonic()
    data_dirs = {share: os.path.join(export_dir, share) for share in ("vol1", "share_1")}
    server = NfsServer("gfd-static-pv", SERVER_IP, data_dirs["vol1"], "vol1")
    server.start()
    try:
        os.makedirs(data_dirs["share_1"])
        server.add_export("share_1", data_dirs["share_1"])
        for share, data_dir in data_dirs.items():
            with open(os.path.join(data_dir, FILE), "w") as f:
                f.write(f"{share} on the server\n")
        print(f"NFS server up: {time.monotonic() - started:.1f} s")
        # refuse (not csiutil's warn): the v3 examples lock through NLM, and the guest runs rpc.statd.
        # --probe-timeout=30 makes the mount deadline 90 s: on a loaded host the emulated guest's
        # first NFSv4.1 mount once took more than the default 60 s.
        flags = ("--mode=node", "--nfs-lock-check=refuse", "--probe-timeout=30")
        with run_driver(*flags) as driver:
            print(f"driver up: {time.monotonic() - started:.1f} s")
            _check_and_tear_down(driver, data_dirs)
    finally:
        server.close()
    print(f"total: {time.monotonic() - started:.1f} s")
