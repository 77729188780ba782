"""The README's demo on real NFS: run inside the NFS test guest, every Filestore instance a real server.

    bash tools/demo.sh --nfs-guest          # boots the guest and runs this there

The Filestore emulator runs here with hooks that start one kernel NFS server per instance (see
tests/support/nfsserver.py); the demo then drives its whole lifecycle against it, so NodeStageVolume really
mounts NFS through mountkit.
"""

from __future__ import annotations

import os
import sys

from csi.demo import run_demo
from tests.support.nfsserver import filestore_emulator


def main() -> int:
    export = os.environ.get("NFSGUEST_EXPORT", "/srv/nfs")
    with filestore_emulator(os.path.join(export, "demo-instances")) as filestore:
        return run_demo(["--emulator-endpoint", filestore.endpoint, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
