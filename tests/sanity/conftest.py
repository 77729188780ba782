"""csi-sanity (kubernetes-csi/csi-test v5, ``pkg/sanity``) as pytest fixtures: its TestContext and Resources.

The whole driver runs as csi-sanity would find it: ``filestore-csi-driver --mode all --cloud emulator``
on a unix socket, in a private mount namespace of its own (``csiutil.run_driver``), with the sanity
config docs/conformance.md gives: ``--csi.testvolumesize=107374182400`` (the smallest tier minimum is 100 GiB)
and ``--csi.mountdir``/``--csi.stagingdir`` beneath the driver's ``--kubelet-root``.

``sc`` is one test's context: csi-sanity's ``Setup`` makes the mount and staging directories (only the
last component, as ``os.Mkdir`` does), and after the test its ``Resources.Cleanup`` unpublishes,
unstages and deletes, LIFO, every volume and snapshot the test made, each call OK (or NOT_FOUND for
the node calls); then ``Teardown`` removes both directories.  We also check that nothing is left
mounted under the kubelet root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.csiutil import Driver, run_driver
from tests.support.sanityutil import TestContext, sanity_context


@pytest.fixture(scope="session")
def sanity_driver() -> Iterator[Driver]:
    """One driver for the session, as csi-sanity connects once per process."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the driver in a private mount namespace")
    if shutil.which("nsenter") is None or shutil.which("findmnt") is None:
        pytest.skip("needs util-linux nsenter and findmnt")
    with run_driver("--cloud=emulator", "--probe-timeout=3", timeout=60) as driver:
        yield driver


@pytest.fixture
def sc(sanity_driver: Driver) -> Iterator[TestContext]:
    """Setup (mkdir of the mount and staging dirs), the test, Resources.Cleanup, Teardown."""
    with sanity_context(sanity_driver) as context:
        yield context
