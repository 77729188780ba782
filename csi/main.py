"""``filestore-csi-driver``: run the CSI driver (controller, node or both), or ``demo``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import grpc

from csi.cloud import FilestoreCloud
from csi.identity import Check, IdentityServicer
from csi.locks import VolumeLocks
from csi.metrics import Metrics, MetricsServer
from csi.server import CsiServer, serve_until_signalled
from csi.version import DEFAULT_DRIVER_NAME, driver_version

if TYPE_CHECKING:
    from csi.node import NodeServicer

log = logging.getLogger("csi")


def build_parser() -> argparse.ArgumentParser:
    """The driver's command line."""
    parser = argparse.ArgumentParser(
        prog="filestore-csi-driver",
        description="Google Cloud Filestore CSI driver. `filestore-csi-driver demo --help` for the demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {driver_version()}")
    parser.add_argument("--endpoint", default="unix:///csi/csi.sock", help="unix:///path or tcp://host:port")
    parser.add_argument("--mode", choices=("controller", "node", "all"), default="all")
    parser.add_argument("--driver-name", default=DEFAULT_DRIVER_NAME)
    parser.add_argument("--node-id", default=os.environ.get("NODE_ID", ""), help="required in node mode")
    parser.add_argument("--zone", default="", help="the zone of this node / the controller's default zone")
    parser.add_argument("--cloud", choices=("gcp", "emulator"), default="gcp")
    parser.add_argument(
        "--emulator-endpoint",
        default="",
        help="HOST:PORT of a running emulator; without it --cloud emulator starts one in-process",
    )
    parser.add_argument("--project", default="", help="the GCP project (required in controller mode)")
    parser.add_argument("--location", default="", help="default location; --zone when not given")
    parser.add_argument("--kubelet-root", default="/var/lib/kubelet")
    parser.add_argument("--http-endpoint", default="", help="HOST:PORT for /metrics and /healthz")
    parser.add_argument("--workers", type=int, default=10, help="gRPC worker threads")
    parser.add_argument(
        "--operation-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for a cloud operation before answering DEADLINE_EXCEEDED",
    )
    parser.add_argument(
        "--probe-timeout", type=float, default=10.0, help="seconds before a mount is deemed hung"
    )
    parser.add_argument("--grace", type=float, default=30.0, help="seconds in-flight calls get on SIGTERM")
    parser.add_argument(
        "--resource-tags",
        default="",
        help="tags for every instance: <parentID>/<tagKey>/<tagValue>,... (a StorageClass's resource-tags win per key)",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def _resource_tags(parser: argparse.ArgumentParser, text: str) -> dict[str, str]:
    """--resource-tags, checked at startup so a bad tag stops the driver, not a CreateVolume."""
    from csi.errors import CsiError
    from csi.params import parse_resource_tags

    try:
        return parse_resource_tags(text, "--resource-tags")
    except CsiError as exc:
        parser.error(exc.message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``filestore-csi-driver`` command."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:
        demo = importlib.import_module("csi.demo")
        code: int = demo.run_demo(args_list[1:])
        return code
    parser = build_parser()
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    run_controller = args.mode in ("controller", "all")
    run_node = args.mode in ("node", "all")
    if run_node and not args.node_id:
        parser.error("--node-id is required in node mode")
    if run_controller and not args.project:
        parser.error("--project is required in controller mode")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    resource_tags = _resource_tags(parser, args.resource_tags)

    cleanups: list[Callable[[], None]] = []
    locks = VolumeLocks()
    checks: list[Check] = []
    controller = node = None
    try:
        if run_controller:
            from csi.controller import ControllerServicer

            cloud = _make_cloud(args, cleanups)
            controller = ControllerServicer(
                cloud,
                driver_name=args.driver_name,
                zone=args.location or args.zone,
                locks=locks,
                operation_timeout=args.operation_timeout,
                resource_tags=resource_tags,
            )
            checks.append(controller.check_cloud)
        if run_node:
            node = _make_node(args, locks)
            checks.append(_node_check(args.kubelet_root))
        identity = IdentityServicer(
            args.driver_name, driver_version(), controller=run_controller, checks=checks
        )
        metrics = Metrics()
        server = CsiServer(
            args.endpoint, identity, controller=controller, node=node, workers=args.workers, metrics=metrics
        )
        if args.http_endpoint:
            http = MetricsServer(args.http_endpoint, metrics, identity.ready)
            http.start()
            cleanups.append(http.stop)
            log.info("metrics and /healthz on http://%s", args.http_endpoint)
        print(f"listening on {server.address}", flush=True)
        serve_until_signalled(server, args.grace)
    except (OSError, ValueError) as exc:
        log.error("cannot run: %s", exc)
        return 1
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    return 0


def _make_cloud(args: argparse.Namespace, cleanups: list[Callable[[], None]]) -> FilestoreCloud:
    from csi.cloud.gcp import GcpFilestore

    if args.cloud == "gcp":
        return GcpFilestore(args.project)
    endpoint = args.emulator_endpoint
    if not endpoint:
        from csi.cloud.emulator import start_emulator

        emulator, endpoint = start_emulator("127.0.0.1", 0)
        cleanups.append(lambda: _stop(emulator))
        log.info("started the Filestore emulator on %s", endpoint)
    cloud = GcpFilestore(args.project, endpoint=endpoint, poll_initial=0.1, poll_maximum=0.5)
    cleanups.append(cloud.close)
    return cloud


def _stop(server: grpc.Server) -> None:
    server.stop(None).wait()


def _make_node(args: argparse.Namespace, locks: VolumeLocks) -> NodeServicer:
    from csi.node import NodeServicer
    from mountkit.mounter import Mounter

    return NodeServicer(
        args.node_id,
        args.zone,
        args.kubelet_root,
        Mounter(probe_timeout=args.probe_timeout),
        locks,
        args.probe_timeout,
    )


def _node_check(kubelet_root: str) -> Check:
    def node_prerequisites() -> str | None:
        try:
            importlib.import_module("mountkit._sys")
        except ImportError as exc:
            return f"mountkit's compiled extension does not load: {exc}"
        if not os.path.isdir(kubelet_root):
            return f"the kubelet root {kubelet_root} does not exist"
        return None

    return node_prerequisites


if __name__ == "__main__":
    sys.exit(main())
