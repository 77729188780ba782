"""The driver's heap: glibc malloc tuned at start, and handed back to the kernel when the server goes idle.

A node plugin lives as long as the node, and its resident memory is counted against every node it
runs on, so what a burst of calls leaves behind matters (docs/performance.md, "Memory").

* **Arenas.** glibc gives each thread that calls ``malloc`` while another holds the main arena an
  arena of its own (up to 8 per core), and memory freed into an arena stays there.  The gRPC
  worker pool, gRPC's own threads and the probe pools are a score of threads: after a 110-pod
  burst, ~6 MiB of the driver's ~52 MiB sat in such arenas.  Most of the driver's work runs under
  the GIL anyway, so one arena costs no measurable contention; :func:`tune_malloc` sets
  ``M_ARENA_MAX`` with ``mallopt`` before any thread of ours or gRPC's starts (an arena, once made,
  is never given up).
* **Trimming.** ``free`` returns memory to the kernel only from the top of the heap; a burst's
  buffers freed in the middle stay resident until reused.  ``malloc_trim(0)`` gives every whole free
  page back (``MADV_DONTNEED``), at a cost of 0.1-0.3 ms walking the free lists with the arena
  locked.  :class:`IdleTrimmer` does that on a thread of its own, never inside an RPC, once the
  server has been quiet for a full tick (0.2 s) after some calls, and once after start-up: calls
  that keep coming (a stream of publishes) never meet a trim, and an idle server trims nothing
  twice (its thread wakes five times a second to read one counter).

Both use glibc through ``ctypes`` (libc is already mapped: this costs ~0.2 MiB of ctypes' own
modules); on another C library they do nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: mallopt's parameter number for the arena limit (glibc's malloc.h)
M_ARENA_MAX = -8
#: the arenas a driver process allows itself: the main one only (measured: 1.6 MiB less than with 2
#: after the bursts, and no slower: the threads that malloc without the GIL are gRPC's few and the probes')
ARENA_MAX = 1
#: seconds of quiet, after calls, before the heap is trimmed (the trimmer's tick)
TRIM_AFTER = 0.2


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None
    return libc


_LIBC = _libc()


def tune_malloc(arena_max: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at ``arena_max``; call before threads start. False where not glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, arena_max))


def trim() -> bool:
    """``malloc_trim(0)``: every whole free page of every arena back to the kernel; True if any was."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


class IdleTrimmer:
    """Trims the heap on a daemon thread once ``calls()`` (a count of finished calls, read only here)
    has stood still for a tick after moving: after a burst drains, not while calls keep coming."""

    def __init__(
        self, calls: Callable[[], int], tick: float = TRIM_AFTER, trim: Callable[[], bool] = trim
    ) -> None:
        self._calls = calls
        self._tick = tick
        self._trim = trim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="malloc-trim", daemon=True)
        #: trims done so far (for tests and debugging)
        self.trims = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seen = self._calls()
        dirty = True  # what start-up freed (import-time garbage, ~0.8 MiB) goes back after the first tick
        while not self._stop.wait(self._tick):
            now = self._calls()
            if now != seen:
                seen, dirty = now, True
            elif dirty:
                dirty = False
                started = time.monotonic()
                self._trim()
                self.trims += 1
                log.debug("heap trimmed after %d calls in %.2f ms", now, (time.monotonic() - started) * 1e3)
