"""What a cloud resource's state means for an RPC: ready to use, worth a retry, or failed; and
deletes that are idempotent as CSI wants them."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from csi.cloud import (
    CloudError,
    ErrorKind,
    Instance,
    MultishareInstance,
    OperationPending,
)
from csi.errors import CsiError
from csi.filestore import (
    PENDING_STATES,
    TRANSIENT_STATES,
    USABLE_STATES,
)


def require_ready(volume_id: str, instance: Instance | MultishareInstance) -> None:
    """Return when the instance is READY.  Otherwise: ABORTED while an operation of its own runs
    (CREATING, DELETING: the spec's general "operation pending for volume"), UNAVAILABLE in a passing
    state (REPAIRING...), FAILED_PRECONDITION in any other (ERROR...)."""
    state = instance.state
    if state in USABLE_STATES:
        return
    if state in PENDING_STATES:
        code = grpc.StatusCode.ABORTED
    elif state in TRANSIENT_STATES:
        code = grpc.StatusCode.UNAVAILABLE
    else:
        code = grpc.StatusCode.FAILED_PRECONDITION
    raise CsiError(code, f"volume {volume_id} is {state}, not READY; retry later")


def deleted(delete: Callable[[], None]) -> None:
    """Run a cloud delete; the resource vanishing first is success (CSI deletes are idempotent).

    A delete still running (OperationPending) is not: the CO must retry until it is done.
    """
    try:
        delete()
    except CloudError as exc:
        if exc.kind is not ErrorKind.NOT_FOUND or isinstance(exc, OperationPending):
            raise
