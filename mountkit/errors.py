"""mountkit's one exception hierarchy.

Every error is an :class:`OSError` that carries the errno, the operation and
the path(s) it concerns, so a caller can both match on ``errno`` and show a
message that names what failed.  Mount data (which may hold secrets) never
appears in a message.
"""

from __future__ import annotations

import errno as _errno
import os

#: errnos that mean "the filesystem behind this path is gone or not answering".
CORRUPTED_ERRNOS = frozenset(
    {_errno.ESTALE, _errno.ENOTCONN, _errno.EIO, _errno.EHOSTDOWN, _errno.ETIMEDOUT, _errno.ECONNREFUSED}
)


class MountError(OSError):
    """A mount operation failed: ``errno``, ``operation``, ``filename`` (and ``filename2``)."""

    def __init__(
        self,
        err: int,
        operation: str,
        path: str | None = None,
        path2: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(err, os.strerror(err) if err else (detail or "error"), path, None, path2)
        self.operation = operation
        self.detail = detail

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        where = f" {self.filename}" if self.filename is not None else ""
        if self.filename2 is not None:
            where += f" -> {self.filename2}"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.operation}{where}: {self.strerror} ({name}){detail}"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), (self.errno, self.operation, self.filename, self.filename2, self.detail))


class UnsupportedError(MountError):
    """The running kernel lacks a syscall or feature (ENOSYS, EOPNOTSUPP); callers fall back."""


class MountConflictError(MountError):
    """Something other than what was asked is already mounted at the target."""


class CorruptedMountError(MountError):
    """The filesystem at the path is stale, disconnected, failing or not answering in time."""


class InvalidOptionError(MountError):
    """An option or argument is malformed or not allowed (errno EINVAL)."""

    def __init__(self, operation: str, detail: str, path: str | None = None) -> None:
        super().__init__(_errno.EINVAL, operation, path, None, detail)


def is_corrupted(err: BaseException) -> bool:
    """True when ``err`` says the filesystem behind a path is dead or hung."""
    return isinstance(err, CorruptedMountError) or (
        isinstance(err, OSError) and err.errno in CORRUPTED_ERRNOS
    )
