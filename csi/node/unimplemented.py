"""The node RPCs this driver does not offer (nor advertise): apart, as gcp-filestore-csi-driver's
node_unimpl.go keeps them."""

from __future__ import annotations

import grpc

from csi.errors import CsiError
from csi.proto import csi_pb2, csi_pb2_grpc


class NodeUnimplemented(csi_pb2_grpc.NodeServicer):
    """UNIMPLEMENTED with a reason, for the capabilities the node does not advertise."""

    def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeExpandVolumeResponse:
        """A Filestore share grows on the server; there is nothing to do on the node (not advertised)."""
        raise CsiError(
            grpc.StatusCode.UNIMPLEMENTED, "NodeExpandVolume is not supported: shares grow server-side"
        )
