"""What a multishare CreateVolume asks for (:class:`ShareSpec`): the share, and the instance it may go
on or the one to make, read from the request and its StorageClass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from csi.cloud import (
    MultishareInstance,
)
from csi.controller.labels import (
    LABEL_STORAGE_CLASS,
    METADATA_LABELS,
)
from csi.controller.parameters import VolumeParams
from csi.filestore import (
    MANY_SHARES_DESCRIPTION,
    MAX_SHARES_PER_INSTANCE,
    MULTISHARE_INSTANCE_GIB,
    SHARE_CAPACITY_GIB,
    SHARE_MIN_GIB_MANY_SHARES,
    shares_per_instance,
)
from csi.proto import csi_pb2
from csi.validation import invalid
from csi.volume_id import share_name


def share_band(max_share_count: int, max_share_gib: int | None = None) -> tuple[int, int]:
    """The share sizes (GiB) an instance with ``max_share_count`` shares takes.

    More shares than the default need a smaller maximum share and allow 10 GiB shares (GFD's
    configurable max-shares form); the maximum follows from the count unless given.
    """
    low = SHARE_MIN_GIB_MANY_SHARES if max_share_count > MAX_SHARES_PER_INSTANCE else SHARE_CAPACITY_GIB[0]
    high = (
        max_share_gib
        if max_share_gib is not None
        else min(SHARE_CAPACITY_GIB[1], MULTISHARE_INSTANCE_GIB[1] // max_share_count)
    )
    return low, high


@dataclass(frozen=True, slots=True)
class ShareSpec:
    """What CreateVolume asks for: a share, and the instance it may live on (or a new one)."""

    share: str  # share id, derived from the CSI name
    capacity_range: csi_pb2.CapacityRange | None
    label: str  # instance-storageclass-label
    regions: Sequence[str]  # where an instance may be; a new one goes in the first
    template: MultishareInstance  # a new instance's settings (its name and size are filled in)
    share_labels: Mapping[str, str] = field(default_factory=dict)
    reserved_ipv4_cidr: str | None = None
    max_share_gib: int = SHARE_CAPACITY_GIB[1]

    @property
    def band(self) -> tuple[int, int]:
        return share_band(self.template.max_share_count, self.max_share_gib)


def multishare_spec(
    csi_name: str,
    request: csi_pb2.CreateVolumeRequest,
    volume_params: VolumeParams,
    regions: Sequence[str],
    cluster: Mapping[str, str],
) -> ShareSpec:
    """The ShareSpec for a multishare CreateVolume: the PVC metadata labels go on the share (as GFD
    puts them), the rest, the storage-class label and the ``cluster`` labels on the instance (a
    StorageClass label that contradicts a cluster label is INVALID_ARGUMENT, as in GFD)."""
    assert volume_params.instance_label is not None
    metadata = set(METADATA_LABELS.values())
    instance_labels = {k: v for k, v in volume_params.labels.items() if k not in metadata}
    for key, value in cluster.items():
        if instance_labels.setdefault(key, value) != value:
            raise invalid(
                f"parameters.labels: {key!r} is the driver's (set to {value!r} on multishare instances)"
            )
    instance_labels[LABEL_STORAGE_CLASS] = volume_params.instance_label
    count = shares_per_instance(volume_params.max_volume_gib)
    template = MultishareInstance(
        name="",
        location=regions[0],
        tier=volume_params.tier,
        capacity_gib=0,
        max_share_count=count,
        network=volume_params.network,
        connect_mode=volume_params.connect_mode,
        reserved_ip_range=volume_params.reserved_ip_range,
        labels=instance_labels,
        protocol=volume_params.protocol,
        kms_key=volume_params.kms_key,
        description=MANY_SHARES_DESCRIPTION.format(count=count) if count != MAX_SHARES_PER_INSTANCE else "",
    )
    return ShareSpec(
        share=share_name(csi_name),
        capacity_range=request.capacity_range if request.HasField("capacity_range") else None,
        label=volume_params.instance_label,
        regions=regions,
        template=template,
        share_labels={k: v for k, v in volume_params.labels.items() if k in metadata},
        reserved_ipv4_cidr=volume_params.reserved_ipv4_cidr,
        max_share_gib=volume_params.max_volume_gib,
    )
