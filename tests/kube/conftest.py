"""A real Kubernetes API server (etcd + kube-apiserver on loopback, tests/support/kubeapi.py) for these tests.

One server per session; each test gets an administrator's ApiClient on an emptied namespace
``gke-managed-filestorecsi`` (ConfigMaps, their finalizers removed first, and Leases) and no Nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import kubeapi

_REASON = kubeapi.missing()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from kubernetes import client

from csi.lockrelease.lockinfo import NAMESPACE


@pytest.fixture(scope="session")
def kube_api() -> Iterator[kubeapi.KubeApi]:
    api = kubeapi.start()
    yield api
    api.stop()


def _names(items: list[Any]) -> list[str]:
    return [str(item.metadata.name) for item in items]


def _empty(api: Any) -> None:
    core, coord = client.CoreV1Api(api), client.CoordinationV1Api(api)
    configmaps: list[Any] = core.list_namespaced_config_map(NAMESPACE).items
    for cm in configmaps:
        if cm.metadata.finalizers:
            core.patch_namespaced_config_map(cm.metadata.name, NAMESPACE, {"metadata": {"finalizers": None}})
        core.delete_namespaced_config_map(cm.metadata.name, NAMESPACE)
    for lease in _names(coord.list_namespaced_lease(NAMESPACE).items):
        coord.delete_namespaced_lease(lease, NAMESPACE)
    for node in _names(core.list_node().items):
        core.delete_node(node)


@pytest.fixture
def kube(kube_api: kubeapi.KubeApi) -> Iterator[Any]:
    """An ApiClient on an empty lock-release namespace."""
    api = kube_api.client()
    core = client.CoreV1Api(api)
    if NAMESPACE not in _names(core.list_namespace().items):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    _empty(api)
    yield api
    _empty(api)
    api.close()
