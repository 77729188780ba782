"""What every part of the controller service shares: its settings, its clients, and the lookups of
cloud resources by volume or snapshot id that more than one RPC makes."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc

from csi.cloud import (
    Backup,
    CloudError,
    ErrorKind,
    FilestoreCloud,
    Instance,
    MultishareCloud,
    MultishareInstance,
)
from csi.controller import labels
from csi.controller.multishare import MultishareOps
from csi.controller.reserved_ip import ReservedIpAllocator
from csi.errors import CsiError
from csi.filestore import (
    CTX_SUPPORT_LOCK_RELEASE,
    LOCK_RELEASE_PROTOCOL,
)
from csi.locks import VolumeLocks
from csi.proto import csi_pb2_grpc
from csi.volume_id import ShareRef, VolumeRef

log = logging.getLogger(__name__)


class ControllerBase(csi_pb2_grpc.ControllerServicer):
    """The controller's state; the RPCs are in :mod:`~csi.controller.volumes`,
    :mod:`~csi.controller.shares` and :mod:`~csi.controller.snapshots`."""

    def __init__(
        self,
        cloud: FilestoreCloud,
        *,
        driver_name: str,
        zone: str,
        locks: VolumeLocks,
        operation_timeout: float = 300.0,
        resource_tags: Mapping[str, str] | None = None,
        extra_labels: Mapping[str, str] | None = None,
        multishare: MultishareCloud | None = None,
        cluster_labels: Mapping[str, str] | None = None,
        lock_release: bool = False,
    ) -> None:
        self._cloud = cloud
        self._lock_release = (
            lock_release  # --feature-lock-release: mark the volumes whose locks can be released
        )
        self._driver_name = driver_name
        self._zone = zone
        self._extra_labels = dict(extra_labels or {})
        # labels.cluster_labels: on the multishare instances this controller creates, and the only ones
        # it touches
        self._cluster_labels = dict(
            cluster_labels if cluster_labels is not None else labels.cluster_labels("", zone, regional=False)
        )
        self._locks = locks
        self._timeout = operation_timeout
        self._reserved_ips = ReservedIpAllocator(cloud)
        self._resource_tags = dict(resource_tags or {})  # --resource-tags; a StorageClass's win per key
        self._shares = (
            MultishareOps(
                multishare, self._cluster_labels, timeout=operation_timeout, reserved_ips=self._reserved_ips
            )
            if multishare is not None
            else None
        )
        self._multishare_cloud = multishare

    def check_cloud(self) -> str | None:
        """A readiness check: None when the cloud answers a cheap call (a NOT_FOUND counts)."""
        try:
            self._cloud.get_instance(self._zone or "-", "csi-readiness-probe")
        except CloudError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                return f"the cloud does not answer: {exc}"
        return None

    def _find_instance(self, location: str, name: str) -> Instance | None:
        try:
            return self._cloud.get_instance(location, name)
        except CloudError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return None
            raise

    def _get_backup(self, full_name: str) -> Backup | None:
        try:
            return self._cloud.get_backup(full_name)
        except CloudError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return None
            raise

    def _volume_instance(self, volume_id: str, what: str = "volume") -> Instance | MultishareInstance:
        """The instance behind an instance volume or a share volume; NOT_FOUND when either is gone."""
        share_ref = ShareRef.parse(volume_id)
        if share_ref is None:
            return self._existing(volume_id, what)
        found = self._share_ops(volume_id).get(share_ref)
        if found is None:
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"{what} {volume_id} does not exist")
        return found[0]

    def _existing(self, volume_id: str, what: str = "volume") -> Instance:
        """The instance behind ``volume_id``; NOT_FOUND for foreign ids and missing instances."""
        ref = VolumeRef.parse(volume_id)
        instance = self._find_instance(ref.location, ref.instance) if ref else None
        if instance is None:
            raise CsiError(grpc.StatusCode.NOT_FOUND, f"{what} {volume_id} does not exist")
        return instance

    def _share_ops(self, volume_id: str) -> MultishareOps:
        if self._shares is None:
            raise CsiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"volume {volume_id}: multishare volumes need a controller started with --enable-multishare",
            )
        return self._shares

    def _lock_release_context(self, protocol: str, tier_supports: bool) -> dict[str, str]:
        """``supportLockRelease: "true"`` as GFD sets it: feature on, NFSv3, and for an instance ENTERPRISE.

        GFD marks a share whatever its protocol, and its node then acts on NFSv3 volumes only; we
        mark NFSv3 shares only, which any node treats the same way.
        """
        wanted = self._lock_release and protocol == LOCK_RELEASE_PROTOCOL and tier_supports
        return {CTX_SUPPORT_LOCK_RELEASE: "true"} if wanted else {}
