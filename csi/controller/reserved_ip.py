"""Reserved-IP allocation: carve a free block for a new instance out of ``reserved-ipv4-cidr``.

Blocks already used by instances on the same network are taken from the cloud; blocks handed to
creates still in flight are held here, so two concurrent creates never get the same block.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from csi import validation
from csi.cloud import FilestoreCloud, Instance
from csi.errors import CsiError
from csi.filestore import IP_RANGE_PREFIX, IP_RANGE_PREFIX_DEFAULT

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ReservedIpAllocator:
    """Hands out non-overlapping blocks of a CIDR range, one per instance being created."""

    def __init__(self, cloud: FilestoreCloud) -> None:
        self._cloud = cloud
        self._mutex = threading.Lock()
        self._reserving: set[_Network] = set()

    @contextmanager
    def reserve(self, wanted: Instance, cidr: str | None) -> Iterator[str | None]:
        """A free block of ``cidr`` for the instance, held against concurrent creates until it exists."""
        if not cidr:
            yield None
            return
        prefix = IP_RANGE_PREFIX.get(wanted.tier, IP_RANGE_PREFIX_DEFAULT)
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen > prefix:
            raise validation.invalid(f"parameters: reserved-ipv4-cidr {cidr} is smaller than a /{prefix}")
        used = [
            ipaddress.ip_network(other.reserved_ip_range, strict=False)
            for other in self._cloud.list_instances("-")
            if other.network == wanted.network
            and other.reserved_ip_range
            and is_cidr(other.reserved_ip_range)
        ]
        with self._mutex:
            taken = used + list(self._reserving)
            block = next(
                (
                    sub
                    for sub in network.subnets(new_prefix=prefix)
                    if not any(sub.version == t.version and sub.overlaps(t) for t in taken)
                ),
                None,
            )
            if block is None:
                raise CsiError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"no free /{prefix} block left in {cidr}")
            self._reserving.add(block)
        try:
            yield str(block)
        finally:
            with self._mutex:
                self._reserving.discard(block)


def is_cidr(text: str) -> bool:
    """Whether ``text`` is an address block written with a prefix length (``10.0.0.0/24``)."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text
