"""Operation metrics (Prometheus) and the HTTP endpoint that serves them with /healthz.

Each server gets its own registry, so several drivers (or tests) in one
process never collide on metric names.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

log = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """Counts and times every CSI call by method and gRPC status code."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.operations = Counter(
            "csi_operations",
            "CSI calls handled, by method and gRPC status code.",
            ("method", "grpc_status_code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "csi_operation_duration_seconds",
            "Time to handle a CSI call, by method and gRPC status code.",
            ("method", "grpc_status_code"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        #: the labelled children by (method, code): ``labels()`` validates and locks on every call
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def record(self, method: str, code: str, seconds: float) -> None:
        """Count one finished call of ``method`` (the short RPC name) with status ``code``."""
        children = self._children.get((method, code))
        if children is None:  # two threads may both get here: labels() hands both the same children
            children = self._children[method, code] = (
                self.operations.labels(method, code),
                self.latency.labels(method, code),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def parse_http_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` from ``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"http endpoint {endpoint!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class MetricsServer:
    """A small HTTP server: ``/metrics`` and ``/healthz`` (200 when ``healthy()``, else 503)."""

    def __init__(self, endpoint: str, metrics: Metrics, healthy: Callable[[], bool]) -> None:
        host, port = parse_http_endpoint(endpoint)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = _safe_health(healthy)
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"not ready\n", "text/plain")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        server_class = _HTTPServer6 if ":" in host else ThreadingHTTPServer
        self._httpd = server_class((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()


class _HTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _safe_health(healthy: Callable[[], bool]) -> bool:
    try:
        return healthy()
    except Exception:
        log.warning("health check failed", exc_info=True)
        return False
