"""Filestore's facts, pinned to the documented values, and every user agreeing with them."""

from __future__ import annotations

import pytest

from csi.controller.capacity import pick_capacity_gib
from csi.filestore import (
    GIB,
    SHARE_NAME_MAX_LEN,
    SHARE_NAME_MAX_LEN_BASIC,
    TIER_CAPACITY_GIB,
    capacity_band,
    is_share_name,
    performance_error,
    region_of,
    tag_error,
)
from csi.proto import csi_pb2
from csi.volume_id import VolumeRef


def test_basic_tiers_end_at_63_9_tib_in_whole_gib() -> None:
    # 63.9 TiB = 65433.6 GiB: 65433 fits, 65434 would exceed the documented maximum.
    for tier in ("BASIC_HDD", "BASIC_SSD"):
        assert TIER_CAPACITY_GIB[tier][-1][1] == 65433
        assert capacity_band(tier, 65433) is not None
        assert capacity_band(tier, 65434) is None
    assert capacity_band("STANDARD", 65434) is None  # the legacy name means BASIC_HDD


def test_zonal_has_a_gap_between_its_bands() -> None:
    assert capacity_band("ZONAL", 9984) == (1024, 9984)
    assert capacity_band("ZONAL", 10000) is None
    assert capacity_band("ZONAL", 10240) == (10240, 102400)


def test_regional_lower_band_is_100_to_10239_gib() -> None:
    # service-tiers-regional: "100 GiB to 10,239 GiB" and "10 TiB to 100 TiB"; no gap between them.
    assert capacity_band("REGIONAL", 99) is None
    assert capacity_band("REGIONAL", 100) == (100, 10239)
    assert capacity_band("REGIONAL", 10239) == (100, 10239)
    assert capacity_band("REGIONAL", 10240) == (10240, 102400)


_TIB = 1024


@pytest.mark.parametrize(
    ("tier", "gib", "fixed", "per_tb", "valid"),
    [  # gcp-filestore-csi-driver's validateAndBuildPerformanceConfig cases
        ("ZONAL", _TIB, 2000, None, True),
        ("REGIONAL", _TIB, 5000, None, True),
        ("ZONAL", _TIB, 1999, None, False),
        ("ENTERPRISE", _TIB, 3000, None, False),
        ("ZONAL", _TIB, 166000, None, True),
        ("ZONAL", _TIB, 166001, None, False),
        ("REGIONAL", _TIB, 750000, None, True),
        ("REGIONAL", _TIB, 750001, None, False),
        ("ZONAL", 5 * _TIB, 2050, None, False),
        ("ZONAL", 5 * _TIB, 2100, None, True),
        ("ZONAL", 10 * _TIB, 5500, None, False),
        ("ZONAL", 10 * _TIB, 5000, None, True),
        ("ZONAL", 5 * _TIB, None, 4000, True),
        ("ZONAL", 5 * _TIB, None, 17000, True),
        ("REGIONAL", 10 * _TIB, None, 3000, True),
        ("REGIONAL", 11 * _TIB, None, 7000, True),
        ("ZONAL", 5 * _TIB, None, 3999, False),
        ("ZONAL", 5 * _TIB, None, 17001, False),
        ("ZONAL", 10 * _TIB, None, 2999, False),
        ("ZONAL", 10 * _TIB, None, 7501, False),
        ("ZONAL", 100, None, 4000, True),
        ("ENTERPRISE", 5 * _TIB, None, 5000, False),
        ("ZONAL", 5 * _TIB, None, 4050, False),
        ("ZONAL", 10 * _TIB, None, 3500, False),
        ("ZONAL", 10 * _TIB, None, 17000, False),
        ("ZONAL", 30 * _TIB, None, 5000, True),
        ("REGIONAL", 120 * _TIB, None, 7000, False),
        ("REGIONAL", 100 * _TIB, None, 7000, True),
        ("ZONAL", _TIB, 2000, 5000, False),
        ("BASIC_HDD", _TIB, None, None, True),  # no setting: every tier's default
    ],
)
def test_performance_limits(tier: str, gib: int, fixed: int | None, per_tb: int | None, valid: bool) -> None:
    assert (performance_error(tier, gib, fixed_iops=fixed, iops_per_tb=per_tb) is None) is valid


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("123456789012/env", "prod", True),
        ("my-project/cost_center", "cc.42", True),
        ("env", "prod", False),
        ("123/env", "", False),
        ("123/env-", "prod", False),
        ("My-Project/env", "prod", False),
        ("123/env", "a b", False),
        ("123/" + "k" * 64, "v", False),
    ],
)
def test_tag_rules(key: str, value: str, valid: bool) -> None:
    assert (tag_error(key, value) is None) is valid


@pytest.mark.parametrize(
    ("name", "tier", "ok"),
    [
        ("vol1", "BASIC_HDD", True),
        ("a" * SHARE_NAME_MAX_LEN_BASIC, "BASIC_SSD", True),
        ("a" * (SHARE_NAME_MAX_LEN_BASIC + 1), "BASIC_HDD", False),
        ("a" * (SHARE_NAME_MAX_LEN_BASIC + 1), "PREMIUM", False),
        ("a" * (SHARE_NAME_MAX_LEN_BASIC + 1), "ENTERPRISE", True),
        ("a" * SHARE_NAME_MAX_LEN, "ZONAL", True),
        ("a" * (SHARE_NAME_MAX_LEN + 1), "ZONAL", False),
        ("a" * SHARE_NAME_MAX_LEN, None, True),
        ("Vol1", "ZONAL", False),
        ("1vol", "ZONAL", False),
        ("vol-1", "ZONAL", False),
        ("", None, False),
    ],
)
def test_share_name_rule(name: str, tier: str | None, ok: bool) -> None:
    """FileShareConfig.name: [a-z0-9_], a letter first, 1-16 on basic tiers and 1-63 on the rest."""
    assert (SHARE_NAME_MAX_LEN_BASIC, SHARE_NAME_MAX_LEN) == (16, 63)
    assert is_share_name(name, tier) is ok


def test_volume_ids_accept_every_share_name_the_api_accepts() -> None:
    share = "a" * SHARE_NAME_MAX_LEN
    assert VolumeRef.parse(VolumeRef("us-central1-a", "inst", share).volume_id) is not None
    assert VolumeRef.parse(VolumeRef("us-central1-a", "inst", share + "a").volume_id) is None


@pytest.mark.parametrize(
    ("location", "region"),
    [("us-central1-c", "us-central1"), ("us-central1", "us-central1"), ("europe-west4-a", "europe-west4")],
)
def test_region_of(location: str, region: str) -> None:
    assert region_of(location) == region


def test_the_driver_picks_every_band_edge() -> None:
    for tier, bands in TIER_CAPACITY_GIB.items():
        for low, high in bands:
            assert pick_capacity_gib(tier, csi_pb2.CapacityRange(required_bytes=high * GIB)) == high
            assert (
                pick_capacity_gib(
                    tier, csi_pb2.CapacityRange(required_bytes=low * GIB, limit_bytes=low * GIB)
                )
                == low
            )
