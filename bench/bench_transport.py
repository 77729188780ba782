"""The gRPC transport alone: one no-op RPC (NodeGetCapabilities) on each way of serving it.

A publish's figure includes two gRPC round trips; this measures their floor.  Each server runs in a
process of its own on a unix socket and answers only the no-op; they are timed in turn (rounds,
best median of each), from the Go client csi-pubbench (the kubelet's stack: see bench_kubelet.py)
where it is found, else from a Python client.  Beside the wall per RPC, the server's CPU per RPC
(from /proc: every thread of the process, grpc's own included) says what each costs the node.

The servers: bare grpcio sync servers (thread pool; with one worker; with
``grpc.optimization_target=latency``; with the response serialised once and cached; under the
``poll`` polling engine), the driver's own server (:class:`csi.server.CsiServer`: the interceptor,
metrics and the INFO log line), grpc.aio (with uvloop where it is installed), and the Go no-op server.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import common

SERVER = r"""
import asyncio, logging, os, sys
from concurrent import futures
import grpc
from csi.locks import VolumeLocks
from csi.node.service import NodeServicer
from csi.proto import csi_pb2, csi_pb2_grpc
kind, sock = sys.argv[1], sys.argv[2]
node = NodeServicer("bench-node", "us-central1-a", "/nonexistent", None, VolumeLocks(), 1.0)
options = [("grpc.so_reuseport", 0)]
if kind == "ours":
    from csi.identity import IdentityServicer
    from csi.server import CsiServer, serve_until_signalled
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))
    identity = IdentityServicer("filestore.csi.storage.gke.io", "bench", controller=False)
    serve_until_signalled(CsiServer("unix://" + sock, identity, node=node), 1.0)
elif kind == "noop-node":  # publish and unpublish answered at once: a burst's transport floor
    class NoOp(csi_pb2_grpc.NodeServicer):
        def NodePublishVolume(self, request, context):
            return csi_pb2.NodePublishVolumeResponse()
        def NodeUnpublishVolume(self, request, context):
            return csi_pb2.NodeUnpublishVolumeResponse()
        def NodeGetCapabilities(self, request, context):
            return node.NodeGetCapabilities(request, context)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=int(sys.argv[3])), options=options)
    csi_pb2_grpc.add_NodeServicer_to_server(NoOp(), server)
    server.add_insecure_port("unix:" + sock)
    server.start()
    server.wait_for_termination()
elif kind.startswith("aio"):
    class Async(csi_pb2_grpc.NodeServicer):
        async def NodeGetCapabilities(self, request, context):
            return node.NodeGetCapabilities(request, context)
    async def main():
        server = grpc.aio.server(options=options)
        csi_pb2_grpc.add_NodeServicer_to_server(Async(), server)
        server.add_insecure_port("unix:" + sock)
        await server.start()
        await server.wait_for_termination()
    if kind == "aio-uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
else:
    workers = 1 if kind == "one-worker" else 10
    if kind == "latency":
        options.append(("grpc.optimization_target", "latency"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    if kind == "cached":
        answer = node.NodeGetCapabilities(None, None).SerializeToString()
        handler = grpc.unary_unary_rpc_method_handler(lambda request, context: answer)  # bytes as they are
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("csi.v1.Node", {"NodeGetCapabilities": handler})]
        )
    else:
        csi_pb2_grpc.add_NodeServicer_to_server(node, server)
    server.add_insecure_port("unix:" + sock)
    server.start()
    server.wait_for_termination()
"""
BARE = "grpc.server (thread pool, bare)"
#: kind -> (label, environment added)
KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "bare": (BARE, {}),
    "one-worker": ("grpc.server, 1 worker thread", {}),
    "latency": ("grpc.server, grpc.optimization_target=latency", {}),
    "cached": ("grpc.server, response serialised once (cached bytes)", {}),
    "poll": ("grpc.server, GRPC_POLL_STRATEGY=poll", {"GRPC_POLL_STRATEGY": "poll"}),
    "ours": ("the driver's server (interceptor, metrics, INFO log)", {}),
    "aio": ("grpc.aio.server (asyncio)", {}),
    "aio-uvloop": ("grpc.aio.server (uvloop)", {}),
}
GO = "Go no-op server (grpc-go): the floor"


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(kind: str, sock: str, pubbench: str | None, workers: int = 10) -> subprocess.Popen[bytes]:
    """The server ``kind`` (of :data:`KINDS`, "go", or "noop-node": bare grpcio with ``workers`` threads
    answering publish and unpublish with no work) serving on ``sock``, once it listens."""
    if kind == "go":
        assert pubbench is not None
        proc = subprocess.Popen([pubbench, "serve", sock], stderr=subprocess.DEVNULL)
    else:
        env = {**os.environ, **KINDS.get(kind, ("", {}))[1]}
        proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, sock, str(workers)], env=env)
    deadline = time.monotonic() + 60
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the {kind} server did not start")
        time.sleep(0.01)
    return proc


def _python_client(sock: str, rpcs: int) -> list[float]:
    """Per-RPC walls in ms from a Python client (when there is no Go client)."""
    import grpc

    from csi.proto import csi_pb2, csi_pb2_grpc

    with grpc.insecure_channel(f"unix://{sock}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = csi_pb2_grpc.NodeStub(channel)
        request = csi_pb2.NodeGetCapabilitiesRequest()
        for _ in range(200):
            stub.NodeGetCapabilities(request, timeout=60)
        walls = []
        for _ in range(rpcs):
            t0 = time.perf_counter_ns()
            stub.NodeGetCapabilities(request, timeout=60)
            walls.append((time.perf_counter_ns() - t0) / 1e6)
        return walls


def _measure(kind: str, pubbench: str | None, rpcs: int) -> tuple[float, float, float]:
    """(wall p50, wall p99, server CPU) per RPC, in ns."""
    from bench_kubelet import _p, _run

    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "csi.sock")
        server = _start(kind, sock, pubbench)
        try:
            cpu = _cpu_s(server.pid)
            if pubbench is not None:  # caps: pairs of RPCs after 5 warm-up calls
                walls = [w / 2 for w in _run(pubbench, sock, tmp, tmp, str(rpcs // 2), "caps")["caps"]]  # type: ignore[union-attr]
            else:
                walls = _python_client(sock, rpcs)
            cpu = _cpu_s(server.pid) - cpu
        finally:
            server.terminate()
            server.wait(timeout=30)
    return statistics.median(walls) * 1e6, _p(walls, 0.99) * 1e6, cpu / rpcs * 1e9


def main() -> int:
    from bench_kubelet import find_pubbench

    kinds = list(KINDS)
    try:
        import uvloop  # noqa: F401
    except ImportError:
        kinds.remove("aio-uvloop")
        print("bench_transport: uvloop is not installed: grpc.aio on uvloop is left out")
    with tempfile.TemporaryDirectory(prefix="csi-pubbench-") as unpack_to:
        pubbench = find_pubbench(None, unpack_to)
        if pubbench is not None:
            kinds.append("go")
        client = "the Go client (csi-pubbench)" if pubbench else "a Python client (no csi-pubbench found)"
        best: dict[str, tuple[float, float, float]] = {}
        for _ in range(3):  # in turn, best median of three: the machine is shared
            for kind in kinds:
                got = _measure(kind, pubbench, 2000)
                if kind not in best or got[0] < best[kind][0]:
                    best[kind] = got
    label = {kind: KINDS[kind][0] if kind in KINDS else GO for kind in kinds}
    rows = []
    for kind in kinds:
        wall, p99, _cpu = best[kind]
        rows.append(common.Row(label[kind], wall, baseline=label["bare"], note=f"p99 {common.fmt_ns(p99)}"))
    for kind in kinds:
        rows.append(
            common.Row(
                f"server CPU per RPC: {label[kind]}", best[kind][2], baseline=f"server CPU per RPC: {BARE}"
            )
        )
    common.report(f"the gRPC transport: one no-op RPC over a unix socket, from {client}", rows)
    common.record("transport", "servers", 1, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
