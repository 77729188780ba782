"""Target pinning: where a verb acts, by name or (``beneath`` given) as an O_PATH descriptor resolved
without symlinks, so a path swapped for a symlink meanwhile cannot move the mount elsewhere.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from mountkit._types import PathArg
from mountkit.errors import TARGET, MountError
from mountkit.flags import AT_FDCWD
from mountkit.safepath import fd_path, open_beneath


class _Spot(NamedTuple):
    """Where a verb acts: ``(dfd, path)`` for the *at syscalls, ``name`` for mount(2)."""

    dfd: int
    path: str
    name: str


@contextmanager
def _spot(path: str, beneath: PathArg | None) -> Iterator[_Spot]:
    """``path`` by name, or (``beneath`` given) pinned as an O_PATH descriptor resolved without symlinks."""
    if beneath is None:
        yield _Spot(AT_FDCWD, path, path)
        return
    fd = open_beneath(os.fsdecode(beneath), path)
    try:
        yield _Spot(fd, "", fd_path(fd))
    finally:
        os.close(fd)


@contextmanager
def _pinned(spot: _Spot) -> Iterator[_Spot]:
    """``spot`` as a descriptor: a by-name target is opened first (following a symlink, as mount(2)
    does), so a missing target fails before a filesystem (perhaps a network round trip) is made."""
    if spot.dfd != AT_FDCWD:
        yield spot
        return
    try:
        fd = os.open(spot.path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise MountError(exc.errno or errno.EIO, "open", spot.path, None, None, TARGET) from None
    try:
        yield _Spot(fd, "", spot.path)
    finally:
        os.close(fd)
