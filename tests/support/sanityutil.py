"""csi-sanity's (kubernetes-csi/csi-test v5, ``pkg/sanity``) helpers in Python: its config values, name and
id generators, TestContext and Resources, for ``tests/sanity``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from csi.filestore import GIB
from csi.proto import csi_pb2, csi_pb2_grpc
from tests.support.csiutil import Driver, mount_rows

#: ``--csi.testvolumesize``; csi-sanity's TestVolumeExpandSize is that plus 1 GiB.
TEST_VOLUME_SIZE = 107374182400
TEST_VOLUME_EXPAND_SIZE = TEST_VOLUME_SIZE + GIB
#: csi-sanity's MaxNameLength, and its IdempotentCount default (``--csi.idempotent-count``).
MAX_NAME_LENGTH = 128
IDEMPOTENT_COUNT = 10

_Mode = csi_pb2.VolumeCapability.AccessMode
SINGLE_NODE_WRITER = _Mode.SINGLE_NODE_WRITER

#: This run's suffix, as csi-sanity's ``uniqueSuffix`` ("-" + two groups of 8 upper-case hex digits).
_SUFFIX = "-" + "-".join(secrets.token_hex(4).upper() for _ in range(2))


def unique_string(prefix: str) -> str:
    """csi-sanity's UniqueString."""
    return prefix + _SUFFIX


def unique_string_with_length(prefix: str, length: int) -> str:
    """csi-sanity's UniqueStringWithLength: the unique string padded to ``length`` characters."""
    name = unique_string(prefix)
    return name + "x" * (length - len(name))


def valid_volume_id() -> str:
    """DefaultIDGenerator.GenerateUniqueValidVolumeID."""
    return "fake-vol-id-" + secrets.token_hex(5)


INVALID_VOLUME_ID = "fake-vol-id"  # DefaultIDGenerator.GenerateInvalidVolumeID


def capability(mode: _Mode.Mode = SINGLE_NODE_WRITER) -> csi_pb2.VolumeCapability:
    """TestVolumeCapabilityWithAccessType (mount access, the default test volume access type)."""
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=mode)
    )


def code_of(call: Any, request: Any) -> grpc.StatusCode:
    """The status code ``call(request)`` fails with (the test fails if it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=120)
    code: grpc.StatusCode = info.value.code()
    return code


@dataclass
class TestContext:
    """csi-sanity's TestContext and Resources for one test: the clients, paths and what to clean up."""

    __test__ = False  # not a pytest class

    driver: Driver
    identity: Any
    target_path: str
    staging_path: str
    _resources: list[tuple[str, str]] = field(default_factory=list)  # (kind, id), creation order

    @property
    def controller(self) -> Any:
        return self.driver.controller

    @property
    def node(self) -> Any:
        return self.driver.node

    # -- Resources: calls that register what they create --

    def create_volume(
        self, request: csi_pb2.CreateVolumeRequest, timeout: float = 120
    ) -> csi_pb2.CreateVolumeResponse:
        response: csi_pb2.CreateVolumeResponse = self.controller.CreateVolume(request, timeout=timeout)
        if response.volume.volume_id:
            self._resources.append(("volume", response.volume.volume_id))
        return response

    def must_create_volume(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.CreateVolumeResponse:
        response = self.create_volume(request)
        assert response.volume.volume_id, "volume ID in response is missing"
        return response

    def delete_volume(self, request: csi_pb2.DeleteVolumeRequest) -> None:
        self.controller.DeleteVolume(request, timeout=120)
        self._unregister(request.volume_id)

    def create_snapshot(
        self, request: csi_pb2.CreateSnapshotRequest, timeout: float = 120
    ) -> csi_pb2.CreateSnapshotResponse:
        response: csi_pb2.CreateSnapshotResponse = self.controller.CreateSnapshot(request, timeout=timeout)
        if response.snapshot.snapshot_id:
            self._resources.append(("snapshot", response.snapshot.snapshot_id))
        return response

    def must_create_snapshot(self, request: csi_pb2.CreateSnapshotRequest) -> csi_pb2.CreateSnapshotResponse:
        response = self.create_snapshot(request)
        verify_snapshot_info(response.snapshot)
        return response

    def must_create_snapshot_from_volume_request(
        self, request: csi_pb2.CreateVolumeRequest, snapshot_name: str
    ) -> tuple[csi_pb2.CreateSnapshotResponse, csi_pb2.CreateVolumeResponse]:
        volume = self.must_create_volume(request)
        snapshot = self.must_create_snapshot(make_create_snapshot_req(snapshot_name, volume.volume.volume_id))
        return snapshot, volume

    def delete_snapshot(self, request: csi_pb2.DeleteSnapshotRequest) -> None:
        self.controller.DeleteSnapshot(request, timeout=120)
        self._unregister(request.snapshot_id)

    def _unregister(self, resource_id: str) -> None:
        self._resources = [r for r in self._resources if r[1] != resource_id]

    def cleanup(self) -> None:
        """Resources.Cleanup: LIFO; node calls OK or NOT_FOUND, the deletes OK."""
        for kind, resource_id in reversed(self._resources):
            if kind == "snapshot":
                self.controller.DeleteSnapshot(
                    csi_pb2.DeleteSnapshotRequest(snapshot_id=resource_id), timeout=120
                )
                continue
            for call, request in (
                (
                    self.node.NodeUnpublishVolume,
                    csi_pb2.NodeUnpublishVolumeRequest(
                        volume_id=resource_id, target_path=self.target_path + "/target"
                    ),
                ),
                (
                    self.node.NodeUnstageVolume,
                    csi_pb2.NodeUnstageVolumeRequest(
                        volume_id=resource_id, staging_target_path=self.staging_path
                    ),
                ),
            ):
                try:
                    call(request, timeout=120)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
            self.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=resource_id), timeout=120)
        self._resources = []


def verify_snapshot_info(snapshot: csi_pb2.Snapshot) -> None:
    """csi-sanity's verifySnapshotInfo."""
    assert snapshot.snapshot_id
    assert snapshot.source_volume_id
    assert snapshot.HasField("creation_time") and snapshot.creation_time.ToNanoseconds() != 0


def make_create_volume_req(name: str) -> csi_pb2.CreateVolumeRequest:
    """csi-sanity's MakeCreateVolumeReq: the test size as both required and limit."""
    return csi_pb2.CreateVolumeRequest(
        name=name,
        volume_capabilities=[capability()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=TEST_VOLUME_SIZE, limit_bytes=TEST_VOLUME_SIZE),
    )


def make_create_snapshot_req(name: str, source_volume_id: str) -> csi_pb2.CreateSnapshotRequest:
    return csi_pb2.CreateSnapshotRequest(name=name, source_volume_id=source_volume_id)


@contextmanager
def sanity_context(driver: Driver) -> Iterator[TestContext]:
    """One test's context: Setup (mkdir of the mount and staging dirs beneath the kubelet root), then
    after the test Resources.Cleanup and a check that nothing is left mounted, then Teardown."""
    target_path = os.path.join(driver.root, "csi-mount")
    staging_path = os.path.join(driver.root, "csi-staging")
    os.mkdir(target_path)
    os.mkdir(staging_path)
    channel = grpc.insecure_channel(f"unix://{os.path.dirname(driver.root)}/csi.sock")
    identity = csi_pb2_grpc.IdentityStub(channel)  # type: ignore[no-untyped-call]
    context = TestContext(driver, identity, target_path, staging_path)
    try:
        yield context
        context.cleanup()
        assert mount_rows(driver) == {}, "mounts left under the kubelet root"
    finally:
        channel.close()
        for mounted in sorted(mount_rows(driver), reverse=True):  # only after a failure: free the next test
            driver.ns("umount", "-l", mounted, check=False)
        for path in (target_path + "/target", target_path, staging_path):
            if os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)


def create_for_node(
    sc: TestContext,
    name: str,
    topology: csi_pb2.Topology | None = None,
    mode: _Mode.Mode = SINGLE_NODE_WRITER,
) -> csi_pb2.Volume:
    """The node cases' volume: single node writer (or ``mode``), the test size, the node's topology if
    given."""
    request = csi_pb2.CreateVolumeRequest(
        name=name,
        volume_capabilities=[capability(mode)],
        capacity_range=csi_pb2.CapacityRange(required_bytes=TEST_VOLUME_SIZE),
    )
    if topology is not None:
        request.accessibility_requirements.requisite.append(topology)
    return sc.must_create_volume(request).volume


def node_stage(
    sc: TestContext,
    volume: csi_pb2.Volume,
    count: int = 1,
    *,
    stand_in: bool = True,
    mode: _Mode.Mode = SINGLE_NODE_WRITER,
) -> None:
    """NodeStageVolume ``count`` times at the staging dir.  With ``stand_in``, a kernel without an NFS
    client must fail the first one clearly (INTERNAL naming the share, nothing mounted), and a tmpfs
    stand-in is then mounted at the staging path in the driver's namespace."""
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id=volume.volume_id,
        volume_capability=capability(mode),
        staging_target_path=sc.staging_path,
        volume_context=volume.volume_context,
    )
    for _ in range(count):
        try:
            sc.node.NodeStageVolume(request, timeout=120)
        except grpc.RpcError as exc:
            if not stand_in:
                raise
            share = f"{volume.volume_context['ip']}:/{volume.volume_context['volume']}"
            assert exc.code() == grpc.StatusCode.INTERNAL and "no NFS client" in (exc.details() or ""), exc
            assert share in (exc.details() or "")
            assert mount_rows(sc.driver) == {}  # a failed stage leaves nothing mounted
            sc.driver.ns("mount", "-t", "tmpfs", "-o", "size=4m", "stand-in", sc.staging_path)
            return


def node_publish(
    sc: TestContext, volume: csi_pb2.Volume, mode: _Mode.Mode = SINGLE_NODE_WRITER, target: str = "target"
) -> None:
    """NodePublishVolume at ``<mountdir>/<target>``, as csi-sanity's nodePublishVolumeWithCapability."""
    sc.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            target_path=f"{sc.target_path}/{target}",
            staging_target_path=sc.staging_path,
            volume_capability=capability(mode),
            volume_context=volume.volume_context,
        ),
        timeout=120,
    )


def run_controller_test(sc: TestContext, count: int, *, stand_in: bool = True) -> None:
    """csi-sanity's runControllerTest (no ControllerPublish: not advertised): create with the node's
    topology, stage and publish ``count`` times each, then the volume's stats at the target."""
    info = sc.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest())
    assert info.node_id
    volume = create_for_node(sc, unique_string(f"sanity-node-full-{count}"), info.accessible_topology)
    node_stage(sc, volume, count, stand_in=stand_in)
    for _ in range(count):
        node_publish(sc, volume)
    target = sc.target_path + "/target"
    rows = mount_rows(sc.driver, "OPTIONS")
    assert set(rows) == {sc.staging_path, target} and "rw" in rows[target][0].split(",")
    stats = sc.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=target)
    )
    assert stats.usage and stats.usage[0].total > 0
    assert not stats.volume_condition.abnormal
