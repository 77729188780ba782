"""mountkit.watch in the 6.1 guest: no fanotify mount events there, so "auto" is the poll backend,
and it loses nothing in a 1,000-mount burst (scenarios shared with tests/privileged/test_watch.py).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

import mountkit
from mountkit.errors import UnsupportedError
from tests.support.watchutil import (
    LIFECYCLE,
    MOVE_TREE,
    WHOLE_NAMESPACE,
    burst_concurrent,
    lifecycle,
    move_tree,
    whole_namespace,
)

pytestmark = pytest.mark.privileged


def _kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int(minor)


def _backends(scratch: str) -> str:
    try:
        mountkit.watch(scratch, backend="fanotify").close()
    except UnsupportedError:
        pass
    else:
        raise AssertionError("fanotify mount events on a kernel before 6.15")
    with mountkit.watch(scratch) as w:
        return w.backend


def test_auto_falls_back_to_poll(in_ns: Any) -> None:
    if _kernel() >= (6, 15):
        pytest.skip(f"kernel {os.uname().release} has fanotify mount events")
    assert in_ns(_backends) == "poll"


def test_poll_lifecycle(in_ns: Any) -> None:
    assert in_ns(lifecycle, "poll") == LIFECYCLE


def test_poll_move_carries_submounts(in_ns: Any) -> None:
    assert in_ns(move_tree, "poll") == MOVE_TREE


def test_poll_burst_loses_no_event(in_ns: Any) -> None:
    burst = in_ns(functools.partial(burst_concurrent, between_phases=True), "poll")
    assert burst.attached == burst.targets
    assert burst.detached == burst.targets


def test_poll_whole_namespace(in_ns: Any) -> None:
    assert in_ns(whole_namespace, "poll") == WHOLE_NAMESPACE
