"""tests/support/memkube.py, the guest's API stand-in, answers the lock-release code as the API server does.

The same node records and controller passes as tests/kube (which run against a real kube-apiserver),
on loopback, so the guest end-to-end (tests/vm/guest/test_lock_release.py) rests on a stand-in
whose answers the driver's code reads as it reads the real ones.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the kubernetes client library is not installed")

from kubernetes import client

from csi.lockrelease import rpc
from csi.lockrelease.controller import LockReleaseController
from csi.lockrelease.kube import api_client
from csi.lockrelease.lockinfo import FINALIZER, INSTANCE_ID_ANNOTATION, NAMESPACE
from csi.lockrelease.store import NodeLockInfo
from tests.support.lockserver import LockServer
from tests.support.memkube import MemKube

NODE = "gke-pool-1-abcd"
KEY = "my-project.us-central1-a.fs-1.vol1.4815162342.10_128_0_7"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    kube = MemKube()
    api: Any = api_client(str(kube.kubeconfig(tmp_path / "kubeconfig")))
    yield api
    api.close()
    kube.close()


def _node(instance_id: str = "4815162342") -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=NODE, annotations={INSTANCE_ID_ANNOTATION: instance_id}),
        status=client.V1NodeStatus(addresses=[client.V1NodeAddress(type="InternalIP", address="10.128.0.7")]),
    )


def test_records_and_releases_as_against_the_api_server(api: Any) -> None:
    core: Any = client.CoreV1Api(api)
    info = NodeLockInfo(api, NODE, "my-project", "4815162342", "10.128.0.7")
    info.record("modeInstance/us-central1-a/fs-1/vol1", "127.0.0.1")
    cm = core.read_namespaced_config_map(f"fscsi-{NODE}", NAMESPACE)
    assert cm.data == {KEY: "127.0.0.1"} and cm.metadata.finalizers == [FINALIZER]
    info.record("modeInstance/us-central1-a/fs-1/vol1", "127.0.0.1")  # unchanged: not written again
    assert (
        core.read_namespaced_config_map(f"fscsi-{NODE}", NAMESPACE).metadata.resource_version
        == cm.metadata.resource_version
    )

    core.create_node(_node())
    server = LockServer()
    try:
        controller = LockReleaseController(
            api, functools.partial(rpc.release_all_locks, pmap_port=server.pmap_port)
        )
        assert controller.reconcile() == 0  # the node that wrote the entry is there
        core.delete_node(NODE)
        assert controller.reconcile() == 1
        assert server.released == ["10.128.0.7"]
    finally:
        server.close()
    assert core.read_namespaced_config_map(f"fscsi-{NODE}", NAMESPACE).data in (None, {})


def test_a_stale_replace_conflicts_and_a_missing_object_is_not_found(api: Any) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fscsi-x"), data={"a": "1"})
    )
    created.data = {"a": "2"}
    core.replace_namespaced_config_map("fscsi-x", NAMESPACE, created)
    created.data = {"a": "3"}  # still the first resourceVersion
    with pytest.raises(client.ApiException) as stale:
        core.replace_namespaced_config_map("fscsi-x", NAMESPACE, created)
    assert stale.value.status == 409
    with pytest.raises(client.ApiException) as again:
        core.create_namespaced_config_map(
            NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fscsi-x"))
        )
    assert again.value.status == 409
    with pytest.raises(client.ApiException) as gone:
        core.read_node("nobody")
    assert gone.value.status == 404
    assert core.read_namespaced_config_map("fscsi-x", NAMESPACE).data == {"a": "2"}
