"""The lock-release controller: release the NLM locks of nodes that are gone, then drop their records.

Every sync period the leader (:mod:`.leader`) lists the ConfigMaps of ``gke-managed-filestorecsi`` and
the Nodes, as gcp-filestore-csi-driver's controller does (``pkg/releaselock/controller.go``). An entry
of ``fscsi-<node>`` belongs to a dead node when that Node is gone, or no longer carries the entry's
GCE instance id (annotation ``container.googleapis.com/instance_id``) or internal IP: the VM that took
the locks was deleted or recreated. For such an entry the controller reads the Node once more (a list
may lag), calls RELEASE_ALL_LOCKS on the entry's Filestore IP for the entry's node IP, and only when
that succeeds removes the key; a failure leaves it for the next pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from csi.lockrelease import rpc
from csi.lockrelease.flags import SYNC_PERIOD
from csi.lockrelease.leader import LeaseElector
from csi.lockrelease.lockinfo import INSTANCE_ID_ANNOTATION, NAMESPACE, ROOT_CA_CONFIGMAP, LockKey, node_of

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
ATTEMPTS = 5

Release = Callable[[str, str], None]


def node_matches(node: Any, key: LockKey) -> bool | None:
    """Is ``node`` (a V1Node, or None when gone) the node that wrote ``key``? None: cannot tell.

    GFD cannot tell for a Node without any annotation, and leaves its entries alone.
    """
    if node is None:
        return False
    annotations = node.metadata.annotations
    if annotations is None:
        return None
    if annotations.get(INSTANCE_ID_ANNOTATION) != key.node_id:
        return False
    addresses = (node.status.addresses if node.status else None) or []
    return any(a.type == "InternalIP" and a.address == key.node_ip for a in addresses)


class LockReleaseController:
    """One reconcile pass (:meth:`reconcile`), or the leader's loop of them (:meth:`run`)."""

    def __init__(self, api: client.ApiClient, release: Release = rpc.release_all_locks) -> None:
        self._core = client.CoreV1Api(api)
        self._release = release

    def reconcile(self, may_act: Callable[[], bool] = lambda: True) -> int:
        """One pass over every record; the number of releases done. ``may_act`` is asked before each."""
        configmaps: list[Any] = self._core.list_namespaced_config_map(
            NAMESPACE, _request_timeout=REQUEST_TIMEOUT
        ).items
        node_list: list[Any] = self._core.list_node(_request_timeout=REQUEST_TIMEOUT).items
        nodes = {str(n.metadata.name): n for n in node_list}
        released = 0
        for cm in configmaps:
            name = str(cm.metadata.name)
            node_name = node_of(name)
            if name == ROOT_CA_CONFIGMAP or node_name is None:
                continue
            for key, filestore_ip in dict(cm.data or {}).items():
                lock = LockKey.parse(key)
                if lock is None:
                    log.warning(
                        "ConfigMap %s/%s: key %r is not a lock record; left alone", NAMESPACE, name, key
                    )
                    continue
                if node_matches(nodes.get(node_name), lock) is not False:
                    continue
                if not may_act() or node_matches(self._read_node(node_name), lock) is not False:
                    continue
                log.info(
                    "node %s (instance %s, %s) is gone: releasing its locks on %s",
                    node_name, lock.node_id, lock.node_ip, filestore_ip,
                )  # fmt: skip
                try:
                    self._release(filestore_ip, lock.node_ip)
                except (OSError, ValueError) as exc:
                    log.error(
                        "releasing %s's locks on %s failed, retried next pass: %s",
                        lock.node_ip,
                        filestore_ip,
                        exc,
                    )
                    continue
                released += 1
                self._remove_key(name, key)
        return released

    def _read_node(self, name: str) -> Any:
        try:
            return self._core.read_node(name, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _remove_key(self, name: str, key: str) -> None:
        """Drop ``key`` from the latest ConfigMap, read again after a conflict."""
        for _ in range(ATTEMPTS):
            try:
                cm = self._core.read_namespaced_config_map(name, NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            if not cm.data or key not in cm.data:
                return
            del cm.data[key]
            try:
                self._core.replace_namespaced_config_map(
                    name, NAMESPACE, cm, _request_timeout=REQUEST_TIMEOUT
                )
                log.info("ConfigMap %s/%s: removed %s", NAMESPACE, name, key)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        log.error("ConfigMap %s/%s: %s still conflicting after %d attempts", NAMESPACE, name, key, ATTEMPTS)

    def run(self, elector: LeaseElector, stop: threading.Event, sync_period: float = SYNC_PERIOD) -> None:
        """Until ``stop``: hold the Lease on a thread; while leading, reconcile every ``sync_period``."""
        renewer = threading.Thread(target=elector.run, args=(stop,), name="lock-release-lease", daemon=True)
        renewer.start()
        try:
            while not stop.is_set():
                if not elector.leading.wait(timeout=elector.retry_period):
                    continue
                try:
                    self.reconcile(elector.leading.is_set)
                except (ApiException, HTTPError, OSError) as exc:
                    log.error("lock release pass failed, retried in %.0f s: %s", sync_period, exc)
                stop.wait(sync_period)
        finally:
            stop.set()
            renewer.join()
