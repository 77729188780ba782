"""``python -m csi.lockrelease``: the standalone lock-release controller (GFD's cmd/lockrelease).

Used with ``--feature-lock-release-standalone`` on the node driver, which then only writes records.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from csi.lockrelease.controller import LockReleaseController
from csi.lockrelease.flags import STANDALONE_SYNC_PERIOD, add_flags
from csi.lockrelease.kube import api_client, identity
from csi.lockrelease.leader import LeaseElector


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csi.lockrelease", description=__doc__)
    add_flags(parser, STANDALONE_SYNC_PERIOD)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with api_client(args.kubeconfig) as api:
        elector = LeaseElector(
            api,
            identity(),
            lease_duration=args.leader_election_lease_duration,
            renew_deadline=args.leader_election_renew_deadline,
            retry_period=args.leader_election_retry_period,
        )
        LockReleaseController(api).run(elector, stop, args.lock_release_sync_period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
