"""The CSI Controller service: Filestore instances as volumes, backups as snapshots.

Every RPC validates first, then takes the per-volume lock, then talks to the
cloud.  Creation is idempotent by name (the instance id is derived from it),
deletion is idempotent by id, and a long-running cloud operation that outlasts
``operation_timeout`` surfaces as a retryable DEADLINE_EXCEEDED: the CO calls
again and finds the instance (or backup) in progress or done.

The servicer is put together from one class per group of RPCs, each in its own module (as
gcp-filestore-csi-driver keeps controller.go, multishare_controller.go and controller_unimpl.go):
:class:`~csi.controller.volumes.VolumeRpcs`, :class:`~csi.controller.snapshots.SnapshotRpcs` (both on
:class:`~csi.controller.shares.ShareVolumes` and :class:`~csi.controller.base.ControllerBase`) and
:class:`~csi.controller.unimplemented.ControllerUnimplemented`.
"""

from __future__ import annotations

import grpc

from csi.controller.snapshots import SnapshotRpcs
from csi.controller.unimplemented import ControllerUnimplemented
from csi.controller.volumes import VolumeRpcs
from csi.proto import csi_pb2

_RPC = csi_pb2.ControllerServiceCapability.RPC
CONTROLLER_CAPABILITIES = (
    _RPC.CREATE_DELETE_VOLUME,
    _RPC.EXPAND_VOLUME,
    _RPC.CREATE_DELETE_SNAPSHOT,
    _RPC.LIST_SNAPSHOTS,
    _RPC.LIST_VOLUMES,
    _RPC.MODIFY_VOLUME,
    # As the node service says: a CO then passes ReadWriteOnce and ReadWriteOncePod to CreateVolume as
    # SINGLE_NODE_MULTI_WRITER and SINGLE_NODE_SINGLE_WRITER, not both as SINGLE_NODE_WRITER (CSI spec).
    _RPC.SINGLE_NODE_MULTI_WRITER,
)
_CAPABILITIES_RESPONSE = csi_pb2.ControllerGetCapabilitiesResponse(
    capabilities=[
        csi_pb2.ControllerServiceCapability(rpc=_RPC(type=kind)) for kind in CONTROLLER_CAPABILITIES
    ]
)


class ControllerServicer(VolumeRpcs, SnapshotRpcs, ControllerUnimplemented):
    """Provisions Filestore instances (one share each) and backups through a
    :class:`~csi.cloud.FilestoreCloud`, and shares of multishare instances through a
    :class:`~csi.cloud.MultishareCloud`
    (see :mod:`csi.controller.multishare`)."""

    def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        return _CAPABILITIES_RESPONSE
