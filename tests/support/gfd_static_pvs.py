"""gcp-filestore-csi-driver's static PersistentVolumes, and the requests kubelet makes of them.

The table of tests/unit/csi/test_gfd_static_pv.py (FakeMounter) and
tests/vm/guest/test_gfd_static_pv_nfs.py (real NFS); the former says where each PV comes from.
"""

from __future__ import annotations

from typing import Any

import yaml

from csi.proto import csi_pb2

_Mode = csi_pb2.VolumeCapability.AccessMode
#: The access mode kubelet sends for a PV's first access mode.
ACCESS_MODE = {"ReadWriteMany": _Mode.MULTI_NODE_MULTI_WRITER, "ReadWriteOnce": _Mode.SINGLE_NODE_WRITER}

GFD_STATIC_PVS = {
    "examples/kubernetes/pre-provision/preprov-pv.yaml": """
spec:
  accessModes: [ReadWriteMany]
  csi:
    driver: filestore.csi.storage.gke.io
    volumeHandle: "modeInstance/us-central1-c/my-filestore/share_1"
    volumeAttributes:
      ip: 10.0.0.2
      volume: share_1
""",
    "examples/kubernetes/fsgroup/preprov-pv.yaml": """
spec:
  accessModes: [ReadWriteOnce]
  csi:
    driver: filestore.csi.storage.gke.io
    fsType: "nfs"
    volumeHandle: "modeInstance/us-central1-c/my-filestore/vol1"
    volumeAttributes:
      ip: 10.0.0.2
      volume: vol1
""",
    "examples/kubernetes/cross-cluster/preprov-pv-clusterB.yaml": """
spec:
  accessModes: [ReadWriteMany]
  csi:
    driver: "filestore.csi.storage.gke.io"
    volumeHandle: "modeInstance/us-central1-c/my-filestore/vol1"
    volumeAttributes:
      ip: 10.0.0.2
      volume: vol1
""",
    # A PV GFD provisioned (docs/kubernetes/resize.md, topology.md, cross-cluster.md): a swap of
    # drivers must keep staging these, csi-provisioner's fsType ext4 and identity key included.
    "docs/kubernetes/resize.md": """
spec:
  accessModes: [ReadWriteMany]
  csi:
    driver: filestore.csi.storage.gke.io
    fsType: ext4
    volumeAttributes:
      ip: 10.0.0.2
      storage.kubernetes.io/csiProvisionerIdentity: 1605236375597-8081-filestore.csi.storage.gke.io
      volume: vol1
    volumeHandle: modeInstance/us-central1-b/pvc-def880a7-b6a6-4b12-b8ad-4fa6d928c142/vol1
""",
}

#: ``spec.mountOptions`` as users add them to those PVs, and the NFS version each means.
MOUNT_OPTIONS = {
    "none": ([], "3", "nfs"),  # Filestore's default protocol
    "nfsvers=4.1": (["nfsvers=4.1"], "4.1", "nfs4"),
    "vers=3": (["vers=3"], "3", "nfs"),
    "vers=4.1,hard": (["vers=4.1", "hard"], "4.1", "nfs4"),
}


def static_pv(source: str, mount_options: list[str]) -> dict[str, Any]:
    """The PV from ``source`` with ``spec.mountOptions`` set."""
    pv: dict[str, Any] = yaml.safe_load(GFD_STATIC_PVS[source])
    pv["spec"]["mountOptions"] = mount_options
    return pv


def pv_capability(spec: dict[str, Any]) -> csi_pb2.VolumeCapability:
    """The capability kubelet sends for a PV's ``spec``: its mountOptions, fsType and first access mode."""
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(
            fs_type=spec["csi"].get("fsType", ""), mount_flags=spec["mountOptions"]
        ),
        access_mode=_Mode(mode=ACCESS_MODE[spec["accessModes"][0]]),
    )
