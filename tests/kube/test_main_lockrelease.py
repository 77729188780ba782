"""The driver command's lock-release wiring, against the real API server: which process runs the controller.

``filestore-csi-driver --mode node --feature-lock-release`` runs the lock-release controller on a thread,
as GFD's node does: it takes the Lease (identity ``<host>_<uuid>``) and passes over the ConfigMaps every
sync period. With ``--feature-lock-release-standalone`` the node leaves that to ``python -m
csi.lockrelease`` and never touches the Lease. The driver runs as a subprocess with ``--kubeconfig``;
the metadata server (tests/support/metadata_server.py) gives the VM's instance id and internal IP.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubernetes import client

from csi.lockrelease.lockinfo import LEASE_NAME, NAMESPACE
from csi.proto import csi_pb2, csi_pb2_grpc
from tests.support import kubeapi
from tests.support.metadata_server import MetadataServer

#: A ConfigMap entry the controller's pass reports (and leaves alone): its log line shows each pass.
NOT_A_RECORD = "not-a-lock-record"
PASS_LOG = f"key {NOT_A_RECORD!r} is not a lock record; left alone"


def lease(api: Any) -> Any:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, NAMESPACE)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def start_node(tmp_path: Path, kube_api: kubeapi.KubeApi, *extra: str) -> subprocess.Popen[str]:
    """The node driver with the feature on and short periods; returns once it serves NodeGetInfo."""
    sock = tmp_path / "csi.sock"
    argv = [
        sys.executable, "-m", "csi.main", f"--endpoint=unix://{sock}", "--grace=1", "--mode=node",
        "--node-id=gke-pool-1-abcd", "--zone=us-central1-a", "--project=my-project",
        f"--kubelet-root={tmp_path}",
        "--feature-lock-release", f"--kubeconfig={kube_api.kubeconfig(tmp_path / 'kubeconfig')}",
        "--lock-release-sync-period=1s", "--leader-election-lease-duration=3s",
        "--leader-election-renew-deadline=2s", "--leader-election-retry-period=500ms", *extra,
    ]  # fmt: skip
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the driver did not start"
        time.sleep(0.05)
    with grpc.insecure_channel(f"unix:{sock}") as channel:
        info = csi_pb2_grpc.NodeStub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
    assert info.node_id == "gke-pool-1-abcd"
    return driver


def stop(driver: subprocess.Popen[str]) -> str:
    """SIGTERM; the driver must stop its controller thread and exit 0. Its stderr."""
    driver.send_signal(signal.SIGTERM)
    try:
        _, err = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err
    return err


@pytest.fixture
def node_metadata(metadata_server: MetadataServer) -> MetadataServer:
    metadata_server.values.update(
        {"instance/id": "4815162342", "instance/network-interfaces/0/ip": "10.128.0.7"}
    )
    return metadata_server


def with_unrecognised_entry(api: Any) -> None:
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="fscsi-gone-node", namespace=NAMESPACE), data={NOT_A_RECORD: "x"}
    )
    client.CoreV1Api(api).create_namespaced_config_map(NAMESPACE, body)


def test_the_node_runs_the_controller_which_takes_the_lease_and_passes_every_period(
    kube: Any, kube_api: kubeapi.KubeApi, node_metadata: MetadataServer, tmp_path: Path
) -> None:
    with_unrecognised_entry(kube)
    driver = start_node(tmp_path, kube_api)
    try:
        deadline = time.monotonic() + 30
        while (held := lease(kube)) is None:
            assert driver.poll() is None and time.monotonic() < deadline, "no Lease was taken"
            time.sleep(0.1)
        holder, _, uuid = held.spec.holder_identity.partition("_")
        assert holder == socket.gethostname() and len(uuid) == 36
        time.sleep(3.5)  # the pass at leadership, then one per 1 s sync period
    finally:
        err = stop(driver)
    assert err.count(PASS_LOG) >= 3, err
    assert "now leads" in err
    assert node_metadata.requests.count("/computeMetadata/v1/instance/id") == 1  # asked once, at start


def test_a_standalone_node_runs_no_controller(
    kube: Any, kube_api: kubeapi.KubeApi, node_metadata: MetadataServer, tmp_path: Path
) -> None:
    with_unrecognised_entry(kube)
    driver = start_node(tmp_path, kube_api, "--feature-lock-release-standalone")
    try:
        time.sleep(3.5)  # an elector would have taken the Lease at once, retried every 0.5 s
        assert lease(kube) is None
    finally:
        err = stop(driver)
    assert PASS_LOG not in err and "now leads" not in err
    assert (
        node_metadata.requests.count("/computeMetadata/v1/instance/id") == 1
    )  # the node still records (its identity at start)


def test_the_kubeconfig_is_what_the_driver_reaches(
    kube: Any, kube_api: kubeapi.KubeApi, node_metadata: MetadataServer, tmp_path: Path
) -> None:
    """A kubeconfig naming a server that is not there: the controller's passes fail and say why, the
    node keeps serving (records are written on stage, and fail the stage then), and the Lease stays
    untouched on the real server."""
    config = kube_api.kubeconfig(tmp_path / "real")
    (tmp_path / "dead").write_text(config.read_text().replace(kube_api.url, "https://127.0.0.1:1"))
    driver = start_node(tmp_path, kube_api, f"--kubeconfig={tmp_path / 'dead'}")
    try:
        time.sleep(2)
        assert driver.poll() is None
    finally:
        err = stop(driver)
    assert lease(kube) is None
    assert "lease gke-managed-filestorecsi/filestore-csi-storage-gke-io-node" in err
