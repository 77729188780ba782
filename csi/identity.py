"""The CSI Identity service: who the plugin is, what it offers, whether it is ready."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import grpc
from google.protobuf import wrappers_pb2

from csi.proto import csi_pb2, csi_pb2_grpc

log = logging.getLogger(__name__)

#: A readiness check: returns None when ready, else says what is missing (or raises).
Check = Callable[[], str | None]

_Service = csi_pb2.PluginCapability.Service
_Expansion = csi_pb2.PluginCapability.VolumeExpansion


class IdentityServicer(csi_pb2_grpc.IdentityServicer):
    """Identity for one driver process; ``controller`` says whether it runs the Controller service."""

    def __init__(self, name: str, version: str, *, controller: bool, checks: Sequence[Check] = ()) -> None:
        if not name or not version:
            raise ValueError("a CSI plugin needs a non-empty name and vendor version")
        self._name = name
        self._version = version
        self._controller = controller
        self._checks = list(checks)
        self._ready = False
        self._mutex = threading.Lock()

    def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=self._name, vendor_version=self._version)

    def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        caps = []
        if self._controller:
            for kind in (_Service.CONTROLLER_SERVICE, _Service.VOLUME_ACCESSIBILITY_CONSTRAINTS):
                caps.append(csi_pb2.PluginCapability(service=_Service(type=kind)))
        caps.append(csi_pb2.PluginCapability(volume_expansion=_Expansion(type=_Expansion.ONLINE)))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=caps)

    def Probe(self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=self.ready()))

    def ready(self) -> bool:
        """True once every check has passed; checks are not run again after that."""
        with self._mutex:
            if not self._ready:
                problem = _first_problem(self._checks)
                if problem:
                    log.info("not ready: %s", problem)
                self._ready = problem is None
            return self._ready


def _first_problem(checks: Sequence[Check]) -> str | None:
    for check in checks:
        try:
            problem = check()
        except Exception as exc:  # noqa: BLE001 - a failing check means "not ready", never a failed Probe
            problem = f"{getattr(check, '__name__', 'check')} failed: {exc}"
        if problem:
            return problem
    return None
