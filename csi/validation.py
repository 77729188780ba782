"""Request checks shared by the controller and node services.

Every check raises :class:`~csi.errors.CsiError` with INVALID_ARGUMENT and a
message naming the offending field, before any lock is taken or any cloud or
kernel work starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import grpc

from csi.errors import CsiError
from csi.proto import csi_pb2
from mountkit.errors import InvalidOptionError
from mountkit.flags import MS
from mountkit.nfs import SET_BY_MOUNTKIT
from mountkit.options import parse_options

#: CSI's general size limit for a string field (names, ids), in bytes.
MAX_STRING_BYTES = 128
#: CSI's general size limit for a map<string, string> (all keys and values), in bytes.
MAX_MAP_BYTES = 4096
#: node_id is allowed to be longer than other strings.
MAX_NODE_ID_BYTES = 256
#: Volume and snapshot ids, in every RPC that takes one: a multishare volume id in
#: gcp-filestore-csi-driver's format (six components, a share named after the PVC) is often longer
#: than the general limit, and a snapshot id is a backup's full resource name.
MAX_INCOMING_ID_BYTES = 1024

_Mode = csi_pb2.VolumeCapability.AccessMode
SUPPORTED_ACCESS_MODES = frozenset(
    {
        _Mode.SINGLE_NODE_WRITER,
        _Mode.SINGLE_NODE_READER_ONLY,
        _Mode.MULTI_NODE_READER_ONLY,
        _Mode.MULTI_NODE_SINGLE_WRITER,
        _Mode.MULTI_NODE_MULTI_WRITER,
        _Mode.SINGLE_NODE_SINGLE_WRITER,
        _Mode.SINGLE_NODE_MULTI_WRITER,
    }
)
READ_ONLY_ACCESS_MODES = frozenset({_Mode.SINGLE_NODE_READER_ONLY, _Mode.MULTI_NODE_READER_ONLY})

#: What a mount flag may not do: the driver owns how a volume is bound and propagated.
_FORBIDDEN_MOUNT_FLAGS = MS.BIND | MS.MOVE | MS.REMOUNT
#: NFS options that say where to connect (mountkit's SET_BY_MOUNTKIT): the driver derives them from the
#: volume, never from flags (a smuggled ``addr=`` would point a volume at another server; cf. CVE-2026-6437).
_WHERE_TO_CONNECT = sorted(SET_BY_MOUNTKIT)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def invalid(message: str) -> CsiError:
    """An INVALID_ARGUMENT error."""
    return CsiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_string(value: str, field: str, *, required: bool = True, max_bytes: int = MAX_STRING_BYTES) -> str:
    """``value`` if present (when ``required``), short enough and free of control characters."""
    if not value:
        if required:
            raise invalid(f"{field} is required")
        return value
    if len(value.encode()) > max_bytes:
        raise invalid(f"{field} is longer than {max_bytes} bytes")
    if _CONTROL.search(value):
        raise invalid(f"{field} contains a control character")
    return value


def check_id(value: str, field: str) -> str:
    """A volume or snapshot id as an RPC receives it: required, at most :data:`MAX_INCOMING_ID_BYTES`."""
    return check_string(value, field, max_bytes=MAX_INCOMING_ID_BYTES)


def check_map(values: Mapping[str, str], field: str) -> None:
    """Keys and values without control characters, all of them within CSI's map size limit."""
    size = 0
    for key, value in values.items():
        if not key or _CONTROL.search(key) or _CONTROL.search(value):
            raise invalid(f"{field} has an empty key or a control character")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_MAP_BYTES:
        raise invalid(f"{field} is larger than {MAX_MAP_BYTES} bytes")


def check_capability_shape(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> None:
    """INVALID_ARGUMENT unless the capability names an access type and a (non-UNKNOWN) access mode."""
    if capability.WhichOneof("access_type") is None:
        raise invalid(f"{field}: access_type is required (mount)")
    if not capability.HasField("access_mode") or capability.access_mode.mode == _Mode.UNKNOWN:
        raise invalid(f"{field}: access_mode is required")


def exceeded_reason(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> str | None:
    """Why no volume of this driver can serve a valid capability (block access): the spec's
    "Exceeds capabilities" row; None when it can.  A mode the spec does not define is no capability
    at all, but an invalid field."""
    if capability.WhichOneof("access_type") == "block":
        return f"{field}: block access is not supported: Filestore is file storage"
    return None


def unsupported_reason(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> str | None:
    """Why a well-formed capability cannot be served (block access, unknown mode, bad flags), or None."""
    reason = exceeded_reason(capability, field)
    if reason:
        return reason
    if capability.access_mode.mode not in SUPPORTED_ACCESS_MODES:
        return f"{field}: access mode {capability.access_mode.mode} is not supported"
    try:
        check_string(capability.mount.fs_type, f"{field}.mount.fs_type", required=False)
        check_mount_flags(capability.mount.mount_flags, f"{field}.mount.mount_flags")
    except CsiError as exc:
        return exc.message
    return None


def check_capability(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> None:
    """A mount capability with a supported access mode and acceptable mount flags."""
    check_capability_shape(capability, field)
    reason = unsupported_reason(capability, field)
    if reason:
        raise invalid(reason)


def check_node_capability(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> None:
    """NodeStageVolume's and NodePublishVolume's capability: their Errors tables make one the volume
    cannot serve "Exceeds capabilities", FAILED_PRECONDITION; a malformed one stays INVALID_ARGUMENT."""
    check_capability_shape(capability, field)
    reason = exceeded_reason(capability, field)
    if reason:
        raise CsiError(grpc.StatusCode.FAILED_PRECONDITION, reason)
    check_capability(capability, field)


def check_capabilities(
    capabilities: Iterable[csi_pb2.VolumeCapability], field: str = "volume_capabilities"
) -> None:
    """At least one capability, each acceptable to :func:`check_capability`."""
    capabilities = list(capabilities)
    if not capabilities:
        raise invalid(f"{field} is required")
    for index, capability in enumerate(capabilities):
        check_capability(capability, f"{field}[{index}]")


def check_mount_flags(flags: Iterable[str], field: str = "mount_flags") -> None:
    """Flags mountkit can parse that do not ask for a bind, move, remount or propagation change.

    The message never repeats a flag's value: mount flags may hold credentials.
    """
    flags = list(flags)
    if not flags:
        return
    if not all(flags):
        raise invalid(f"{field}: a flag is empty")
    if sum(len(flag.encode()) for flag in flags) > MAX_MAP_BYTES:
        raise invalid(f"{field} are longer than {MAX_MAP_BYTES} bytes")
    try:
        parsed = parse_options(",".join(flags))
    except InvalidOptionError as exc:
        # The detail's tail says what is wrong ("empty", "contains NUL") without quoting the flag.
        raise invalid(f"{field}: a flag is malformed: {(exc.detail or '').rpartition(': ')[2]}") from None
    if parsed.flags & _FORBIDDEN_MOUNT_FLAGS or parsed.propagation:
        raise invalid(f"{field}: bind, move, remount and propagation flags are not allowed")
    if any(word.partition("=")[0].strip() in SET_BY_MOUNTKIT for word in parsed.data + parsed.sensitive):
        names = f"{', '.join(_WHERE_TO_CONNECT[:-1])} and {_WHERE_TO_CONNECT[-1]}"
        raise invalid(f"{field}: {names} are set by the driver, not by mount flags")


def check_mount_options(text: str, field: str) -> list[str]:
    """A ``mount-options`` value (``hard,nconnect=4``: a StorageClass parameter, carried to the node in
    volume_context) as mount flags stripped of blanks, checked like a capability's
    (:func:`check_mount_flags`)."""
    flags = [item.strip() for item in text.split(",")] if text.strip() else []
    check_mount_flags(flags, field)
    return flags


def is_readonly(capability: csi_pb2.VolumeCapability, readonly_flag: bool) -> bool:
    """Whether a volume is to be mounted read-only: the request's flag or a reader-only access mode."""
    return readonly_flag or capability.access_mode.mode in READ_ONLY_ACCESS_MODES
