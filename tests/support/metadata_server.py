"""A loopback GCE metadata server that speaks the protocol as the real one does.

``GET /computeMetadata/v1/<path>`` answers the text set for ``<path>`` (404 when none is set), and
``GET /`` answers the ping google-auth sends. A request without ``Metadata-Flavor: Google`` is
refused with 403, and every answer carries ``Metadata-Flavor: Google``. ``unavailable`` makes the
next N requests answer 503, so a test can count the client's retries. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = "/computeMetadata/v1/"


class MetadataServer:
    """The server, on a thread; ``values`` maps a path (``instance/zone``) to its text."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.unavailable = 0
        self.requests: list[str] = []  # every path asked for, refused or not
        self.refused: list[str] = []  # paths asked for without the Metadata-Flavor header
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._answer(self.path, self.headers.get("Metadata-Flavor"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", "application/text")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the value for GCE_METADATA_HOST and GCE_METADATA_IP."""
        host, port = self._http.server_address[:2]
        return f"{host!s}:{port}"

    def reset(self) -> None:
        """No values, no 503s, no requests seen."""
        with self._lock:
            self.values, self.unavailable = {}, 0
            self.requests.clear()
            self.refused.clear()

    def _answer(self, raw_path: str, flavor: str | None) -> tuple[int, str]:
        path = raw_path.partition("?")[0]
        with self._lock:
            self.requests.append(path)
            if flavor != "Google":
                self.refused.append(path)
                return 403, "Missing required header: Metadata-Flavor"
            if self.unavailable > 0:
                self.unavailable -= 1
                return 503, "unavailable"
            if path == "/":
                return 200, "computeMetadata/\n"
            value = self.values.get(path.removeprefix(ROOT)) if path.startswith(ROOT) else None
        return (404, "not found") if value is None else (200, value)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()
