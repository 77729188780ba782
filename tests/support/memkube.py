"""An in-memory stand-in for the few Kubernetes API requests lock release makes, over plain HTTP.

For where the real API server (tests/support/kubeapi.py) cannot run: the emulated NFS test guest.
The driver's code talks to it through the official ``kubernetes`` client unchanged. It keeps
ConfigMaps (in any namespace) and Nodes as the JSON the client sends, and answers get, list,
create, replace (409 when the body's resourceVersion is not the stored one) and delete, with 404
and 409 as the API server gives them. Nothing else: no watch, patch, label selectors, admission,
finalizer semantics, authentication or validation.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: collection path → the kind of its items
_KINDS = {"configmaps": "ConfigMap", "nodes": "Node"}


class MemKube:
    """The server on ``host`` (a port the kernel picks) and its objects, keyed by collection path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="memkube", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server (JSON is YAML), as a driver's ``--kubeconfig`` takes it."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "memkube",
            "clusters": [{"name": "memkube", "cluster": {"server": self.url}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [{"name": "memkube", "context": {"cluster": "memkube", "user": "anonymous"}}],
        }))  # fmt: skip
        return path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> dict[str, Any]:
                return dict(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"))

            def _handle(self, method: str) -> None:
                body = self._body() if method in ("POST", "PUT") else None
                status, answer = owner.answer(method, self.path.split("?", 1)[0], body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler

    def answer(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one request on ``/api/v1/[namespaces/<ns>/]<kind>[/<name>]``."""
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "v1"]:
            return _status(404, "NotFound", path)
        rest = parts[2:]
        prefix = rest[:2] if rest[:1] == ["namespaces"] and len(rest) > 2 else []
        rest = rest[len(prefix) :]
        if not rest or rest[0] not in _KINDS or len(rest) > 2:
            return _status(404, "NotFound", path)
        collection = "/".join([*prefix, rest[0]])
        name = rest[1] if len(rest) == 2 else None
        kind = _KINDS[rest[0]]
        with self._lock:
            items = self.objects.setdefault(collection, {})
            if method == "GET" and name is None:
                listed = [items[n] for n in sorted(items)]
                return 200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": listed}
            if method == "POST" and name is None and body is not None:
                name = str(body.get("metadata", {}).get("name", ""))
                if name in items:
                    return _status(409, "AlreadyExists", f"{kind} {name}")
                return 201, self._store(items, name, kind, prefix, body)
            if name is None:
                return _status(405, "MethodNotAllowed", path)
            if name not in items:
                return _status(404, "NotFound", f"{kind} {name}")
            if method == "GET":
                return 200, items[name]
            if method == "PUT" and body is not None:
                asked = body.get("metadata", {}).get("resourceVersion")
                if asked != items[name]["metadata"]["resourceVersion"]:
                    return _status(409, "Conflict", f"{kind} {name}: the object has been modified")
                return 200, self._store(items, name, kind, prefix, body)
            if method == "DELETE":
                return 200, items.pop(name)
        return _status(405, "MethodNotAllowed", path)

    def _store(
        self, items: dict[str, dict[str, Any]], name: str, kind: str, prefix: list[str], body: dict[str, Any]
    ) -> dict[str, Any]:
        meta = {**body.get("metadata", {}), "name": name, "resourceVersion": str(next(self._versions))}
        if prefix:
            meta["namespace"] = prefix[1]
        items[name] = {**body, "kind": kind, "apiVersion": "v1", "metadata": meta}
        return items[name]


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                  "reason": reason, "code": code}  # fmt: skip
