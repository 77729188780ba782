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

from csi.locks import VolumeLocks
from csi.node import kubelet
from csi.node.service import NodeServicer
from csi.proto import csi_pb2
from csi.version import DEFAULT_DRIVER_NAME
from mountkit.fake import FakeMounter
from tests.support.gfd_static_pvs import GFD_STATIC_PVS, MOUNT_OPTIONS, pv_capability, static_pv


@pytest.mark.parametrize("options", sorted(MOUNT_OPTIONS))
@pytest.mark.parametrize("source", sorted(GFD_STATIC_PVS))
def test_gfd_static_pv_stages_and_publishes(tmp_path: Path, source: str, options: str) -> None:
    flags, version, fstype = MOUNT_OPTIONS[options]
    spec = static_pv(source, flags)["spec"]
    csi = spec["csi"]
    capability = pv_capability(spec)
    root = tmp_path / "kubelet"
    staging = Path(kubelet.staging_path(str(root), DEFAULT_DRIVER_NAME, "hash"))
    target = Path(kubelet.publish_target(str(root), "uid-1", "pv"))
    os.makedirs(staging.parent)
    os.makedirs(target.parent)
    mounter = FakeMounter()
    node = NodeServicer("node-1", "us-central1-c", str(root), mounter, VolumeLocks(), 2.0)

    no_context: Any = None  # the servicer never uses the gRPC context
    node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=csi["volumeHandle"],
            staging_target_path=str(staging),
            volume_capability=capability,
            volume_context=csi["volumeAttributes"],
        ),
        no_context,
    )
    node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=csi["volumeHandle"],
            staging_target_path=str(staging),
            target_path=str(target),
            volume_capability=capability,
            volume_context=csi["volumeAttributes"],
            readonly=csi.get("readOnly", False),
        ),
        no_context,
    )

    share = f"{csi['volumeAttributes']['ip']}:/{csi['volumeAttributes']['volume']}"
    [mount] = [c for c in mounter.calls if c[0] == "mount"]
    assert mount[1:4] == (share, str(staging), fstype)
    assert str(mount[4]).split(",") == [f"vers={version}", *flags]
    staged, published = mounter.list().find(str(staging)), mounter.list().find(str(target))
    assert staged is not None and staged.source == share
    assert published is not None and published.source == share and not published.readonly
