"""NodeStageVolume of a share the NFS server does not have: the spec's "Volume does not exist", over
real NFS in the guest, and nothing left mounted or made."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest

from csi.proto import csi_pb2
from tests.support.csiutil import CAP, Driver, mount_rows, run_driver
from tests.vm.guest.conftest import SERVER

pytestmark = pytest.mark.privileged


@pytest.fixture
def driver() -> Iterator[Driver]:
    """A long probe timeout (the mount's deadline is three of them): NFSv4 answers a missing path
    only after mounting the server's root and walking it, which outlasted 60 s under the emulated CPU."""
    with run_driver("--mode=node", "--probe-timeout=60", timeout=300) as running:
        yield running


def test_stage_of_a_missing_share_is_not_found_and_leaves_nothing(driver: Driver) -> None:
    """NFSv4.1 names a missing path ENOENT.  (NFSv3 asks mountd, which refuses a path outside every
    export with EACCES, indistinguishable from an export that refuses this client: that stays INTERNAL.)"""
    staging = driver.staging("pv-missing")
    with pytest.raises(grpc.RpcError) as info:
        driver.node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id="vol",
                staging_target_path=staging,
                volume_capability=CAP,
                volume_context={"ip": SERVER, "volume": "no_such_share", "fileProtocol": "NFS_V4_1"},
            ),
            timeout=400,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
    assert "no_such_share" in (info.value.details() or "")
    assert mount_rows(driver) == {} and not os.path.lexists(staging)
