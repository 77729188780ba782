"""The one cloud interface the controller uses: Filestore instances and backups.

Implementations: :mod:`csi.cloud.gcp` (the google-cloud-filestore client, which also talks to the
emulator in :mod:`csi.cloud.emulator` through an endpoint override). Errors are :class:`CloudError`
with a :class:`ErrorKind`; only ``csi/errors.py`` turns a kind into a gRPC status code.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from csi.filestore import DEFAULT_CONNECT_MODE, DEFAULT_NETWORK, DEFAULT_PROTOCOL, DEFAULT_SHARE

__all__ = [
    "Backup",
    "CloudError",
    "ErrorKind",
    "FilestoreCloud",
    "Instance",
    "OperationPending",
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
class Instance:
    """A Filestore instance with one file share, as the driver sees it.

    ``labels`` is a read-only mapping (so the record cannot change under a caller; it also makes the
    record unhashable). ``state``, ``ip`` are outputs: ignored by ``create_instance``.
    """

    name: str                      # short instance id, e.g. "pvc-1234"
    location: str                  # zone or region
    tier: str                      # API enum name: "BASIC_HDD", "BASIC_SSD", "ZONAL", "ENTERPRISE", ...
    capacity_gib: int
    network: str = DEFAULT_NETWORK
    connect_mode: str = DEFAULT_CONNECT_MODE   # or "PRIVATE_SERVICE_ACCESS"
    reserved_ip_range: str | None = None
    ip: str | None = None
    share_name: str = DEFAULT_SHARE
    labels: Mapping[str, str] = field(default_factory=dict)
    state: str = ""                # "CREATING", "READY", "DELETING", "ERROR", ...
    protocol: str = DEFAULT_PROTOCOL  # or "NFS_V4_1"
    kms_key: str | None = None
    source_backup: str | None = None           # full backup name to restore from at creation

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_labels(self.labels))


@dataclass(frozen=True, slots=True)
class Backup:
    """A Filestore backup of one file share."""

    name: str                      # projects/<p>/locations/<region>/backups/<b>
    source_instance: str           # projects/<p>/locations/<loc>/instances/<i>
    source_file_share: str
    capacity_gib: int
    state: str                     # "CREATING", "FINALIZING", "READY", "DELETING", "INVALID"
    create_time: datetime
    storage_bytes: int


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

    def list_instances(self, location: str = "-") -> list[Instance]:
        """All instances in ``location`` ("-" means every location), all pages."""
        ...

    def create_backup(
        self, region: str, backup_id: str, source_instance: str, share: str, *, wait: float
    ) -> Backup:
        """Back up ``share`` of the instance named in full by ``source_instance``."""
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
