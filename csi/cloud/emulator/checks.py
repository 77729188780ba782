"""What every RPC body of the emulator checks in a request (the parent's form, a new resource's id)
and the timestamp a new resource gets; shared by :mod:`~csi.cloud.emulator.state` and its mixins."""

from __future__ import annotations

import re

import grpc
from google.protobuf import timestamp_pb2

from csi.cloud.emulator.errors import ApiError
from csi.filestore import RESOURCE_ID

_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")


def now_pb() -> timestamp_pb2.Timestamp:
    """Now, as the API stamps a new resource's create_time."""
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def parse_parent(parent: str, *, allow_any: bool) -> tuple[str, str]:
    """``(project, location)`` of ``projects/<p>/locations/<l>``; the location ``-`` (all) only with
    ``allow_any``."""
    m = _PARENT.match(parent)
    if not m or (m.group(2) == "-" and not allow_any):
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
    return m.group(1), m.group(2)


def check_id(kind: str, value: str) -> None:
    """INVALID_ARGUMENT unless ``value`` is a valid id for a new ``kind`` (instance, backup, share)."""
    if not RESOURCE_ID.match(value):
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{kind} id {value!r} must be 1-63 characters of lower-case letters, digits and hyphens, "
            "start with a letter and not end with a hyphen",
        )
