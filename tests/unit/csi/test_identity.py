"""Identity: plugin info, capabilities per mode, Probe readiness."""

from __future__ import annotations

import pytest

from csi.identity import IdentityServicer
from csi.proto import csi_pb2

Service = csi_pb2.PluginCapability.Service


def services(identity: IdentityServicer) -> set[int]:
    caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), None).capabilities
    return {c.service.type for c in caps if c.HasField("service")}


def test_info_and_capabilities() -> None:
    identity = IdentityServicer("a.b", "1", controller=True)
    info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), None)
    assert (info.name, info.vendor_version) == ("a.b", "1")
    assert services(identity) == {Service.CONTROLLER_SERVICE, Service.VOLUME_ACCESSIBILITY_CONSTRAINTS}
    assert services(IdentityServicer("a.b", "1", controller=False)) == set()
    with pytest.raises(ValueError):
        IdentityServicer("", "1", controller=False)


def test_probe_reports_failing_checks_as_not_ready() -> None:
    def broken() -> str | None:
        raise OSError("no kubelet root")

    identity = IdentityServicer("a.b", "1", controller=False, checks=[broken])
    probe = identity.Probe(csi_pb2.ProbeRequest(), None)
    assert probe.HasField("ready") and probe.ready.value is False
    ok = IdentityServicer("a.b", "1", controller=False, checks=[lambda: None])
    assert ok.Probe(csi_pb2.ProbeRequest(), None).ready.value is True
