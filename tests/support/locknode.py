"""A client node of the lock-release guest test (tests/vm/guest/test_lock_release.py), run in its namespaces.

    python -m tests.support.locknode NAME IP INSTANCE_ID KUBECONFIG PROJECT ZONE VOLUME_ID FS_IP SHARE \
        hold|wait

It stages the NFSv3 volume through the driver's NodeServicer with lock release on (the stage records
the volume in the node's ConfigMap through the API at KUBECONFIG, and checks the node's statd), then
``hold`` takes an fcntl lock on ``db.lock`` in it, and ``wait`` reads one line from stdin, tries the
lock without blocking (``busy <errno>`` or ``free``) and then waits for it. Each step prints one line;
a blocked F_SETLKW prints nothing until granted. It then sleeps, holding the lock, until killed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time

from csi.lockrelease.kube import api_client
from csi.lockrelease.store import NodeLockInfo
from csi.locks import VolumeLocks
from csi.node import kubelet, nsm
from csi.node.service import NodeServicer
from csi.proto import csi_pb2
from csi.version import DEFAULT_DRIVER_NAME
from mountkit.mounter import Mounter

KUBELET_ROOT = "/run/kubelet"
STAGING = kubelet.staging_path(KUBELET_ROOT, DEFAULT_DRIVER_NAME, "vol")
_Mode = csi_pb2.VolumeCapability.AccessMode


def say(*words: str) -> None:
    print(*words, flush=True)


def stage(name: str, ip: str, instance_id: str, kubeconfig: str, project: str, zone: str,
          volume_id: str, fs_ip: str, share: str) -> None:  # fmt: skip
    os.makedirs(os.path.dirname(STAGING), exist_ok=True)
    lock_info = NodeLockInfo(api_client(kubeconfig), name, project, instance_id, ip)
    node = NodeServicer(
        name, zone, KUBELET_ROOT, Mounter(), VolumeLocks(), 10.0, lock_info, nsm.probe, "refuse"
    )
    capability = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=_Mode(mode=_Mode.MULTI_NODE_MULTI_WRITER)
    )
    context = {"ip": fs_ip, "volume": share, "fileProtocol": "NFS_V3", "supportLockRelease": "true"}
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=STAGING, volume_capability=capability, volume_context=context
    )
    node.NodeStageVolume(request, None)  # type: ignore[arg-type]


def main(argv: list[str]) -> None:
    *where, action = argv
    say("imported")
    stage(*where)
    with open("/proc/self/mountinfo") as table:
        say("staged", *[line.split(" - ")[1].split()[1] for line in table if " - nfs " in line])
    with open(os.path.join(STAGING, "db.lock"), "a+") as f:
        if action == "wait":
            sys.stdin.readline()
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                say("free")
            except OSError as exc:
                say("busy", errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        fcntl.lockf(f, fcntl.LOCK_EX)
        say("locked")
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
