"""GFD's lock-release and leader-election flags with its defaults (no kubernetes import: the driver's
parser uses them)."""

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

#: client-go's leaderelection.JitterFactor: the renew deadline must exceed this many retry periods.
JITTER_FACTOR = 1.2

#: Go's time.ParseDuration units in seconds; "µs" (U+00B5) and "μs" (U+03BC) both mean microseconds.
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION = re.compile(r"(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+")
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def duration(text: str) -> float:
    """Seconds of a Go duration as GFD's flags take it (``60s``, ``1m30s``, ``1.5h``, ``300ms``).

    Every number needs its unit, as in Go (``60`` is refused); the result must be positive, since a
    zero or negative period or lease means nothing here. Raises ArgumentTypeError, which argparse
    reports naming the flag.
    """
    if not _DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: numbers with units h, m, s, ms, us or ns, such as 60s, 1m30s or 5m"
        )
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be positive")
    return seconds


def leader_election_error(args: argparse.Namespace) -> str | None:
    """What client-go's leader election refuses in these flags (GFD then dies at start), or None."""
    if args.leader_election_lease_duration <= args.leader_election_renew_deadline:
        return "--leader-election-lease-duration must be greater than --leader-election-renew-deadline"
    if args.leader_election_renew_deadline <= JITTER_FACTOR * args.leader_election_retry_period:
        return (
            f"--leader-election-renew-deadline must be greater than {JITTER_FACTOR} times "
            "--leader-election-retry-period"
        )
    return None


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, sync_period: float = SYNC_PERIOD
) -> None:
    """GFD's lock-release and leader-election flags, with its defaults."""
    parser.add_argument(
        "--lock-release-sync-period",
        type=duration,
        default=sync_period,
        help=f"how often the leader looks for dead nodes' lock records (default {sync_period:.0f}s)",
    )
    parser.add_argument(
        "--leader-election-lease-duration",
        type=duration,
        default=LEASE_DURATION,
        help=f"how long a leader's Lease holds without renewal (default {LEASE_DURATION:.0f}s)",
    )
    parser.add_argument(
        "--leader-election-renew-deadline",
        type=duration,
        default=RENEW_DEADLINE,
        help=f"how long the leader keeps trying to renew (default {RENEW_DEADLINE:.0f}s)",
    )
    parser.add_argument(
        "--leader-election-retry-period",
        type=duration,
        default=RETRY_PERIOD,
        help=f"how often candidates try to acquire or renew (default {RETRY_PERIOD:.0f}s)",
    )
    parser.add_argument(
        "--kubeconfig", default="", help="a kubeconfig file; default: the pod's service account"
    )
