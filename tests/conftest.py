"""Shared test setup: privileged tests skip, with the reason, where root is missing.

No test may reach the real GCE metadata server (169.254.169.254): before any test module is
imported, a loopback :class:`MetadataServer` is started and GCE_METADATA_HOST / GCE_METADATA_IP
point at it, for this process and every driver it starts. It answers 404 until a test sets values
(the ``metadata_server`` fixture), so a lookup nobody planned fails at once instead of going out.

The ``in_ns`` and ``fake_mounter`` fixtures and the ``mount_ns`` marker come from mountkit's own pytest
plugin, :mod:`mountkit.testing` (entry point ``pytest11``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.support.metadata_server import MetadataServer

IS_ROOT = os.geteuid() == 0

# Speed is measured in bench/, never in tests: hypothesis's per-example deadline (200 ms) only made
# property tests fail on a loaded machine.
settings.register_profile("mountkit", deadline=None)
settings.load_profile("mountkit")

_METADATA: MetadataServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _METADATA
    _METADATA = MetadataServer()
    os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = _METADATA.host


def pytest_unconfigure(config: pytest.Config) -> None:
    if _METADATA is not None:
        _METADATA.close()


@pytest.fixture
def metadata_server() -> Iterator[MetadataServer]:
    """The loopback metadata server every test talks to, emptied before and after the test."""
    assert _METADATA is not None
    _METADATA.reset()
    yield _METADATA
    _METADATA.reset()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root to unshare a mount namespace and mount")
    for item in items:
        if "privileged" in item.keywords and not IS_ROOT:
            item.add_marker(skip_root)
