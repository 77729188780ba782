"""The controller RPCs this driver does not offer (nor advertise): apart, as gcp-filestore-csi-driver's
controller_unimpl.go keeps them."""

from __future__ import annotations

import grpc

from csi.errors import CsiError
from csi.proto import csi_pb2_grpc


class ControllerUnimplemented(csi_pb2_grpc.ControllerServicer):
    """UNIMPLEMENTED with the RPC's name, for the capabilities the controller does not advertise."""

    def _unimplemented(self, what: str) -> CsiError:
        return CsiError(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by this driver")

    def ControllerPublishVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerPublishVolume")

    def ControllerUnpublishVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerUnpublishVolume")

    def GetCapacity(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("GetCapacity")

    def ControllerGetVolume(self, request: object, context: grpc.ServicerContext) -> None:
        raise self._unimplemented("ControllerGetVolume")
