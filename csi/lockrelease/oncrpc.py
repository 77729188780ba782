"""A small ONC RPC v2 client over TCP: RFC 5531 messages, XDR (RFC 4506) integers, AUTH_NONE.

Why our own: the lock-release call needs one request and one reply of fixed-size integers, and no
maintained PyPI library fits: ``sunrpc`` 1.1.0 was last released in 2022, ``shenaniganfs`` 0.2 (2023)
is an asyncio NFS toolkit, ``xdrlib3`` is XDR only. What this module speaks, byte for byte:

- record marking (RFC 5531 §11): each record is fragments, each behind a 4-byte big-endian header
  whose top bit marks the last fragment and whose low 31 bits give its length; we send one fragment
  and read any number, up to :data:`MAX_RECORD` bytes in all;
- a CALL (§9): xid, 0 (CALL), rpcvers 2, prog, vers, proc, credential and verifier both AUTH_NONE
  (flavor 0, empty body), then the procedure's XDR arguments;
- a REPLY: xid, 1 (REPLY), then MSG_ACCEPTED (verifier, accept_stat; PROG_MISMATCH carries low/high)
  or MSG_DENIED (RPC_MISMATCH with low/high, or AUTH_ERROR with an auth_stat). Only SUCCESS returns
  the results; everything else raises :class:`RpcError` naming what the server said.
"""

from __future__ import annotations

import socket
import struct

RPC_VERSION = 2
CALL = 0
REPLY = 1
MSG_ACCEPTED = 0
MSG_DENIED = 1
AUTH_NONE = 0

#: accept_stat values (RFC 5531 §9).
SUCCESS = 0
PROG_UNAVAIL = 1
PROG_MISMATCH = 2
PROC_UNAVAIL = 3
GARBAGE_ARGS = 4
SYSTEM_ERR = 5
_ACCEPT_NAMES = {1: "PROG_UNAVAIL", 2: "PROG_MISMATCH", 3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS", 5: "SYSTEM_ERR"}

#: reject_stat values.
RPC_MISMATCH = 0
AUTH_ERROR = 1

LAST_FRAGMENT = 0x8000_0000
#: The largest reply we accept: the procedures we call answer a few words.
MAX_RECORD = 1 << 20
#: An opaque_auth body is at most 400 bytes (RFC 5531 §8.2).
MAX_AUTH_BYTES = 400

_UINT = struct.Struct(">I")


class RpcError(OSError):
    """The call did not return results: no connection, a malformed reply, or the server refused it."""


def pack_uint(value: int) -> bytes:
    """An XDR unsigned int (RFC 4506 §4.2): four bytes, big-endian."""
    return _UINT.pack(value)


def record(payload: bytes) -> bytes:
    """``payload`` as one record of one (last) fragment."""
    if len(payload) >= LAST_FRAGMENT:
        raise ValueError("an RPC record fragment holds at most 2**31 - 1 bytes")
    return pack_uint(LAST_FRAGMENT | len(payload)) + payload


def call_message(xid: int, prog: int, vers: int, proc: int, args: bytes = b"") -> bytes:
    """The body of a CALL with AUTH_NONE credential and verifier, followed by ``args``."""
    header = struct.pack(">6I", xid, CALL, RPC_VERSION, prog, vers, proc)
    none_auth = struct.pack(">2I", AUTH_NONE, 0)
    return header + none_auth + none_auth + args


class _Reader:
    """XDR words out of one reply, raising RpcError when it ends early."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def uint(self) -> int:
        if self.offset + 4 > len(self.data):
            raise RpcError("malformed RPC reply: it ends inside a field")
        (value,) = _UINT.unpack_from(self.data, self.offset)
        self.offset += 4
        return int(value)

    def skip_auth(self) -> None:
        self.uint()  # flavor
        length = self.uint()
        if length > MAX_AUTH_BYTES:
            raise RpcError(f"malformed RPC reply: a verifier of {length} bytes")
        self.offset += (length + 3) & ~3
        if self.offset > len(self.data):
            raise RpcError("malformed RPC reply: it ends inside the verifier")

    def rest(self) -> bytes:
        return self.data[self.offset :]


def parse_reply(xid: int, data: bytes) -> bytes:
    """The results of an accepted, successful REPLY to call ``xid``; RpcError for anything else."""
    reader = _Reader(data)
    got_xid, kind = reader.uint(), reader.uint()
    if kind != REPLY:
        raise RpcError(f"malformed RPC reply: message type {kind}, not REPLY")
    if got_xid != xid:
        raise RpcError(f"RPC reply to xid {got_xid:#x}, not to our call {xid:#x}")
    stat = reader.uint()
    if stat == MSG_DENIED:
        reject = reader.uint()
        if reject == RPC_MISMATCH:
            low, high = reader.uint(), reader.uint()
            raise RpcError(f"RPC denied: RPC_MISMATCH (server speaks versions {low}..{high})")
        if reject == AUTH_ERROR:
            raise RpcError(f"RPC denied: AUTH_ERROR (auth_stat {reader.uint()})")
        raise RpcError(f"malformed RPC reply: reject_stat {reject}")
    if stat != MSG_ACCEPTED:
        raise RpcError(f"malformed RPC reply: reply_stat {stat}")
    reader.skip_auth()
    accept = reader.uint()
    if accept == SUCCESS:
        return reader.rest()
    name = _ACCEPT_NAMES.get(accept, f"accept_stat {accept}")
    if accept == PROG_MISMATCH:
        low, high = reader.uint(), reader.uint()
        raise RpcError(f"RPC not accepted: PROG_MISMATCH (server has versions {low}..{high})")
    raise RpcError(f"RPC not accepted: {name}")


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise RpcError("the RPC server closed the connection before its reply was complete")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_record(sock: socket.socket) -> bytes:
    """One whole record: its fragments joined; RpcError past :data:`MAX_RECORD` bytes."""
    parts: list[bytes] = []
    total = 0
    while True:
        (header,) = _UINT.unpack(_recv_exactly(sock, 4))
        size = header & ~LAST_FRAGMENT
        total += size
        if total > MAX_RECORD:
            raise RpcError(f"RPC reply larger than {MAX_RECORD} bytes")
        parts.append(_recv_exactly(sock, size))
        if header & LAST_FRAGMENT:
            return b"".join(parts)


def new_xid() -> int:
    """A random transaction id, so a reply to someone else's call is never taken for ours."""
    import random  # loaded by the first call, not by the node plugin's start (docs/performance.md, Memory)

    return random.getrandbits(32)


def call(host: str, port: int, prog: int, vers: int, proc: int, args: bytes, *, timeout: float) -> bytes:
    """One call on a fresh TCP connection, closed afterwards; the results' XDR bytes.

    ``timeout`` bounds the connect and each read and write. RpcError (an OSError) on any failure,
    with the address in its message.
    """
    xid = new_xid()
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(record(call_message(xid, prog, vers, proc, args)))
            reply = read_record(sock)
    except RpcError as exc:
        raise RpcError(f"{where}: {exc}") from None
    except OSError as exc:
        raise RpcError(f"{where}: program {prog} v{vers}: {exc.strerror or exc}") from exc
    try:
        return parse_reply(xid, reply)
    except RpcError as exc:
        raise RpcError(f"{where}: program {prog} v{vers} procedure {proc}: {exc}") from None
