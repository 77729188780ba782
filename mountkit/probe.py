"""Deadline-bounded probes of filesystems that may be dead.

A stat on a hung NFS or FUSE filesystem sleeps uninterruptibly and no signal frees it, so a probe
runs on a worker and the caller waits only until the deadline; then the worker is abandoned (a
daemon thread: it never holds up exit), counted (:func:`abandoned_probes`, :func:`hung_probes`)
so that operators see threads piling up behind a dead server, and the caller gets
:class:`~mountkit.errors.CorruptedMountError` with ``ETIMEDOUT``.

A thread per probe would cost some forty times the statx it guards, so workers are long-lived and
shared.  The hot probes (is it a mount root, does it answer statfs) and the bounded unmount run on
the C pool of ``cext/sys/probe.c`` (:func:`mountkit._sys.probe`: no GIL, and no hand-off at all for
a mount root whose path the dentry cache holds; concurrent probes of one path share one in-flight
probe there, each caller keeping its own deadline); this pool runs any other callable.  It is
elastic: a probe that finds no idle worker starts one, so a worker stuck on a dead share never
drains it; an abandoned worker that gets its answer rejoins it, and one idle for
:data:`IDLE_SECONDS` exits.  After ``fork`` the child starts with an empty pool.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from mountkit import _sys
from mountkit.errors import CorruptedMountError

T = TypeVar("T")

#: a worker with nothing to do for this long exits (the next probe starts a fresh one)
IDLE_SECONDS = 30.0


class _Job(Generic[T]):
    """One probe: the function, and what it returned or raised once ``done`` is released."""

    __slots__ = ("abandoned", "done", "error", "finished", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Lock()
        self.done.acquire()  # released by the worker when fn has returned or raised
        self.result: T
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False


class _Pool:
    """Long-lived daemon workers taking jobs from one queue; see the module docstring."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the counters and a job's finished/abandoned flags
        self.jobs: queue.SimpleQueue[_Job[object]] = queue.SimpleQueue()
        self.idle = 0  # workers waiting for a job and not yet promised one
        self.workers = 0
        self.abandoned_total = 0
        self.still_hung = 0

    def submit(self, job: _Job[object]) -> None:
        self.jobs.put(job)
        with self.lock:
            spare = self.idle > 0
            if spare:
                self.idle -= 1
            else:  # nobody idle: this job gets a worker of its own
                self.workers += 1
        if not spare:
            threading.Thread(target=self._work, name="mountkit-probe", daemon=True).start()

    def _work(self) -> None:
        counted = True  # started for a job already queued: not idle yet
        while True:
            if not counted:
                with self.lock:
                    self.idle += 1
            counted = False
            try:
                job = self.jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self.lock:
                    if self.idle > 0:  # no job promised to an idle worker: one of us may leave
                        self.idle -= 1
                        self.workers -= 1
                        return
                counted = True  # a submitter counted on us: its job is on its way
                continue
            self._run(job)

    def _run(self, job: _Job[object]) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            job.error = exc
        with self.lock:
            job.finished = True
            if job.abandoned:
                self.still_hung -= 1
        job.done.release()

    def abandon(self, job: _Job[object]) -> bool:
        """Give up on ``job`` unless it finished meanwhile; True when abandoned."""
        with self.lock:
            if job.finished:
                return False
            job.abandoned = True
            self.abandoned_total += 1
            self.still_hung += 1
            return True


_pool = _Pool()


def _reset_after_fork() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_reset_after_fork)


def abandoned_probes() -> int:
    """How many probes (here and in the C pool of :func:`mountkit._sys.probe`) have been given up on.

    A probe shared by several callers (the C pool's) counts once, when the last of them gives up.
    """
    return _pool.abandoned_total + _sys.probe_counts()[0]


def hung_probes() -> int:
    """How many abandoned probes are still blocked in the kernel right now."""
    return _pool.still_hung + _sys.probe_counts()[1]


def probe_workers() -> int:
    """How many probe worker threads exist now (idle, busy or stuck), in both pools."""
    return _pool.workers + _sys.probe_counts()[2]


def run_with_deadline(fn: Callable[[], T], timeout: float, operation: str, path: str) -> T:
    """Return ``fn()``, or raise ``CorruptedMountError(ETIMEDOUT, operation, path)`` after ``timeout`` s.

    ``fn`` runs on a pool worker; its own exception is re-raised in the caller.  On timeout
    ``fn`` keeps running on its abandoned worker; whatever it returns later is dropped.
    """
    job: _Job[T] = _Job(fn)
    pool = _pool
    pool.submit(job)  # type: ignore[arg-type]
    if not job.done.acquire(timeout=timeout) and pool.abandon(job):  # type: ignore[arg-type]
        raise CorruptedMountError(
            errno.ETIMEDOUT, operation, path, None, f"no answer within {timeout:g} s; probe abandoned"
        )
    if job.error is not None:
        raise job.error
    return job.result
