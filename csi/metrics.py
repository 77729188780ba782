"""Operation metrics (Prometheus) and the HTTP endpoint that serves them with /healthz.

Each server gets its own registry, so several drivers (or tests) in one
process never collide on metric names.

The counts are kept here, and prometheus_client (with the http, email and urllib modules its
exposition loads: ~2.6 MiB resident, docs/performance.md "Memory") is imported only to write them
out, on the first scrape of /metrics: a node plugin whose metrics nobody reads never loads it.
What a scrape returns is what ``prometheus_client.Counter`` and ``Histogram`` would (the same
samples, ``_created`` included unless ``PROMETHEUS_DISABLE_CREATED_SERIES`` says otherwise), written
by prometheus_client's own ``generate_latest``.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, float("inf"))
_OPERATIONS = ("csi_operations", "CSI calls handled, by method and gRPC status code.")
_LATENCY = ("csi_operation_duration_seconds", "Time to handle a CSI call, by method and gRPC status code.")
_LABELS = ("method", "grpc_status_code")


class _Child:
    """One (method, code): its count, summed seconds, per-bucket counts and when it was first seen."""

    __slots__ = ("buckets", "count", "created", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(_BUCKETS)
        self.created = time.time()


class Metrics:
    """Counts and times every CSI call by method and gRPC status code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: by (method, code), in the order first seen
        self._children: dict[tuple[str, str], _Child] = {}
        self._registry: CollectorRegistry | None = None

    def record(self, method: str, code: str, seconds: float) -> None:
        """Count one finished call of ``method`` (the short RPC name) with status ``code``."""
        index = bisect.bisect_left(_BUCKETS, seconds)  # the first bucket whose bound is >= seconds
        with self._lock:
            child = self._children.get((method, code))
            if child is None:
                child = self._children[method, code] = _Child()
            child.count += 1
            child.total += seconds
            child.buckets[index] += 1

    def calls(self) -> int:
        """How many calls have been recorded so far."""
        with self._lock:
            return sum(child.count for child in self._children.values())

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (prometheus_client loaded on the first call)."""
        from prometheus_client import generate_latest

        if self._registry is None:
            from prometheus_client.registry import CollectorRegistry

            registry = CollectorRegistry()
            registry.register(_Collector(self))
            self._registry = registry
        return generate_latest(self._registry)

    def snapshot(self) -> list[tuple[tuple[str, str], int, float, list[int], float]]:
        """((method, code), count, summed seconds, per-bucket counts, created) of each, first seen first."""
        with self._lock:
            return [(key, c.count, c.total, list(c.buckets), c.created) for key, c in self._children.items()]


class _Collector:
    """The samples ``Counter(*_OPERATIONS)`` and ``Histogram(*_LATENCY, buckets=_BUCKETS)`` would give."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import utils
        from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

        le: Callable[[float], str] = utils.floatToGoString  # as Histogram writes its bounds (untyped)

        disabled = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower()
        created = disabled not in ("true", "1", "t")  # as prometheus_client reads it
        operations = CounterMetricFamily(*_OPERATIONS, labels=_LABELS)
        latency = HistogramMetricFamily(*_LATENCY, labels=_LABELS)
        for (method, code), count, total, buckets, born in self._metrics.snapshot():
            operations.add_metric([method, code], float(count), born if created else None)
            labels = {"method": method, "grpc_status_code": code}
            acc = 0.0
            for bound, n in zip(_BUCKETS, buckets, strict=True):
                acc += n
                latency.add_sample(f"{_LATENCY[0]}_bucket", {**labels, "le": le(bound)}, acc)
            latency.add_sample(f"{_LATENCY[0]}_count", labels, acc)
            latency.add_sample(f"{_LATENCY[0]}_sum", labels, total)
            if created:
                latency.add_sample(f"{_LATENCY[0]}_created", labels, born)
        yield operations
        yield latency


def parse_http_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` from ``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"http endpoint {endpoint!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class MetricsServer:
    """A small HTTP server: ``/metrics`` and ``/healthz`` (200 when ``healthy()``, else 503)."""

    def __init__(self, endpoint: str, metrics: Metrics, healthy: Callable[[], bool]) -> None:
        from http.server import BaseHTTPRequestHandler  # only a node serving /healthz loads http.server

        host, port = parse_http_endpoint(endpoint)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    from prometheus_client import CONTENT_TYPE_LATEST

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

        self._httpd = _http_server(ipv6=":" in host)((host, port), Handler)
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


def _http_server(*, ipv6: bool) -> type[ThreadingHTTPServer]:
    from http.server import ThreadingHTTPServer

    if not ipv6:
        return ThreadingHTTPServer

    class HTTPServer6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    return HTTPServer6


def _safe_health(healthy: Callable[[], bool]) -> bool:
    try:
        return healthy()
    except Exception:
        log.warning("health check failed", exc_info=True)
        return False
