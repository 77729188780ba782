"""The node's side of lock release: record each staged volume in this node's ConfigMap, drop it on unstage.

What is written is exactly what gcp-filestore-csi-driver writes (:mod:`.lockinfo`), so either driver's
controller acts on the other's records. Writes are optimistic: a ConfigMap changed or created by
someone else between our read and our write (HTTP 409) is read again, up to :data:`ATTEMPTS` times.
Every failure raises :class:`~csi.lockrelease.LockInfoError`, which the node's RPC answers as INTERNAL,
so kubelet retries the stage or unstage: a volume is never left staged without its record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from csi.lockrelease import LockInfoError
from csi.lockrelease.lockinfo import FINALIZER, NAMESPACE, LockKey, configmap_name
from csi.volume_id import ShareRef, VolumeRef

log = logging.getLogger(__name__)

ATTEMPTS = 5
#: Seconds for each request to the API server.
REQUEST_TIMEOUT = 10.0
CONFLICT = 409
NOT_FOUND = 404


class NodeLockInfo:
    """This node's ConfigMap, keyed by its identity at start: GCE instance id and internal IPv4."""

    def __init__(self, api: Any, node_name: str, project: str, instance_id: str, internal_ip: str) -> None:
        self._core = client.CoreV1Api(api)
        self.name = configmap_name(node_name)
        self.project = project
        self.instance_id = instance_id
        self.internal_ip = internal_ip

    def key_for(self, volume_id: str) -> str | None:
        """GFD's key for a volume staged here; None for a handle in neither of the driver's forms."""
        share = ShareRef.parse(volume_id)
        if share is not None:
            parts = (share.project, share.location, share.instance, share.share)
        elif (ref := VolumeRef.parse(volume_id)) is not None:
            parts = (self.project, ref.location, ref.instance, ref.share)
        else:
            return None
        return LockKey(*parts, self.instance_id, self.internal_ip).key

    def record(self, volume_id: str, filestore_ip: str) -> None:
        """Add ``key → filestore_ip``, creating the ConfigMap if needed; done already is a no-op."""
        key = self.key_for(volume_id)
        if key is None:
            raise LockInfoError(
                f"volume {volume_id} asks for lock release, but its handle is not one this driver "
                "creates, so it has no lock record key"
            )

        def change(data: dict[str, str]) -> bool:
            if data.get(key) == filestore_ip:
                return False
            data[key] = filestore_ip
            return True

        self._update(change, create={key: filestore_ip}, what=f"record {key}")

    def forget(self, volume_id: str) -> None:
        """Remove the volume's key; a missing ConfigMap or key is a no-op."""
        key = self.key_for(volume_id)
        if key is None:
            return

        def change(data: dict[str, str]) -> bool:
            return data.pop(key, None) is not None

        self._update(change, create=None, what=f"remove {key}")

    def _update(
        self, change: Callable[[dict[str, str]], bool], create: dict[str, str] | None, what: str
    ) -> None:
        where = f"ConfigMap {NAMESPACE}/{self.name}"
        try:
            for _ in range(ATTEMPTS):
                try:
                    cm = self._core.read_namespaced_config_map(
                        self.name, NAMESPACE, _request_timeout=REQUEST_TIMEOUT
                    )
                except ApiException as exc:
                    if exc.status != NOT_FOUND:
                        raise
                    if create is None:
                        return
                    body = client.V1ConfigMap(
                        metadata=client.V1ObjectMeta(
                            name=self.name, namespace=NAMESPACE, finalizers=[FINALIZER]
                        ),
                        data=create,
                    )
                    if self._write(self._core.create_namespaced_config_map, NAMESPACE, body):
                        log.info("%s: created with %s", where, what)
                        return
                    continue
                data = dict(cm.data or {})
                if not change(data):
                    return
                cm.data = data
                if self._write(self._core.replace_namespaced_config_map, self.name, NAMESPACE, cm):
                    log.info("%s: %s", where, what)
                    return
        except ApiException as exc:
            raise LockInfoError(
                f"{where}: {what}: the API server answered {exc.status} {exc.reason}"
            ) from None
        except (HTTPError, OSError) as exc:
            raise LockInfoError(f"{where}: {what}: {exc}") from None
        raise LockInfoError(f"{where}: {what}: still conflicting after {ATTEMPTS} attempts")

    @staticmethod
    def _write(request: Callable[..., object], *args: object) -> bool:
        """True when written; False on a conflict (someone else wrote first: read again)."""
        try:
            request(*args, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == CONFLICT:
                return False
            raise
        return True
