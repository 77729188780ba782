"""RELEASE_ALL_LOCKS: ask a Filestore instance to drop every NLM lock a (dead) node held.

The wire protocol is gcp-filestore-csi-driver's (``pkg/releaselock/rpc.go``): the portmapper at
TCP 111 (program 100000 v2, GETPORT) names the port of NLM (100021 v4, TCP); on that port the
instance serves program 200002 v1, whose procedure 1 takes the node's IPv4 address as one XDR
unsigned int (the address's four bytes, big-endian: 10.0.0.1 is ``0a 00 00 01``) and answers a status
word, 0 for success. GFD never reads that word (its Go struct field is unexported, which XDR decoding
skips); we do, so a refusal leaves the lock record in place to be retried.
"""

from __future__ import annotations

import ipaddress
import struct

from csi.lockrelease import oncrpc

PMAP_PORT = 111
PMAP_PROG = 100000
PMAP_VERS = 2
PMAPPROC_GETPORT = 3
IPPROTO_TCP = 6

NLM_PROG = 100021
NLM_VERS = 4

LOCK_RELEASE_PROG = 200002
LOCK_RELEASE_VERS = 1
RELEASE_ALL_LOCKS = 1

#: Seconds for each connect, send and read (GFD's connectionTimeout).
TIMEOUT = 5.0


class LockReleaseError(oncrpc.RpcError):
    """The instance did not confirm that it released the node's locks."""


def _one_uint(results: bytes, what: str) -> int:
    if len(results) < 4:
        raise LockReleaseError(f"{what}: the reply holds no result")
    (value,) = struct.unpack_from(">I", results)
    return int(value)


def get_port(host: str, prog: int, vers: int, *, pmap_port: int = PMAP_PORT, timeout: float = TIMEOUT) -> int:
    """The TCP port the portmapper at ``host`` gives for ``prog`` ``vers``; LockReleaseError when none."""
    args = struct.pack(">4I", prog, vers, IPPROTO_TCP, 0)
    results = oncrpc.call(host, pmap_port, PMAP_PROG, PMAP_VERS, PMAPPROC_GETPORT, args, timeout=timeout)
    port = _one_uint(results, f"portmapper at {host}:{pmap_port}")
    if not 0 < port < 65536:
        raise LockReleaseError(
            f"the portmapper at {host}:{pmap_port} has no TCP port for program {prog} v{vers}"
        )
    return port


def release_all_locks(
    filestore_ip: str, node_ip: str, *, pmap_port: int = PMAP_PORT, timeout: float = TIMEOUT
) -> None:
    """Release every lock ``node_ip`` holds on the instance at ``filestore_ip``; raises when not done.

    ``pmap_port`` is the portmapper's port: 111 on Filestore, another only in tests. Raises
    ValueError for a node address that is not IPv4, LockReleaseError (an OSError) when the instance
    cannot be reached or does not answer status 0 (RpcError, an OSError, for a refused or malformed
    exchange). Releasing twice is harmless: the second call finds no locks.
    """
    ipaddress.ip_address(filestore_ip)  # a host name would send us to DNS: GFD refuses it too
    node = ipaddress.IPv4Address(node_ip)
    port = get_port(filestore_ip, NLM_PROG, NLM_VERS, pmap_port=pmap_port, timeout=timeout)
    results = oncrpc.call(
        filestore_ip,
        port,
        LOCK_RELEASE_PROG,
        LOCK_RELEASE_VERS,
        RELEASE_ALL_LOCKS,
        oncrpc.pack_uint(int(node)),
        timeout=timeout,
    )
    status = _one_uint(results, f"RELEASE_ALL_LOCKS at {filestore_ip}:{port}")
    if status != 0:
        raise LockReleaseError(
            f"RELEASE_ALL_LOCKS for node {node_ip} at {filestore_ip}:{port} answered status {status}"
        )
