"""The kustomize manifests: every file loads, and the pieces that must agree do agree.

A typo in a socket path or a missing mountPropagation only shows up on a real cluster as a volume
that never mounts, so the structure is checked here: kinds and names, sidecar arguments, the socket
each container talks to, the kubelet dir's propagation, privilege, and one driver name everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi.params import parse_volume_params

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
DRIVER = "filestore.csi.storage.gke.io"
SOCKET = "/csi/csi.sock"
REGISTRATION_SOCKET = f"/var/lib/kubelet/plugins/{DRIVER}/csi.sock"


def _docs(directory: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


BASE = _docs(ROOT / "base")
EXAMPLES = _docs(ROOT / "examples")


def _one(kind: str, docs: list[dict[str, Any]] = BASE) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _containers(kind: str) -> dict[str, dict[str, Any]]:
    spec = _one(kind)["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def _mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


@pytest.mark.parametrize("directory", ["base", "examples"])
def test_kustomization_lists_exactly_the_files_present(directory: str) -> None:
    kustomization = yaml.safe_load((ROOT / directory / "kustomization.yaml").read_text())
    present = {p.name for p in (ROOT / directory).glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == present


def test_every_document_has_kind_api_version_and_name() -> None:
    for doc in BASE + EXAMPLES:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"]["name"], doc


def test_csidriver() -> None:
    driver = _one("CSIDriver")
    assert driver["metadata"]["name"] == DRIVER
    assert driver["spec"] == {
        "attachRequired": False,
        "podInfoOnMount": True,
        "fsGroupPolicy": "File",
        "volumeLifecycleModes": ["Persistent"],
    }


def test_controller_sidecars_and_their_args() -> None:
    containers = _containers("Deployment")
    assert set(containers) == {
        "csi-provisioner", "csi-resizer", "csi-snapshotter", "liveness-probe", "filestore-driver",
    }
    provisioner = containers["csi-provisioner"]["args"]
    assert "--feature-gates=Topology=true" in provisioner
    assert "--extra-create-metadata" in provisioner
    for name in ("csi-provisioner", "csi-resizer", "csi-snapshotter"):
        assert "--leader-election" in containers[name]["args"], name
    driver = containers["filestore-driver"]
    assert driver["args"][:2] == ["--mode=controller", f"--endpoint=unix://{SOCKET}"]
    # project and location come from the metadata server of the VM the controller runs on
    assert not [arg for arg in driver["args"] if arg.startswith(("--project", "--zone"))]


def test_node_daemonset_is_privileged_host_network_with_bidirectional_kubelet_dir() -> None:
    pod = _one("DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    containers = _containers("DaemonSet")
    assert set(containers) == {"filestore-driver", "csi-driver-registrar", "liveness-probe"}
    driver = containers["filestore-driver"]
    assert driver["securityContext"]["privileged"] is True
    kubelet = _mounts(driver)["/var/lib/kubelet"]
    assert kubelet["mountPropagation"] == "Bidirectional"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[kubelet["name"]]["hostPath"]["path"] == "/var/lib/kubelet"
    assert "--kubelet-root=/var/lib/kubelet" in driver["args"]
    assert "--node-id=$(NODE_NAME)" in driver["args"]
    env = {e["name"]: e for e in driver["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # each node reads its own zone from the metadata server: one zone for all would be a lie in a
    # regional cluster
    assert not [arg for arg in driver["args"] if arg.startswith("--zone")] and "ZONE" not in env
    # only the driver container mounts, so only it is privileged
    for name, container in containers.items():
        if name != "filestore-driver":
            assert not container.get("securityContext", {}).get("privileged"), name


def test_node_registrar_points_the_kubelet_at_the_socket_the_driver_serves() -> None:
    pod = _one("DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    containers = _containers("DaemonSet")
    registrar = containers["csi-driver-registrar"]
    assert f"--kubelet-registration-path={REGISTRATION_SOCKET}" in registrar["args"]
    registration = _mounts(registrar)["/registration"]
    assert volumes[registration["name"]]["hostPath"]["path"].rstrip("/") == "/var/lib/kubelet/plugins_registry"
    # the socket dir on the host is the directory the kubelet is told to dial
    plugin_dir = _mounts(containers["filestore-driver"])["/csi"]["name"]
    assert volumes[plugin_dir]["hostPath"]["path"].rstrip("/") == os.path.dirname(REGISTRATION_SOCKET)


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_every_container_uses_the_same_socket_through_the_same_volume(kind: str) -> None:
    containers = _containers(kind)
    socket_volumes = set()
    for name, container in containers.items():
        args = container.get("args", [])
        if name == "filestore-driver":
            assert f"--endpoint=unix://{SOCKET}" in args
        else:
            assert f"--csi-address={SOCKET}" in args, name
        socket_volumes.add(_mounts(container)[os.path.dirname(SOCKET)]["name"])
    assert len(socket_volumes) == 1


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_liveness_probe_port_matches_the_driver_probe(kind: str) -> None:
    containers = _containers(kind)
    port = containers["filestore-driver"]["ports"][0]["containerPort"]
    assert f"--http-endpoint=:{port}" in containers["liveness-probe"]["args"]
    assert containers["filestore-driver"]["livenessProbe"]["httpGet"]["port"] == "healthz"


def test_each_sidecar_has_its_cluster_role_bound_to_the_controller_account() -> None:
    roles = {d["metadata"]["name"]: d for d in BASE if d["kind"] == "ClusterRole"}
    bindings = {d["roleRef"]["name"]: d for d in BASE if d["kind"] == "ClusterRoleBinding"}
    account = _one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    assert set(roles) == {"filestore-csi-provisioner", "filestore-csi-resizer", "filestore-csi-snapshotter"}
    for name in roles:
        subjects = bindings[name]["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": account, "namespace": "filestore-csi"}]
    lease_roles = {d["metadata"]["name"] for d in BASE if d["kind"] == "Role"}
    assert lease_roles == {f"{name}-leader-election" for name in roles}
    accounts = {d["metadata"]["name"] for d in BASE if d["kind"] == "ServiceAccount"}
    assert account in accounts
    assert _one("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"] in accounts
    provisioner_rules = {r for rule in roles["filestore-csi-provisioner"]["rules"] for r in rule["resources"]}
    assert {"persistentvolumes", "csinodes", "nodes"} <= provisioner_rules


def test_examples_name_the_driver() -> None:
    kinds = {"StorageClass": "provisioner", "VolumeSnapshotClass": "driver", "VolumeAttributesClass": "driverName"}
    assert {doc["kind"] for doc in EXAMPLES} == set(kinds)
    for doc in EXAMPLES:
        assert doc[kinds[doc["kind"]]] == DRIVER, doc["metadata"]["name"]


def test_example_parameters_are_accepted_by_the_driver() -> None:
    """Each example class's parameters pass the driver's own checks (and each example exists for one)."""
    from csi.filestore import performance_error
    from csi.params import check_snapshot_params, parse_mutable_params, parse_volume_params

    for doc in EXAMPLES:
        parameters = doc.get("parameters", {})
        if doc["kind"] == "StorageClass":
            params = parse_volume_params(parameters, DRIVER)
            if params.performance is not None:  # at the tier's smallest size
                assert performance_error(params.tier, 1024, fixed_iops=params.performance.fixed_iops,
                                         iops_per_tb=params.performance.iops_per_tb) is None
        elif doc["kind"] == "VolumeAttributesClass":
            assert parse_mutable_params(parameters) is not None
        else:
            check_snapshot_params(parameters, DRIVER, "snapshot-1")


def test_volume_attributes_class_reaches_the_driver() -> None:
    containers = _containers("Deployment")
    for name in ("csi-provisioner", "csi-resizer"):
        assert "--feature-gates=VolumeAttributesClass=true" in containers[name]["args"], name
    roles = {d["metadata"]["name"]: d for d in BASE if d["kind"] == "ClusterRole"}
    for role in ("filestore-csi-provisioner", "filestore-csi-resizer"):
        resources = {r for rule in roles[role]["rules"] for r in rule["resources"]}
        assert "volumeattributesclasses" in resources, role


def test_the_standard_storageclass_example_shows_mount_options() -> None:
    [standard] = [d for d in EXAMPLES if d["metadata"]["name"] == "filestore-standard"]
    assert parse_volume_params(standard["parameters"], DRIVER).mount_options == "hard,timeo=600"


def test_the_multishare_examples_are_multishare_classes() -> None:
    parsed = {
        doc["metadata"]["name"]: parse_volume_params(doc["parameters"], DRIVER)
        for doc in EXAMPLES
        if doc["kind"] == "StorageClass"
    }
    multishare = {name for name, p in parsed.items() if p.instance_label is not None}
    assert multishare == {"filestore-multishare", "filestore-multishare-128"}
    assert parsed["filestore-multishare-128"].max_volume_gib == 128


def test_driver_name_is_the_same_everywhere() -> None:
    text = "\n".join(p.read_text() for p in ROOT.rglob("*.yaml"))
    names = {word for word in text.replace("/", " ").split() if word.endswith(".csi.storage.gke.io")}
    assert names == {DRIVER}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("directory", ["base", "examples"])
def test_kustomize_builds(directory: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / directory)], capture_output=True, text=True, check=True
    ).stdout
    built = [doc for doc in yaml.safe_load_all(out) if doc]
    if directory == "base":
        namespaced = [d for d in built if d["kind"] in {"Deployment", "DaemonSet", "ServiceAccount", "Role"}]
        assert all(d["metadata"]["namespace"] == "filestore-csi" for d in namespaced)
