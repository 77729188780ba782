"""The gRPC transport alone: a no-op RPC (NodeGetCapabilities) on the thread-pool server against grpc.aio.

The driver serves with ``grpc.server`` over a thread pool; if the transport dominates a publish,
an asyncio server might be the cheaper one.  Both serve the driver's own NodeGetCapabilities on a
unix socket, in a process of their own, to one synchronous client; measured in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import common

SERVER = r"""
import asyncio, sys
from concurrent import futures
import grpc
from csi.locks import VolumeLocks
from csi.node import NodeServicer
from csi.proto import csi_pb2_grpc
kind, sock = sys.argv[1], sys.argv[2]
node = NodeServicer("bench-node", "us-central1-a", "/nonexistent", None, VolumeLocks(), 1.0)
if kind == "thread-pool":
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10), options=[("grpc.so_reuseport", 0)])
    csi_pb2_grpc.add_NodeServicer_to_server(node, server)
    server.add_insecure_port("unix:" + sock)
    server.start()
    server.wait_for_termination()
else:
    class Async(csi_pb2_grpc.NodeServicer):
        async def NodeGetCapabilities(self, request, context):
            return node.NodeGetCapabilities(request, context)
    async def main():
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        csi_pb2_grpc.add_NodeServicer_to_server(Async(), server)
        server.add_insecure_port("unix:" + sock)
        await server.start()
        await server.wait_for_termination()
    asyncio.run(main())
"""
KINDS = {"thread-pool": "grpc.server (thread pool): no-op RPC", "aio": "grpc.aio.server: no-op RPC"}


def _measure(kind: str, repeats: int) -> common.Timing:
    import grpc

    from csi.proto import csi_pb2, csi_pb2_grpc

    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "csi.sock")
        server = subprocess.Popen([sys.executable, "-c", SERVER, kind, sock])
        channel = grpc.insecure_channel(f"unix://{sock}")
        try:
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = csi_pb2_grpc.NodeStub(channel)
            request = csi_pb2.NodeGetCapabilitiesRequest()
            return common.measure(lambda: stub.NodeGetCapabilities(request, timeout=60), repeats=repeats, warmup=200)
        finally:
            channel.close()
            server.terminate()
            server.wait(timeout=30)


def main() -> int:
    best: dict[str, common.Timing] = {}
    for _ in range(3):  # interleaved, best median of three: the machine is shared
        for kind in KINDS:
            got = _measure(kind, 2000)
            if kind not in best or got.median_ns < best[kind].median_ns:
                best[kind] = got
    base = KINDS["thread-pool"]
    rows = [common.timing_row(base, best["thread-pool"]),
            common.timing_row(KINDS["aio"], best["aio"], base, "the faster one is kept")]
    common.report("the gRPC transport: one no-op RPC over a unix socket", rows)
    common.record("transport", "servers", 1, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
