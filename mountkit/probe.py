"""Deadline-bounded probes of filesystems that may be dead.

A stat on a hung NFS or FUSE filesystem sleeps uninterruptibly: no signal
frees it, and a thread stuck in it cannot be cancelled.  So a probe runs on a
daemon thread and the caller waits only until the deadline; after that the
thread is *abandoned* (it finishes, or not, on its own; being a daemon it
never holds up interpreter exit) and the caller gets a
:class:`~mountkit.errors.CorruptedMountError` with ``ETIMEDOUT``.  Abandoned
probes are counted so that an operator (metrics, logs) can see threads piling
up behind a dead server.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import TypeVar

from mountkit.errors import CorruptedMountError

T = TypeVar("T")

_lock = threading.Lock()
_abandoned_total = 0
_still_hung = 0


def abandoned_probes() -> int:
    """How many probes have been given up on since the process started."""
    return _abandoned_total


def hung_probes() -> int:
    """How many abandoned probes are still blocked in the kernel right now."""
    return _still_hung


def run_with_deadline(fn: Callable[[], T], timeout: float, operation: str, path: str) -> T:
    """Return ``fn()``, or raise ``CorruptedMountError(ETIMEDOUT, operation, path)`` after ``timeout`` s.

    ``fn``'s own exception is re-raised in the caller.  On timeout ``fn`` keeps
    running on its abandoned thread; whatever it returns later is dropped.
    """
    global _abandoned_total, _still_hung
    done = threading.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []
    state = {"abandoned": False}

    def probe() -> None:
        global _still_hung
        try:
            outcome.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
        finally:
            with _lock:
                done.set()
                if state["abandoned"]:
                    _still_hung -= 1

    threading.Thread(target=probe, name=f"mountkit-probe:{operation}", daemon=True).start()
    if not done.wait(timeout):
        with _lock:
            if not done.is_set():
                state["abandoned"] = True
                _abandoned_total += 1
                _still_hung += 1
        if state["abandoned"]:
            raise CorruptedMountError(
                errno.ETIMEDOUT, operation, path, None, f"no answer within {timeout:g} s; probe abandoned"
            )
    if failure:
        raise failure[0]
    return outcome[0]
