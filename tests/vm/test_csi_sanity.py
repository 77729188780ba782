"""csi-sanity, the community CSI conformance suite, over real NFS: a guest of its own runs
tests/vm/guest/test_csi_sanity.py (every spec, default order and shuffled) and must pass with no skip."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

from tests.support.csisanity import Unavailable, binary
from tests.vm import nfsguest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_TEST = "tests/vm/guest/test_csi_sanity.py"


def test_csi_sanity_in_guest(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        nfsguest.check_available()
        path = binary()
    except (nfsguest.GuestUnavailable, Unavailable) as exc:
        pytest.skip(str(exc))
    if os.geteuid() != 0:
        pytest.skip("the NFS test guest runs as root (9p passthrough of the working tree)")
    started = time.monotonic()
    # The guest inherits our environment, and sees the host's / (so the cached binary) read-only.
    monkeypatch.setenv("CSI_SANITY_BIN", str(path))
    result = nfsguest.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "-s", GUEST_TEST],
        cwd=ROOT,
        timeout=3600,
    )
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    print(f"csi-sanity in the guest: {time.monotonic() - started:.1f} s (boot included)")
    assert result.returncode == 0, (
        f"guest pytest exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) == 2, f"guest did not run both orders: {summary!r}"
    assert "skipped" not in summary, f"guest skipped: {summary!r}"
