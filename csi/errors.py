"""The one place where exceptions become gRPC status codes.

Servicers raise: :class:`CsiError` for what the CSI spec names (a missing
field, an unknown volume...), mountkit's errors from the node's mount work,
the cloud's :class:`~csi.cloud.CloudError` from the controller.  The server's
interceptor calls :func:`to_status` once per failed call, so every RPC maps a
given failure to the same code.
"""

from __future__ import annotations

import errno
import logging
import os

import grpc

from csi.cloud import CloudError, OperationPending
from csi.lockrelease import LockInfoError
from mountkit.errors import (
    SOURCE,
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
)

log = logging.getLogger(__name__)


class CsiError(Exception):
    """A failure with the gRPC code the CSI spec prescribes for it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def _cloud_code(err: CloudError) -> grpc.StatusCode:
    """Cloud error kinds are named after the gRPC codes they stand for."""
    code: grpc.StatusCode = getattr(grpc.StatusCode, err.kind.name, grpc.StatusCode.INTERNAL)
    return code


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The (code, message) a failed RPC returns for ``exc``.

    Anything not recognised is logged with its traceback and reported as
    INTERNAL with a generic message, so internals never leak to the caller.
    """
    if isinstance(exc, CsiError):
        return exc.code, exc.message
    if isinstance(exc, OperationPending):
        # Still running in the cloud: a retryable code makes the provisioner call again.
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc) or "operation still in progress"
    if isinstance(exc, CloudError):
        return _cloud_code(exc), str(exc)
    if isinstance(exc, MountError):
        return _mount_code(exc), str(exc)
    if isinstance(exc, LockInfoError):
        # GFD's code too: the volume is mounted but its lock record is not written; kubelet retries.
        return grpc.StatusCode.INTERNAL, f"lock release bookkeeping: {exc}"
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED, "method not implemented"
    log.error("internal error", exc_info=exc)
    if isinstance(exc, OSError) and exc.errno:
        # A system call failed (mkdir under a read-only kubelet dir...): the spec wants a readable
        # message, and the errno and path say what went wrong without showing any internals.
        return grpc.StatusCode.INTERNAL, _os_message(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"


def _os_message(exc: OSError) -> str:
    errno_name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    where = f": {exc.filename}" if exc.filename is not None else ""
    return f"internal error: {os.strerror(exc.errno or 0)} ({errno_name}){where}"


def _mount_code(exc: MountError) -> grpc.StatusCode:
    if isinstance(exc, InvalidOptionError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, MountConflictError):
        # Publish/stage of a volume that is incompatible with what is already there.
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(exc, UnsupportedError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, CorruptedMountError):
        # A dead or hung share: transient from the CO's point of view, it retries.
        return grpc.StatusCode.UNAVAILABLE
    if exc.errno == errno.ENOENT and exc.role == SOURCE:
        # The server has no such share (NFSv4 says so for any path, v3 beneath an export; a v3 path
        # outside every export is EACCES): the node tables' "Volume does not exist".
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.INTERNAL
