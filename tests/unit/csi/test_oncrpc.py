"""The ONC RPC codec byte for byte against RFC 5531/4506, and RELEASE_ALL_LOCKS against a loopback server."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from csi.lockrelease import oncrpc, rpc
from csi.lockrelease.oncrpc import RpcError, parse_reply
from tests.support.lockserver import LockServer


def test_record_marking_is_one_last_fragment() -> None:
    assert oncrpc.record(b"abc") == bytes.fromhex("80000003") + b"abc"
    assert oncrpc.record(b"") == bytes.fromhex("80000000")


def test_call_header_with_auth_none() -> None:
    body = oncrpc.call_message(0x01020304, 200002, 1, 1, oncrpc.pack_uint(0x0A000001))
    assert body == bytes.fromhex(
        "01020304"  # xid
        "00000000"  # CALL
        "00000002"  # rpcvers 2
        "00030d42"  # prog 200002
        "00000001"  # vers 1
        "00000001"  # proc 1
        "0000000000000000"  # cred: AUTH_NONE, empty
        "0000000000000000"  # verf: AUTH_NONE, empty
        "0a000001"  # 10.0.0.1 as a big-endian uint
    )


def success(xid: int, results: bytes, verifier: bytes = b"") -> bytes:
    """An accepted SUCCESS reply built by hand; a verifier goes in as flavor AUTH_SYS, padded to 4."""
    verf = struct.pack(">2I", 1 if verifier else 0, len(verifier)) + verifier + b"\0" * (-len(verifier) % 4)
    return struct.pack(">3I", xid, 1, 0) + verf + struct.pack(">I", 0) + results


def test_accepted_success_returns_the_results_after_a_padded_verifier() -> None:
    assert parse_reply(7, success(7, b"\0\0\0\x2a", b"abcde")) == b"\0\0\0\x2a"
    assert parse_reply(7, success(7, b"xyz!")) == b"xyz!"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ((0, 0, 0, 1), "PROG_UNAVAIL"),
        ((0, 0, 0, 2, 1, 3), r"PROG_MISMATCH \(server has versions 1..3\)"),
        ((0, 0, 0, 3), "PROC_UNAVAIL"),
        ((0, 0, 0, 4), "GARBAGE_ARGS"),
        ((0, 0, 0, 5), "SYSTEM_ERR"),
        ((1, 0, 2, 2), r"RPC_MISMATCH \(server speaks versions 2..2\)"),
        ((1, 1, 5), r"AUTH_ERROR \(auth_stat 5\)"),
        ((0, 0), "ends inside"),
    ],
)
def test_refusals_raise_naming_them(words: tuple[int, ...], message: str) -> None:
    with pytest.raises(RpcError, match=message):
        parse_reply(9, struct.pack(">2I", 9, 1) + struct.pack(f">{len(words)}I", *words))


def test_a_reply_to_another_call_or_a_call_is_refused() -> None:
    with pytest.raises(RpcError, match="not to our call"):
        parse_reply(1, success(2, b""))
    with pytest.raises(RpcError, match="not REPLY"):
        parse_reply(1, struct.pack(">2I", 1, 0))


def test_read_record_joins_fragments_and_bounds_the_size() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(struct.pack(">I", 3) + b"abc" + struct.pack(">I", 0x80000002) + b"de")
        assert oncrpc.read_record(left) == b"abcde"
        right.sendall(struct.pack(">I", 0x80000000 | (oncrpc.MAX_RECORD + 1)))
        with pytest.raises(RpcError, match="larger than"):
            oncrpc.read_record(left)
        right.close()
        with pytest.raises(RpcError, match="closed the connection"):
            oncrpc.read_record(left)


@pytest.fixture
def server() -> Iterator[LockServer]:
    srv = LockServer()
    yield srv
    srv.close()


def test_release_all_locks_asks_the_portmapper_then_sends_the_node_address(server: LockServer) -> None:
    rpc.release_all_locks("127.0.0.1", "10.128.0.7", pmap_port=server.pmap_port)
    assert server.released == ["10.128.0.7"]
    assert server.calls == [(100000, 2, 3), (200002, 1, 1)]


def test_release_all_locks_raises_on_a_nonzero_status(server: LockServer) -> None:
    server.status = 13
    with pytest.raises(rpc.LockReleaseError, match="status 13"):
        rpc.release_all_locks("127.0.0.1", "10.0.0.2", pmap_port=server.pmap_port)
    assert server.released == ["10.0.0.2"]


def test_release_all_locks_raises_when_nlm_is_not_registered() -> None:
    srv = LockServer(nlm_registered=False)
    try:
        with pytest.raises(rpc.LockReleaseError, match="no TCP port for program 100021 v4"):
            rpc.release_all_locks("127.0.0.1", "10.0.0.2", pmap_port=srv.pmap_port)
        assert srv.released == []
    finally:
        srv.close()


def test_release_all_locks_raises_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: a refused connection
        with pytest.raises(RpcError, match=f"127.0.0.1:{port}"):
            rpc.release_all_locks("127.0.0.1", "10.0.0.2", pmap_port=port, timeout=2)


def test_release_all_locks_times_out_on_a_silent_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(sock.accept()[0]))
        thread.start()
        with pytest.raises(RpcError, match="timed out"):
            rpc.release_all_locks("127.0.0.1", "10.0.0.2", pmap_port=sock.getsockname()[1], timeout=0.3)
        thread.join()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize(("filestore", "node"), [("filestore.example", "10.0.0.1"), ("127.0.0.1", "fd00::1")])
def test_release_all_locks_refuses_names_and_ipv6_nodes(filestore: str, node: str) -> None:
    with pytest.raises(ValueError):
        rpc.release_all_locks(filestore, node, pmap_port=1)
