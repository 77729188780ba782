"""Deadline-bounded probes: answers pass through, hangs become CorruptedMountError and are counted."""

from __future__ import annotations

import errno
import threading

import pytest

from mountkit import probe
from mountkit.errors import CorruptedMountError, MountError


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

    release.set()  # the "filesystem" answers at last: the thread ends and is no longer hung
    for thread in threading.enumerate():
        if thread.name == "mountkit-probe:statfs":
            thread.join(5)
    assert probe.hung_probes() == before_hung
    assert probe.abandoned_probes() == before_total + 1


def test_probe_threads_are_daemons_so_a_hang_never_blocks_exit() -> None:
    seen: list[bool] = []
    probe.run_with_deadline(lambda: seen.append(threading.current_thread().daemon), 5.0, "stat", "/x")
    assert seen == [True]
