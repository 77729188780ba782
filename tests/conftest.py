"""Shared test setup: privileged tests skip, with the reason, where root is missing."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root to unshare a mount namespace and mount")
    for item in items:
        if "privileged" in item.keywords and not IS_ROOT:
            item.add_marker(skip_root)


@pytest.fixture
def in_ns():  # type: ignore[no-untyped-def]
    """The runner: ``in_ns(fn, *args)`` calls ``fn(scratch_dir, *args)`` in a private namespace."""
    from nsutil import run_in_private_ns

    return run_in_private_ns
