"""csi-sanity's node lifecycle cases over real NFS (tests/sanity runs them with a tmpfs stand-in).

"Node Service should work" and "should be idempotent" (IdempotentCount 10): CreateVolume with the
node's topology, NodeStageVolume and NodePublishVolume each ``count`` times, NodeGetVolumeStats at
the target, then csi-sanity's cleanup; here every stage is a real NFS mount of the instance's own
kernel NFS server, and nothing may be left mounted afterwards.
"""

from __future__ import annotations

import pytest

from tests.support.csiutil import run_driver
from tests.support.nfsserver import Filestore
from tests.support.sanityutil import IDEMPOTENT_COUNT, run_controller_test, sanity_context

pytestmark = pytest.mark.privileged


def test_node_service_should_work_and_be_idempotent_over_real_nfs(filestore: Filestore) -> None:
    with run_driver(
        "--cloud=emulator", f"--emulator-endpoint={filestore.endpoint}", "--probe-timeout=5"
    ) as driver:
        for count in (1, IDEMPOTENT_COUNT):
            with sanity_context(driver) as sc:
                run_controller_test(sc, count, stand_in=False)
    assert not filestore.servers  # every instance deleted by the cleanup
