"""The one cloud interface the controller uses: Filestore instances, backups, and multishare shares.

Implementations: :mod:`csi.cloud.gcp` (the google-cloud-filestore client, which also talks to the
emulator in :mod:`csi.cloud.emulator` through an endpoint override). Errors are :class:`CloudError`
with a :class:`ErrorKind`; only ``csi/errors.py`` turns a kind into a gRPC status code.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from csi.filestore import (
    DEFAULT_CONNECT_MODE,
    DEFAULT_NETWORK,
    DEFAULT_PROTOCOL,
    DEFAULT_SHARE,
    NFS_ACCESS_MODES,
    NFS_EXPORT_MAX_IP_RANGES,
    NFS_SQUASH_MODES,
)

__all__ = [
    "Backup",
    "CloudError",
    "ErrorKind",
    "FilestoreCloud",
    "Instance",
    "MultishareCloud",
    "MultishareInstance",
    "NfsExportRule",
    "OperationPending",
    "Performance",
    "Share",
    "export_rules_error",
    "instance_name",
]


class ErrorKind(enum.Enum):
    """What went wrong, in terms the controller decides on (retry, report, treat as done)."""

    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"


class CloudError(Exception):
    """A failed cloud call or a failed long-running operation."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message


class OperationPending(CloudError):
    """The long-running operation was still running when the wait ran out.

    The work is under way, not failed: the caller returns a retryable error and, on the CO's retry,
    finds the resource (or the same operation) again. ``operation`` is the operation's name.
    """

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(ErrorKind.DEADLINE_EXCEEDED, message)
        self.operation = operation


def _frozen_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(labels))


@dataclass(frozen=True, slots=True)
class Performance:
    """An instance's custom performance (``performance_config``): one of the two is set."""

    fixed_iops: int | None = None
    iops_per_tb: int | None = None


@dataclass(frozen=True, slots=True)
class NfsExportRule:
    """One ``NfsExportOptions`` entry: who may mount the share, and how."""

    ip_ranges: tuple[str, ...]
    access_mode: str = "READ_WRITE"
    squash_mode: str = "NO_ROOT_SQUASH"
    anon_uid: int | None = None
    anon_gid: int | None = None


def export_rules_error(rules: Sequence[NfsExportRule]) -> str | None:
    """Why Filestore refuses these export rules for one share, or None.

    As the v1 API documents ``NfsExportOptions``: every rule names IPv4 addresses or CIDR blocks,
    at most 64 in all, none overlapping; anonymous ids only with ROOT_SQUASH.
    """
    seen: list[ipaddress.IPv4Network] = []
    for index, rule in enumerate(rules):
        where = f"rule {index}"
        if not rule.ip_ranges:
            return f"{where}: ipRanges must name at least one address or range"
        if rule.access_mode not in NFS_ACCESS_MODES:
            return f"{where}: accessMode must be one of {sorted(NFS_ACCESS_MODES)}"
        if rule.squash_mode not in NFS_SQUASH_MODES:
            return f"{where}: squashMode must be one of {sorted(NFS_SQUASH_MODES)}"
        if rule.squash_mode != "ROOT_SQUASH" and (rule.anon_uid is not None or rule.anon_gid is not None):
            return f"{where}: anonUid and anonGid need squashMode ROOT_SQUASH"
        for anon in (rule.anon_uid, rule.anon_gid):
            if anon is not None and not 0 <= anon < 1 << 32:
                return f"{where}: anonUid/anonGid must be 0-4294967295"
        for text in rule.ip_ranges:
            try:
                net = ipaddress.IPv4Network(text)
            except ValueError:
                return f"{where}: {text!r} is not an IPv4 address or CIDR block (with host bits clear)"
            clash = next((other for other in seen if other.overlaps(net)), None)
            if clash is not None:
                return f"{where}: {text} overlaps {clash}"
            seen.append(net)
    if len(seen) > NFS_EXPORT_MAX_IP_RANGES:
        return f"at most {NFS_EXPORT_MAX_IP_RANGES} IP ranges per share, not {len(seen)}"
    return None


@dataclass(frozen=True, slots=True)
class Instance:
    """A Filestore instance with one file share, as the driver sees it.

    ``labels`` is a read-only mapping (so the record cannot change under a caller; it also makes the
    record unhashable). ``state``, ``ip`` are outputs: ignored by ``create_instance``.
    """

    name: str  # short instance id, e.g. "pvc-1234"
    location: str  # zone or region
    tier: str  # API enum name: "BASIC_HDD", "BASIC_SSD", "ZONAL", "ENTERPRISE", ...
    capacity_gib: int
    network: str = DEFAULT_NETWORK
    connect_mode: str = DEFAULT_CONNECT_MODE  # or "PRIVATE_SERVICE_ACCESS"
    reserved_ip_range: str | None = None
    ip: str | None = None
    share_name: str = DEFAULT_SHARE
    labels: Mapping[str, str] = field(default_factory=dict)
    state: str = ""  # "CREATING", "READY", "DELETING", "ERROR", ...
    protocol: str = DEFAULT_PROTOCOL  # or "NFS_V4_1"
    kms_key: str | None = None
    source_backup: str | None = None  # full backup name to restore from at creation
    performance: Performance | None = None  # None: the tier's default performance
    tags: Mapping[str, str] = field(default_factory=dict)  # input only: the API never returns them
    nfs_export_options: tuple[NfsExportRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_labels(self.labels))
        object.__setattr__(self, "tags", _frozen_labels(self.tags))


@dataclass(frozen=True, slots=True)
class Backup:
    """A Filestore backup of one file share."""

    name: str  # projects/<p>/locations/<region>/backups/<b>
    source_instance: str  # projects/<p>/locations/<loc>/instances/<i>
    source_file_share: str
    capacity_gib: int
    state: str  # "CREATING", "FINALIZING", "READY", "DELETING", "INVALID"
    create_time: datetime
    storage_bytes: int
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_labels(self.labels))


@dataclass(frozen=True, slots=True)
class MultishareInstance:
    """A Filestore instance with multi_share_enabled: it holds shares, made and removed one by one.

    ``state``, ``ip``, ``capacity_step_gib`` are outputs, ignored by ``create_multishare_instance``.
    """

    name: str  # short instance id, e.g. "fs-6f1c..."
    location: str  # region (or zone)
    tier: str  # "ENTERPRISE" or "REGIONAL"
    capacity_gib: int
    max_share_count: int
    network: str = DEFAULT_NETWORK
    connect_mode: str = DEFAULT_CONNECT_MODE
    reserved_ip_range: str | None = None
    ip: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    state: str = ""
    protocol: str = DEFAULT_PROTOCOL
    kms_key: str | None = None
    capacity_step_gib: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_labels(self.labels))


@dataclass(frozen=True, slots=True)
class Share:
    """A share of a multishare instance; NFS clients mount ``<instance ip>:/<mount_name>``."""

    name: str  # short share id
    instance: str  # short instance id
    location: str
    capacity_gib: int
    labels: Mapping[str, str] = field(default_factory=dict)
    state: str = ""  # "CREATING", "READY", "DELETING"
    mount_name: str = ""  # defaults to ``name`` on create

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_labels(self.labels))


def instance_name(project: str, location: str, name: str) -> str:
    """The full resource name of an instance."""
    return f"projects/{project}/locations/{location}/instances/{name}"


class FilestoreCloud(Protocol):
    """Filestore v1 operations the controller needs.

    Mutations start a long-running operation and wait for it at most ``wait`` seconds: on success
    they return the final resource, when the operation fails they raise :class:`CloudError`, and when
    the wait runs out they raise :class:`OperationPending`. Every call may raise :class:`CloudError`.
    """

    project: str

    def get_instance(self, location: str, name: str) -> Instance:
        """The instance; CloudError(NOT_FOUND) when there is none."""
        ...

    def create_instance(self, instance: Instance, *, wait: float) -> Instance:
        """Create ``instance`` (restored from ``instance.source_backup`` when set).

        ALREADY_EXISTS when the id is taken (the caller then compares with get_instance).
        """
        ...

    def delete_instance(self, location: str, name: str, *, wait: float) -> None:
        """Delete the instance; NOT_FOUND when it is already gone."""
        ...

    def expand_instance(self, location: str, name: str, capacity_gib: int, *, wait: float) -> Instance:
        """Grow the file share to ``capacity_gib`` (update_instance with mask ``file_shares``)."""
        ...

    def set_performance(self, location: str, name: str, performance: Performance, *, wait: float) -> Instance:
        """Change the custom performance (update_instance with mask ``performance_config``)."""
        ...

    def update_running(self, location: str, name: str) -> bool:
        """Whether an update operation of the instance is still running (list_operations)."""
        ...

    def list_instances(self, location: str = "-") -> list[Instance]:
        """All instances in ``location`` ("-" means every location), all pages."""
        ...

    def create_backup(
        self,
        region: str,
        backup_id: str,
        source_instance: str,
        share: str,
        *,
        wait: float,
        labels: Mapping[str, str] | None = None,
    ) -> Backup:
        """Back up ``share`` of the instance named in full by ``source_instance`` into ``region``
        (which may be another region than the instance's)."""
        ...

    def get_backup(self, full_name: str) -> Backup:
        """The backup; NOT_FOUND when there is none."""
        ...

    def delete_backup(self, full_name: str, *, wait: float) -> None:
        """Delete the backup; NOT_FOUND when it is already gone."""
        ...

    def list_backups(self, region: str = "-") -> list[Backup]:
        """All backups in ``region`` ("-" means every region), all pages."""
        ...


class MultishareCloud(Protocol):
    """The Filestore v1beta1 calls multishare volumes need (instances with shares, and shares).

    Mutations wait as :class:`FilestoreCloud`'s do (result, CloudError, or OperationPending).
    """

    project: str

    def get_multishare_instance(self, location: str, name: str) -> MultishareInstance:
        """The instance; NOT_FOUND when there is none."""
        ...

    def list_multishare_instances(self, location: str = "-") -> list[MultishareInstance]:
        """Every instance with multi_share_enabled in ``location`` ("-": every location)."""
        ...

    def create_multishare_instance(self, instance: MultishareInstance, *, wait: float) -> MultishareInstance:
        """Create ``instance`` with multi_share_enabled and no shares."""
        ...

    def resize_multishare_instance(
        self, location: str, name: str, capacity_gib: int, *, wait: float
    ) -> MultishareInstance:
        """Set the instance's capacity (update mask ``capacity_gb``); it may grow or shrink."""
        ...

    def delete_multishare_instance(self, location: str, name: str, *, wait: float) -> None:
        """Delete the instance; NOT_FOUND when it is gone, FAILED_PRECONDITION while it has shares."""
        ...

    def list_shares(self, location: str, instance: str = "-") -> list[Share]:
        """The shares of ``instance`` ("-": of every instance in ``location``)."""
        ...

    def get_share(self, location: str, instance: str, name: str) -> Share:
        """The share; NOT_FOUND when there is none."""
        ...

    def create_share(self, share: Share, *, wait: float) -> Share:
        """Create ``share`` on its instance; ALREADY_EXISTS when the id is taken there."""
        ...

    def resize_share(
        self, location: str, instance: str, name: str, capacity_gib: int, *, wait: float
    ) -> Share:
        """Set the share's capacity (update mask ``capacity_gb``)."""
        ...

    def delete_share(self, location: str, instance: str, name: str, *, wait: float) -> None:
        """Delete the share; NOT_FOUND when it is already gone."""
        ...

    def create_share_backup(
        self,
        region: str,
        backup_id: str,
        source_instance: str,
        share: str,
        *,
        wait: float,
        labels: Mapping[str, str] | None = None,
    ) -> Backup:
        """Back up ``share`` of the multishare instance named in full by ``source_instance``."""
        ...
