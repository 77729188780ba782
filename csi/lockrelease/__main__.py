"""``python -m csi.lockrelease``: the standalone lock-release controller (GFD's cmd/lockrelease).

Used with ``--feature-lock-release-standalone`` on the node driver, which then only writes records.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from csi.lockrelease.controller import LockReleaseController
from csi.lockrelease.flags import STANDALONE_SYNC_PERIOD, add_flags, leader_election_error
from csi.lockrelease.kube import api_client, identity
from csi.lockrelease.leader import LeaseElector
from csi.process import add_log_level, configure_logging, stop_on_signals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csi.lockrelease", description=__doc__)
    add_flags(parser, STANDALONE_SYNC_PERIOD)
    add_log_level(parser)
    args = parser.parse_args(argv)
    error = leader_election_error(args)
    if error:
        parser.error(error)
    configure_logging(args.log_level)
    stop = stop_on_signals()
    with api_client(args.kubeconfig) as api:
        LockReleaseController(api).run(
            LeaseElector.from_flags(api, identity(), args), stop, args.lock_release_sync_period
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
