"""Per-key, non-blocking operation locks.

CSI expects a plugin to refuse a second concurrent operation on the same
volume with ABORTED rather than queue it: the CO retries later, and two
operations never interleave on one volume, snapshot or instance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from csi.errors import CsiError


class VolumeLocks:
    """A set of held keys; ``acquire`` takes all of its keys or none."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[str] = set()

    @contextmanager
    def acquire(self, *keys: str) -> Iterator[None]:
        """Hold ``keys`` for the ``with`` block.

        Raises :class:`CsiError` (ABORTED) at once, holding nothing, when any
        key is already held by another operation.
        """
        wanted = set(keys)
        with self._mutex:
            busy = sorted(wanted & self._held)
            if busy:
                raise CsiError(grpc.StatusCode.ABORTED, f"an operation on {busy[0]} is already in progress")
            self._held |= wanted
        try:
            yield
        finally:
            with self._mutex:
                self._held -= wanted
