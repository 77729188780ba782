"""Pages of ListVolumes and ListSnapshots, by the last key of the previous page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc

from csi import validation
from csi.errors import CsiError
from csi.proto import csi_pb2

_T = TypeVar("_T")


def paginate(
    items: Sequence[_T],
    key: Callable[[_T], str],
    request: csi_pb2.ListVolumesRequest | csi_pb2.ListSnapshotsRequest,
    parse_token: Callable[[str], object | None],
) -> tuple[Sequence[_T], str]:
    """One page of ``items`` (sorted by ``key``) after the key in ``starting_token``.

    The token is the last key of the previous page, so deleting that entry
    between pages does not make the next page skip or repeat one.
    """
    if request.max_entries < 0:
        raise validation.invalid("max_entries must not be negative")
    start = 0
    if request.starting_token:
        if parse_token(request.starting_token) is None:
            raise CsiError(grpc.StatusCode.ABORTED, f"starting_token {request.starting_token!r} is not valid")
        start = next((i for i, item in enumerate(items) if key(item) > request.starting_token), len(items))
    end = len(items) if not request.max_entries else start + request.max_entries
    page = items[start:end]
    return page, key(page[-1]) if page and end < len(items) else ""
