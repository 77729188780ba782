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
#: provisioned through a CSI driver on GKE (1 TiB otherwise).  ZONAL's lower band is 1-9.75 TiB,
#: REGIONAL's 100-10,239 GiB (the service-tiers-zonal / -regional pages); an instance never moves
#: between bands ("the capacity range can't be changed once chosen"), so an expansion stays in its band.
TIER_CAPACITY_GIB: dict[str, tuple[tuple[int, int], ...]] = {
    "BASIC_HDD": ((100, 639 * _TIB // 10),),
    "BASIC_SSD": ((5 * _TIB // 2, 639 * _TIB // 10),),
    "ENTERPRISE": ((_TIB, 10 * _TIB),),
    "HIGH_SCALE_SSD": ((10 * _TIB, 100 * _TIB),),
    "ZONAL": ((_TIB, 9984), (10 * _TIB, 100 * _TIB)),
    "REGIONAL": ((100, 10 * _TIB - 1), (10 * _TIB, 100 * _TIB)),
}
#: Tiers whose shares may not shrink and whose share names are short.
BASIC_TIERS = frozenset({"BASIC_HDD", "BASIC_SSD"})
#: Tiers whose instances live in a region rather than a zone.
REGIONAL_TIERS = frozenset({"ENTERPRISE", "REGIONAL"})

#: Custom performance (``Instance.performance_config``), as gcp-filestore-csi-driver validates it
#: (``validateAndBuildPerformanceConfig``): the tiers that take it, the total IOPS each allows, and per
#: capacity band (below / from ``PERFORMANCE_LARGE_GIB``) the step both values move in and the range
#: of IOPS per TiB.  A fixed IOPS value is at least ``MIN_FIXED_IOPS``.
PERFORMANCE_TIERS = frozenset({"ZONAL", "REGIONAL"})
MAX_TOTAL_IOPS = {"ZONAL": 166_000, "REGIONAL": 750_000}
MIN_FIXED_IOPS = 2000
PERFORMANCE_LARGE_GIB = 10 * _TIB
IOPS_STEP = {False: 100, True: 1000}  # keyed by "is the capacity in the large band"
IOPS_PER_TB_RANGE = {False: (4000, 17_000), True: (3000, 7500)}

#: NfsExportOptions: the access and squash modes, and at most 64 IP ranges per file share.
NFS_ACCESS_MODES = frozenset({"READ_ONLY", "READ_WRITE"})
NFS_SQUASH_MODES = frozenset({"NO_ROOT_SQUASH", "ROOT_SQUASH"})
NFS_EXPORT_MAX_IP_RANGES = 64

#: Labels on instances and backups (GCP resource labels): a key starts with a lowercase letter, keys
#: and values are at most 63 of ``[a-z0-9_-]`` (a value may be empty); at most 64 per resource.
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
MAX_LABELS = 64

#: Resource Manager tags as Filestore takes them (``Instance.tags``/``Backup.tags``): a namespaced
#: key ``<parent>/<key short name>`` (the parent an organization id or a project id/number) and a
#: value short name; at most 50 per resource.
TAG_PARENT = re.compile(r"^(?:[0-9]{1,30}|[a-z][-a-z0-9]{4,28}[a-z0-9])$")
TAG_SHORT_NAME = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
MAX_TAGS = 50

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
#: The states of instances, shares and backups (the API's State enum names) the driver acts on.
READY = "READY"
CREATING = "CREATING"
DELETING = "DELETING"
REPAIRING = "REPAIRING"
ERROR = "ERROR"
#: A state in which a resource is used: READY, or none reported (a cloud that keeps no states).
USABLE_STATES = frozenset({"", READY})
#: Instance states while an operation on the instance itself runs (the spec's "operation pending for
#: volume": ABORTED).
PENDING_STATES = frozenset({CREATING, DELETING})
#: Instance states in which waiting is the answer.
TRANSIENT_STATES = frozenset(
    {CREATING, REPAIRING, "RESTORING", "REVERTING", "PROMOTING", "SUSPENDING", "RESUMING"}
)

#: Backup states while its creation runs: CREATING until it is cut (the point in time is taken), then
#: FINALIZING while its data is stored.  ListSnapshots must not show a snapshot that is not cut yet.
BACKUP_UNCUT_STATE = CREATING
BACKUP_PENDING_STATES = frozenset({BACKUP_UNCUT_STATE, "FINALIZING"})

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

#: Multishare: many shares on one ENTERPRISE instance (the v1beta1 shares API; "Filestore multishares
#: for GKE allocates shares across a single enterprise-tier instance", and gcp-filestore-csi-driver
#: refuses every other tier), with the limits GFD enforces (pkg/util/multishare_defs.go).
MULTISHARE_TIERS = frozenset({"ENTERPRISE"})
#: The StorageClass ``tier`` of a multishare volume that names none.
DEFAULT_MULTISHARE_TIER_ALIAS = "enterprise"
#: A multishare instance's capacity band, GiB (1-10 TiB).
MULTISHARE_INSTANCE_GIB = (_TIB, 10 * _TIB)
#: A share's capacity band, GiB (100 GiB - 1 TiB); with more shares per instance the floor drops.
SHARE_CAPACITY_GIB = (100, _TIB)
SHARE_MIN_GIB_MANY_SHARES = 10
#: Shares per instance at the default maximum share size.
MAX_SHARES_PER_INSTANCE = 10
#: ``max-volume-size`` values (GiB) and the share count each allows: the instance maximum over it.
MAX_VOLUME_SIZES_GIB = (128, 256, 512, _TIB)
#: The step an instance grows and shrinks in when the API does not say (Instance.capacity_step_size_gb).
DEFAULT_CAPACITY_STEP_GIB = 256
#: Instance ids the driver gives new multishare instances start with this.
MULTISHARE_INSTANCE_PREFIX = "fs-"
#: The instance description that asks the service for more shares than the default, and 10 GiB
#: ones, until the API has fields for it (gcp-filestore-csi-driver's ecfsCustom100sharesConfigFormat).
MANY_SHARES_DESCRIPTION = (
    'GoogleReservedOverrides={{"CustomMultiShareConfig":{{"MaxShareCount": {count}, "MinShareSizeGB":10}}}}'
)

#: The topology segment key for a zone, as GKE labels nodes.
TOPOLOGY_KEY_ZONE = "topology.gke.io/zone"

# volume_context keys: what the controller tells the node about a volume.
CTX_IP = "ip"
CTX_VOLUME = "volume"
CTX_PROTOCOL = "fileProtocol"
#: The StorageClass's ``mount-options`` (comma-separated), merged on the node with the mount flags.
CTX_MOUNT_OPTIONS = "mountOptions"
#: "true" on an NFSv3 volume whose instance can release a dead node's locks (csi.lockrelease).
CTX_SUPPORT_LOCK_RELEASE = "supportLockRelease"
#: Lock release is NFSv3's (NLM locks), and GFD offers it on ENTERPRISE instances and on multishare.
LOCK_RELEASE_PROTOCOL = "NFS_V3"
LOCK_RELEASE_TIERS = frozenset({"ENTERPRISE"})


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


def performance_error(
    tier: str, capacity_gib: int, *, fixed_iops: int | None = None, iops_per_tb: int | None = None
) -> str | None:
    """Why ``tier`` at ``capacity_gib`` refuses this performance setting, or None when it is valid.

    Exactly one of ``fixed_iops`` and ``iops_per_tb`` is given (both None: the tier's default,
    always valid).  The same check guards create, modify and expand, in the driver and the emulator.
    """
    if fixed_iops is None and iops_per_tb is None:
        return None
    tier = canonical_tier(tier)
    if tier not in PERFORMANCE_TIERS:
        return f"custom performance needs one of the tiers {sorted(PERFORMANCE_TIERS)}, not {tier}"
    if fixed_iops is not None and iops_per_tb is not None:
        return "give max IOPS or max IOPS per TiB, not both"
    large = capacity_gib >= PERFORMANCE_LARGE_GIB
    step = IOPS_STEP[large]
    band = "from 10 TiB" if large else "below 10 TiB"
    limit = MAX_TOTAL_IOPS[tier]
    if fixed_iops is not None:
        if fixed_iops < MIN_FIXED_IOPS or fixed_iops > limit:
            return f"max IOPS must be {MIN_FIXED_IOPS}-{limit} on tier {tier}, not {fixed_iops}"
        if fixed_iops % step:
            return f"max IOPS must be a multiple of {step} for a capacity {band}"
        return None
    assert iops_per_tb is not None
    if iops_per_tb % step:
        return f"max IOPS per TiB must be a multiple of {step} for a capacity {band}"
    low, high = IOPS_PER_TB_RANGE[large]
    if not low <= iops_per_tb <= high:
        return f"max IOPS per TiB must be {low}-{high} for a capacity {band}, not {iops_per_tb}"
    total = iops_per_tb * capacity_gib // _TIB
    if total > limit:
        return (
            f"{iops_per_tb} IOPS per TiB at {capacity_gib} GiB is {total} IOPS, above {limit} on tier {tier}"
        )
    return None


def tag_error(key: str, value: str) -> str | None:
    """Why Filestore refuses the tag ``key`` (``<parent>/<key>``) = ``value``, or None."""
    parent, sep, short = key.partition("/")
    if not sep or not TAG_PARENT.match(parent):
        return f"tag key {key!r} must start with an organization id or a project id and '/'"
    if not TAG_SHORT_NAME.match(short):
        return f"tag key {short!r} must be 1-63 of [A-Za-z0-9_.-], starting and ending alphanumeric"
    if not TAG_SHORT_NAME.match(value):
        return f"tag value {value!r} must be 1-63 of [A-Za-z0-9_.-], starting and ending alphanumeric"
    return None


def shares_per_instance(max_share_gib: int) -> int:
    """How many shares of at most ``max_share_gib`` one multishare instance holds (GFD's rule)."""
    return MULTISHARE_INSTANCE_GIB[1] // max_share_gib


def align_up(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step``."""
    return -(-value // step) * step
