"""``filestore-csi-driver``: run the CSI driver (controller, node or both), ``demo``, or ``nsm``
(rpc.statd)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import grpc

from csi import metadata
from csi.errors import CsiError
from csi.identity import Check, IdentityServicer
from csi.lockrelease.flags import add_flags, leader_election_error
from csi.locks import VolumeLocks
from csi.memory import tune_malloc
from csi.metrics import Metrics, MetricsServer
from csi.process import add_log_level, configure_logging
from csi.server import CsiServer, serve_until_signalled
from csi.version import DEFAULT_DRIVER_NAME, driver_version

if TYPE_CHECKING:
    from csi.cloud.gcp import GcpFilestore
    from csi.lockrelease.store import NodeLockInfo
    from csi.node.service import NodeServicer

log = logging.getLogger("csi")
_T = TypeVar("_T")

#: What ``--cloud emulator`` uses for a flag left out (it never asks the GCE metadata server).
EMULATOR_PROJECT = "emulator-project"
EMULATOR_ZONE = "us-central1-a"
#: kubelet's root directory on a real node (``--root-dir``), where pods' volumes are staged and published
KUBELET_ROOT = "/var/lib/kubelet"


def emulator_node_id() -> str:
    """The node id ``--cloud emulator`` uses when none is given: this machine's host name."""
    return socket.gethostname()


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default; a help that explains its own default keeps it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The driver's command line; ``--help`` shows every default."""
    parser = argparse.ArgumentParser(
        prog="filestore-csi-driver",
        description="Google Cloud Filestore CSI driver. `filestore-csi-driver demo --help` for the demo.",
        formatter_class=_DefaultsFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {driver_version()}")
    parser.add_argument(
        "--endpoint",
        default="unix:///csi/csi.sock",
        help="where CSI is served: unix:///path or tcp://host:port",
    )
    parser.add_argument(
        "--mode",
        choices=("controller", "node", "all"),
        default="all",
        help="the CSI services this process runs",
    )
    parser.add_argument("--driver-name", default=DEFAULT_DRIVER_NAME, help="the name GetPluginInfo reports")
    parser.add_argument(
        "--node-id",
        default=os.environ.get("NODE_ID", ""),
        help="this node's id (default: $NODE_ID, else the VM's name from the GCE metadata server)",
    )
    parser.add_argument(
        "--zone",
        default="",
        help="this node's zone and the controller's default location (default: the metadata server's)",
    )
    parser.add_argument(
        "--cloud",
        choices=("gcp", "emulator"),
        default="gcp",
        help=f"emulator: a local Filestore emulator; flags left out then default to project "
        f"{EMULATOR_PROJECT}, zone {EMULATOR_ZONE} and the host name as node id (no metadata server)",
    )
    parser.add_argument(
        "--emulator-endpoint",
        default="",
        help="HOST:PORT of a running emulator (default: --cloud emulator starts one in-process)",
    )
    parser.add_argument("--project", default="", help="the GCP project (default: the metadata server's)")
    parser.add_argument("--location", default="", help="the controller's default location (default: --zone)")
    parser.add_argument(
        "--extra-labels",
        default="",
        help="k1=v1,k2=v2: labels added to every instance the controller creates (default: none)",
    )
    parser.add_argument(
        "--gke-cluster-name",
        default="",
        help="the cluster's name, labelled with its location on the multishare instances the controller "
        "creates; only instances with both labels equal to this cluster's take its shares or are resized "
        "or deleted by it (default: none, no such label)",
    )
    parser.add_argument(
        "--enable-multishare",
        action="store_true",
        help='controller: serve multishare volumes (StorageClass multishare: "true"), '
        "gcp-filestore-csi-driver's flag; with --cloud gcp it needs --gke-cluster-name; "
        "--cloud emulator always serves them",
    )
    parser.add_argument(
        "--is-regional",
        action="store_true",
        help="a regional cluster: its location label is the zone's region",
    )
    parser.add_argument(
        "--kubelet-root",
        default=None,
        help="kubelet's root directory; the node is not ready while it does not exist "
        f"(default: {KUBELET_ROOT}; "
        "with --cloud emulator a new private directory of the driver's own, printed at start)",
    )
    parser.add_argument(
        "--http-endpoint", default="", help="HOST:PORT for /metrics and /healthz (default: none, not served)"
    )
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
    parser.add_argument(
        "--nfs-lock-check",
        choices=("refuse", "warn", "off"),
        default="refuse",
        help="NodeStageVolume of an NFSv3 volume with NLM locking where no rpc.statd answers: "
        "refuse (FAILED_PRECONDITION), warn, or off (docs/nfsv3-locking.md)",
    )
    parser.add_argument("--grace", type=float, default=30.0, help="seconds in-flight calls get on SIGTERM")
    parser.add_argument(
        "--resource-tags",
        default="",
        help="tags for every instance: <parentID>/<tagKey>/<tagValue>,... (default: none; a StorageClass's "
        "resource-tags win per key)",
    )
    add_log_level(parser)
    lock_release = parser.add_argument_group("NFSv3 lock release (GFD's flags; docs/lockrelease.md)")
    lock_release.add_argument(
        "--feature-lock-release",
        action="store_true",
        help="controller: mark volumes that support it; node: record staged NFSv3 volumes in the API server "
        "and, unless standalone, run the lock-release controller (one leader per cluster)",
    )
    lock_release.add_argument(
        "--feature-lock-release-standalone",
        action="store_true",
        help="the controller runs apart (python -m csi.lockrelease); the node only records",
    )
    add_flags(lock_release)
    return parser


def _checked_flag(parser: argparse.ArgumentParser, parse: Callable[[], _T]) -> _T:
    """A flag's value, checked at startup so a bad one stops the driver, not a CreateVolume."""
    try:
        return parse()
    except CsiError as exc:
        parser.error(exc.message)


def _needs_controller_flags(args: argparse.Namespace) -> bool:
    """Whether ``--resource-tags``, ``--extra-labels`` and the cluster's labels are parsed and checked.

    The controller needs them; a node checks them only when given (a bad one stops it, as ever):
    with their defaults they accept and mean nothing there, so a node does not load the
    controller's parsers at all (see "Memory" in docs/performance.md).
    """
    return args.mode != "node" or bool(args.resource_tags or args.extra_labels or args.gke_cluster_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``filestore-csi-driver`` command."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["nsm"]:
        from csi.node.nsm import run_nsm

        return run_nsm(args_list[1:])
    if args_list[:1] == ["demo"]:
        demo = importlib.import_module("csi.demo")
        code: int = demo.run_demo(args_list[1:])
        return code
    parser = build_parser()
    args = parser.parse_args(args_list)
    tune_malloc()  # before any thread starts: see csi.memory
    configure_logging(args.log_level)
    run_controller = args.mode in ("controller", "all")
    run_node = args.mode in ("node", "all")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if run_controller and args.enable_multishare and args.cloud == "gcp" and not args.gke_cluster_name:
        # as gcp-filestore-csi-driver does: without a name, every nameless cluster's instances would be ours
        parser.error(
            "--enable-multishare needs --gke-cluster-name: the controller packs shares onto, resizes and "
            "deletes only the multishare instances labelled with its cluster's name and location; without a "
            "name, every other cluster in the location started without one would share (and delete) them"
        )
    resource_tags: dict[str, str] = {}
    extra_labels: dict[str, str] = {}
    cluster: dict[str, str] = {}
    if _needs_controller_flags(args):
        from csi.controller import labels, parameters

        resource_tags = _checked_flag(
            parser, lambda: parameters.parse_resource_tags(args.resource_tags, "--resource-tags")
        )
        extra_labels = _checked_flag(parser, lambda: labels.parse_extra_labels(args.extra_labels))
    if args.feature_lock_release and importlib.util.find_spec("kubernetes") is None:
        parser.error("--feature-lock-release needs the kubernetes client library (pip install kubernetes)")
    if args.feature_lock_release and run_node and not args.feature_lock_release_standalone:
        error = leader_election_error(args)
        if error:
            parser.error(error)
    if args.feature_lock_release_standalone and not args.feature_lock_release:
        log.warning(
            "--feature-lock-release-standalone does nothing without --feature-lock-release (as in GFD)"
        )
    try:
        where = resolve_identity(args, controller=run_controller, node=run_node)
    except metadata.MetadataError as exc:
        log.error("cannot run: %s", exc)
        return 1
    log.info("project %r, zone %r, node id %r", where.project, where.zone, where.node_id)
    if _needs_controller_flags(args):
        from csi.controller import labels

        location = args.location or where.zone
        cluster = _checked_flag(
            parser, lambda: labels.cluster_labels(args.gke_cluster_name, location, args.is_regional)
        )

    cleanups: list[Callable[[], None]] = []
    locks = VolumeLocks()
    checks: list[Check] = []
    controller = node = None
    try:
        if run_controller:
            from csi.cloud.gcp_multishare import GcpMultishare
            from csi.controller.service import ControllerServicer

            cloud = _make_cloud(args, where.project, cleanups)
            controller = ControllerServicer(
                cloud,
                driver_name=args.driver_name,
                zone=args.location or where.zone,
                locks=locks,
                operation_timeout=args.operation_timeout,
                resource_tags=resource_tags,
                extra_labels=extra_labels,
                # the emulator serves multishare whatever the flag says (tests and the demo use it)
                multishare=(
                    GcpMultishare(cloud) if args.enable_multishare or args.cloud == "emulator" else None
                ),
                cluster_labels=cluster,
                lock_release=args.feature_lock_release,
            )
            checks.append(controller.check_cloud)
        if run_node:
            root = kubelet_root(args, cleanups)
            node = _make_node(args, where, locks, root, cleanups)
            checks.append(_node_check(root))
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
        root_note = f", kubelet root {node.kubelet_root}" if node else ""
        print(f"listening on {server.address}{root_note}", flush=True)
        serve_until_signalled(server, args.grace)
    except (OSError, ValueError) as exc:
        log.error("cannot run: %s", exc)
        return 1
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    return 0


@dataclass(frozen=True, slots=True)
class Identity:
    """Where the driver runs: the project, the zone, this node's id ("" where not needed)."""

    project: str
    zone: str
    node_id: str


def resolve_identity(args: argparse.Namespace, *, controller: bool, node: bool) -> Identity:
    """The flags; for what they leave out, the emulator's defaults or the GCE metadata server.

    Only what this mode needs is looked up: the controller needs the project (and the zone unless
    ``--location`` is given), the node its id and zone. Raises MetadataError when the server does
    not answer.
    """
    emulated = args.cloud == "emulator"
    needs_zone = node or (controller and not args.location)

    def value(given: str, needed: bool, default: str, lookup: Callable[[], str]) -> str:
        if given or not needed:
            return str(given)
        return default if emulated else lookup()

    return Identity(
        project=value(args.project, controller, EMULATOR_PROJECT, metadata.project),
        zone=value(args.zone, needs_zone, EMULATOR_ZONE, metadata.zone),
        node_id=value(args.node_id, node, emulator_node_id() if emulated else "", metadata.instance_name),
    )


def _make_cloud(args: argparse.Namespace, project: str, cleanups: list[Callable[[], None]]) -> GcpFilestore:
    from csi.cloud.gcp import GcpFilestore

    if args.cloud == "gcp":
        return GcpFilestore(project)
    endpoint = args.emulator_endpoint
    if not endpoint:
        from csi.cloud.emulator import start_emulator

        emulator, endpoint = start_emulator("127.0.0.1", 0)
        cleanups.append(lambda: _stop(emulator))
        log.info("started the Filestore emulator on %s", endpoint)
    cloud = GcpFilestore(project, endpoint=endpoint, poll_initial=0.1, poll_maximum=0.5)
    cleanups.append(cloud.close)
    return cloud


def _stop(server: grpc.Server) -> None:
    server.stop(None).wait()


def kubelet_root(args: argparse.Namespace, cleanups: list[Callable[[], None]]) -> str:
    """``--kubelet-root``; left out, kubelet's own, or with ``--cloud emulator`` a directory of our own.

    A node in a DaemonSet shares kubelet's root and reports not ready until it exists (a wrong
    mount of it in the manifest shows as an unready pod).  On the emulator there is no kubelet: a
    fresh private directory (0700) stands in, so the README's local line is ready at once; it is
    removed at exit if it is empty again (never its contents).
    """
    if args.kubelet_root is not None:
        return str(args.kubelet_root)
    if args.cloud != "emulator":
        return KUBELET_ROOT
    import tempfile

    root = tempfile.mkdtemp(prefix="filestore-csi-kubelet-")
    log.info("no --kubelet-root with --cloud emulator: using %s", root)

    def remove_if_empty() -> None:
        try:
            os.rmdir(root)
        except OSError as exc:
            log.info("left the kubelet root %s in place: %s", root, exc.strerror)

    cleanups.append(remove_if_empty)
    return root


def _make_node(
    args: argparse.Namespace,
    where: Identity,
    locks: VolumeLocks,
    root: str,
    cleanups: list[Callable[[], None]],
) -> NodeServicer:
    from csi.node.nsm import probe
    from csi.node.service import NodeServicer
    from mountkit.mounter import Mounter

    lock_info = _start_lock_release(args, where, cleanups) if args.feature_lock_release else None

    return NodeServicer(
        where.node_id,
        where.zone,
        root,
        Mounter(probe_timeout=args.probe_timeout),
        locks,
        args.probe_timeout,
        lock_info,
        nsm_probe=probe,
        lock_check=args.nfs_lock_check,
    )


def _start_lock_release(
    args: argparse.Namespace, where: Identity, cleanups: list[Callable[[], None]]
) -> NodeLockInfo:
    """This node's lock records; and, unless standalone, the controller on a thread (until cleanup)."""
    from csi.lockrelease.controller import LockReleaseController
    from csi.lockrelease.kube import api_client, identity
    from csi.lockrelease.leader import LeaseElector
    from csi.lockrelease.store import NodeLockInfo

    api = api_client(args.kubeconfig)
    cleanups.append(api.close)
    lock_info = NodeLockInfo(
        api,
        where.node_id,
        where.project or metadata.project(),
        metadata.instance_id(),
        metadata.internal_ip(),
    )
    if not args.feature_lock_release_standalone:
        elector = LeaseElector.from_flags(api, identity(), args)
        stop = threading.Event()
        thread = threading.Thread(
            target=LockReleaseController(api).run,
            args=(elector, stop, args.lock_release_sync_period),
            name="lock-release",
            daemon=True,
        )
        thread.start()

        def stop_controller() -> None:
            stop.set()
            thread.join()

        cleanups.append(stop_controller)
    return lock_info


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
