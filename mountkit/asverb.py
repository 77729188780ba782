"""Errors of a verb read as the verb was called: the source and the target as asked (not
``/proc/self/fd/N``) and, where a syscall took both, which one is missing.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from mountkit.errors import SOURCE, TARGET, MountError, as_verb


@contextmanager
def _as_verb(
    verb: str, source: str | None, target: str, *, new_fs: bool = False, nfs: bool = False
) -> Iterator[None]:
    """Any error of the block reads as ``verb``'s (:func:`mountkit.errors.as_verb`), naming the source
    and the target as asked (not ``/proc/self/fd/N``) and, where a syscall took both, which is missing."""
    try:
        yield
    except MountError as exc:
        guess = _missing(exc, source, target, new_fs) if exc.role is None and source is not None else None
        raise as_verb(exc, verb, source, target, guess=guess, nfs=nfs) from None


def _missing(exc: MountError, source: str, target: str, new_fs: bool) -> str | None:
    """Which of the two paths ENOENT/ENOTDIR was about, looked at after the fact (only for the message).

    ``new_fs``: ``source`` is not a path here (a new filesystem's source), so with the target
    present the kernel's ENOENT is about the source (an NFS export the server does not have).
    """
    if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
        return None
    for role, path in ((TARGET, target),) if new_fs else ((SOURCE, source), (TARGET, target)):
        try:
            os.stat(path)
        except OSError:
            return role
    return SOURCE if new_fs and exc.errno == errno.ENOENT else None
