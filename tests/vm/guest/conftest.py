"""Inside the NFS test guest: the server and export the guest init set up."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.nfsserver import Filestore, filestore_emulator

SERVER = os.environ.get("NFSGUEST_SERVER", "127.0.0.1")
EXPORT = os.environ.get("NFSGUEST_EXPORT", "/srv/nfs")


@pytest.fixture
def nfs_server() -> str:
    return SERVER


@pytest.fixture
def export_dir(request: pytest.FixtureRequest) -> str:
    """A fresh subdirectory of the export for one test (the export itself is the guest's tmpfs)."""
    path = os.path.join(EXPORT, request.node.name.replace("[", "-").replace("]", ""))
    os.makedirs(path)
    return path


@pytest.fixture
def filestore(request: pytest.FixtureRequest) -> Iterator[Filestore]:
    """The Filestore emulator whose instances are real NFS servers (share dirs under the export tmpfs)."""
    root = os.path.join(EXPORT, "instances-" + request.node.name.replace("[", "-").replace("]", ""))
    with filestore_emulator(root) as emulated:
        yield emulated
