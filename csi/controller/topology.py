"""Where a new volume goes: the zones of a CreateVolume's accessibility requirements."""

from __future__ import annotations

from collections.abc import Iterable

from csi import validation
from csi.filestore import (
    TOPOLOGY_KEY_ZONE,
)
from csi.proto import csi_pb2


def zones(topologies: Iterable[csi_pb2.Topology], field_name: str) -> list[str]:
    found = []
    for topology in topologies:
        unknown = set(topology.segments) - {TOPOLOGY_KEY_ZONE}
        if unknown:
            raise validation.invalid(f"{field_name}: unknown topology key(s) {sorted(unknown)}")
        zone = topology.segments.get(TOPOLOGY_KEY_ZONE, "")
        if not zone:
            raise validation.invalid(f"{field_name}: a topology has no {TOPOLOGY_KEY_ZONE}")
        found.append(validation.check_string(zone, field_name))
    return found


def pick_zone(requirement: csi_pb2.TopologyRequirement, own_zone: str) -> str:
    """The zone to create in: the first preferred, else the first requisite, else ``own_zone`` (--zone).

    Only the instance's location comes from topology: the volume itself is returned without
    accessible topology, because a Filestore instance is reachable from every zone of its
    network (as in gcp-filestore-csi-driver since its PR #150).
    """
    preferred = zones(requirement.preferred, "accessibility_requirements.preferred")
    requisite = zones(requirement.requisite, "accessibility_requirements.requisite")
    candidates = preferred + requisite + ([own_zone] if own_zone else [])
    if not candidates:
        raise validation.invalid("no zone: give accessibility_requirements or start the driver with --zone")
    return candidates[0]
