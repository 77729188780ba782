"""Deadline-bounded probes: answers pass through, hangs become CorruptedMountError and are counted."""

from __future__ import annotations

import errno
import os
import pathlib
import threading
import time
from collections.abc import Callable

import pytest

from mountkit import _sys, probe
from mountkit.errors import CorruptedMountError, MountError
from mountkit.mounter import Mounter, is_mountpoint


def test_result_comes_back() -> None:
    assert probe.run_with_deadline(lambda: 42, 5.0, "stat", "/x") == 42


def test_the_probes_own_error_is_reraised() -> None:
    def fail() -> None:
        raise MountError(errno.ESTALE, "stat", "/x")

    with pytest.raises(MountError) as info:
        probe.run_with_deadline(fail, 5.0, "stat", "/x")
    assert info.value.errno == errno.ESTALE


def test_a_hung_probe_is_abandoned_counted_and_reported_as_corrupted() -> None:
    release = threading.Event()
    before_total, before_hung = probe.abandoned_probes(), probe.hung_probes()
    with pytest.raises(CorruptedMountError) as info:
        probe.run_with_deadline(release.wait, 0.05, "statfs", "/mnt/dead")
    err = info.value
    assert (err.errno, err.operation, err.filename) == (errno.ETIMEDOUT, "statfs", "/mnt/dead")
    assert "ETIMEDOUT" in str(err) and "/mnt/dead" in str(err)
    assert probe.abandoned_probes() == before_total + 1
    assert probe.hung_probes() == before_hung + 1

    release.set()  # the "filesystem" answers at last: the worker is free again, no longer hung
    _wait_for(lambda: probe.hung_probes() == before_hung)
    assert probe.abandoned_probes() == before_total + 1


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_probe_threads_are_daemons_so_a_hang_never_blocks_exit() -> None:
    seen: list[bool] = []
    probe.run_with_deadline(lambda: seen.append(threading.current_thread().daemon), 5.0, "stat", "/x")
    assert seen == [True]


def test_workers_are_reused_not_started_per_probe() -> None:
    names = {probe.run_with_deadline(lambda: threading.get_ident(), 5.0, "stat", "/x") for _ in range(200)}
    assert len(names) <= 2  # one worker serves them all (two if one was finishing its bookkeeping)


def test_a_stuck_worker_is_replaced_so_other_probes_still_answer() -> None:
    release = threading.Event()
    try:
        stuck = [threading.Thread(target=_hang_once, args=(release,)) for _ in range(4)]
        for t in stuck:
            t.start()
        _wait_for(lambda: probe.hung_probes() >= 4)
        start = time.monotonic()
        assert probe.run_with_deadline(lambda: "alive", 5.0, "stat", "/healthy") == "alive"
        assert time.monotonic() - start < 1.0  # not queued behind the stuck ones
    finally:
        release.set()
        for t in stuck:
            t.join(5)


def _hang_once(release: threading.Event) -> None:
    with pytest.raises(CorruptedMountError):
        probe.run_with_deadline(release.wait, 0.05, "statfs", "/mnt/dead")


def test_a_forked_child_gets_a_pool_of_its_own() -> None:
    probe.run_with_deadline(lambda: None, 5.0, "stat", "/x")  # the parent has a worker now
    _sys.probe(_sys.PROBE_MOUNT_ROOT, "/", 0, 5.0, "is_mountpoint")
    pid = os.fork()
    if pid == 0:  # the parent's workers do not exist here: a probe must start its own
        ok = probe.run_with_deadline(lambda: 7, 2.0, "stat", "/x") == 7
        ok = ok and _sys.probe(_sys.PROBE_MOUNT_ROOT, "/", 0, 2.0, "is_mountpoint") is True
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0


def test_the_c_probes_answer_like_the_direct_calls(tmp_path: pathlib.Path) -> None:
    assert is_mountpoint("/", timeout=5.0) is True
    assert is_mountpoint(tmp_path, timeout=5.0) is is_mountpoint(tmp_path)
    assert is_mountpoint(tmp_path / "missing", timeout=5.0) is False
    assert Mounter(probe_timeout=5.0).is_live_mountpoint("/") is True
    assert Mounter(probe_timeout=5.0).is_live_mountpoint(tmp_path / "missing") is False
    with pytest.raises(MountError) as info:
        Mounter(probe_timeout=5.0).check(tmp_path / "missing")
    assert (info.value.errno, info.value.operation) == (errno.ENOENT, "check")


def test_an_answer_is_never_reused_each_later_probe_asks_afresh() -> None:
    started, joined = _sys.probe_jobs()
    for _ in range(20):
        assert _sys.probe(_sys.PROBE_STATFS, "/", 0, 5.0, "check") is None
    assert _sys.probe_jobs() == (started + 20, joined)


def test_concurrent_probes_each_get_their_answer_from_a_probe_of_their_own_or_a_shared_one(
    tmp_path: pathlib.Path,
) -> None:
    calls, missing = 64, str(tmp_path / "missing")
    barrier = threading.Barrier(calls)
    seen: list[object] = []

    def call(i: int) -> None:
        barrier.wait()
        try:
            seen.append(_sys.probe(_sys.PROBE_STATFS, "/" if i % 2 else missing, 0, 5.0, "check"))
        except MountError as exc:
            seen.append(exc.errno)

    started, joined = _sys.probe_jobs()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(seen, key=repr) == sorted([None] * (calls // 2) + [errno.ENOENT] * (calls // 2), key=repr)
    now_started, now_joined = _sys.probe_jobs()
    assert now_started - started + now_joined - joined == calls  # each call started a probe or joined one
    assert now_started > started
