"""GFD's lock-release and leader-election flags with its defaults (no kubernetes import: the driver's parser uses them)."""

from __future__ import annotations

import argparse
import re

#: GFD's --lock-release-sync-period defaults: 60 s in the node driver, 3600 s standalone.
SYNC_PERIOD = 60.0
STANDALONE_SYNC_PERIOD = 3600.0
#: GFD's --leader-election-lease-duration, -renew-deadline, -retry-period defaults.
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 5.0

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def duration(text: str) -> float:
    """Seconds of a Go duration (``60s``, ``1m30s``, ``1h``), as GFD's flags take; a bare number is seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 60s, 5m or 1h30m") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be positive")
    return seconds


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, sync_period: float = SYNC_PERIOD) -> None:
    """GFD's lock-release and leader-election flags, with its defaults."""
    parser.add_argument("--lock-release-sync-period", type=duration, default=sync_period,
                        help=f"how often the leader looks for dead nodes' lock records (default {sync_period:.0f}s)")
    parser.add_argument("--leader-election-lease-duration", type=duration, default=LEASE_DURATION,
                        help=f"how long a leader's Lease holds without renewal (default {LEASE_DURATION:.0f}s)")
    parser.add_argument("--leader-election-renew-deadline", type=duration, default=RENEW_DEADLINE,
                        help=f"how long the leader keeps trying to renew (default {RENEW_DEADLINE:.0f}s)")
    parser.add_argument("--leader-election-retry-period", type=duration, default=RETRY_PERIOD,
                        help=f"how often candidates try to acquire or renew (default {RETRY_PERIOD:.0f}s)")
    parser.add_argument("--kubeconfig", default="", help="a kubeconfig file; default: the pod's service account")  # fmt: skip
