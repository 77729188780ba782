"""A loopback stand-in for a Filestore instance's lock-release service, speaking ONC RPC over TCP.

Two listeners on ``host`` (127.0.0.1 unless given), each on a port the kernel picks: a portmapper
(program 100000 v2; GETPORT of NLM 100021 v4 over TCP answers the second listener's port, anything
else 0) and the lock-release program 200002 v1 (procedure 1, RELEASE_ALL_LOCKS: one XDR uint, the
node's IPv4 address). Both answer NULL (procedure 0); an unknown program gets PROG_UNAVAIL, an
unknown version PROG_MISMATCH, an unknown procedure PROC_UNAVAIL, arguments of the wrong size
GARBAGE_ARGS, a credential other than AUTH_NONE/AUTH_SYS a denied AUTH_ERROR. Messages are decoded
and built here with ``struct`` alone, independently of the client's codec, so the two check each
other.

``released`` lists the node addresses of every RELEASE_ALL_LOCKS received; ``status`` is the status
word the next ones answer; ``on_release`` (if set) runs before the answer, where a guest test makes
the kernel drop the node's locks.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Callable

PMAP, NLM, LOCK_RELEASE = 100000, 100021, 200002
PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS = 1, 2, 3, 4


def _recv(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_record(sock: socket.socket) -> bytes | None:
    body = b""
    while True:
        head = _recv(sock, 4)
        if head is None:
            return None
        (word,) = struct.unpack(">I", head)
        part = _recv(sock, word & 0x7FFFFFFF)
        if part is None:
            return None
        body += part
        if word & 0x80000000:
            return body


def accepted(xid: int, stat: int, results: bytes = b"") -> bytes:
    """A MSG_ACCEPTED reply with an AUTH_NONE verifier."""
    return struct.pack(">6I", xid, 1, 0, 0, 0, stat) + results


class LockServer:
    """The two listeners and what they saw."""

    def __init__(self, nlm_registered: bool = True, host: str = "127.0.0.1") -> None:
        self.released: list[str] = []
        self.calls: list[tuple[int, int, int]] = []  # (prog, vers, proc) of every call, in order
        self.status = 0
        self.nlm_registered = nlm_registered
        self.on_release: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._servers = [self._listen(host), self._listen(host)]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def pmap_port(self) -> int:
        return int(self._servers[0].server_address[1])

    @property
    def nlm_port(self) -> int:
        return int(self._servers[1].server_address[1])

    def _listen(self, host: str) -> socketserver.ThreadingTCPServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while (message := _read_record(self.request)) is not None:
                    reply = owner.answer(message, self.server is owner._servers[0])
                    self.request.sendall(struct.pack(">I", 0x80000000 | len(reply)) + reply)

        server = socketserver.ThreadingTCPServer((host, 0), Handler)
        server.daemon_threads = True
        return server

    def answer(self, message: bytes, is_pmap: bool) -> bytes:
        """The reply to one CALL (``is_pmap``: it came to the portmapper's port)."""
        xid, kind, rpcvers, prog, vers, proc = struct.unpack_from(">6I", message)
        cred_flavor, cred_len = struct.unpack_from(">2I", message, 24)
        offset = 32 + ((cred_len + 3) & ~3)
        _verf_flavor, verf_len = struct.unpack_from(">2I", message, offset)
        args = message[offset + 8 + ((verf_len + 3) & ~3) :]
        with self._lock:
            self.calls.append((prog, vers, proc))
        if kind != 0 or rpcvers != 2:
            return struct.pack(">5I", xid, 1, 1, 0, 2) + struct.pack(">2I", 2, 2)  # RPC_MISMATCH 2..2
        if cred_flavor not in (0, 1):
            return struct.pack(">5I", xid, 1, 1, 1, 2)  # AUTH_ERROR, AUTH_REJECTEDCRED
        want = PMAP if is_pmap else LOCK_RELEASE
        if prog != want:
            return accepted(xid, PROG_UNAVAIL)
        if vers != (2 if is_pmap else 1):
            return accepted(
                xid, PROG_MISMATCH, struct.pack(">2I", 2, 2) if is_pmap else struct.pack(">2I", 1, 1)
            )
        if proc == 0:
            return accepted(xid, 0)
        if is_pmap and proc == 3:
            if len(args) != 16:
                return accepted(xid, GARBAGE_ARGS)
            q_prog, q_vers, q_prot, _ = struct.unpack(">4I", args)
            known = self.nlm_registered and (q_prog, q_vers, q_prot) == (NLM, 4, 6)
            return accepted(xid, 0, struct.pack(">I", self.nlm_port if known else 0))
        if not is_pmap and proc == 1:
            if len(args) != 4:
                return accepted(xid, GARBAGE_ARGS)
            node = socket.inet_ntoa(args)
            if self.on_release is not None:
                self.on_release(node)
            with self._lock:
                self.released.append(node)
                status = self.status
            return accepted(xid, 0, struct.pack(">I", status))
        return accepted(xid, PROC_UNAVAIL)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
