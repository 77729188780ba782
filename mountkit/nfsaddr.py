"""IP addresses in NFS mount data, checked one way for :mod:`mountkit.nfs` and :mod:`mountkit.nfsroute`.

Its own module so that nfsroute (pyroute2) and nfs (pure) share it without importing each other.
"""

from __future__ import annotations

import ipaddress

from mountkit.errors import InvalidOptionError

#: the operation an error about NFS options names
OPTIONS_OP = "nfs options"


def ip_address(text: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``text`` as an IP address; InvalidOptionError naming ``what`` (and at most 64 characters of it)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidOptionError(OPTIONS_OP, f"{what} is not an IP address: {text[:64]!r}") from None
