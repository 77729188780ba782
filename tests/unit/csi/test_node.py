"""The node service against a FakeMounter: validation, idempotency and the status of every RPC.

Directories are real (a temporary kubelet root), mounts are the fake's.  Codes are read through
``csi.errors.to_status``, the same mapping the server's interceptor applies.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi.errors import CsiError, to_status
from csi.filestore import SHARE_NAME_MAX_LEN
from csi.locks import VolumeLocks
from csi.node import kubelet
from csi.node.service import NodeServicer
from csi.node.volume_context import nfs_share
from csi.proto import csi_pb2
from csi.version import DEFAULT_DRIVER_NAME
from csi.volume_id import ShareRef, share_name
from mountkit.errors import CorruptedMountError, MountError, as_verb
from mountkit.fake import FakeMounter
from mountkit.nfs import NfsSource

_Mode = csi_pb2.VolumeCapability.AccessMode
_RPC = csi_pb2.NodeServiceCapability.RPC
CONTEXT = {"ip": "10.0.0.2", "volume": "vol1"}


def capability(
    mode: int = _Mode.SINGLE_NODE_MULTI_WRITER, flags: tuple[str, ...] = ()
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)), access_mode=_Mode(mode=mode)
    )


class Node:
    """A servicer on a fake mounter over a temporary kubelet root, with request builders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounter = FakeMounter()
        self.locks = VolumeLocks()
        self.svc = NodeServicer("node-1", "us-central1-a", str(root), self.mounter, self.locks, 2.0)
        self.staging = kubelet.staging_path(str(root), DEFAULT_DRIVER_NAME, "pv1")
        self.target = kubelet.publish_target(str(root), "uid", "pv1")
        os.makedirs(os.path.dirname(self.staging))
        os.makedirs(os.path.dirname(self.target))

    def stage(self, **fields: Any) -> csi_pb2.NodeStageVolumeResponse:
        args: dict[str, Any] = {
            "volume_id": "vol",
            "staging_target_path": self.staging,
            "volume_capability": capability(),
            "volume_context": CONTEXT,
        }
        args.update(fields)
        return self.svc.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(**args), None)  # type: ignore[arg-type]

    def publish(self, **fields: Any) -> csi_pb2.NodePublishVolumeResponse:
        args: dict[str, Any] = {
            "volume_id": "vol",
            "staging_target_path": self.staging,
            "target_path": self.target,
            "volume_capability": capability(),
        }
        args.update(fields)
        return self.svc.NodePublishVolume(csi_pb2.NodePublishVolumeRequest(**args), None)  # type: ignore[arg-type]

    def unpublish(self, **fields: Any) -> csi_pb2.NodeUnpublishVolumeResponse:
        args: dict[str, Any] = {"volume_id": "vol", "target_path": self.target}
        args.update(fields)
        return self.svc.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(**args), None)  # type: ignore[arg-type]

    def unstage(self, **fields: Any) -> csi_pb2.NodeUnstageVolumeResponse:
        args: dict[str, Any] = {"volume_id": "vol", "staging_target_path": self.staging}
        args.update(fields)
        return self.svc.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(**args), None)  # type: ignore[arg-type]

    def stats(self, **fields: Any) -> csi_pb2.NodeGetVolumeStatsResponse:
        args: dict[str, Any] = {"volume_id": "vol", "volume_path": self.target}
        args.update(fields)
        return self.svc.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(**args), None)  # type: ignore[arg-type]

    def entry(self, path: str) -> Any:
        return self.mounter.list().find(path)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "kubelet")


def status(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(Exception) as info:
        call()
    return to_status(info.value)


# --- NodeStageVolume ------------------------------------------------------------------------------


def test_stage_mounts_the_share_with_nfs_v3_by_default_and_is_idempotent(node: Node) -> None:
    node.stage()
    entry = node.entry(node.staging)
    assert (entry.fs_type, entry.source) == ("nfs", "10.0.0.2:/vol1")
    mounts = [c for c in node.mounter.calls if c[0] == "mount"]
    assert mounts == [("mount", "10.0.0.2:/vol1", node.staging, "nfs", "vers=3")]
    node.stage()
    assert len(node.mounter.list()) == 1


def test_stage_of_a_multishare_volume_mounts_the_share_named_in_its_id(node: Node) -> None:
    """gcp-filestore-csi-driver's multishare volumes carry only ``ip`` in their volume_context."""
    volume_id = "modeMultishare/sc-a/proj/us-central1/fs-1234/pvc_5678"
    node.stage(volume_id=volume_id, volume_context={"ip": "10.0.0.9"})
    entry = node.entry(node.staging)
    assert (entry.fs_type, entry.source) == ("nfs", "10.0.0.9:/pvc_5678")
    node.unstage(volume_id=volume_id)
    node.stage(volume_id=volume_id, volume_context={"ip": "10.0.0.9", "fileProtocol": "NFS_V4_1"})
    assert (node.entry(node.staging).fs_type, node.entry(node.staging).source) == (
        "nfs4",
        "10.0.0.9:/pvc_5678",
    )


def test_a_multishare_volume_id_as_the_controller_hands_it_out_goes_through_every_rpc(node: Node) -> None:
    """Such an id (label, project, region, ``fs-<uuid>``, the PVC's share) exceeds CSI's 128 bytes."""
    share = share_name("pvc-8f2c7c1e-3b9a-4d6e-9f0a-1c2b3d4e5f60")
    ref = ShareRef("filestore-multishare", "my-project-123456", "us-central1", f"fs-{uuid.uuid4()}", share)
    volume_id = ref.volume_id
    assert len(volume_id.encode()) > 128
    node.stage(volume_id=volume_id, volume_context={"ip": "10.0.0.9"})
    node.publish(volume_id=volume_id)
    assert node.entry(node.target).source == f"10.0.0.9:/{share}"
    node.unpublish(volume_id=volume_id)
    node.unstage(volume_id=volume_id)
    assert len(node.mounter.list()) == 0


def test_stage_nfs_v4_1_ipv6_and_mount_flags(node: Node) -> None:
    node.stage(
        volume_context={"ip": "fd00::2", "volume": "share_2", "fileProtocol": "NFS_V4_1"},
        volume_capability=capability(flags=("noatime", "hard")),
    )
    call = next(c for c in node.mounter.calls if c[0] == "mount")
    assert call[1:4] == ("[fd00::2]:/share_2", node.staging, "nfs4")
    assert {"vers=4.1", "hard", "noatime"} <= set(call[4].split(","))
    assert "noatime" in node.entry(node.staging).options


def test_stage_merges_the_storageclass_mount_options_before_the_capability_flags(node: Node) -> None:
    node.stage(
        volume_context={**CONTEXT, "mountOptions": "hard, nconnect=4"},
        volume_capability=capability(flags=("noatime", "timeo=600")),
    )
    call = next(c for c in node.mounter.calls if c[0] == "mount")
    options = call[4].split(",")
    assert "noatime" in options
    # the PV's own flags come after the StorageClass's, so they win where both set a value
    assert [o for o in options if o != "noatime"] == ["vers=3", "hard", "nconnect=4", "timeo=600"]


@pytest.mark.parametrize(
    "fields, names",
    [
        ({"volume_id": ""}, "volume_id"),
        ({"staging_target_path": ""}, "staging_target_path"),
        ({"volume_capability": None}, "volume_capability"),
        ({"volume_context": {"volume": "vol1"}}, "volume_context.ip"),
        ({"volume_context": {"ip": "filer.example.com", "volume": "vol1"}}, "volume_context.ip"),
        ({"volume_context": {"ip": "10.0.0.2"}}, "volume_context.volume"),
        ({"volume_context": {"ip": "10.0.0.2", "volume": "../etc"}}, "volume_context.volume"),
        ({"volume_context": {"ip": "10.0.0.2", "volume": "1vol"}}, "volume_context.volume"),
        ({"volume_context": {**CONTEXT, "fileProtocol": "SMB"}}, "fileProtocol"),
        (
            {
                "volume_context": {**CONTEXT, "fileProtocol": "NFS_V3"},
                "volume_capability": capability(flags=("vers=4.2",)),
            },
            "NFS version",
        ),
        ({"volume_capability": capability(flags=("vers=3", "nfsvers=4.1"))}, "NFS versions"),
        ({"volume_capability": capability(flags=("bind",))}, "mount_flags"),
        (
            {"volume_context": {**CONTEXT, "mountOptions": "hard,addr=10.9.9.9"}},
            "volume_context.mountOptions",
        ),
        ({"volume_context": {**CONTEXT, "mountOptions": "hard,,soft"}}, "volume_context.mountOptions"),
        ({"volume_context": {**CONTEXT, "mountOptions": "remount"}}, "volume_context.mountOptions"),
        (
            {"volume_context": {**CONTEXT, "fileProtocol": "NFS_V3", "mountOptions": "nfsvers=4.1"}},
            "NFS version",
        ),
        (
            {
                "volume_context": {**CONTEXT, "mountOptions": "nfsvers=4.1"},
                "volume_capability": capability(flags=("vers=3",)),
            },
            "NFS versions",
        ),
        ({"staging_target_path": "/etc/globalmount"}, "kubelet root"),
        ({"staging_target_path": "relative/path"}, "absolute"),
    ],
)
def test_stage_rejects_bad_requests_naming_the_field(node: Node, fields: dict[str, Any], names: str) -> None:
    if fields.get("volume_capability", 1) is None:
        del fields["volume_capability"]
        request = csi_pb2.NodeStageVolumeRequest(
            volume_id="vol", staging_target_path=node.staging, volume_context=CONTEXT
        )
        code, message = status(lambda: node.svc.NodeStageVolume(request, None))  # type: ignore[arg-type]
    else:
        code, message = status(lambda: node.stage(**fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert names in message
    assert not [c for c in node.mounter.calls if c[0] == "mount"]


def test_stage_of_a_block_capability_exceeds_capabilities(node: Node) -> None:
    """NodeStageVolume's Errors table: a capability the volume cannot serve is FAILED_PRECONDITION."""
    block = csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=_Mode(mode=_Mode.SINGLE_NODE_WRITER)
    )
    code, message = status(lambda: node.stage(volume_capability=block))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "block" in message
    assert not node.mounter.calls and not os.path.exists(node.staging)


def test_stage_refuses_dot_dot_and_symlinks(node: Node) -> None:
    parent = os.path.dirname(node.staging)
    sneaky = os.path.join(parent, os.path.relpath(node.root.parent / "etc", parent))  # ../.. out of the root
    assert status(lambda: node.stage(staging_target_path=sneaky))[0] == grpc.StatusCode.INVALID_ARGUMENT
    link = node.root / "plugins" / "link"
    os.symlink("/", link)
    code, message = status(lambda: node.stage(staging_target_path=str(link / "tmp" / "globalmount")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "symlink" in message
    os.symlink("/tmp", node.staging)
    code, message = status(lambda: node.stage())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "symlink" in message
    assert not [c for c in node.mounter.calls if c[0] == "mount"]


def test_stage_creates_only_the_last_component(node: Node) -> None:
    deep = kubelet.staging_path(str(node.root), DEFAULT_DRIVER_NAME, "missing")
    assert status(lambda: node.stage(staging_target_path=deep))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert not os.path.exists(os.path.dirname(deep))
    node.stage()
    assert os.path.isdir(node.staging)


def test_stage_over_another_share_is_already_exists_naming_both(node: Node) -> None:
    node.stage(volume_context={"ip": "10.0.0.9", "volume": "other"})
    code, message = status(lambda: node.stage())
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert "10.0.0.9:/other" in message and "10.0.0.2:/vol1" in message


def test_restage_made_otherwise_is_already_exists_and_changes_nothing(node: Node) -> None:
    """CSI's NodeStageVolume row: staged at that path already, but incompatible with the capability."""
    node.stage(volume_context={"ip": "10.0.0.2", "volume": "vol1", "fileProtocol": "NFS_V4_1"})
    before = list(node.mounter.list())
    code, message = status(lambda: node.stage(volume_capability=capability(flags=("ro",))))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "read-write" in message, message
    code, message = status(lambda: node.stage())  # NFS_V3 (the default) where 4.1 is mounted
    assert code == grpc.StatusCode.ALREADY_EXISTS and "NFS version 4.1" in message, message
    assert list(node.mounter.list()) == before
    node.stage(
        volume_context={"ip": "10.0.0.2", "volume": "vol1", "fileProtocol": "NFS_V4_1"}
    )  # the same: OK


def test_stage_repairs_a_stale_staging_mount(node: Node) -> None:
    node.stage()
    node.mounter.fail_next("check", CorruptedMountError(errno.ESTALE, "check", node.staging))
    node.stage()
    verbs = [c[0] for c in node.mounter.calls]
    assert verbs[-4:] == ["is_live_mountpoint", "check", "unmount", "mount"]
    assert node.mounter.calls[-2] == ("unmount", node.staging, True, True, False)
    assert node.entry(node.staging).source == "10.0.0.2:/vol1"


def test_stage_without_an_nfs_client_says_so(node: Node) -> None:
    # what Mounter.mount raises when fsopen("nfs") finds no such filesystem type
    enodev = as_verb(
        MountError(errno.ENODEV, "fsopen", "nfs"), "mount", "10.0.0.2:/vol1", node.staging, nfs=True
    )
    node.mounter.fail_next("mount", enodev)
    code, message = status(lambda: node.stage())
    assert code == grpc.StatusCode.INTERNAL and "no NFS client" in message and node.staging in message


@pytest.mark.parametrize(
    "error",
    [
        MountError(errno.EACCES, "mount", "staging"),  # the server refused the export
        MountError(errno.ENODEV, "mount", "staging"),  # no NFS client
        CorruptedMountError(errno.EIO, "mount", "staging"),
        MountError(errno.ELOOP, "open_beneath", "staging"),  # a symlink swapped in
    ],
    ids=lambda e: errno.errorcode[e.errno],
)
def test_stage_that_fails_leaves_no_mount_and_no_directory(node: Node, error: MountError) -> None:
    node.mounter.fail_next("mount", error)
    assert status(lambda: node.stage())[0] != grpc.StatusCode.OK
    assert len(node.mounter.list()) == 0 and not os.path.exists(node.staging)
    node.stage()  # the retry starts from scratch and succeeds
    assert node.entry(node.staging).source == "10.0.0.2:/vol1"


def test_stage_that_fails_keeps_a_directory_it_did_not_make(node: Node) -> None:
    os.mkdir(node.staging)
    node.mounter.fail_next("mount", MountError(errno.EACCES, "mount", node.staging))
    assert status(lambda: node.stage())[0] == grpc.StatusCode.INTERNAL
    assert os.path.isdir(node.staging)


def test_stage_past_its_deadline_keeps_the_directory_for_the_mount_still_running(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("csi.node.service.MOUNT_TIMEOUT_MIN", 0.1)
    node.svc.probe_timeout = 0.01
    release = threading.Event()
    real = node.mounter.mount
    monkeypatch.setattr(node.mounter, "mount", lambda *a, **k: (release.wait(5), real(*a, **k))[1])
    code, message = status(lambda: node.stage())
    assert code == grpc.StatusCode.UNAVAILABLE and "no answer" in message
    assert os.path.isdir(node.staging)  # the mount still running lands here
    release.set()
    deadline = time.monotonic() + 5
    while node.entry(node.staging) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert node.entry(node.staging).source == "10.0.0.2:/vol1"


def test_a_busy_volume_is_aborted(node: Node) -> None:
    with node.locks.acquire("vol"):
        assert status(lambda: node.stage())[0] == grpc.StatusCode.ABORTED
        assert status(lambda: node.unstage())[0] == grpc.StatusCode.ABORTED
    with node.locks.acquire(node.target):
        assert status(lambda: node.publish())[0] == grpc.StatusCode.ABORTED
        assert status(lambda: node.unpublish())[0] == grpc.StatusCode.ABORTED


# --- NodePublishVolume ----------------------------------------------------------------------------


def test_publish_binds_staging_onto_the_target_and_is_idempotent(node: Node) -> None:
    node.stage()
    node.publish()
    assert os.path.isdir(node.target)
    entry = node.entry(node.target)
    assert entry.source == "10.0.0.2:/vol1" and not entry.readonly
    node.publish()
    assert [c for c in node.mounter.calls if c[0] == "bind"][-1] == (
        "bind",
        node.staging,
        node.target,
        False,
        False,
        "",
    )


@pytest.mark.parametrize(
    "readonly, mode, expect_ro",
    [
        (True, _Mode.SINGLE_NODE_MULTI_WRITER, True),
        (False, _Mode.MULTI_NODE_READER_ONLY, True),
        (False, _Mode.SINGLE_NODE_READER_ONLY, True),
        (False, _Mode.MULTI_NODE_MULTI_WRITER, False),
    ],
)
def test_publish_read_only_from_flag_or_access_mode(
    node: Node, readonly: bool, mode: int, expect_ro: bool
) -> None:
    node.stage()
    node.publish(readonly=readonly, volume_capability=capability(mode))
    assert node.entry(node.target).readonly is expect_ro
    assert next(c for c in node.mounter.calls if c[0] == "bind")[3] is expect_ro


def test_publish_with_the_other_read_only_state_is_already_exists(node: Node) -> None:
    node.stage()
    node.publish()
    assert status(lambda: node.publish(readonly=True))[0] == grpc.StatusCode.ALREADY_EXISTS
    assert not node.entry(node.target).readonly


@pytest.mark.parametrize(
    "fields, code, names",
    [
        ({"volume_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "volume_id"),
        ({"target_path": ""}, grpc.StatusCode.INVALID_ARGUMENT, "target_path"),
        ({"target_path": "/var/lib/other/mount"}, grpc.StatusCode.INVALID_ARGUMENT, "kubelet root"),
        ({"staging_target_path": ""}, grpc.StatusCode.FAILED_PRECONDITION, "staging_target_path"),
        (
            {
                "volume_capability": csi_pb2.VolumeCapability(
                    block=csi_pb2.VolumeCapability.BlockVolume(),
                    access_mode=_Mode(mode=_Mode.SINGLE_NODE_WRITER),
                )
            },
            grpc.StatusCode.FAILED_PRECONDITION,
            "block",
        ),  # the spec's "Exceeds capabilities"
    ],
)
def test_publish_rejects_bad_requests(
    node: Node, fields: dict[str, Any], code: grpc.StatusCode, names: str
) -> None:
    node.stage()
    got, message = status(lambda: node.publish(**fields))
    assert got == code and names in message
    assert not [c for c in node.mounter.calls if c[0] == "bind"]


def test_publish_without_a_capability_is_invalid(node: Node) -> None:
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id="vol", staging_target_path=node.staging, target_path=node.target
    )
    code, message = status(lambda: node.svc.NodePublishVolume(request, None))  # type: ignore[arg-type]
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "volume_capability" in message


def test_publish_of_an_unstaged_volume_is_failed_precondition(node: Node) -> None:
    os.mkdir(node.staging)
    code, message = status(lambda: node.publish())
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "not staged" in message
    assert not os.path.exists(node.target)


def test_publish_whose_bind_fails_removes_the_directory_it_made(node: Node) -> None:
    node.stage()
    node.mounter.fail_next("bind", MountError(errno.EPERM, "bind", node.target))
    assert status(lambda: node.publish())[0] == grpc.StatusCode.INTERNAL
    assert not os.path.exists(node.target)


def test_single_writer_publish_at_a_second_target_is_failed_precondition(node: Node) -> None:
    """CSI's table for SINGLE_NODE_SINGLE_WRITER: same target OK, another target FAILED_PRECONDITION."""
    ssw = capability(_Mode.SINGLE_NODE_SINGLE_WRITER)
    other = kubelet.publish_target(str(node.root), "uid2", "pv1")
    os.makedirs(os.path.dirname(other))
    node.stage()
    node.publish(volume_capability=ssw)
    node.publish(volume_capability=ssw)  # the same target again: idempotent
    code, message = status(lambda: node.publish(target_path=other, volume_capability=ssw))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and node.target in message
    assert node.entry(other) is None and not os.path.exists(other)
    assert status(lambda: node.publish(target_path=other, volume_capability=ssw, readonly=True))[0] == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    # a restarted driver holds nothing in memory: the mount table alone says where it is published
    restarted = NodeServicer("node-1", "us-central1-a", str(node.root), node.mounter, VolumeLocks(), 2.0)
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id="vol", staging_target_path=node.staging, target_path=other, volume_capability=ssw
    )
    code, _ = status(lambda: restarted.NodePublishVolume(request, None))  # type: ignore[arg-type]
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    node.unpublish()
    node.publish(target_path=other, volume_capability=ssw)  # once unpublished there, it may move
    assert node.entry(other).source == "10.0.0.2:/vol1"


def test_single_writer_publish_again_beside_a_subpath_bind(node: Node) -> None:
    """kubelet binds a subPath of the volume at pods/<uid>/volume-subpaths/...; on NFS, which shows every
    mount's root as "/", that bind has the volume's (device, root).  It is not a second publish: kubelet
    publishing the same target again (after a restart) succeeds, another pod's target still fails."""
    ssw = capability(_Mode.SINGLE_NODE_SINGLE_WRITER)
    node.stage()
    node.publish(volume_capability=ssw)
    subpath = kubelet.subpath(str(node.root), "uid", "pv1", "app")
    os.makedirs(subpath)
    node.mounter.bind(node.staging, subpath)  # the same root, as NFS shows a subdirectory's bind
    node.publish(volume_capability=ssw)
    other = kubelet.publish_target(str(node.root), "uid2", "pv1")
    os.makedirs(os.path.dirname(other))
    assert status(lambda: node.publish(target_path=other, volume_capability=ssw))[0] == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


def test_single_writer_second_target_outside_kubelets_layout_is_failed_precondition(node: Node) -> None:
    """csi-sanity's layout (any CO's): the staging dir and targets anywhere beneath the root.  A second
    target is FAILED_PRECONDITION and left neither mounted nor made; the staging mount itself is not a
    publish, so the first publish and its repeat succeed."""
    ssw = capability(_Mode.SINGLE_NODE_SINGLE_WRITER)
    base = node.root / "csi-sanity"
    (base / "mount").mkdir(parents=True)
    staging, target, other = (
        str(base / "staging"),
        str(base / "mount" / "target"),
        str(base / "mount" / "other_target"),
    )
    node.stage(staging_target_path=staging, volume_capability=ssw)
    node.publish(staging_target_path=staging, target_path=target, volume_capability=ssw)
    node.publish(staging_target_path=staging, target_path=target, volume_capability=ssw)  # idempotent
    code, message = status(
        lambda: node.publish(staging_target_path=staging, target_path=other, volume_capability=ssw)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and target in message
    assert node.entry(other) is None and not os.path.exists(other)
    # a pod's target in kubelet's layout is refused too, while the volume is published at the other CO's
    code, _ = status(lambda: node.publish(staging_target_path=staging, volume_capability=ssw))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and node.entry(node.target) is None
    node.unpublish(target_path=target)
    node.publish(staging_target_path=staging, target_path=other, volume_capability=ssw)
    assert node.entry(other).source == "10.0.0.2:/vol1"


def test_publish_targets_in_kubelets_layout() -> None:
    root = "/var/lib/kubelet"
    target = kubelet.publish_target(root, "u1", "pv1")
    assert target == f"{root}/pods/u1/volumes/kubernetes.io~csi/pv1/mount"
    assert kubelet.is_publish_target(root, target)
    staging = kubelet.staging_path(root, "filestore.csi.storage.gke.io", "h1")
    assert staging == f"{root}/plugins/kubernetes.io/csi/filestore.csi.storage.gke.io/h1/globalmount"
    assert kubelet.subpath(root, "u1", "pv1", "app") == f"{root}/pods/u1/volume-subpaths/pv1/app/0"
    assert not kubelet.is_publish_target(root, staging)
    # beneath the root but outside kubelet's own dirs: another CO's targets
    for path in (f"{root}/csi-sanity/mount/target", f"{root}/other_target", f"{root}/podsx/u1/mount"):
        assert kubelet.is_publish_target(root, path), path
    for path in (
        f"{root}/plugins/kubernetes.io/csi/pv/pv1/globalmount",
        "/elsewhere/csi-sanity/mount/target",
        f"{root}/pods/u1/volume-subpaths/pv1/app/0",
        f"{root}/pods/u1/volumes/kubernetes.io~csi/pv1",
        f"{root}/pods/u1/volumes/kubernetes.io~csi/pv1/mount/inner",
        f"{root}/pods/u1/volumes/kubernetes.io~nfs/pv1/mount",
        f"{root}/plugins/kubernetes.io/csi/x/globalmount",
        "/elsewhere/pods/u1/volumes/kubernetes.io~csi/pv1/mount",
    ):
        assert not kubelet.is_publish_target(root, path), path


def test_single_writer_ignores_mounts_outside_the_pods_dir(node: Node) -> None:
    ssw = capability(_Mode.SINGLE_NODE_SINGLE_WRITER)
    node.stage()
    elsewhere = os.path.join(os.path.dirname(node.staging), "another-view")
    os.mkdir(elsewhere)
    node.mounter.bind(node.staging, elsewhere)  # not a pod's target
    node.publish(volume_capability=ssw)
    assert node.entry(node.target).source == "10.0.0.2:/vol1"


@pytest.mark.parametrize(
    "mode",
    [
        _Mode.SINGLE_NODE_MULTI_WRITER,
        _Mode.SINGLE_NODE_WRITER,
        _Mode.SINGLE_NODE_READER_ONLY,
        _Mode.MULTI_NODE_READER_ONLY,
        _Mode.MULTI_NODE_SINGLE_WRITER,
        _Mode.MULTI_NODE_MULTI_WRITER,
    ],
)
def test_other_access_modes_publish_at_many_targets(node: Node, mode: int) -> None:
    node.stage()
    targets = [node.target]
    for pod in ("uid2", "uid3"):
        targets.append(kubelet.publish_target(str(node.root), pod, "pv1"))
        os.makedirs(os.path.dirname(targets[-1]))
    for target in targets:
        node.publish(target_path=target, volume_capability=capability(mode))
    assert all(node.entry(t).source == "10.0.0.2:/vol1" for t in targets)


def test_single_writer_publishes_race_one_at_a_time(node: Node) -> None:
    node.stage()
    with node.locks.acquire(node.staging):  # another publish of this single-writer volume in flight
        code = status(lambda: node.publish(volume_capability=capability(_Mode.SINGLE_NODE_SINGLE_WRITER)))[0]
    assert code == grpc.StatusCode.ABORTED and not os.path.exists(node.target)
    node.publish()  # other modes do not take the volume-wide lock


def test_publish_of_another_volume_onto_a_used_target_is_already_exists(node: Node) -> None:
    node.stage()
    node.publish()
    staging2 = kubelet.staging_path(str(node.root), DEFAULT_DRIVER_NAME, "pv2")
    os.makedirs(os.path.dirname(staging2))
    node.stage(
        volume_id="vol2", staging_target_path=staging2, volume_context={"ip": "10.0.0.3", "volume": "v2"}
    )
    code, _ = status(lambda: node.publish(volume_id="vol2", staging_target_path=staging2))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert node.entry(node.target).source == "10.0.0.2:/vol1"


@pytest.mark.parametrize(
    "verb, error",
    [
        ("bind", MountError(errno.EPERM, "bind", "target")),
        ("bind", MountError(errno.ELOOP, "open_beneath", "target")),
        ("bind", CorruptedMountError(errno.ESTALE, "bind", "target")),
        ("bind", KeyboardInterrupt()),
    ],
    ids=["EPERM", "redirected", "ESTALE", "interrupted"],
)
def test_publish_that_fails_leaves_no_mount_and_no_directory(
    node: Node, verb: str, error: BaseException
) -> None:
    node.stage()
    node.mounter.fail_next(verb, error)
    with pytest.raises((MountError, CsiError, KeyboardInterrupt)):
        node.publish()
    assert node.entry(node.target) is None and not os.path.exists(node.target)
    assert [e.mount_point for e in node.mounter.list()] == [node.staging]


def test_publish_onto_a_file_is_invalid(node: Node) -> None:
    node.stage()
    Path(node.target).write_text("not a dir")
    assert status(lambda: node.publish())[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert Path(node.target).read_text() == "not a dir"


# --- NodeUnpublishVolume / NodeUnstageVolume ------------------------------------------------------


def test_unpublish_and_unstage_unmount_remove_the_dirs_and_are_idempotent(node: Node) -> None:
    node.stage()
    node.publish()
    node.unpublish()
    assert node.entry(node.target) is None and not os.path.exists(node.target)
    node.unpublish()
    node.unstage()
    assert len(node.mounter.list()) == 0 and not os.path.exists(node.staging)
    node.unstage()


def test_unpublish_of_a_path_whose_parents_are_gone_is_ok(node: Node) -> None:
    node.unpublish(target_path=str(node.root / "pods" / "gone" / "volumes" / "x" / "mount"))


def test_unpublish_never_deletes_data(node: Node) -> None:
    os.mkdir(node.target)
    Path(node.target, "precious").write_text("keep")
    node.unpublish()
    assert Path(node.target, "precious").read_text() == "keep"
    os.mkdir(node.staging)
    Path(node.staging, "precious").write_text("keep")
    node.unstage()
    assert Path(node.staging, "precious").read_text() == "keep"


def test_unpublish_of_a_dead_mount_falls_back_to_a_forced_detach(node: Node) -> None:
    node.stage()
    node.publish()
    node.mounter.fail_next("cleanup_mountpoint", CorruptedMountError(errno.ETIMEDOUT, "unmount", node.target))
    node.unpublish()
    cleanups = [c for c in node.mounter.calls if c[0] == "cleanup_mountpoint"]
    assert cleanups[-1] == ("cleanup_mountpoint", node.target, True, True)
    assert node.entry(node.target) is None


@pytest.mark.parametrize("rpc", ["unpublish", "unstage"])
@pytest.mark.parametrize("field", ["volume_id", "path"])
def test_unpublish_and_unstage_need_id_and_path(node: Node, rpc: str, field: str) -> None:
    path_field = "target_path" if rpc == "unpublish" else "staging_target_path"
    name = path_field if field == "path" else field
    code, message = status(lambda: getattr(node, rpc)(**{name: ""}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and name in message


# --- NodeGetVolumeStats ---------------------------------------------------------------------------


def test_stats_report_bytes_inodes_and_a_healthy_condition(node: Node) -> None:
    node.stage()
    node.publish()
    stats = node.stats()
    units = {u.unit: u for u in stats.usage}
    st = os.statvfs(node.target)
    assert units[csi_pb2.VolumeUsage.BYTES].total == st.f_blocks * st.f_frsize
    assert units[csi_pb2.VolumeUsage.INODES].total == st.f_files
    assert not stats.volume_condition.abnormal


@pytest.mark.parametrize(
    "err, words",
    [
        (errno.ESTALE, "stale"),
        (errno.ENOTCONN, "disconnected"),
        (errno.EIO, "disconnected"),
        (errno.ETIMEDOUT, "not answering"),
    ],
)
def test_stats_of_a_dead_share_is_an_abnormal_condition(node: Node, err: int, words: str) -> None:
    node.stage()
    node.publish()
    node.mounter.set_corrupted(node.target, err)
    stats = node.stats()
    assert stats.volume_condition.abnormal and words in stats.volume_condition.message
    assert not stats.usage


def test_stats_never_blocks_past_the_timeout(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    node.stage()
    node.publish()
    node.svc.probe_timeout = 0.2
    release = threading.Event()
    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: (release.wait(), real(p))[1])
    try:
        stats = node.stats()
    finally:
        release.set()
    assert stats.volume_condition.abnormal and "not answering" in stats.volume_condition.message


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"volume_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"volume_path": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"volume_path": "/path/does/not/exist"}, grpc.StatusCode.NOT_FOUND),
        ({"volume_path": "some/path"}, grpc.StatusCode.NOT_FOUND),  # csi-test sanity asks exactly this
        ({"volume_id": "", "volume_path": "some/path"}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_stats_errors(node: Node, fields: dict[str, Any], code: grpc.StatusCode) -> None:
    assert status(lambda: node.stats(**fields))[0] == code


def test_stats_of_an_unmounted_dir_is_not_found(node: Node) -> None:
    os.mkdir(node.target)
    assert status(lambda: node.stats())[0] == grpc.StatusCode.NOT_FOUND


# --- capabilities, info, expand -------------------------------------------------------------------


def test_capabilities_info_and_expand(node: Node) -> None:
    caps = node.svc.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), None)  # type: ignore[arg-type]
    assert {c.rpc.type for c in caps.capabilities} == {
        _RPC.STAGE_UNSTAGE_VOLUME,
        _RPC.GET_VOLUME_STATS,
        _RPC.VOLUME_CONDITION,
        _RPC.SINGLE_NODE_MULTI_WRITER,
    }
    info = node.svc.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), None)  # type: ignore[arg-type]
    assert info.node_id == "node-1" and info.max_volumes_per_node == 0
    assert dict(info.accessible_topology.segments) == {"topology.gke.io/zone": "us-central1-a"}
    request = csi_pb2.NodeExpandVolumeRequest(volume_id="vol", volume_path=node.target)
    code, _ = status(lambda: node.svc.NodeExpandVolume(request, None))  # type: ignore[arg-type]
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_nfs_share_accepts_the_longest_share_name() -> None:
    name = "a" + "b" * (SHARE_NAME_MAX_LEN - 1)
    assert nfs_share({"ip": "192.168.1.1", "volume": name}) == (NfsSource("192.168.1.1", f"/{name}"), None)
    with pytest.raises(CsiError):
        nfs_share({"ip": "192.168.1.1", "volume": name + "c"})
