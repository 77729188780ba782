"""Capacity: the size (GiB) to give a volume, from a CSI CapacityRange and the tier's bands; and whether
the tier at that size accepts a custom performance setting."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from csi import validation
from csi.cloud import Performance
from csi.errors import CsiError
from csi.filestore import GIB, TIER_CAPACITY_GIB, capacity_band, performance_error
from csi.proto import csi_pb2


def pick_capacity_gib(tier: str, capacity_range: csi_pb2.CapacityRange | None, floor_gib: int = 0) -> int:
    """The smallest size (GiB) the tier allows within the range; OUT_OF_RANGE when there is none.

    No range gives the tier's minimum; a required size below the minimum is
    rounded up to it (or to ``floor_gib``, e.g. a backup's size).
    """
    return pick_in_bands(TIER_CAPACITY_GIB[tier], capacity_range, floor_gib, f"tier {tier}")


def pick_in_bands(
    bands: Sequence[tuple[int, int]], capacity_range: csi_pb2.CapacityRange | None, floor_gib: int, what: str
) -> int:
    """The smallest whole-GiB size in one of ``bands`` within the range; OUT_OF_RANGE naming ``what``."""
    required, limit = _checked(capacity_range)
    wanted = max(-(-required // GIB), floor_gib)
    for low, high in bands:
        size = max(wanted, low)
        if size <= high and (not limit or size * GIB <= limit):
            return size
    text = ", ".join(f"{low}-{high} GiB" for low, high in bands)
    raise CsiError(
        grpc.StatusCode.OUT_OF_RANGE,
        f"no size for {what} ({text}) fits required_bytes {required} and limit_bytes {limit}",
    )


def expand_capacity_gib(tier: str, current_gib: int, capacity_range: csi_pb2.CapacityRange) -> int:
    """The size (GiB) an expansion to ``capacity_range`` gives an instance of ``current_gib``.

    Never smaller than today; never outside the band the instance is in (Filestore does not move an
    instance between bands, e.g. ZONAL 1-9.75 TiB to 10-100 TiB): OUT_OF_RANGE when it would have to.
    """
    required, limit = _checked(capacity_range)
    size = max(-(-required // GIB), current_gib)
    if size == current_gib:
        return size
    low, high = capacity_band(tier, current_gib) or (current_gib, current_gib)
    if size > high:
        raise CsiError(
            grpc.StatusCode.OUT_OF_RANGE,
            f"tier {tier} keeps an instance of {current_gib} GiB within {low}-{high} GiB; "
            f"{size} GiB needs a new volume",
        )
    if limit and size * GIB > limit:
        raise CsiError(grpc.StatusCode.OUT_OF_RANGE, f"{size} GiB exceeds limit_bytes {limit}")
    return size


def _checked(capacity_range: csi_pb2.CapacityRange | None) -> tuple[int, int]:
    """(required_bytes, limit_bytes) of a well-formed range (0 where not set), else the CSI error."""
    required = capacity_range.required_bytes if capacity_range is not None else 0
    limit = capacity_range.limit_bytes if capacity_range is not None else 0
    if required < 0 or limit < 0:
        raise validation.invalid("capacity_range: required_bytes and limit_bytes must not be negative")
    if limit and required > limit:
        raise CsiError(
            grpc.StatusCode.OUT_OF_RANGE, f"limit_bytes {limit} is below required_bytes {required}"
        )
    return required, limit


def fits(capacity_gib: int, capacity_range: csi_pb2.CapacityRange | None) -> bool:
    """Whether an existing size satisfies a CapacityRange (an idempotent CreateVolume's check)."""
    if capacity_range is None:
        return True
    size = capacity_gib * GIB
    return size >= capacity_range.required_bytes and (
        not capacity_range.limit_bytes or size <= capacity_range.limit_bytes
    )


def performance_problem(tier: str, capacity_gib: int, performance: Performance | None) -> str | None:
    """Why the tier at this size refuses the performance setting; None when it accepts it."""
    if performance is None:
        return None
    return performance_error(
        tier, capacity_gib, fixed_iops=performance.fixed_iops, iops_per_tb=performance.iops_per_tb
    )


def check_performance(tier: str, capacity_gib: int, performance: Performance | None) -> None:
    """INVALID_ARGUMENT when the tier at this size refuses the performance setting."""
    problem = performance_problem(tier, capacity_gib, performance)
    if problem:
        raise validation.invalid(f"performance: {problem}")
