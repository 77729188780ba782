"""Volume and snapshot ids, and the cloud names derived from CSI names.

A volume id is ``modeInstance/<location>/<instance>/<share>``, or for a share on a
multishare instance ``modeMultishare/<instance-storageclass-label>/<project>/<location>/<instance>/<share>``
(gcp-filestore-csi-driver's formats, so volumes survive a swap of drivers): everything the
controller needs to find the instance again without a lookup table.  A
snapshot id is the backup's full resource name.  Cloud names are derived from
the CSI name deterministically, so a retried CreateVolume finds what the first
attempt created.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from csi.cloud import instance_name
from csi.filestore import (
    DEFAULT_SHARE,
    LABEL_VALUE,
    LOCATION,
    RESOURCE_ID,
    RESOURCE_ID_MAX_LEN,
    is_share_name,
)

MODE_INSTANCE = "modeInstance"
MODE_MULTISHARE = "modeMultishare"
#: CSI's general size limit, which the snapshot ids we hand out keep (a multishare volume id, in
#: gcp-filestore-csi-driver's format, may exceed it: see csi.validation.MAX_INCOMING_ID_BYTES).
MAX_ID_BYTES = 128

_BACKUP = re.compile(r"^projects/([^/]+)/locations/([^/]+)/backups/([^/]+)$")
_INSTANCE = re.compile(r"^projects/([^/]+)/locations/([^/]+)/instances/([^/]+)$")
_HASH_CHARS = 8
_PROJECT = re.compile(r"^[a-z0-9][-a-z0-9.:]*$")


@dataclass(frozen=True, slots=True)
class VolumeRef:
    """Where a volume lives: an instance in a zone or region, and its file share."""

    location: str
    instance: str
    share: str = DEFAULT_SHARE

    @property
    def volume_id(self) -> str:
        """The CSI volume id."""
        return f"{MODE_INSTANCE}/{self.location}/{self.instance}/{self.share}"

    @classmethod
    def parse(cls, volume_id: str) -> VolumeRef | None:
        """The reference in ``volume_id``, or None when it is not an id this driver hands out."""
        parts = volume_id.split("/")
        if len(parts) != 4 or parts[0] != MODE_INSTANCE:
            return None
        _, location, instance, share = parts
        if not (LOCATION.match(location) and RESOURCE_ID.match(instance) and is_share_name(share)):
            return None
        return cls(location, instance, share)

    @classmethod
    def from_instance_name(cls, full_name: str, share: str) -> VolumeRef | None:
        """The reference for ``projects/<p>/locations/<l>/instances/<i>``, or None."""
        match = _INSTANCE.match(full_name)
        return cls(match.group(2), match.group(3), share) if match else None


@dataclass(frozen=True, slots=True)
class ShareRef:
    """Where a multishare volume lives: a share of a multishare instance.

    ``label`` is the StorageClass's ``instance-storageclass-label``: instances carry it, and only
    volumes of StorageClasses with the same label share an instance.
    """

    label: str
    project: str
    location: str
    instance: str
    share: str

    @property
    def volume_id(self) -> str:
        """The CSI volume id."""
        return f"{MODE_MULTISHARE}/{self.label}/{self.project}/{self.location}/{self.instance}/{self.share}"

    @property
    def instance_name(self) -> str:
        """The instance's full resource name."""
        return instance_name(self.project, self.location, self.instance)

    def as_volume_ref(self) -> VolumeRef:
        """The location, instance and share, without the label and project."""
        return VolumeRef(self.location, self.instance, self.share)

    @classmethod
    def parse(cls, volume_id: str) -> ShareRef | None:
        """The reference in ``volume_id``, or None when it is not a multishare volume id."""
        parts = volume_id.split("/")
        if len(parts) != 6 or parts[0] != MODE_MULTISHARE:
            return None
        _, label, project, location, instance, share = parts
        if not (
            label
            and LABEL_VALUE.match(label)
            and _PROJECT.match(project)
            and LOCATION.match(location)
            and RESOURCE_ID.match(instance)
            and is_share_name(share)
        ):
            return None
        return cls(label, project, location, instance, share)


def share_name(csi_name: str) -> str:
    """The share id for a CSI volume name, derived as gcp-filestore-csi-driver derives it.

    GFD lowercases the name and turns ``-`` into ``_`` (``pvc-1a2b`` → ``pvc_1a2b``), so a volume it
    created is found again by name.  A name that still is no valid share name is made one the way
    :func:`cloud_name` does, with ``_`` for ``-``.
    """
    converted = csi_name.lower().replace("-", "_")
    if is_share_name(converted):
        return converted
    return cloud_name(csi_name).replace("-", "_")


@dataclass(frozen=True, slots=True)
class BackupRef:
    """A backup's full resource name, split."""

    project: str
    region: str
    backup: str

    @property
    def snapshot_id(self) -> str:
        """The CSI snapshot id (the backup's full name)."""
        return f"projects/{self.project}/locations/{self.region}/backups/{self.backup}"

    @classmethod
    def parse(cls, snapshot_id: str) -> BackupRef | None:
        """The reference in ``snapshot_id``, or None when it is not a backup name."""
        match = _BACKUP.match(snapshot_id)
        if not match or not RESOURCE_ID.match(match.group(3)) or not LOCATION.match(match.group(2)):
            return None
        return cls(match.group(1), match.group(2), match.group(3))


def cloud_name(csi_name: str, max_len: int = RESOURCE_ID_MAX_LEN) -> str:
    """A Filestore resource id for a CSI name: ``[a-z]([-a-z0-9]*[a-z0-9])?``, at most ``max_len``.

    A name that is already valid is kept as is.  Any other is lowercased, has
    other characters turned into ``-`` and gets a hash of the original name as
    a suffix, so two CSI names never share an id and long names still fit.
    """
    if len(csi_name) <= max_len and RESOURCE_ID.match(csi_name):
        return csi_name
    digest = hashlib.sha256(csi_name.encode()).hexdigest()[:_HASH_CHARS]
    base = re.sub(r"[^a-z0-9]+", "-", csi_name.lower()).strip("-")
    if not base[:1].isalpha():
        base = "v-" + base
    base = base[: max_len - _HASH_CHARS - 1].rstrip("-")
    return f"{base}-{digest}"
