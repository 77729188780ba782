"""Run the Filestore emulator alone: ``python -m csi.emulator --port N [--host H] [--op-delay S]``."""

from __future__ import annotations

import argparse
import sys

from csi.cloud.emulator.server import start_emulator
from csi.cloud.emulator.state import EmulatorState
from csi.process import stop_on_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csi.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--op-delay", type=float, default=0.2, help="seconds until an operation completes")
    parser.add_argument("--ip-pool", default="127.0.100.0/24", help="loopback network for instance IPs")
    parser.add_argument("--max-instances", type=int, default=None, help="instance quota")
    parser.add_argument("--max-capacity-gib", type=int, default=None, help="total capacity quota")
    parser.add_argument("--export-root", default=None, help="directory for <instance>/<share> export dirs")
    args = parser.parse_args(argv)
    state = EmulatorState(
        op_delay=args.op_delay,
        ip_pool=args.ip_pool,
        max_instances=args.max_instances,
        max_capacity_gib=args.max_capacity_gib,
        export_root=args.export_root,
    )
    server, endpoint = start_emulator(args.host, args.port, state=state)
    print(endpoint, flush=True)
    stop_on_signals().wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
