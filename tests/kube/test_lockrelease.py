"""Lock release against a real API server: the node's records, the controller's releases, the Lease.

Releases go to a loopback portmapper + lock-release server (tests/support/lockserver.py), which records the
node addresses it was asked to release.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubernetes import client

from csi.errors import to_status
from csi.lockrelease import LockInfoError, rpc
from csi.lockrelease.controller import LockReleaseController
from csi.lockrelease.leader import LeaseElector
from csi.lockrelease.lockinfo import FINALIZER, LEASE_NAME, NAMESPACE
from csi.lockrelease.store import NodeLockInfo
from csi.locks import VolumeLocks
from csi.node.service import NodeServicer
from csi.proto import csi_pb2
from mountkit.fake import FakeMounter
from tests.support.lockserver import LockServer

NODE = "gke-pool-1-abcd"
CM = f"fscsi-{NODE}"
INSTANCE_VOLUME = "modeInstance/us-central1-a/fs-1/vol1"
SHARE_VOLUME = "modeMultishare/sc-label/other-project/us-central1/fs-ms-1/pvc_123"
KEY = "my-project.us-central1-a.fs-1.vol1.4815162342.10_128_0_7"
SHARE_KEY = "other-project.us-central1.fs-ms-1.pvc_123.4815162342.10_128_0_7"
V3 = {"ip": "10.0.0.2", "volume": "vol1", "fileProtocol": "NFS_V3", "supportLockRelease": "true"}


def lease_spec(api: Any) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, NAMESPACE).spec


def configmap(api: Any, name: str = CM) -> Any:
    try:
        return client.CoreV1Api(api).read_namespaced_config_map(name, NAMESPACE)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


class Node:
    """A NodeServicer on a fake mounter, recording in the API server as node NODE (10.128.0.7)."""

    def __init__(self, root: Path, lock_info: NodeLockInfo | None) -> None:
        self.root = root
        self.svc = NodeServicer(
            NODE, "us-central1-a", str(root), FakeMounter(), VolumeLocks(), 2.0, lock_info
        )
        os.makedirs(root / "plugins" / "csi", exist_ok=True)

    def staging(self, volume_id: str) -> str:
        parent = self.root / "plugins" / "csi" / volume_id.replace("/", "_")
        parent.mkdir(exist_ok=True)
        return str(parent / "globalmount")

    def stage(self, volume_id: str, context: dict[str, str]) -> None:
        capability = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
            ),
        )
        request = csi_pb2.NodeStageVolumeRequest(
            volume_id=volume_id, staging_target_path=self.staging(volume_id),
            volume_capability=capability, volume_context=context,
        )  # fmt: skip
        self.svc.NodeStageVolume(request, None)  # type: ignore[arg-type]

    def unstage(self, volume_id: str) -> None:
        request = csi_pb2.NodeUnstageVolumeRequest(
            volume_id=volume_id, staging_target_path=self.staging(volume_id)
        )
        self.svc.NodeUnstageVolume(request, None)  # type: ignore[arg-type]


def lock_info(api: Any) -> NodeLockInfo:
    return NodeLockInfo(api, NODE, "my-project", "4815162342", "10.128.0.7")


def test_stage_records_and_unstage_removes_in_gfd_format(kube: Any, tmp_path: Path) -> None:
    node = Node(tmp_path, lock_info(kube))
    node.stage(INSTANCE_VOLUME, V3)
    cm = configmap(kube)
    assert cm.data == {KEY: "10.0.0.2"}
    assert cm.metadata.finalizers == [FINALIZER]
    node.stage(INSTANCE_VOLUME, V3)  # a repeat changes nothing
    assert configmap(kube).metadata.resource_version == cm.metadata.resource_version
    node.stage(SHARE_VOLUME, {"ip": "10.0.0.9", "fileProtocol": "NFS_V3", "supportLockRelease": "TRUE"})
    assert configmap(kube).data == {KEY: "10.0.0.2", SHARE_KEY: "10.0.0.9"}
    node.unstage(INSTANCE_VOLUME)
    assert configmap(kube).data == {SHARE_KEY: "10.0.0.9"}
    node.unstage(INSTANCE_VOLUME)  # already gone: fine
    node.unstage(SHARE_VOLUME)
    assert not configmap(kube).data


@pytest.mark.parametrize(
    "context",
    [
        {**V3, "supportLockRelease": "false"},
        {k: v for k, v in V3.items() if k != "supportLockRelease"},
        {**V3, "fileProtocol": "NFS_V4_1"},
    ],
)
def test_volumes_without_lock_release_are_not_recorded(
    kube: Any, tmp_path: Path, context: dict[str, str]
) -> None:
    Node(tmp_path, lock_info(kube)).stage(INSTANCE_VOLUME, context)
    assert configmap(kube) is None


def test_feature_off_writes_nothing(kube: Any, tmp_path: Path) -> None:
    node = Node(tmp_path, None)
    node.stage(INSTANCE_VOLUME, V3)
    node.unstage(INSTANCE_VOLUME)
    assert client.CoreV1Api(kube).list_namespaced_config_map(NAMESPACE).items == []


def test_an_unreachable_api_fails_the_stage_as_internal(tmp_path: Path) -> None:
    config = client.Configuration()
    config.host = "http://127.0.0.1:1"  # nothing listens there: the connection is refused
    config.retries = False
    with client.ApiClient(config) as api, pytest.raises(LockInfoError) as info:
        Node(tmp_path, lock_info(api)).stage(INSTANCE_VOLUME, V3)
    code, message = to_status(info.value)
    assert code == grpc.StatusCode.INTERNAL
    assert f"ConfigMap {NAMESPACE}/{CM}: record {KEY}" in message


# -- the controller ----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LockServer]:
    srv = LockServer()
    yield srv
    srv.close()


def gfd_configmap(api: Any, data: dict[str, str], name: str = CM) -> None:
    """A ConfigMap exactly as GFD's node writes it (configmap_util.go: CreateConfigMapWithData)."""
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, namespace=NAMESPACE, finalizers=[FINALIZER]), data=data
    )
    client.CoreV1Api(api).create_namespaced_config_map(NAMESPACE, body)


def make_node(
    api: Any, name: str = NODE, instance_id: str | None = "4815162342", ip: str = "10.128.0.7"
) -> None:
    annotations = None if instance_id is None else {"container.googleapis.com/instance_id": instance_id}
    core = client.CoreV1Api(api)
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name, annotations=annotations)))
    status = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]
        }
    }
    core.patch_node_status(name, status)


def controller(api: Any, srv: LockServer) -> LockReleaseController:
    return LockReleaseController(api, functools.partial(rpc.release_all_locks, pmap_port=srv.pmap_port))


FS_IP = "127.0.0.1"  # the loopback lock server stands in for the Filestore instance
GFD_DATA = {KEY: FS_IP}


def test_a_live_node_keeps_its_locks(kube: Any, server: LockServer) -> None:
    make_node(kube)
    gfd_configmap(kube, GFD_DATA)
    assert controller(kube, server).reconcile() == 0
    assert server.released == []
    assert configmap(kube).data == GFD_DATA


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda api: None, id="node-deleted"),
        pytest.param(lambda api: make_node(api, instance_id="999"), id="instance-id-changed"),
        pytest.param(lambda api: make_node(api, ip="10.128.0.99"), id="internal-ip-changed"),
        pytest.param(lambda api: make_node(api, instance_id=""), id="instance-id-missing"),
    ],
)
def test_a_dead_node_is_released_and_its_record_removed(
    kube: Any, server: LockServer, change: Callable[[Any], None]
) -> None:
    gfd_configmap(kube, {**GFD_DATA, "not-a-lock-record": "x"})
    make_node(kube, name="other-node", ip="10.128.0.8")  # someone else's node, unrelated
    change(kube)
    assert controller(kube, server).reconcile() == 1
    assert server.released == ["10.128.0.7"]
    cm = configmap(kube)
    assert cm.data == {"not-a-lock-record": "x"}  # only the released key goes
    assert cm.metadata.finalizers == [FINALIZER]


def test_a_node_without_annotations_is_left_alone(kube: Any, server: LockServer) -> None:
    make_node(kube, instance_id=None)
    gfd_configmap(kube, GFD_DATA)
    assert controller(kube, server).reconcile() == 0
    assert server.released == [] and configmap(kube).data == GFD_DATA


def test_a_failed_release_keeps_the_record_for_the_next_pass(kube: Any, server: LockServer) -> None:
    gfd_configmap(kube, GFD_DATA)
    server.status = 1
    ctrl = controller(kube, server)
    assert ctrl.reconcile() == 0
    assert configmap(kube).data == GFD_DATA
    server.status = 0
    assert ctrl.reconcile() == 1
    assert server.released == ["10.128.0.7", "10.128.0.7"]
    assert not configmap(kube).data


def test_stage_then_node_deletion_releases_end_to_end(kube: Any, server: LockServer, tmp_path: Path) -> None:
    make_node(kube)
    Node(tmp_path, lock_info(kube)).stage(INSTANCE_VOLUME, {**V3, "ip": FS_IP})
    ctrl = controller(kube, server)
    assert ctrl.reconcile() == 0
    client.CoreV1Api(kube).delete_node(NODE)
    assert ctrl.reconcile() == 1
    assert server.released == ["10.128.0.7"] and not configmap(kube).data


# -- leader election ---------------------------------------------------------------------------


def test_two_replicas_one_leads_and_acts_then_the_other_takes_over(
    kube: Any, kube_api: Any, server: LockServer
) -> None:
    apis = [kube_api.client(), kube_api.client()]
    electors = [
        LeaseElector(api, f"replica-{i}", lease_duration=2, renew_deadline=1.5, retry_period=0.2)
        for i, api in enumerate(apis)
    ]
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=controller(api, server).run, args=(elector, stop, 0.2), daemon=True)
        for api, elector, stop in zip(apis, electors, stops, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while not any(e.leading.is_set() for e in electors):
            assert time.monotonic() < deadline, "nobody took the lease"
            time.sleep(0.1)
        leader = next(i for i, e in enumerate(electors) if e.leading.is_set())
        assert lease_spec(kube).holder_identity == f"replica-{leader}"
        for _ in range(10):  # over several renewals, never two leaders
            assert sum(e.leading.is_set() for e in electors) == 1
            time.sleep(0.2)
        gfd_configmap(kube, GFD_DATA)  # a dead node's record: exactly one release
        while configmap(kube).data:
            assert time.monotonic() < deadline, "the record was not released"
            time.sleep(0.1)
        time.sleep(0.5)
        assert server.released == ["10.128.0.7"]

        stops[leader].set()  # the leader stops renewing; the other takes the lease once it expires
        threads[leader].join(10)
        follower = 1 - leader
        deadline = time.monotonic() + 20
        while not electors[follower].leading.is_set():
            assert time.monotonic() < deadline, "the follower never took over"
            time.sleep(0.1)
        spec = lease_spec(kube)
        assert spec.holder_identity == f"replica-{follower}"
        assert spec.lease_transitions >= 1
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)
        for api in apis:
            api.close()
