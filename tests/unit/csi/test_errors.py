"""Every kind of failure maps to one gRPC code, in one place."""

from __future__ import annotations

import errno

import grpc
import pytest

from csi.cloud import CloudError, ErrorKind, OperationPending
from csi.errors import CsiError, to_status
from mountkit.errors import (
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CsiError(grpc.StatusCode.OUT_OF_RANGE, "too big"), grpc.StatusCode.OUT_OF_RANGE),
        (MountError(errno.EPERM, "mount", "/t"), grpc.StatusCode.INTERNAL),
        (InvalidOptionError("parse options", "empty"), grpc.StatusCode.INVALID_ARGUMENT),
        (MountConflictError(errno.EBUSY, "mount", "/t"), grpc.StatusCode.ALREADY_EXISTS),
        (CorruptedMountError(errno.ESTALE, "stat", "/t"), grpc.StatusCode.UNAVAILABLE),
        (UnsupportedError(errno.ENOSYS, "open_tree", "/t"), grpc.StatusCode.FAILED_PRECONDITION),
        (OperationPending("operations/1", "still creating"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (CloudError(ErrorKind.RESOURCE_EXHAUSTED, "quota"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (CloudError(ErrorKind.NOT_FOUND, "gone"), grpc.StatusCode.NOT_FOUND),
        (CloudError(ErrorKind.PERMISSION_DENIED, "no"), grpc.StatusCode.PERMISSION_DENIED),
        (CloudError(ErrorKind.UNAVAILABLE, "down"), grpc.StatusCode.UNAVAILABLE),
        (NotImplementedError(), grpc.StatusCode.UNIMPLEMENTED),
    ],
)
def test_codes(exc: BaseException, code: grpc.StatusCode) -> None:
    assert to_status(exc)[0] == code


def test_every_cloud_kind_has_a_code() -> None:
    for kind in ErrorKind:
        assert to_status(CloudError(kind, "x"))[0].name == kind.name


def test_unexpected_errors_are_internal_and_generic() -> None:
    code, message = to_status(KeyError("secret-internal-detail"))
    assert code == grpc.StatusCode.INTERNAL
    assert "secret-internal-detail" not in message


def test_a_failed_system_call_is_internal_naming_errno_and_path() -> None:
    """The spec's Error Scheme: a readable message; a bare OSError (mkdir under a read-only dir) says what."""
    code, message = to_status(OSError(errno.EROFS, "Read-only file system", "/var/lib/kubelet/pods/x"))
    assert code == grpc.StatusCode.INTERNAL
    assert "EROFS" in message and "/var/lib/kubelet/pods/x" in message


def test_a_share_the_server_does_not_have_is_not_found() -> None:
    """NodeStageVolume's "Volume does not exist": the NFS mount's ENOENT about its source (measured on
    the guest's 6.1 kernel: v4.x for any missing path, v3 beneath an export); other ENOENTs stay INTERNAL."""
    missing = MountError(errno.ENOENT, "mount", "10.0.0.2:/gone", "/var/lib/kubelet/x", role="source")
    assert to_status(missing)[0] == grpc.StatusCode.NOT_FOUND
    assert to_status(MountError(errno.ENOENT, "mount", "10.0.0.2:/gone", "/x", role="target"))[0] == (
        grpc.StatusCode.INTERNAL
    )


def test_corrupted_message_names_the_path() -> None:
    assert (
        "/var/lib/kubelet/x"
        in to_status(CorruptedMountError(errno.ETIMEDOUT, "statfs", "/var/lib/kubelet/x"))[1]
    )
