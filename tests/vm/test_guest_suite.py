"""Runs tests/vm/guest — real kernel NFS, v3 and v4.x — as one pytest session inside the test guest.

The guest's pytest output is shown on failure, and its summary line is checked, so a guest
session that ran nothing or skipped everything fails here instead of passing quietly.
"""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

from tests.vm import nfsguest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


WATCH = "tests/vm/guest/test_watch.py"
CSI_SANITY = "tests/vm/guest/test_csi_sanity.py"  # a guest of its own: tests/vm/test_csi_sanity.py


def test_nfs_suite_in_guest() -> None:
    _pytest_in_guest("NFS guest suite", "tests/vm/guest", f"--ignore={WATCH}", f"--ignore={CSI_SANITY}")


def test_watch_poll_backend_in_guest() -> None:
    """mountkit.watch on the guest's 6.1 kernel (no fanotify mount events): a boot of its own, so
    that ``pytest tests/vm -k watch`` runs only it."""
    _pytest_in_guest("watch in the guest", WATCH)


def _pytest_in_guest(what: str, *args: str) -> None:
    try:
        nfsguest.check_available()
    except nfsguest.GuestUnavailable as exc:
        pytest.skip(str(exc))
    if os.geteuid() != 0:
        pytest.skip("the NFS test guest runs as root (9p passthrough of the working tree)")
    started = time.monotonic()
    result = nfsguest.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=ROOT,
        timeout=2400,  # the emulated CPU is ~12x slower; the whole suite took 340-600 s on a busy host
    )
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    print(f"{what}: {time.monotonic() - started:.1f} s (boot included)")
    assert result.returncode == 0, (
        f"guest pytest exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, f"guest ran no test: {summary!r}"
    assert "skipped" not in summary, f"guest skipped tests: {summary!r}"
