"""mountkit's one exception hierarchy, and the one place its messages are built.

Every error is an :class:`OSError` that carries the errno, the operation and
the path(s) it concerns, so a caller can both match on ``errno`` and show a
message that names what failed.  Mount data (which may hold secrets) never
appears in a message.

A verb's error reads the way the verb was called: ``bind /src -> /dst:
source /src: No such file or directory (ENOENT)`` -- the verb, its source and
target in that order (``filename`` and ``filename2``, as :func:`os.rename`'s
errors have them), which of the two the errno is about (``role``), and the
syscall that refused (``step``) with the kernel's own words (``detail``).
:func:`as_verb` turns a syscall's error into that form.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

#: errnos that mean "the filesystem behind this path is gone or not answering".
CORRUPTED_ERRNOS = frozenset(
    {_errno.ESTALE, _errno.ENOTCONN, _errno.EIO, _errno.EHOSTDOWN, _errno.ETIMEDOUT, _errno.ECONNREFUSED}
)

#: errnos about a path itself (missing, not a directory, a symlink loop): the error says which path
PATH_ERRNOS = frozenset({_errno.ENOENT, _errno.ENOTDIR, _errno.ELOOP, _errno.ENAMETOOLONG, _errno.EXDEV})

#: what ENODEV from a new NFS mount means: fsopen/mount(2) found no filesystem type of that name
NFS_CLIENT_MISSING = (
    "the kernel has no NFS client: load it (modprobe nfs), or install the NFS client on the node"
)

SOURCE, TARGET = "source", "target"


class MountError(OSError):
    """A mount operation failed: ``errno``, ``operation``, ``filename`` (and ``filename2``).

    ``role`` ("source" or "target", else None) says which of the two paths the errno concerns;
    ``step`` names the syscall or helper of the operation that refused, when it is not the
    operation itself.
    """

    def __init__(
        self,
        err: int,
        operation: str,
        path: str | None = None,
        path2: str | None = None,
        detail: str | None = None,
        role: str | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(err, os.strerror(err) if err else (detail or "error"), path, None, path2)
        self.operation = operation
        self.detail = detail
        self.role = role
        self.step = step

    @property
    def path(self) -> str | None:
        """The path the errno is about: the one ``role`` names, else the first."""
        path: str | None = (
            self.filename2 if self.role == TARGET and self.filename2 is not None else self.filename
        )
        return path

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        where = f" {self.filename}" if self.filename is not None else ""
        if self.filename2 is not None:
            where += f" -> {self.filename2}"
        which = f"{self.role} {self.path}: " if self.role is not None and self.path is not None else ""
        tail = "".join(f": {part}" for part in (self.step, self.detail) if part)
        return f"{self.operation}{where}: {which}{self.strerror} ({name}){tail}"

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.errno, self.operation, self.filename, self.filename2, self.detail, self.role, self.step)
        return (_rebuild, (type(self), args))


def _rebuild(cls: type[MountError], args: tuple[object, ...]) -> MountError:
    """Unpickle any subclass (InvalidOptionError's constructor takes other arguments)."""
    exc = MountError.__new__(cls)
    MountError.__init__(exc, *args)  # type: ignore[arg-type]
    return exc


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


def as_verb(
    exc: MountError,
    verb: str,
    source: str | None,
    target: str,
    *,
    guess: str | None = None,
    nfs: bool = False,
) -> MountError:
    """``exc``, raised by a step of ``verb``, rewritten (in place, class kept) to read as ``verb``'s.

    It names ``source`` then ``target`` (``source`` None: a one-path verb), keeps the refusing
    step and its detail, and, for an errno about a path (:data:`PATH_ERRNOS`) of a two-path
    verb, says which path it is: the role the step set, else the one of the two the step named,
    else the caller's ``guess`` (a post-hoc look, for a syscall such as mount(2) that takes both
    paths).  ``nfs``: ENODEV from a new NFS mount says the kernel has no NFS client.
    """
    if exc.step is None and exc.operation != verb:
        exc.step = exc.operation
    if exc.role is None and source is not None and exc.errno in PATH_ERRNOS:
        named = {p for p in (exc.filename, exc.filename2) if p in (source, target)}
        exc.role = (SOURCE if source in named else TARGET) if len(named) == 1 and source != target else guess
    exc.operation = verb
    exc.filename, exc.filename2 = (target, None) if source is None else (source, target)
    if exc.errno == _errno.ENODEV and nfs and NFS_CLIENT_MISSING not in (exc.detail or ""):
        exc.detail = f"{exc.detail}; {NFS_CLIENT_MISSING}" if exc.detail else NFS_CLIENT_MISSING
    return exc


def is_corrupted(err: BaseException) -> bool:
    """True when ``err`` says the filesystem behind a path is dead or hung."""
    return isinstance(err, CorruptedMountError) or (
        isinstance(err, OSError) and err.errno in CORRUPTED_ERRNOS
    )
