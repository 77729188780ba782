"""Input hardening: injection attempts get INVALID_ARGUMENT naming the field, and fuzzed input to
every parser and every RPC's validation raises only the documented exceptions.

Seed-fixed (``derandomize``) and CI-sized; ``MOUNTKIT_FUZZ_EXAMPLES`` (total examples, e.g.
100000 nightly) scales every fuzz test.  The count of inputs tried is reported (tests/support/reliability.py).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csi.cloud import FilestoreCloud
from csi.controller.service import ControllerServicer
from csi.errors import CsiError, to_status
from csi.filestore import RESOURCE_ID
from csi.locks import VolumeLocks
from csi.node import kubelet
from csi.node.service import NodeServicer
from csi.proto import csi_pb2
from csi.validation import MAX_INCOMING_ID_BYTES
from csi.version import DEFAULT_DRIVER_NAME
from csi.volume_id import BackupRef, VolumeRef, cloud_name
from mountkit.errors import InvalidOptionError, MountError
from mountkit.fake import FakeMounter
from mountkit.nfs import build_mount, parse_source
from mountkit.options import parse_options
from mountkit.table import MountTable
from tests.support.reliability import report, size

#: the @given fuzz tests below, which share MOUNTKIT_FUZZ_EXAMPLES between them
FUZZ_TESTS = 6
EXAMPLES = max(50, size("MOUNTKIT_FUZZ_EXAMPLES", 3000) // FUZZ_TESTS)
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TRIED: Counter[str] = Counter()

_Mode = csi_pb2.VolumeCapability.AccessMode
CONTEXT = {"ip": "10.0.0.2", "volume": "vol1"}
#: Codes a rejected request may get; never INTERNAL or UNKNOWN (an unexpected exception).
REJECTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
}


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    report("fuzz", inputs_tried=sum(TRIED.values()), **{k: v for k, v in sorted(TRIED.items())})


class NfsCheckingMounter(FakeMounter):
    """A FakeMounter that also builds the NFS mount data as the real Mounter does (no resolver, no route)."""

    def mount(
        self,
        source: str,
        target: Any,
        fstype: str,
        options: Any = (),
        sensitive_options: Any = (),
        **kwargs: Any,
    ) -> None:
        if fstype.startswith("nfs"):
            build_mount(
                source,
                parse_options(options, sensitive_options).data,
                resolve=lambda host: host,
                clientaddr="10.0.0.1",
            )
        super().mount(source, target, fstype, options, sensitive_options, **kwargs)


class Node:
    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.mounter = NfsCheckingMounter()
        self.svc = NodeServicer("node-1", "us-central1-a", self.root, self.mounter, VolumeLocks(), 2.0)
        self.staging = kubelet.staging_path(self.root, DEFAULT_DRIVER_NAME, "pv")
        self.target = kubelet.publish_target(self.root, "uid", "pv")
        os.makedirs(os.path.dirname(self.staging), exist_ok=True)
        os.makedirs(os.path.dirname(self.target), exist_ok=True)

    def call(self, rpc: str, request: Any) -> grpc.StatusCode:
        try:
            getattr(self.svc, rpc)(request, None)
        except Exception as exc:  # noqa: BLE001 - mapped exactly as the server's interceptor does
            return to_status(exc)[0]
        return grpc.StatusCode.OK

    def mounts(self) -> list[str]:
        return [e.mount_point for e in self.mounter.list() if e.mount_point.startswith(self.root)]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "kubelet")


def cap(flags: tuple[str, ...] = (), mode: int = _Mode.MULTI_NODE_MULTI_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=_Mode(mode=mode),  # type: ignore[arg-type]
    )


def rejected(node: Node, rpc: str, request: Any, field: str) -> None:
    """INVALID_ARGUMENT with ``field`` in the message, and nothing mounted."""
    with pytest.raises(CsiError) as info:
        getattr(node.svc, rpc)(request, None)
    TRIED["injection"] += 1
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT, info.value.message
    assert field in info.value.message, info.value.message
    assert node.mounts() == []


INJECTED_FLAGS = [
    "bind",
    "rbind",
    "remount",
    "move",
    "shared",
    "rshared",
    "private",
    "slave",
    "unbindable",
    "ro,bind",
    "nosuid,remount",
    "rw\nbind",
    "rw\0bind",
    "",
    "noexec,",
    ",bind",
    "addr=10.9.9.9",
    "clientaddr=10.9.9.9",
    "mountaddr=10.9.9.9",
    "vers=3,addr=10.9.9.9",
    "rw,mountaddr=1.2.3.4",
]


@pytest.mark.parametrize("flag", INJECTED_FLAGS)
def test_smuggled_mount_flags_are_invalid_argument_and_nothing_mounts(node: Node, flag: str) -> None:
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id="vol",
        staging_target_path=node.staging,
        volume_capability=cap((flag,)),
        volume_context=CONTEXT,
    )
    rejected(node, "NodeStageVolume", request, "mount")
    publish = csi_pb2.NodePublishVolumeRequest(
        volume_id="vol",
        staging_target_path=node.staging,
        target_path=node.target,
        volume_capability=cap((flag,)),
    )
    if "addr" not in flag:  # addr options are NFS data: only staging takes them
        rejected(node, "NodePublishVolume", publish, "mount_flags")


@pytest.mark.parametrize("key", ["ip", "volume"])
@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.2,addr=10.9.9.9",
        "vol1,bind",
        "vol1 ro",
        "10.0.0.2\0",
        "vol=1",
        "vol1\n",
        "../etc",
        "/vol1",
        "10.0.0.2:/x",
        "",
        "v" * 300,
        "vol1\t",
        "[::1]",
    ],
)
def test_injected_volume_context_is_invalid_argument(node: Node, key: str, value: str) -> None:
    context = {**CONTEXT, key: value}
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id="vol", staging_target_path=node.staging, volume_capability=cap(), volume_context=context
    )
    rejected(node, "NodeStageVolume", request, "volume_context")


@pytest.mark.parametrize("volume_id", ["vol\0bind", "vol\n", "x" * (MAX_INCOMING_ID_BYTES + 1), ""])
def test_bad_volume_ids_are_invalid_argument(node: Node, volume_id: str) -> None:
    for rpc, request in (
        (
            "NodeStageVolume",
            csi_pb2.NodeStageVolumeRequest(
                volume_id=volume_id,
                staging_target_path=node.staging,
                volume_capability=cap(),
                volume_context=CONTEXT,
            ),
        ),
        (
            "NodePublishVolume",
            csi_pb2.NodePublishVolumeRequest(
                volume_id=volume_id,
                staging_target_path=node.staging,
                target_path=node.target,
                volume_capability=cap(),
            ),
        ),
        (
            "NodeUnpublishVolume",
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=node.target),
        ),
        (
            "NodeUnstageVolume",
            csi_pb2.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=node.staging),
        ),
    ):
        rejected(node, rpc, request, "volume_id")


@pytest.mark.parametrize("volume_id", ["a,b", "vol=1", "vol 1", "../../etc"])
def test_odd_but_legal_volume_ids_never_reach_the_mount(node: Node, volume_id: str) -> None:
    """CSI volume ids are opaque: allowed, but the id is only a lock key, never mount input."""
    node.svc.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=volume_id,
            staging_target_path=node.staging,
            volume_capability=cap(),
            volume_context=CONTEXT,
        ),
        None,
    )  # type: ignore[arg-type]
    TRIED["injection"] += 1
    entry = node.mounter.list().find(node.staging)
    assert (
        entry is not None
        and entry.source == "10.0.0.2:/vol1"
        and volume_id not in ",".join(entry.super_options)
    )


@pytest.mark.parametrize(
    "path_of",
    [
        lambda n: "/etc",
        lambda n: n.root,
        lambda n: n.root + "/../etc",
        lambda n: n.root + "/pods/./x",
        lambda n: n.root + "//pods/x",
        lambda n: "pods/x",
        lambda n: n.root + "/pods/x\0",
        lambda n: n.root + "x/y",
        lambda n: n.root + "/" + "a" * 5000,
    ],
)
def test_paths_outside_the_kubelet_root_are_invalid_argument(
    node: Node, path_of: Callable[[Node], str]
) -> None:
    path = path_of(node)
    field = "target_path"
    rejected(
        node,
        "NodePublishVolume",
        csi_pb2.NodePublishVolumeRequest(
            volume_id="vol", staging_target_path=node.staging, target_path=path, volume_capability=cap()
        ),
        field,
    )
    rejected(
        node,
        "NodeUnpublishVolume",
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol", target_path=path),
        field,
    )
    rejected(
        node,
        "NodeStageVolume",
        csi_pb2.NodeStageVolumeRequest(
            volume_id="vol", staging_target_path=path, volume_capability=cap(), volume_context=CONTEXT
        ),
        "staging_target_path",
    )
    assert not os.path.exists("/etc/x") and node.mounts() == []


@pytest.mark.parametrize(
    "capability",
    [
        csi_pb2.VolumeCapability(),
        csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume()),
        cap(mode=_Mode.UNKNOWN),
        cap(mode=9999),
        cap(("x" * 5000,)),
    ],
)
def test_bad_capabilities_are_invalid_argument(node: Node, capability: csi_pb2.VolumeCapability) -> None:
    rejected(
        node,
        "NodeStageVolume",
        csi_pb2.NodeStageVolumeRequest(
            volume_id="vol",
            staging_target_path=node.staging,
            volume_capability=capability,
            volume_context=CONTEXT,
        ),
        "volume_capability",
    )


# --- the controller's validation, in front of a cloud that must not be reached --------------------


class ReachedCloud(Exception):
    """Validation let the request through (fine: it was valid)."""


class NoCloud:
    def __getattr__(self, name: str) -> Any:
        raise ReachedCloud(name)


def controller() -> ControllerServicer:
    return ControllerServicer(
        cast(FilestoreCloud, NoCloud()),
        driver_name="d",
        zone="us-central1-a",
        locks=VolumeLocks(),
        operation_timeout=1.0,
    )


def controller_code(rpc: str, request: Any) -> grpc.StatusCode | None:
    """The status of a rejected request, or None when it reached the cloud."""
    try:
        getattr(controller(), rpc)(request, None)
    except ReachedCloud:
        return None
    except Exception as exc:  # noqa: BLE001 - mapped exactly as the server's interceptor does
        return to_status(exc)[0]
    return grpc.StatusCode.OK


@pytest.mark.parametrize("capabilities", [[], [cap()] * 2000, [cap(("bind",))], [cap(mode=77)]])
def test_create_volume_with_empty_huge_or_bad_capability_lists(capabilities: list[Any]) -> None:
    request = csi_pb2.CreateVolumeRequest(name="pvc-1", volume_capabilities=capabilities)
    code = controller_code("CreateVolume", request)
    TRIED["injection"] += 1
    if len(capabilities) == 2000:
        assert code in (None, grpc.StatusCode.INVALID_ARGUMENT)  # valid, if repetitive
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT


# --- fuzz ------------------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), max_size=80)
words = st.one_of(
    texts,
    st.sampled_from(
        [
            "ro",
            "rw",
            "bind",
            "rbind",
            "remount",
            "nosuid",
            "noexec",
            "vers=4.1",
            "addr=1.2.3.4",
            "size=1m",
            "mode=0755",
            "shared",
            "rprivate",
            'context="a,b"',
            "=",
            ",",
            "",
            "\0",
            "a=b=c",
            "noatime",
            "relatime",
        ]
    ),
)


@FUZZ
@given(
    st.lists(words, max_size=6),
    st.lists(st.from_regex(r"[a-z]{1,8}=SECRET[a-z0-9]{0,8}", fullmatch=True), max_size=3),
)
def test_fuzz_parse_options(options: list[str], sensitive: list[str]) -> None:
    """Only InvalidOptionError, and a sensitive value never shows in the redacted form."""
    TRIED["parse_options"] += 1
    try:
        parsed = parse_options(options, sensitive)
    except InvalidOptionError as exc:
        assert "SECRET" not in str(exc)
        return
    assert "SECRET" not in parsed.redacted() or any("SECRET" in o for o in options)


mountinfo_line = st.builds(
    lambda ids, root, point, opts, opt, fs, src, sup: (
        f"{ids[0]} {ids[1]} {ids[2]}:{ids[3]} {root} {point} {opts} {opt}- {fs} {src} {sup}"
    ),
    st.tuples(*[st.integers(0, 2**33)] * 4),
    st.sampled_from(["/", "/a\\040b", "\\134", ""]),
    st.from_regex(r"/[a-z\\0-7 ]{0,12}", fullmatch=True),
    st.sampled_from(["rw,relatime", "ro", "", "rw,,x"]),
    st.sampled_from(["", "shared:1 ", "master:2 shared:3 ", "unbindable "]),
    st.sampled_from(["tmpfs", "fuse.sshfs", "", "nfs4"]),
    texts.filter(lambda s: " " not in s and "\n" not in s),
    st.sampled_from(["rw", "rw,vers=4.1,addr=10.0.0.1", ""]),
)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.lists(mountinfo_line, max_size=5).map("\n".join)), st.booleans())
def test_fuzz_mountinfo_parser(text: bytes | str, mutate: bool) -> None:
    TRIED["mountinfo"] += 1
    if mutate and isinstance(text, str):
        text = text.replace(" ", "  ", 1)
    try:
        table = MountTable.parse(text)
    except ValueError:
        return
    for entry in table:
        assert isinstance(entry.mount_point, str) and isinstance(entry.options, tuple)
        assert table.find(entry.mount_point) is not None


hosts = st.one_of(texts, st.sampled_from(["10.0.0.2", "[fd00::1]", "[10.0.0.1]", "host.example", "", "[::1"]))
exports = st.one_of(texts, st.sampled_from(["/vol1", "/", "vol1", "/a,b", "/a b"]))


@FUZZ
@given(hosts, st.sampled_from([":", "", "::"]), exports, st.lists(words, max_size=4))
def test_fuzz_nfs_source_and_mount_data(host: str, sep: str, export: str, options: list[str]) -> None:
    TRIED["nfs"] += 1
    source = host + sep + export
    try:
        parsed = parse_source(source)
    except InvalidOptionError:
        return
    assert parsed.export.startswith("/") and "," not in parsed.host + parsed.export
    try:
        spec = build_mount(source, options, resolve=lambda h: h, clientaddr="10.0.0.1")
    except (InvalidOptionError, MountError):
        return
    assert spec.data.count("addr=") <= 2 and "\0" not in spec.data


@FUZZ
@given(
    st.one_of(
        texts,
        st.lists(
            st.sampled_from(
                ["modeInstance", "us-central1-a", "inst-1", "vol1", "..", "", "A", "us-central1", "x" * 70]
            ),
            max_size=6,
        ).map("/".join),
    )
)
def test_fuzz_volume_and_snapshot_ids(text: str) -> None:
    TRIED["volume_id"] += 1
    ref = VolumeRef.parse(text)
    if ref is not None:
        assert ref.volume_id == text and ".." not in text and len(text.encode()) <= 128
    backup = BackupRef.parse(text)
    if backup is not None:
        assert backup.snapshot_id == text
    name = cloud_name(text)
    assert RESOURCE_ID.match(name) and len(name) <= 63


path_parts = st.lists(
    st.sampled_from(["pods", "uid", "..", ".", "", "mount", "a,b", "x\0", "/etc", "plugins"]), max_size=5
)
flags = st.lists(words, max_size=3)
fields = st.fixed_dictionaries(
    {
        "volume_id": st.one_of(texts, st.just("vol")),
        "mode": st.integers(-1, 12),
        "flags": flags,
        "context": st.dictionaries(
            st.sampled_from(["ip", "volume", "fileProtocol", "x"]),
            st.one_of(texts, st.sampled_from(["10.0.0.2", "vol1", "NFS_V4_1", "::1"])),
            max_size=4,
        ),
        "readonly": st.booleans(),
        "block": st.booleans(),
    }
)


def _node_request(rpc: str, node: Node, f: dict[str, Any], staging: str, target: str) -> Any:
    capability = (
        csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=_Mode(mode=f["mode"])
        )
        if f["block"]
        else cap(tuple(f["flags"]), f["mode"] % 2**31)
    )
    common = {"volume_id": f["volume_id"]}
    builders: dict[str, Callable[[], Any]] = {
        "NodeStageVolume": lambda: csi_pb2.NodeStageVolumeRequest(
            staging_target_path=staging, volume_capability=capability, volume_context=f["context"], **common
        ),
        "NodePublishVolume": lambda: csi_pb2.NodePublishVolumeRequest(
            staging_target_path=staging,
            target_path=target,
            volume_capability=capability,
            readonly=f["readonly"],
            **common,
        ),
        "NodeUnpublishVolume": lambda: csi_pb2.NodeUnpublishVolumeRequest(target_path=target, **common),
        "NodeUnstageVolume": lambda: csi_pb2.NodeUnstageVolumeRequest(staging_target_path=staging, **common),
        "NodeGetVolumeStats": lambda: csi_pb2.NodeGetVolumeStatsRequest(volume_path=target, **common),
    }
    return builders[rpc]()


@FUZZ
@given(
    st.sampled_from(
        [
            "NodeStageVolume",
            "NodePublishVolume",
            "NodeUnpublishVolume",
            "NodeUnstageVolume",
            "NodeGetVolumeStats",
        ]
    ),
    fields,
    path_parts,
    path_parts,
    st.booleans(),
)
def test_fuzz_node_rpcs(
    tmp_path_factory: Any,
    rpc: str,
    f: dict[str, Any],
    staging_parts: list[str],
    target_parts: list[str],
    real_paths: bool,
) -> None:
    TRIED["node_rpc"] += 1
    node = Node(tmp_path_factory.mktemp("kubelet"))
    staging = node.staging if real_paths else "/".join([node.root, *staging_parts])
    target = node.target if real_paths else "/".join([node.root, *target_parts])
    code = node.call(rpc, _node_request(rpc, node, f, staging, target))
    assert code == grpc.StatusCode.OK or code in REJECTED, code
    assert all(p.startswith(node.root + "/") for p in node.mounts())
    if code != grpc.StatusCode.OK:
        assert node.mounts() == []


@FUZZ
@given(
    st.sampled_from(
        [
            "CreateVolume",
            "DeleteVolume",
            "ValidateVolumeCapabilities",
            "ControllerExpandVolume",
            "CreateSnapshot",
            "DeleteSnapshot",
            "ListVolumes",
            "ListSnapshots",
        ]
    ),
    texts,
    fields,
    st.integers(-(2**40), 2**63 - 1),
    st.dictionaries(texts, texts, max_size=3),
)
def test_fuzz_controller_validation(
    rpc: str, name: str, f: dict[str, Any], number: int, params: dict[str, str]
) -> None:
    TRIED["controller_rpc"] += 1
    capability = cap(tuple(f["flags"]), f["mode"] % 2**31)
    builders: dict[str, Callable[[], Any]] = {
        "CreateVolume": lambda: csi_pb2.CreateVolumeRequest(
            name=name,
            volume_capabilities=[capability],
            parameters=params,
            secrets=params,
            capacity_range=csi_pb2.CapacityRange(required_bytes=max(number, 0)),
        ),
        "DeleteVolume": lambda: csi_pb2.DeleteVolumeRequest(volume_id=name),
        "ValidateVolumeCapabilities": lambda: csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=name, volume_capabilities=[capability], volume_context=f["context"]
        ),
        "ControllerExpandVolume": lambda: csi_pb2.ControllerExpandVolumeRequest(
            volume_id=name, capacity_range=csi_pb2.CapacityRange(required_bytes=max(number, 0))
        ),
        "CreateSnapshot": lambda: csi_pb2.CreateSnapshotRequest(source_volume_id=f["volume_id"], name=name),
        "DeleteSnapshot": lambda: csi_pb2.DeleteSnapshotRequest(snapshot_id=name),
        "ListVolumes": lambda: csi_pb2.ListVolumesRequest(max_entries=number % 2**31, starting_token=name),
        "ListSnapshots": lambda: csi_pb2.ListSnapshotsRequest(
            snapshot_id=name, starting_token=f["volume_id"]
        ),
    }
    code = controller_code(rpc, builders[rpc]())
    assert code is None or code == grpc.StatusCode.OK or code in REJECTED | {grpc.StatusCode.ABORTED}, code
