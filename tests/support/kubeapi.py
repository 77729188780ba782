"""A real Kubernetes API server for tests: etcd + kube-apiserver on loopback, envtest style.

The binary is ``../shared/tools/kube-apiserver/kube-apiserver.xz`` (v1.36.2, see its README), unpacked
once into /tmp; etcd is Debian's ``etcd-server``. Both listen on 127.0.0.1 ports the kernel picked;
certificates are made with openssl (a CA, the server's, an admin client's in group system:masters).
:func:`start` returns a :class:`KubeApi` whose :meth:`client` is an ``ApiClient`` of the official
``kubernetes`` library; :func:`missing` says why it cannot run here (None when it can).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "tools" / "kube-apiserver" / "kube-apiserver.xz"
BINARY = Path(tempfile.gettempdir()) / "mountkit-kube-apiserver-v1.36.2"
READY_TIMEOUT = 60.0


def missing() -> str | None:
    """Why the API server cannot start here, or None."""
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        return "the kubernetes client library is not installed (pip install kubernetes)"
    if not ARCHIVE.exists() and not BINARY.exists():
        return f"no kube-apiserver binary at {ARCHIVE}"
    if shutil.which("etcd") is None:
        return "no etcd binary (apt-get install etcd-server)"
    if shutil.which("openssl") is None:
        return "no openssl binary"
    return None


def _unpack() -> Path:
    if not BINARY.exists():
        partial = BINARY.with_suffix(f".{os.getpid()}")
        with lzma.open(ARCHIVE) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.chmod(0o755)
        partial.rename(BINARY)
    return BINARY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver",
         "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth"),
    ):  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


@dataclass
class KubeApi:
    """A running etcd + kube-apiserver pair; ``stop`` ends both (by their pids) and removes the data."""

    url: str
    workdir: Path
    processes: list[subprocess.Popen[bytes]]

    def client(self) -> Any:
        """A fresh ``kubernetes.client.ApiClient`` as an administrator."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        config.ssl_ca_cert = str(self.workdir / "ca.crt")
        config.cert_file = str(self.workdir / "admin.crt")
        config.key_file = str(self.workdir / "admin.key")
        return client.ApiClient(config)

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig for an administrator (what a driver's ``--kubeconfig`` takes); JSON is YAML."""
        d = self.workdir
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url,
                                                      "certificate-authority": str(d / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(d / "admin.crt"),
                                                  "client-key": str(d / "admin.key")}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))  # fmt: skip
        return path

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ready(url: str, d: Path) -> bool:
    context = ssl.create_default_context(cafile=str(d / "ca.crt"))
    context.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
    try:
        with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def start() -> KubeApi:
    """Start etcd and the API server; raises RuntimeError (with their logs' tails) when not ready in time."""
    binary = _unpack()
    d = Path(tempfile.mkdtemp(prefix="kubeapi-"))
    _certificates(d)
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    api = KubeApi(f"https://127.0.0.1:{api_port}", d, [])
    try:
        with open(d / "etcd.log", "wb") as log:
            api.processes.append(subprocess.Popen(
                ["etcd", "--name", "t", "--data-dir", str(d / "etcd"), "--listen-client-urls", etcd_url,
                 "--advertise-client-urls", etcd_url, "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-cluster", f"t=http://127.0.0.1:{peer_port}"],
                stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        with open(d / "apiserver.log", "wb") as log:
            api.processes.append(subprocess.Popen(
                [str(binary), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
                 "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
                 "--endpoint-reconciler-type=none",
                 "--service-cluster-ip-range=10.96.0.0/16", f"--cert-dir={d}",
                 f"--tls-cert-file={d}/apiserver.crt", f"--tls-private-key-file={d}/apiserver.key",
                 f"--client-ca-file={d}/ca.crt", f"--service-account-key-file={d}/sa.pub",
                 f"--service-account-signing-key-file={d}/sa.key",
                 "--service-account-issuer=https://kubernetes.default.svc", "--authorization-mode=Node,RBAC"],
                stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while not _ready(api.url, d):
            if time.monotonic() > deadline or any(p.poll() is not None for p in api.processes):
                tails = "\n".join(
                    f"--- {name}\n" + (d / name).read_text(errors="replace")[-2000:]
                    for name in ("etcd.log", "apiserver.log")
                )
                raise RuntimeError(f"the API server did not become ready:\n{tails}")
            time.sleep(0.2)
    except BaseException:
        api.stop()
        raise
    return api
