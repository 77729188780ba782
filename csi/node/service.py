"""The CSI Node service: stage a Filestore share once per node, bind it into each pod.

Every RPC runs validate → lock → paths beneath the kubelet root → mountkit, and raises; the server's
interceptor (``csi.errors.to_status``) turns what is raised into the gRPC status.  mountkit errors
map there too: MountConflictError → ALREADY_EXISTS, CorruptedMountError → UNAVAILABLE.

Anything that may touch a dead share (lstat of a mount point, "is it mounted?", statvfs, mount,
unmount) runs on a :mod:`mountkit.probe` worker with a deadline (the mounter's probes and its
unmounts with ``timeout``, or :func:`mountkit.probe.run_with_deadline`), so a gRPC worker waits at
most the probe timeout, never on an NFS server that stopped answering.  Publishing checks the
staged share with one such probe; unpublishing hands over one unmount.

Removing a directory after an unmount never deletes data: a directory that still holds files once
nothing is mounted on it (a pod wrote into it while it was not mounted) is left in place, a warning
is logged and the unpublish/unstage still succeeds, because the RPC's postcondition -- the volume is
no longer mounted there -- holds, and a failure would only make the CO retry forever over data that
is not ours to delete.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

import grpc

from csi.errors import CsiError
from csi.filestore import (
    CTX_IP,
    CTX_SUPPORT_LOCK_RELEASE,
    LOCK_RELEASE_PROTOCOL,
    NFS_VERSIONS,
    TOPOLOGY_KEY_ZONE,
)
from csi.locks import VolumeLocks
from csi.node import kubelet, paths
from csi.node.nsm import NsmStatus
from csi.node.unimplemented import NodeUnimplemented
from csi.node.volume_context import share_mount
from csi.proto import csi_pb2
from csi.validation import (
    check_id,
    check_node_capability,
    check_string,
    invalid,
    is_readonly,
)
from mountkit.errors import CorruptedMountError, MountError, is_corrupted
from mountkit.mounter import MountInterface
from mountkit.nfs import uses_nlm
from mountkit.probe import run_with_deadline

if TYPE_CHECKING:
    from csi.lockrelease.store import NodeLockInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

#: An NFS mount may legitimately take far longer than a probe (rpcbind and mountd round trips, a
#: loaded server): its deadline is this many probe timeouts, and never under MOUNT_TIMEOUT_MIN
#: seconds. A mount still running at its deadline finishes on its own thread; the retry that
#: follows finds it mounted and succeeds.
MOUNT_TIMEOUT_FACTOR = 3.0
MOUNT_TIMEOUT_MIN = 60.0

_RPC = csi_pb2.NodeServiceCapability.RPC
_CAPABILITIES = (
    _RPC.STAGE_UNSTAGE_VOLUME,
    _RPC.GET_VOLUME_STATS,
    _RPC.VOLUME_CONDITION,
    _RPC.SINGLE_NODE_MULTI_WRITER,
)
#: built once: kubelet asks before every stage and publish, and building it costs about as much as a
#: publish's own checks (gRPC only serialises a response, so one message serves every call)
_CAPABILITIES_RESPONSE = csi_pb2.NodeGetCapabilitiesResponse(
    capabilities=[csi_pb2.NodeServiceCapability(rpc=_RPC(type=kind)) for kind in _CAPABILITIES]
)
#: what NodeStageVolume does with an NFSv3 volume whose locks need NSM where no statd answers
LOCK_CHECKS = ("refuse", "warn", "off")
_Usage = csi_pb2.VolumeUsage
_Mode = csi_pb2.VolumeCapability.AccessMode


class NodeServicer(NodeUnimplemented):
    """Node RPCs over a mountkit mounter (the kernel's, or a FakeMounter in tests)."""

    def __init__(
        self,
        node_id: str,
        zone: str,
        kubelet_root: str,
        mounter: MountInterface,
        locks: VolumeLocks,
        probe_timeout: float,
        lock_info: NodeLockInfo | None = None,
        nsm_probe: Callable[[], NsmStatus] | None = None,
        lock_check: str = "refuse",
    ) -> None:
        """``lock_info``: with ``--feature-lock-release``, where staged NFSv3 volumes are recorded.

        ``nsm_probe``/``lock_check``: see :meth:`_check_lock_recovery` (no probe: no check).
        """
        if lock_check not in LOCK_CHECKS:
            raise ValueError(f"lock_check must be one of {', '.join(LOCK_CHECKS)}")
        self.node_id = node_id
        self.zone = zone
        self.kubelet_root = os.path.normpath(kubelet_root)
        self.mounter = mounter
        self.locks = locks
        self.probe_timeout = probe_timeout
        self.lock_info = lock_info
        self.nsm_probe = nsm_probe
        self.lock_check = lock_check if nsm_probe is not None else "off"

    # -- helpers -------------------------------------------------------------------------------

    def _deadline(self, fn: Callable[[], T], operation: str, path: str, minimum: float = 0.0) -> T:
        return run_with_deadline(fn, max(self.probe_timeout, minimum), operation, path)

    def _path(self, path: str, what: str) -> str:
        check_string(path, what, max_bytes=4096)
        return paths.beneath(self.kubelet_root, path, what)

    def _unmount(self, path: str, beneath: str | None = None) -> None:
        """Unmount ``path`` and remove it if it is an empty directory, within the probe timeout.

        A dead or hung share is detached instead (MNT_DETACH|MNT_FORCE returns at once); a
        directory left non-empty is kept, with a warning (see the module docstring).  ``beneath``:
        the parent pinned beneath that root, as :meth:`Mounter.cleanup_mountpoint` says.
        """
        try:
            self.mounter.cleanup_mountpoint(path, timeout=self.probe_timeout, beneath=beneath)
        except MountError as exc:
            if exc.errno == errno.ENOTEMPTY:
                log.warning("%s: unmounted; the directory is not empty and was left in place", path)
                return
            if exc.errno == errno.EBUSY:
                # A probe stuck on a dead share pins the mount (EBUSY); detach only when it is dead.
                try:
                    self.mounter.check(path)  # deadline-bounded
                except CorruptedMountError as dead:
                    exc = dead
                else:
                    raise
            if not is_corrupted(exc):
                raise
            log.warning("%s: %s; detaching it", path, exc)
            try:
                self.mounter.cleanup_mountpoint(path, lazy=True, force=True, timeout=self.probe_timeout)
            except MountError as again:
                if again.errno != errno.ENOTEMPTY:
                    raise
                log.warning("%s: detached; the directory is not empty and was left in place", path)

    def _refuse_second_target(self, volume_id: str, staging: str, target: str) -> None:
        """FAILED_PRECONDITION when the staged share is already bound into a pod at another target.

        CSI's table for a second NodePublishVolume of a SINGLE_NODE_SINGLE_WRITER volume on one node:
        another target is FAILED_PRECONDITION. The answer comes from the kernel's mount table (the
        other mounts of the staging mount's filesystem and root that may be publish targets: not
        kubelet's subPath binds nor staging paths, :func:`kubelet.is_publish_target`), so it survives a
        driver restart; the same target is left to the bind's idempotency check.
        """
        root = os.path.realpath(self.kubelet_root)  # the table spells paths with symlinks resolved
        here = root + target[len(self.kubelet_root) :]
        staged = root + staging[len(self.kubelet_root) :]
        refs = self.mounter.refs(staged)
        others = [p for p in refs if p not in (here, staged) and kubelet.is_publish_target(root, p)]
        if others:
            raise CsiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"volume {volume_id} has access mode SINGLE_NODE_SINGLE_WRITER and is already published "
                f"on this node at {others[0]}; unpublish it there first",
            )

    def _check_lock_recovery(self, volume_id: str, options: Iterable[str]) -> None:
        """FAILED_PRECONDITION (or a warning) when the mount's locks need a statd and none answers.

        Without NSM the kernel still grants NLM locks, and they are lost without a word when the
        server restarts (docs/nfsv3-locking.md): a refusal the CO retries, until the nfs-services
        container's statd answers, is safer than locks that silently stop excluding anyone.
        """
        if self.lock_check == "off" or self.nsm_probe is None or not uses_nlm(options):
            return
        status = self.nsm_probe()
        if status.ready:
            return
        message = (
            f"volume {volume_id} is mounted with NFSv3 locking (NLM), whose locks survive a server "
            f"restart only with rpc.statd on this node, and none answers: {status.detail}; run the "
            f"driver's nfs-services container (or the node's rpc.statd), or mount with 'nolock' or "
            f"'local_lock=all' to keep locks on this node only"
        )
        if self.lock_check == "warn":
            log.warning("%s", message)
            return
        raise CsiError(grpc.StatusCode.FAILED_PRECONDITION, message)

    def _ensure_dir(self, path: str, what: str) -> bool:
        """Create ``path`` if missing (True then); a dead mount there is detached first."""
        try:
            return paths.ensure_dir(self.kubelet_root, path, what, self.probe_timeout)
        except OSError as exc:  # paths' probes pass a stale share's ESTALE through unclassified
            if not is_corrupted(exc):
                raise
            log.warning("%s: %s; detaching the dead mount before mounting again", path, exc)
            self._unmount(path)
            return paths.ensure_dir(self.kubelet_root, path, what, self.probe_timeout)

    # -- RPCs ----------------------------------------------------------------------------------

    def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeStageVolumeResponse:
        """Mount the share at the staging path (once per node); a repeat with the same share is OK."""
        volume_id = check_id(request.volume_id, "volume_id")
        staging = self._path(request.staging_target_path, "staging_target_path")
        if not request.HasField("volume_capability"):
            raise invalid("volume_capability is required")
        check_node_capability(request.volume_capability)
        self._stage(volume_id, staging, request.volume_capability, request.volume_context)
        return csi_pb2.NodeStageVolumeResponse()

    def _stage(
        self,
        volume_id: str,
        staging: str,
        capability: csi_pb2.VolumeCapability,
        volume_context: Mapping[str, str],
    ) -> None:
        """NFS-mount the share at ``staging``, first detaching a dead mount found there."""
        share = share_mount(volume_context, volume_id, capability.mount.mount_flags)
        self._check_lock_recovery(volume_id, share.options)
        with self.locks.acquire(volume_id):
            created = self._ensure_dir(staging, "staging_target_path")
            try:
                if not created:
                    self.mounter.is_live_mountpoint(staging)
            except CorruptedMountError as exc:
                log.warning(
                    "%s: stale staging mount (%s); unmounting it to mount %s again",
                    staging,
                    exc,
                    share.source,
                )
                self._deadline(
                    lambda: self.mounter.unmount(staging, lazy=True, force=True), "unmount", staging
                )
            returned = threading.Event()

            def mount() -> None:
                try:
                    self.mounter.mount(
                        share.source, staging, share.fstype, share.options, beneath=self.kubelet_root
                    )
                finally:
                    returned.set()

            try:
                self._deadline(
                    mount, "mount", staging, max(self.probe_timeout * MOUNT_TIMEOUT_FACTOR, MOUNT_TIMEOUT_MIN)
                )
            except BaseException as exc:
                # A failed mount leaves no directory behind; one still running past its deadline keeps
                # it, for the retry to find mounted.
                if created and returned.is_set():
                    _rmdir_quietly(staging)
                if not isinstance(exc, MountError):
                    raise
                paths.raise_if_redirected(exc, "staging_target_path")
                raise  # ENODEV: mountkit's message says the node's kernel has no NFS client
            if self.lock_info is not None and _supports_lock_release(volume_context, share.version):
                # After the mount, as GFD does; within the volume's lock, so an unstage cannot interleave.
                self.lock_info.record(volume_id, volume_context[CTX_IP])

    def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        """Unmount the staging path and remove its (empty) directory; already gone is OK."""
        volume_id = check_id(request.volume_id, "volume_id")
        staging = self._path(request.staging_target_path, "staging_target_path")
        with self.locks.acquire(volume_id):
            if paths.check_parents(self.kubelet_root, staging, "staging_target_path", missing_ok=True):
                self._unmount(staging)
            if self.lock_info is not None:
                self.lock_info.forget(volume_id)
        return csi_pb2.NodeUnstageVolumeResponse()

    def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        """Bind the staged share onto the pod's target path, read-only from the first instant if asked."""
        check_id(request.volume_id, "volume_id")
        target = self._path(request.target_path, "target_path")
        if not request.HasField("volume_capability"):
            raise invalid("volume_capability is required")
        check_node_capability(request.volume_capability)
        if not request.staging_target_path:
            # CSI spec, NodePublishVolume errors: "Staging target path not set" is FAILED_PRECONDITION.
            raise CsiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "staging_target_path is required: this plugin has STAGE_UNSTAGE_VOLUME; "
                "stage the volume first",
            )
        staging = self._path(request.staging_target_path, "staging_target_path")
        if staging == target:
            raise invalid("target_path and staging_target_path are the same path")
        readonly = is_readonly(request.volume_capability, request.readonly)
        single_writer = request.volume_capability.access_mode.mode == _Mode.SINGLE_NODE_SINGLE_WRITER
        # A single-writer volume is also locked by its staging path, so two publishes of it at two
        # targets cannot both find the other absent.
        with self.locks.acquire(*((target, staging) if single_writer else (target,))):
            # one probe: is it mounted, and does it answer (a bind of a dead share hands the pod a dead mount)
            try:
                staged = self.mounter.is_live_mountpoint(staging)
            except CorruptedMountError as exc:
                log.warning(
                    "%s: the staged share is dead (%s); staging it again before publishing", staging, exc
                )
                self._stage(request.volume_id, staging, request.volume_capability, request.volume_context)
                staged = True
            if not staged:
                raise CsiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {request.volume_id} not staged: nothing is mounted at {staging}",
                )
            if single_writer:
                self._refuse_second_target(request.volume_id, staging, target)
            created = self._ensure_dir(target, "target_path")
            try:
                # No extra thread: staging was just checked within the deadline, target is ours.
                # Both are pinned beneath the kubelet root, so a symlink swapped in meanwhile
                # (CVE-2021-25741) fails the bind instead of redirecting it.
                self.mounter.bind(staging, target, readonly=readonly, beneath=self.kubelet_root)
            except MountError as exc:
                if created:
                    _rmdir_quietly(target)
                paths.raise_if_redirected(exc, "target_path or staging_target_path")
                raise
            except BaseException:
                if created:
                    _rmdir_quietly(target)
                raise
        return csi_pb2.NodePublishVolumeResponse()

    def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        """Unmount the pod's target path and remove its (empty) directory; already gone is OK."""
        check_id(request.volume_id, "volume_id")
        target = self._path(request.target_path, "target_path")
        with self.locks.acquire(target):
            try:  # the parent pinned beneath the kubelet root: one hand-off for the unmount and the rmdir
                self._unmount(target, beneath=self.kubelet_root)
            except MountError as exc:
                if exc.operation != "open_beneath":
                    raise
                # a parent that is a symlink or no directory: named component by component
                if paths.check_parents(self.kubelet_root, target, "target_path", missing_ok=True):
                    paths.raise_if_redirected(exc, "target_path")
                    raise
        return csi_pb2.NodeUnpublishVolumeResponse()

    def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        """Bytes and inodes of the mounted share, and its condition; a dead share is abnormal, not a hang."""
        check_id(request.volume_id, "volume_id")
        check_string(request.volume_path, "volume_path", max_bytes=4096)
        path = request.volume_path
        if not os.path.isabs(path):  # never staged or published there: CSI's "volume does not exist"
            raise CsiError(
                grpc.StatusCode.NOT_FOUND, f"volume_path {path!r} does not exist (not an absolute path)"
            )
        try:
            found = paths.exists(path, self.probe_timeout)
        except CorruptedMountError as exc:  # hung: answer now rather than wait out a second probe
            return _abnormal(self._path(path, "volume_path"), exc)
        if not found:
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"volume_path {path} does not exist")
        path = self._path(path, "volume_path")
        try:
            if not self.mounter.is_mountpoint(path):
                raise CsiError(
                    grpc.StatusCode.NOT_FOUND, f"volume {request.volume_id} is not mounted at {path}"
                )
            st = self._deadline(lambda: os.statvfs(path), "statvfs", path)
            # statfs can still answer on a replaced export; reading the root shows ESTALE.
            self._deadline(lambda: next(os.scandir(path), None), "readdir", path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise CsiError(grpc.StatusCode.NOT_FOUND, f"volume_path {path} does not exist") from None
            if not is_corrupted(exc):
                raise
            return _abnormal(path, exc)
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=[
                _Usage(
                    unit=_Usage.BYTES,
                    total=st.f_blocks * st.f_frsize,
                    available=st.f_bavail * st.f_frsize,
                    used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                ),
                _Usage(
                    unit=_Usage.INODES,
                    total=st.f_files,
                    available=st.f_favail,
                    used=st.f_files - st.f_ffree,
                ),
            ],
            volume_condition=csi_pb2.VolumeCondition(abnormal=False, message="volume is healthy"),
        )

    def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        """Stage/unstage, volume stats with condition, and single-node multi-writer access modes."""
        return _CAPABILITIES_RESPONSE

    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        """This node's id and zone; no per-node volume limit (NFS mounts are not attachments)."""
        return csi_pb2.NodeGetInfoResponse(
            node_id=self.node_id,
            max_volumes_per_node=0,
            accessible_topology=csi_pb2.Topology(segments={TOPOLOGY_KEY_ZONE: self.zone}),
        )


def _supports_lock_release(context: Mapping[str, str], version: str) -> bool:
    """An NFSv3 volume the controller marked as able to release a dead node's locks (any case, as GFD)."""
    marked = context.get(CTX_SUPPORT_LOCK_RELEASE, "").lower() == "true"
    return marked and version == NFS_VERSIONS[LOCK_RELEASE_PROTOCOL]


def _abnormal(path: str, exc: OSError) -> csi_pb2.NodeGetVolumeStatsResponse:
    return csi_pb2.NodeGetVolumeStatsResponse(
        volume_condition=csi_pb2.VolumeCondition(abnormal=True, message=_condition(path, exc))
    )


def _condition(path: str, exc: OSError) -> str:
    """The VolumeCondition message for a dead or hung share."""
    if exc.errno == errno.ESTALE:
        kind = "stale (the share's file handle is no longer valid)"
    elif exc.errno == errno.ETIMEDOUT:
        kind = "not answering (probe timed out)"
    else:
        kind = f"disconnected ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    return f"volume at {path} is {kind}: {exc}"


def _rmdir_quietly(path: str) -> None:
    """Remove a directory this call created and could not mount on (only if still empty)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            os.rmdir(path)
    except OSError as exc:
        log.warning("%s: could not remove the directory after a failed bind: %s", path, exc)
