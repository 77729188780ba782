"""csi-sanity's "Identity Service" cases (pkg/sanity/identity.go), one test each."""

from __future__ import annotations

import re

import pytest

from csi.proto import csi_pb2
from tests.support.sanityutil import TestContext

pytestmark = pytest.mark.privileged

_Service = csi_pb2.PluginCapability.Service
_Expansion = csi_pb2.PluginCapability.VolumeExpansion


def test_get_plugin_capabilities_should_return_appropriate_capabilities(sc: TestContext) -> None:
    response = sc.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
    assert response.capabilities
    for cap in response.capabilities:
        kind = cap.WhichOneof("type")
        if kind == "service":
            assert cap.service.type in (
                _Service.CONTROLLER_SERVICE,
                _Service.VOLUME_ACCESSIBILITY_CONSTRAINTS,
                _Service.GROUP_CONTROLLER_SERVICE,
            )
        else:
            assert kind == "volume_expansion"
            assert cap.volume_expansion.type in (_Expansion.ONLINE, _Expansion.OFFLINE)


def test_probe_should_return_appropriate_information(sc: TestContext) -> None:
    response = sc.identity.Probe(csi_pb2.ProbeRequest())
    # --mode all on a working emulator: ready (csi-sanity accepts any value; we know the answer).
    assert response.HasField("ready") and response.ready.value


def test_get_plugin_info_should_return_appropriate_information(sc: TestContext) -> None:
    response = sc.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
    assert 0 < len(response.name) <= 63
    assert re.fullmatch(r"[a-zA-Z][A-Za-z0-9-\\.\\_]{0,61}[a-zA-Z]", response.name)
    assert response.vendor_version
