"""gcp-filestore-csi-driver's static PersistentVolumes stage and publish unchanged.

Each PV below is one of GFD's own (kubernetes-sigs/gcp-filestore-csi-driver at 2edb466, its
examples/kubernetes/ and the PVs its docs/kubernetes/ show), placeholders filled in.  Users write
such PVs by hand, usually without ``fileProtocol`` and often with ``mountOptions`` naming the NFS
version; each is staged and published as kubelet sends it (``spec.mountOptions`` as the
capability's mount flags, ``spec.csi.fsType`` as its fs_type), against a FakeMounter, and the NFS
version and options that reach mountkit are checked.  (GFD's examples/kubernetes/windows/pv.yaml is
an SMB share for Windows nodes, which this Linux driver does not serve.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi.locks import VolumeLocks
from csi.node import NodeServicer
from csi.proto import csi_pb2
from mountkit.fake import FakeMounter

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


@pytest.mark.parametrize("options", sorted(MOUNT_OPTIONS))
@pytest.mark.parametrize("source", sorted(GFD_STATIC_PVS))
def test_gfd_static_pv_stages_and_publishes(tmp_path: Path, source: str, options: str) -> None:
    flags, version, fstype = MOUNT_OPTIONS[options]
    spec = static_pv(source, flags)["spec"]
    csi = spec["csi"]
    capability = pv_capability(spec)
    root = tmp_path / "kubelet"
    staging = root / "plugins" / "kubernetes.io" / "csi" / "filestore.csi.storage.gke.io" / "hash" / "globalmount"
    target = root / "pods" / "uid-1" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    os.makedirs(staging.parent)
    os.makedirs(target.parent)
    mounter = FakeMounter()
    node = NodeServicer("node-1", "us-central1-c", str(root), mounter, VolumeLocks(), 2.0)

    no_context: Any = None  # the servicer never uses the gRPC context
    node.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(
        volume_id=csi["volumeHandle"], staging_target_path=str(staging), volume_capability=capability,
        volume_context=csi["volumeAttributes"],
    ), no_context)
    node.NodePublishVolume(csi_pb2.NodePublishVolumeRequest(
        volume_id=csi["volumeHandle"], staging_target_path=str(staging), target_path=str(target),
        volume_capability=capability, volume_context=csi["volumeAttributes"], readonly=csi.get("readOnly", False),
    ), no_context)

    share = f"{csi['volumeAttributes']['ip']}:/{csi['volumeAttributes']['volume']}"
    [mount] = [c for c in mounter.calls if c[0] == "mount"]
    assert mount[1:4] == (share, str(staging), fstype)
    assert str(mount[4]).split(",") == [f"vers={version}", *flags]
    staged, published = mounter.list().find(str(staging)), mounter.list().find(str(target))
    assert staged is not None and staged.source == share
    assert published is not None and published.source == share and not published.readonly
