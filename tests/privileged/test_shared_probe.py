"""Concurrent probes of one path share one in-flight probe of the C pool (cext/sys/probe.h), each caller
keeping its own deadline; an answer is never reused; a probe that kept a caller past its deadline is shared
no more.

tests/support/hangfs.py holds a probe in flight for as long as a test needs (its statfs blocks while the
mode is ``hang``); the C pool's counters (:func:`mountkit._sys.probe_jobs`: probes started, callers that
joined one) show which callers shared.  Each test runs in an ``in_ns`` child; every cleanup frees hung
callers (mode ok, then the FUSE connection aborted) and kills the hangfs daemon by PID.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mountkit import CorruptedMountError, Mounter, _sys, probe
from tests.support import hangfs

pytestmark = pytest.mark.privileged

if shutil.which("findmnt") is None:
    pytest.skip("needs util-linux findmnt", allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("needs /dev/fuse", allow_module_level=True)
pytest.importorskip("fuse", reason="needs fusepy")

SHARERS = 8
SLACK = 1.0  # scheduling slack on a shared 2-core machine


@contextmanager
def hung_share(scratch: str) -> Iterator[tuple[str, str]]:
    """(mount point, control file) of a hangfs mount, its probes hanging until the mode changes."""
    mnt, control = os.path.join(scratch, "share"), os.path.join(scratch, hangfs.CONTROL_NAME)
    os.mkdir(mnt)
    pid = hangfs.start(mnt, control)
    try:
        assert Mounter(probe_timeout=5.0).is_live_mountpoint(mnt)  # the root is in the dentry cache now
        hangfs.set_mode(control, "hang")
        yield mnt, control
    finally:
        hangfs.set_mode(control, "ok")
        hangfs.abort(mnt)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def jobs_since(before: tuple[int, int]) -> tuple[int, int]:
    """(probes started, probes joined) since ``before`` (an earlier :func:`mountkit._sys.probe_jobs`)."""
    started, joined = _sys.probe_jobs()
    return started - before[0], joined - before[1]


def outcome(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, fn()'s result, or (exception type name, errno))."""
    start = time.monotonic()
    try:
        result: Any = fn()
    except Exception as exc:  # noqa: BLE001 - the test asserts on it
        result = (type(exc).__name__, getattr(exc, "errno", None))
    return time.monotonic() - start, result


class Callers:
    """Threads each calling a function; their outcomes by name."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.seen: dict[str, tuple[float, Any]] = {}

    def start(self, name: str, fn: Callable[[], Any]) -> None:
        thread = threading.Thread(target=lambda: self.seen.__setitem__(name, outcome(fn)))
        thread.start()
        self.threads.append(thread)

    def join(self) -> dict[str, tuple[float, Any]]:
        for thread in self.threads:
            thread.join(10)
        return self.seen


def _share_one_answer(scratch: str, final_mode: str) -> dict[str, Any]:
    """SHARERS callers of one hung path wait on one probe; its answer (mode ``final_mode``) reaches all."""
    seen: dict[str, Any] = {}
    with hung_share(scratch) as (mnt, control):
        mounter = Mounter(probe_timeout=10.0)
        before = _sys.probe_jobs()
        callers = Callers()
        for i in range(SHARERS):
            callers.start(f"caller {i}", lambda: mounter.is_live_mountpoint(mnt))
        wait_for(lambda: jobs_since(before)[1] == SHARERS - 1)
        seen["jobs while hung"] = jobs_since(before)
        hangfs.set_mode(control, final_mode)
        seen["results"] = sorted({result for _, result in callers.join().values()}, key=repr)
        seen["answered"] = len(callers.seen)
        hangfs.set_mode(control, "ok")
        # the answer is gone with its probe: a caller after it asks afresh
        before = _sys.probe_jobs()
        seen["after the answer"] = mounter.is_live_mountpoint(mnt)
        seen["jobs after the answer"] = jobs_since(before)
    return seen


def test_concurrent_probes_of_one_path_share_one_probe_and_its_answer(in_ns: Any) -> None:
    seen = in_ns(_share_one_answer, "ok")
    print(f"shared answer: {seen}")
    assert seen["jobs while hung"] == (1, SHARERS - 1)  # one probe started, every other caller joined it
    assert (seen["answered"], seen["results"]) == (SHARERS, [True])
    assert seen["after the answer"] is True
    assert seen["jobs after the answer"] == (1, 0)  # a fresh probe, not the finished one's answer


@pytest.mark.parametrize("mode", ["ESTALE", "EIO"])
def test_a_shared_probes_error_reaches_every_caller(in_ns: Any, mode: str) -> None:
    seen = in_ns(_share_one_answer, mode)
    print(f"shared {mode}: {seen}")
    assert seen["jobs while hung"] == (1, SHARERS - 1)
    assert seen["answered"] == SHARERS
    assert seen["results"] == [(CorruptedMountError.__name__, getattr(errno, mode))]


SHORT, LONG = 0.4, 4.0  # the callers' own probe timeouts


def _own_deadlines(scratch: str) -> dict[str, Any]:
    """Callers of one hung probe each keep their own deadline; a caller after one timed out starts afresh."""
    seen: dict[str, Any] = {}
    with hung_share(scratch) as (mnt, control):
        short, long = Mounter(probe_timeout=SHORT), Mounter(probe_timeout=LONG)
        before = _sys.probe_jobs()
        abandoned, hung = probe.abandoned_probes(), probe.hung_probes()

        callers = Callers()
        callers.start("short", lambda: short.is_live_mountpoint(mnt))  # starts the probe
        wait_for(lambda: jobs_since(before) == (1, 0))
        callers.start("long", lambda: long.is_live_mountpoint(mnt))  # joins it
        wait_for(lambda: jobs_since(before) == (1, 1))
        wait_for(lambda: "short" in callers.seen)
        seen["short"] = callers.seen["short"]
        seen["long waiting on"] = "long" not in callers.seen
        # the probe kept a caller past its deadline: presumed hung, a later caller starts its own
        seen["late"] = outcome(lambda: short.is_live_mountpoint(mnt))
        seen["jobs"] = jobs_since(before)
        seen["abandoned"] = (
            probe.abandoned_probes() - abandoned
        )  # the late caller's probe; "long" still waits
        seen["hung"] = probe.hung_probes() - hung
        hangfs.set_mode(control, "ok")  # the share answers before "long"'s deadline: it gets the answer
        seen["long"] = callers.join()["long"]
        wait_for(lambda: probe.hung_probes() == hung)  # the late caller's probe got its answer and rejoined
    return seen


def test_each_sharer_keeps_its_own_deadline_and_a_hung_probe_is_shared_no_more(in_ns: Any) -> None:
    seen = in_ns(_own_deadlines)
    print(f"own deadlines: {seen}")
    took, result = seen["short"]
    assert result == (CorruptedMountError.__name__, errno.ETIMEDOUT)
    assert SHORT - 0.05 < took < SHORT + SLACK, f"the short caller took {took:.2f} s"
    assert seen["long waiting on"] is True
    took, result = seen["late"]
    assert result == (CorruptedMountError.__name__, errno.ETIMEDOUT)
    assert took < SHORT + SLACK, f"the late caller took {took:.2f} s"
    assert seen["jobs"] == (2, 1)  # the late caller did not join the hung probe
    assert (seen["abandoned"], seen["hung"]) == (1, 1)
    took, result = seen["long"]
    assert result is True and took < LONG, f"the long caller: {result!r} after {took:.2f} s"


def _unmounts_alone(scratch: str) -> dict[str, Any]:
    """Bounded unmounts of one path are never shared: each caller's umount2 is its own."""
    seen: dict[str, Any] = {}
    with hung_share(scratch) as (mnt, _control):
        beneath = os.path.join(mnt, "beneath")  # its lookup asks hangfs, which hangs
        before = _sys.probe_jobs()
        callers = Callers()
        for i in range(3):
            callers.start(f"unmount {i}", lambda: _sys.probe(_sys.PROBE_UNMOUNT, beneath, 0, 0.5, "unmount"))
        seen["results"] = sorted({result for _, result in callers.join().values()}, key=repr)
        seen["jobs"] = jobs_since(before)
    return seen


def test_unmounts_are_never_shared(in_ns: Any) -> None:
    seen = in_ns(_unmounts_alone)
    print(f"unmounts: {seen}")
    assert seen["results"] == [(CorruptedMountError.__name__, errno.ETIMEDOUT)]
    assert seen["jobs"] == (3, 0)  # all three hung at once, each on a probe of its own
