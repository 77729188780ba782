"""Google Cloud Filestore's rules, written once: tiers, capacity bands, names, protocols, keys.

The controller, the node service and the cloud emulator all import these, so the driver and the
emulator that tests it can never disagree about what Filestore accepts.  Sources: the Filestore v1
API reference (``FileShareConfig.name``, ``Instance.Tier``) and the service tiers documentation,
as also encoded by kubernetes-sigs/gcp-filestore-csi-driver.
"""

from __future__ import annotations

import re

#: Filestore counts capacity in GiB ("1 GB is 1024^3 bytes").
GIB = 1 << 30
_TIB = 1024  # GiB

#: StorageClass ``tier`` values (lowercase) → the API's tier enum name.
TIER_ALIASES = {
    "standard": "BASIC_HDD",
    "basic_hdd": "BASIC_HDD",
    "premium": "BASIC_SSD",
    "basic_ssd": "BASIC_SSD",
    "enterprise": "ENTERPRISE",
    "high_scale_ssd": "HIGH_SCALE_SSD",
    "zonal": "ZONAL",
    "regional": "REGIONAL",
}
DEFAULT_TIER_ALIAS = "standard"
#: The API's legacy enum names and the tiers they mean.
LEGACY_TIERS = {"STANDARD": "BASIC_HDD", "PREMIUM": "BASIC_SSD"}

#: Capacity bands per tier, in whole GiB (a size must fall inside one band).  The basic tiers end at
#: 63.9 TiB = 65433.6 GiB, so the largest whole size is 65433 GiB; BASIC_HDD starts at 100 GiB when
#: provisioned through a CSI driver on GKE (1 TiB otherwise).
TIER_CAPACITY_GIB: dict[str, tuple[tuple[int, int], ...]] = {
    "BASIC_HDD": ((100, 639 * _TIB // 10),),
    "BASIC_SSD": ((5 * _TIB // 2, 639 * _TIB // 10),),
    "ENTERPRISE": ((_TIB, 10 * _TIB),),
    "HIGH_SCALE_SSD": ((10 * _TIB, 100 * _TIB),),
    "ZONAL": ((_TIB, 9984), (10 * _TIB, 100 * _TIB)),
    "REGIONAL": ((100, 9984), (10 * _TIB, 100 * _TIB)),
}
#: Tiers whose shares may not shrink and whose share names are short.
BASIC_TIERS = frozenset({"BASIC_HDD", "BASIC_SSD"})
#: Tiers whose instances live in a region rather than a zone.
REGIONAL_TIERS = frozenset({"ENTERPRISE", "REGIONAL"})

#: File protocols (volume_context fileProtocol), each with the NFS version a share is mounted with.
NFS_VERSIONS = {"NFS_V3": "3", "NFS_V4_1": "4.1"}
PROTOCOLS = frozenset(NFS_VERSIONS)
DEFAULT_PROTOCOL = "NFS_V3"
#: Tiers that offer NFSv4.1.
NFS_V41_TIERS = frozenset({"ZONAL", "REGIONAL", "ENTERPRISE"})
CONNECT_MODES = frozenset({"DIRECT_PEERING", "PRIVATE_SERVICE_ACCESS"})
DEFAULT_CONNECT_MODE = "DIRECT_PEERING"
#: The VPC network an instance joins when none is named.
DEFAULT_NETWORK = "default"
#: Prefix length of the block an instance takes from a reserved range, per tier.
IP_RANGE_PREFIX = {"BASIC_HDD": 29, "BASIC_SSD": 29, "ENTERPRISE": 26, "REGIONAL": 26}
IP_RANGE_PREFIX_DEFAULT = 24
#: Instance states in which waiting is the answer.
TRANSIENT_STATES = frozenset({"CREATING", "REPAIRING", "RESTORING", "REVERTING", "PROMOTING"})

#: Instance and backup ids: 1-63 of ``[-a-z0-9]``, starting with a letter, not ending with ``-``.
RESOURCE_ID = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
RESOURCE_ID_MAX_LEN = 63
#: File share names: ``[a-z0-9_]`` starting with a letter; 1-16 characters on the basic tiers,
#: 1-63 on every other tier (FileShareConfig.name).
SHARE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SHARE_NAME_MAX_LEN_BASIC = 16
SHARE_NAME_MAX_LEN = 63
#: The one share of each instance the driver creates (as gcp-filestore-csi-driver names it).
DEFAULT_SHARE = "vol1"
#: A zone (``us-central1-c``) or a region (``us-central1``).
LOCATION = re.compile(r"^[a-z]+(?:-[a-z0-9]+)+$")

#: The topology segment key for a zone, as GKE labels nodes.
TOPOLOGY_KEY_ZONE = "topology.gke.io/zone"

# volume_context keys: what the controller tells the node about a volume.
CTX_IP = "ip"
CTX_VOLUME = "volume"
CTX_PROTOCOL = "fileProtocol"


def canonical_tier(tier: str) -> str:
    """The tier an API enum name means (``STANDARD`` → ``BASIC_HDD``); other names as they are."""
    return LEGACY_TIERS.get(tier, tier)


def is_share_name(name: str, tier: str | None = None) -> bool:
    """Whether Filestore accepts ``name`` for a share on ``tier`` (None: on some tier)."""
    basic = tier is not None and canonical_tier(tier) in BASIC_TIERS
    limit = SHARE_NAME_MAX_LEN_BASIC if basic else SHARE_NAME_MAX_LEN
    return len(name) <= limit and SHARE_NAME.match(name) is not None


def capacity_band(tier: str, capacity_gib: int) -> tuple[int, int] | None:
    """The band of ``tier`` that holds ``capacity_gib``, or None when no band does."""
    bands = TIER_CAPACITY_GIB[canonical_tier(tier)]
    return next(((low, high) for low, high in bands if low <= capacity_gib <= high), None)


def region_of(location: str) -> str:
    """The region of a zone (``us-central1-c`` → ``us-central1``); a region is returned as is."""
    head, _, tail = location.rpartition("-")
    return head if head and len(tail) == 1 and tail.isalpha() else location
