"""The committed CSI code matches csi.proto, and the wire facts the driver relies on hold."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

from csi.proto import csi_pb2, csi_pb2_grpc

REPO = Path(__file__).resolve().parents[3]
GENERATED = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")
# The generated stub types extensions as plain FieldDescriptors; Extensions[] wants its own type.
CSI_SECRET: Any = csi_pb2.csi_secret
# What a generator release stamps into its output, and nothing else: the versions it was made with.
_STAMPS = (
    (re.compile(rb"^# Protobuf Python Version: \S+$", re.MULTILINE), b"# Protobuf Python Version: <v>"),
    (re.compile(rb"(Domain\.PUBLIC,\s*)\d+,\s*\d+,\s*\d+,\s*'[^']*',"), rb"\1<v>,"),
    (re.compile(rb"^GRPC_GENERATED_VERSION = '[^']*'$", re.MULTILINE), b"GRPC_GENERATED_VERSION = '<v>'"),
)


def unstamped(code: bytes) -> bytes:
    """Generated code with its generator's version stamps blanked, so a compatible release compares equal."""
    for pattern, blank in _STAMPS:
        code = pattern.sub(blank, code)
    return code


def test_unstamped_blanks_only_the_versions() -> None:
    committed = (REPO / "csi" / "proto" / "csi_pb2_grpc.py").read_bytes()
    newer = re.sub(rb"GRPC_GENERATED_VERSION = '[^']*'", b"GRPC_GENERATED_VERSION = '9.99.0'", committed)
    assert newer != committed and unstamped(newer) == unstamped(committed)
    assert unstamped(committed.replace(b"NodeStageVolume", b"NodeStageVolumeX")) != unstamped(committed)
    pb2 = (REPO / "csi" / "proto" / "csi_pb2.py").read_bytes()
    assert b"<v>" in unstamped(pb2) and unstamped(pb2).count(b"<v>") == 2


def test_generated_code_is_current(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    (tmp_path / "csi" / "proto").mkdir(parents=True)
    shutil.copy(REPO / "csi" / "proto" / "csi.proto", tmp_path / "csi" / "proto" / "csi.proto")
    # protoc resolves google/protobuf/*.proto from grpc_tools' bundled include dir.
    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "protoc",
            f"-I{tmp_path}",
            f"-I{include}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(tmp_path / "csi" / "proto" / "csi.proto"),
        ]
    )
    assert rc == 0
    for name in GENERATED:
        fresh = (tmp_path / "csi" / "proto" / name).read_bytes()
        committed = (REPO / "csi" / "proto" / name).read_bytes()
        assert unstamped(fresh) == unstamped(committed), (
            f"csi/proto/{name} is stale: regenerate it (see csi/proto/__init__.py)"
        )


def _fields(message: type[Message]) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_package_and_services() -> None:
    assert csi_pb2.DESCRIPTOR.package == "csi.v1"
    services = csi_pb2.DESCRIPTOR.services_by_name
    assert set(services) == {"Identity", "Controller", "Node"}
    assert [m.name for m in services["Identity"].methods] == [
        "GetPluginInfo",
        "GetPluginCapabilities",
        "Probe",
    ]
    assert {m.name for m in services["Node"].methods} == {
        "NodeStageVolume",
        "NodeUnstageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeGetVolumeStats",
        "NodeExpandVolume",
        "NodeGetCapabilities",
        "NodeGetInfo",
    }
    assert "ControllerModifyVolume" in services["Controller"].methods_by_name
    assert hasattr(csi_pb2_grpc, "add_NodeServicer_to_server")


def test_node_publish_wire_numbers() -> None:
    assert _fields(csi_pb2.NodePublishVolumeRequest) == {
        "volume_id": 1,
        "publish_context": 2,
        "staging_target_path": 3,
        "target_path": 4,
        "volume_capability": 5,
        "readonly": 6,
        "secrets": 7,
        "volume_context": 8,
    }
    assert _fields(csi_pb2.NodeStageVolumeRequest) == {
        "volume_id": 1,
        "publish_context": 2,
        "staging_target_path": 3,
        "volume_capability": 4,
        "secrets": 5,
        "volume_context": 6,
    }
    assert _fields(csi_pb2.CreateVolumeRequest)["mutable_parameters"] == 8
    assert _fields(csi_pb2.VolumeCapability.MountVolume) == {
        "fs_type": 1,
        "mount_flags": 2,
        "volume_mount_group": 3,
    }
    # A hand-encoded message: field 4 (target_path), wire type 2.
    msg = csi_pb2.NodePublishVolumeRequest.FromString(b"\x22\x02/t")
    assert msg.target_path == "/t"


def test_enum_values() -> None:
    mode = csi_pb2.VolumeCapability.AccessMode
    assert mode.MULTI_NODE_MULTI_WRITER == 5 and mode.SINGLE_NODE_MULTI_WRITER == 7
    rpc = csi_pb2.ControllerServiceCapability.RPC
    assert rpc.EXPAND_VOLUME == 9 and rpc.MODIFY_VOLUME == 14
    assert csi_pb2.NodeServiceCapability.RPC.VOLUME_MOUNT_GROUP == 6
    assert csi_pb2.PluginCapability.VolumeExpansion.ONLINE == 1


def test_extension_numbers() -> None:
    ext = csi_pb2.DESCRIPTOR.extensions_by_name
    assert ext["csi_secret"].number == 1059
    extendee = ext["csi_secret"].containing_type
    assert extendee is not None and extendee.full_name == "google.protobuf.FieldOptions"
    for name in (
        "alpha_field",
        "alpha_message",
        "alpha_method",
        "alpha_service",
        "alpha_enum",
        "alpha_enum_value",
    ):
        assert ext[name].number == 1060


def _secret_fields() -> set[str]:
    """Every field carrying (csi_secret) = true, found the way a log redactor finds them."""
    found: set[str] = set()
    for message in csi_pb2.DESCRIPTOR.message_types_by_name.values():
        for field in message.fields:
            opts = field.GetOptions()
            if opts.HasExtension(CSI_SECRET) and opts.Extensions[CSI_SECRET]:
                found.add(f"{message.name}.{field.name}")
    return found


def test_secrets_carry_csi_secret() -> None:
    assert _secret_fields() == {
        f"{m}.secrets"
        for m in (
            "CreateVolumeRequest",
            "DeleteVolumeRequest",
            "ControllerPublishVolumeRequest",
            "ControllerUnpublishVolumeRequest",
            "ValidateVolumeCapabilitiesRequest",
            "ControllerModifyVolumeRequest",
            "CreateSnapshotRequest",
            "DeleteSnapshotRequest",
            "ListSnapshotsRequest",
            "ControllerExpandVolumeRequest",
            "NodeStageVolumeRequest",
            "NodePublishVolumeRequest",
            "NodeExpandVolumeRequest",
        )
    }


def test_options_survive_serialized_descriptor() -> None:
    proto = descriptor_pb2.FileDescriptorProto()
    csi_pb2.DESCRIPTOR.CopyToProto(proto)
    secrets = next(
        f
        for m in proto.message_type
        if m.name == "NodePublishVolumeRequest"
        for f in m.field
        if f.name == "secrets"
    )
    assert secrets.options.Extensions[CSI_SECRET] is True
