"""tests/support/csisanity.py: the verdict read from Ginkgo's JUnit report, and the binary's checksum
check."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from tests.support.csisanity import Unavailable, binary, read_junit

REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="1" errors="1" failures="1">
  <testsuite name="CSI Driver Test Suite" tests="5" skipped="2" failures="1" errors="1">
    <testcase name="[It] Node Service should work" status="passed" time="3.1"></testcase>
    <testcase name="[It] Node Service NodePublishVolume other target" status="failed" time="1">
      <failure message="Expected FailedPrecondition, got OK" type="failed">details</failure>
    </testcase>
    <testcase name="[It] GetCapacity should return capacity" status="skipped" time="0">
      <skipped message="skipped - GetCapacity not supported"></skipped>
    </testcase>
    <testcase name="[It] ListVolumes pagination" status="pending" time="0">
      <skipped message="pending"></skipped>
    </testcase>
    <testcase name="[BeforeSuite]" status="panicked" time="0">
      <error message="boom" type="panicked"></error>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_read_junit_counts_every_status(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(REPORT)
    report = read_junit(path)
    assert report.passed == ["[It] Node Service should work"]
    assert report.failed == {
        "[It] Node Service NodePublishVolume other target": "Expected FailedPrecondition, got OK",
        "[BeforeSuite]": "boom",
    }
    assert report.skipped == {
        "[It] GetCapacity should return capacity": "skipped - GetCapacity not supported",
        "[It] ListVolumes pagination": "pending",
    }
    assert report.summary() == "1 passed, 2 failed, 2 skipped"


def test_binary_is_refused_when_it_does_not_match_its_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    with lzma.open(tools / "csi-sanity.xz", "wb") as packed:
        packed.write(b"#!/bin/sh\n")
    (tools / "SHA256SUMS").write_text("0" * 64 + "  csi-sanity\n")
    monkeypatch.setenv("CSI_SANITY_DIR", str(tools))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(Unavailable, match="SHA256SUMS says"):
        binary()
    assert not list((tmp_path / "cache").rglob("csi-sanity-*"))  # nothing unverified is left to run


def test_binary_missing_names_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSI_SANITY_DIR", str(tmp_path / "absent"))
    with pytest.raises(Unavailable, match="absent"):
        binary()
