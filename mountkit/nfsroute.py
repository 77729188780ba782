"""The local address the kernel would use to reach an NFS server, for ``clientaddr=`` (pyroute2).

Apart from :mod:`mountkit.nfs` so that parsing NFS sources and options needs neither pyroute2
nor netlink.
"""

from __future__ import annotations

import errno
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from mountkit.errors import MountError
from mountkit.nfsaddr import ip_address as _address


def client_address(server_ip: str) -> str:
    """The local address the kernel would use to reach ``server_ip``, for ``clientaddr=``.

    Asks the kernel's routing table (RTA_PREFSRC of ``ip route get``), falling
    back to the first address of the output interface.  A scoped IPv6
    address (``fe80::1%eth0``) is looked up on its interface.  Raises
    :class:`MountError` with the netlink errno (e.g. ENETUNREACH) when there is no route.
    """
    address = _address(server_ip, "server address")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    dst, _, scope = server_ip.partition("%")
    query: dict[str, object] = {"dst": dst, "family": family}
    if scope:
        query["oif"] = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    with IPRoute() as ipr:
        try:
            route = ipr.route("get", **query)[0]
        except (NetlinkError, OSError) as exc:
            code = getattr(exc, "code", None) or exc.errno or errno.ENETUNREACH
            raise MountError(code, "nfs client address", server_ip, detail="no route to the server") from None
        source = route.get_attr("RTA_PREFSRC")
        if source:
            return str(source)
        for message in ipr.get_addr(family=family, index=route.get_attr("RTA_OIF")):
            local = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
            if local:
                return str(local)
    raise MountError(
        errno.EADDRNOTAVAIL, "nfs client address", server_ip, detail="no local address on the route"
    )
