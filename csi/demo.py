"""``filestore-csi-driver demo``: one volume through its whole life, over the driver's own socket.

It starts the Filestore emulator and the driver (controller + node, as ``--mode all``), then a
small gRPC client plays the CO: CreateVolume → NodeStageVolume → NodePublishVolume for a writer
pod and a read-only pod → a write through one pod path read back through the other → unpublish →
unstage → DeleteVolume, printing each step and the mount table under the kubelet root.  With
``--multishare`` the volume is a 100 GiB share of a multishare (enterprise) instance instead, staged
as ``<ip>:/<share>``; its DeleteVolume also deletes the instance its last share leaves empty.

Safety: the demo mounts, so it never runs in the caller's mount namespace.  It re-executes itself
under ``unshare --mount --propagation private`` and checks, before mounting anything, that its
namespace differs from its parent's.  The kubelet root is a tmpfs in that namespace; everything
vanishes with the process.

On a kernel without an NFS client (mount of type nfs fails with ENODEV) the real NodeStageVolume
is still called and its status printed; then, saying so, a tmpfs is mounted at the staging path as
a stand-in for the share, so the publish path (read-only binds, data across pods) can be shown.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from csi.filestore import CTX_VOLUME, TOPOLOGY_KEY_ZONE
from csi.node import kubelet
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.version import DEFAULT_DRIVER_NAME

T = TypeVar("T")
_IN_NS = "FILESTORE_CSI_DEMO_NS"
_RETRYABLE = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE)
_Mode = csi_pb2.VolumeCapability.AccessMode


def _say(text: str) -> None:
    print(text, flush=True)


def _step(n: int, text: str) -> None:
    _say(f"\n[{n}] {text}")


def _ns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def _reexec_in_private_ns(argv: Sequence[str]) -> int:
    if shutil.which("unshare") is None:
        _say("demo: needs util-linux 'unshare' to run in a private mount namespace")
        return 1
    env = {**os.environ, _IN_NS: "1"}
    cmd = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m", "csi.demo", *argv]
    return subprocess.run(cmd, env=env, check=False).returncode


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="filestore-csi-driver demo", description="Run one volume's lifecycle."
    )
    parser.add_argument("--zone", default="us-central1-a")
    parser.add_argument("--project", default="demo-project")
    parser.add_argument(
        "--emulator-endpoint",
        default=None,
        help="HOST:PORT of a running Filestore emulator (e.g. one whose instances are real NFS servers); "
        "by default an embedded one is started",
    )
    parser.add_argument(
        "--multishare", action="store_true", help="walk a multishare volume: a share of a shared instance"
    )
    return parser.parse_args(argv)


def run_demo(args: Sequence[str] = ()) -> int:
    """Run the demo (re-executed in a private mount namespace); 0 when every step went as shown."""
    argv = list(args)
    opts = _parse(argv)
    if os.geteuid() != 0:
        _say("demo: needs root (it mounts, inside a private mount namespace of its own)")
        return 1
    if os.environ.get(_IN_NS) != "1":
        return _reexec_in_private_ns(argv)
    if _ns("self") == _ns(os.getppid()):
        _say("demo: refusing to mount: not in a private mount namespace")
        return 1
    return _Demo(opts.zone, opts.project, opts.emulator_endpoint, multishare=opts.multishare).run()


class _Demo:
    def __init__(
        self, zone: str, project: str, emulator_endpoint: str | None = None, *, multishare: bool = False
    ) -> None:
        self.zone = zone
        self.project = project
        self.emulator_endpoint = emulator_endpoint
        self.multishare = multishare
        self.failures: list[str] = []

    def call(self, name: str, fn: Callable[[], T], *, patience: float = 120.0) -> T | None:
        """One RPC, retried while retryable (as a CO does); prints and records a final failure."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return fn()
            except grpc.RpcError as exc:
                if exc.code() in _RETRYABLE and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                _say(f"    {name}: {exc.code().name}: {exc.details()}")
                self.failures.append(name)
                return None

    def run(self) -> int:
        from mountkit import Mounter

        workdir = tempfile.mkdtemp(prefix="filestore-csi-demo-")
        mounter = Mounter(probe_timeout=5.0)
        mounter.mount("demo-kubelet", workdir, "tmpfs", ["mode=755"])
        try:
            return self._run(workdir, mounter)
        finally:
            mounter.unmount(workdir, lazy=True)
            os.rmdir(workdir)

    def _run(self, workdir: str, mounter: Any) -> int:
        from csi.cloud.emulator.server import start_emulator
        from csi.cloud.gcp import GcpFilestore
        from csi.cloud.gcp_multishare import GcpMultishare
        from csi.controller.service import ControllerServicer
        from csi.identity import IdentityServicer
        from csi.locks import VolumeLocks
        from csi.node.service import NodeServicer
        from csi.server import CsiServer
        from mountkit.table import MountTable

        root = os.path.join(workdir, "kubelet")
        sock = os.path.join(workdir, "csi.sock")
        os.makedirs(root)
        if self.emulator_endpoint:
            emulator, endpoint = None, self.emulator_endpoint
            _say(f"Filestore emulator (Filestore v1 and v1beta1 gRPC APIs) already running on {endpoint}")
        else:
            emulator, endpoint = start_emulator()
            _say(f"Filestore emulator (Filestore v1 and v1beta1 gRPC APIs) on {endpoint}")
        cloud = GcpFilestore(self.project, endpoint=endpoint, poll_initial=0.1, poll_maximum=0.5)
        locks = VolumeLocks()
        server = CsiServer(
            f"unix://{sock}",
            IdentityServicer(DEFAULT_DRIVER_NAME, "demo", controller=True),
            controller=ControllerServicer(
                cloud,
                driver_name=DEFAULT_DRIVER_NAME,
                zone=self.zone,
                locks=locks,
                multishare=GcpMultishare(cloud),
            ),
            node=NodeServicer("demo-node", self.zone, root, mounter, locks, 5.0),
        )
        server.start()
        _say(f"driver (controller + node) serving CSI on {server.address}, kubelet root {root}")
        channel = grpc.insecure_channel(f"unix://{sock}")
        try:
            return self._lifecycle(channel, root, mounter, MountTable)
        finally:
            channel.close()
            server.stop(1.0)
            if emulator is not None:
                emulator.stop(1.0)

    def _show_mounts(self, root: str, table_cls: Any) -> None:
        rows = [m for m in table_cls.read().under(root)]
        if not rows:
            _say("    mount table under the kubelet root: (nothing mounted)")
        for m in rows:
            _say(
                f"    mounted: {os.path.relpath(m.mount_point, root):<60} {m.fs_type:<6} "
                f"{m.source:<22} {'ro' if m.readonly else 'rw'}"
            )

    def _lifecycle(self, channel: grpc.Channel, root: str, mounter: Any, table_cls: Any) -> int:
        stubs: Any = csi_pb2_grpc  # the generated stubs are untyped
        identity = stubs.IdentityStub(channel)
        controller = stubs.ControllerStub(channel)
        node = stubs.NodeStub(channel)
        info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
        _say(f"plugin {info.name} {info.vendor_version}")
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=_Mode(mode=_Mode.MULTI_NODE_MULTI_WRITER),
        )

        if self.multishare:
            size, parameters = (
                100 << 30,
                {
                    "multishare": "true",
                    "instance-storageclass-label": "demo-sc",
                    "tier": "enterprise",
                },
            )
            _step(1, "CreateVolume pvc-demo (100 GiB, multishare: a share of an enterprise instance)")
        else:
            size, parameters = 1 << 40, {"tier": "standard", "network": "default"}
            _step(1, "CreateVolume pvc-demo (1 TiB, tier standard)")
        created = self.call(
            "CreateVolume",
            lambda: controller.CreateVolume(
                csi_pb2.CreateVolumeRequest(
                    name="pvc-demo",
                    capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                    volume_capabilities=[cap],
                    parameters=parameters,
                    accessibility_requirements=csi_pb2.TopologyRequirement(
                        preferred=[csi_pb2.Topology(segments={TOPOLOGY_KEY_ZONE: self.zone})]
                    ),
                ),
                timeout=30,
            ),
        )
        if created is None:
            return 1
        volume = created.volume
        _say(f"    volume_id {volume.volume_id}")
        _say(f"    volume_context {dict(volume.volume_context)}")

        staging = kubelet.staging_path(root, DEFAULT_DRIVER_NAME, "demo")
        os.makedirs(os.path.dirname(staging))
        share = (
            volume.volume_id.rsplit("/", 1)[1]
            if self.multishare
            else volume.volume_context.get(CTX_VOLUME, "")
        )
        if self.multishare:
            _say(
                f"    the share {share} lives on instance {volume.volume_id.split('/')[4]} "
                "(modeMultishare/<storage-class label>/<project>/<region>/<instance>/<share>)"
            )
        _step(2, f"NodeStageVolume: NFS mount {volume.volume_context.get('ip')}:/{share} at the staging path")
        try:
            node.NodeStageVolume(
                csi_pb2.NodeStageVolumeRequest(
                    volume_id=volume.volume_id,
                    staging_target_path=staging,
                    volume_capability=cap,
                    volume_context=volume.volume_context,
                ),
                timeout=60,
            )
            _say("    OK: the share is mounted")
        except grpc.RpcError as exc:
            _say(f"    NodeStageVolume -> {exc.code().name}: {exc.details()}")
            if "no NFS client" in (exc.details() or ""):
                _say(
                    "    kernel has no NFS client: staging a tmpfs stand-in so the publish path can be shown"
                )
            else:
                _say(
                    "    the NFS mount failed (is an NFS server behind the emulator's address?): "
                    "staging a tmpfs stand-in so the publish path can be shown"
                )
            os.makedirs(staging, exist_ok=True)
            mounter.mount("stand-in-for-" + (share or "share"), staging, "tmpfs", ["size=64m"])
        self._show_mounts(root, table_cls)

        targets = {}
        for pod, readonly in (("pod-writer", False), ("pod-reader", True)):
            target = kubelet.publish_target(root, pod, "pvc-demo")
            os.makedirs(os.path.dirname(target))
            targets[pod] = target
            _step(3, f"NodePublishVolume {'read-only' if readonly else 'read-write'} for {pod}")
            request = csi_pb2.NodePublishVolumeRequest(
                volume_id=volume.volume_id,
                staging_target_path=staging,
                target_path=target,
                volume_capability=cap,
                readonly=readonly,
            )
            self.call("NodePublishVolume", functools.partial(node.NodePublishVolume, request, timeout=30))
        self._show_mounts(root, table_cls)

        _step(4, "write through the writer pod's path, read through the reader pod's path")
        message = f"hello from pod-writer at {time.strftime('%H:%M:%S')}\n"
        with open(os.path.join(targets["pod-writer"], "hello.txt"), "w") as out:
            out.write(message)
        with open(os.path.join(targets["pod-reader"], "hello.txt")) as inp:
            read = inp.read()
        _say(f"    pod-reader read: {read.strip()!r}")
        if read != message:
            self.failures.append("read back")
        try:
            with open(os.path.join(targets["pod-reader"], "nope.txt"), "w"):
                pass
            _say("    UNEXPECTED: a write through the read-only path succeeded")
            self.failures.append("read-only")
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0)
            _say(f"    write through the read-only path: {code} ({exc.strerror})")

        _step(5, "NodeGetVolumeStats on the writer pod's path")
        stats = self.call(
            "NodeGetVolumeStats",
            lambda: node.NodeGetVolumeStats(
                csi_pb2.NodeGetVolumeStatsRequest(
                    volume_id=volume.volume_id, volume_path=targets["pod-writer"]
                ),
                timeout=30,
            ),
        )
        if stats is not None:
            for usage in stats.usage:
                _say(
                    f"    {csi_pb2.VolumeUsage.Unit.Name(usage.unit):<6} total {usage.total:>12,} "
                    f"used {usage.used:>10,} available {usage.available:>12,}"
                )
            condition = stats.volume_condition
            _say(f"    condition: {'ABNORMAL' if condition.abnormal else 'healthy'} ({condition.message})")

        _step(6, "NodeUnpublishVolume for both pods")
        for target in targets.values():
            unpublish = csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target)
            self.call(
                "NodeUnpublishVolume", functools.partial(node.NodeUnpublishVolume, unpublish, timeout=30)
            )
            _say(f"    {os.path.relpath(target, root)} removed: {not os.path.exists(target)}")
        _step(7, "NodeUnstageVolume")
        self.call(
            "NodeUnstageVolume",
            lambda: node.NodeUnstageVolume(
                csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=staging),
                timeout=30,
            ),
        )
        self._show_mounts(root, table_cls)
        _step(8, "DeleteVolume")
        if (
            self.call(
                "DeleteVolume",
                lambda: controller.DeleteVolume(
                    csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=30
                ),
            )
            is not None
        ):
            _say(
                "    OK: the share is gone, and the instance it left empty"
                if self.multishare
                else "    OK: the instance is gone"
            )

        if self.failures:
            _say(f"\ndemo finished with failures: {', '.join(self.failures)}")
            return 1
        _say("\ndemo finished: every step succeeded (see step 2 for how the share was staged)")
        return 0


if __name__ == "__main__":
    sys.exit(run_demo(sys.argv[1:]))
