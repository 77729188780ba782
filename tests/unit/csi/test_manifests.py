"""The kustomize manifests: every file loads, and the pieces that must agree do agree.

A typo in a socket path or a missing mountPropagation only shows up on a real cluster as a volume
that never mounts, so the structure is checked here: kinds and names, sidecar arguments, the socket
each container talks to, the kubelet dir's propagation, privilege, and one driver name everywhere.
Then every overlay (and the examples, and each optional component) is rendered with a real
kustomize (``kubectl kustomize``) and every rendered object is validated against the API schemas of
each supported Kubernetes version (kubernetes-validate, which bundles them: no network).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi.controller.parameters import parse_volume_params

ROOT = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
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


KUSTOMIZATIONS = sorted(str(p.parent.relative_to(ROOT)) for p in ROOT.rglob("kustomization.yaml"))


def test_the_layout() -> None:
    """The base, the examples, the overlays and the optional components (lockrelease may join)."""
    assert {
        "base",
        "examples",
        "overlays/stable",
        "overlays/multishare",
        "overlays/dev",
        "components/servicemonitor",
        "components/service-account-key",
    } <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_lists_exactly_the_files_present(directory: str) -> None:
    """Every YAML file beside a kustomization is one of its resources or patches: none is forgotten."""
    kustomization = yaml.safe_load((ROOT / directory / "kustomization.yaml").read_text())
    listed = {r for r in kustomization.get("resources", []) if r.endswith(".yaml")}
    listed |= {p["path"] for p in kustomization.get("patches", []) if "path" in p}
    present = {p.name for p in (ROOT / directory).glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


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
        "csi-provisioner",
        "csi-resizer",
        "csi-snapshotter",
        "liveness-probe",
        "filestore-driver",
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
    assert set(containers) == {"filestore-driver", "nfs-services", "csi-driver-registrar", "liveness-probe"}
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


def test_nfs_services_keeps_statd_records_on_the_node() -> None:
    """`nsm` in the driver's image, its state dir on a hostPath (a restarted statd must still know its
    servers)."""
    pod = _one("DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    containers = _containers("DaemonSet")
    services = containers["nfs-services"]
    assert services["image"] == containers["filestore-driver"]["image"] and services["args"][0] == "nsm"
    (state_dir,) = [a.partition("=")[2] for a in services["args"] if a.startswith("--state-dir=")]
    mount = next(
        m for m in services["volumeMounts"] if state_dir.startswith(m["mountPath"].rstrip("/") + "/")
    )
    host = volumes[mount["name"]]["hostPath"]["path"].rstrip("/")
    assert host == mount["mountPath"].rstrip("/")  # the same path inside and out


def test_node_registrar_points_the_kubelet_at_the_socket_the_driver_serves() -> None:
    pod = _one("DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    containers = _containers("DaemonSet")
    registrar = containers["csi-driver-registrar"]
    assert f"--kubelet-registration-path={REGISTRATION_SOCKET}" in registrar["args"]
    registration = _mounts(registrar)["/registration"]
    assert (
        volumes[registration["name"]]["hostPath"]["path"].rstrip("/") == "/var/lib/kubelet/plugins_registry"
    )
    # the socket dir on the host is the directory the kubelet is told to dial
    plugin_dir = _mounts(containers["filestore-driver"])["/csi"]["name"]
    assert volumes[plugin_dir]["hostPath"]["path"].rstrip("/") == os.path.dirname(REGISTRATION_SOCKET)


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_every_container_uses_the_same_socket_through_the_same_volume(kind: str) -> None:
    containers = _containers(kind)
    socket_volumes = set()
    for name, container in containers.items():
        args = container.get("args", [])
        if name == "nfs-services":  # rpc.statd, no CSI
            continue
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
    kinds = {
        "StorageClass": "provisioner",
        "VolumeSnapshotClass": "driver",
        "VolumeAttributesClass": "driverName",
    }
    assert {doc["kind"] for doc in EXAMPLES} == set(kinds)
    for doc in EXAMPLES:
        assert doc[kinds[doc["kind"]]] == DRIVER, doc["metadata"]["name"]


def test_example_parameters_are_accepted_by_the_driver() -> None:
    """Each example class's parameters pass the driver's own checks (and each example exists for one)."""
    from csi.controller.parameters import parse_mutable_params, parse_volume_params
    from csi.controller.snapshot_params import check_snapshot_params
    from csi.filestore import performance_error

    for doc in EXAMPLES:
        parameters = doc.get("parameters", {})
        if doc["kind"] == "StorageClass":
            params = parse_volume_params(parameters, DRIVER)
            if params.performance is not None:  # at the tier's smallest size
                assert (
                    performance_error(
                        params.tier,
                        1024,
                        fixed_iops=params.performance.fixed_iops,
                        iops_per_tb=params.performance.iops_per_tb,
                    )
                    is None
                )
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


# -- resources, metrics, disruption budget, priority classes (the base's own files) --


def _mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), f"memory {quantity!r}: the manifests write Mi"
    return int(quantity[:-2])


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(kind: str) -> None:
    """No CPU limit on purpose: a throttled driver misses gRPC deadlines; memory is what must be capped."""
    for name, container in _containers(kind).items():
        resources = container.get("resources", {})
        assert set(resources.get("requests", {})) == {"cpu", "memory"}, name
        assert set(resources.get("limits", {})) == {"memory"}, name
        assert _mebibytes(resources["requests"]["memory"]) <= _mebibytes(resources["limits"]["memory"]), name


def _pod_labels(kind: str) -> dict[str, str]:
    labels: dict[str, str] = _one(kind)["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_the_driver_serves_metrics_on_its_named_port_behind_a_service(kind: str) -> None:
    from csi.metrics import parse_http_endpoint

    driver = _containers(kind)["filestore-driver"]
    host, port = parse_http_endpoint(_args(driver).http_endpoint)
    assert host == ""  # all interfaces: the kubelet and Prometheus reach the pod (or node) address
    ports = {p["name"]: p["containerPort"] for p in driver["ports"]}
    assert ports["metrics"] == port
    # within one pod (or one host, for the hostNetwork node plugin) every port is distinct
    every_port = [p["containerPort"] for c in _containers(kind).values() for p in c.get("ports", [])]
    assert len(every_port) == len(set(every_port))
    [service] = [
        d for d in BASE if d["kind"] == "Service" and _selects(d["spec"]["selector"], _pod_labels(kind))
    ]
    assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [("metrics", "metrics")]


def test_the_controller_disruption_budget_covers_it_and_lets_a_drain_through() -> None:
    budget = _one("PodDisruptionBudget")
    assert _selects(budget["spec"]["selector"]["matchLabels"], _pod_labels("Deployment"))
    assert not _selects(budget["spec"]["selector"]["matchLabels"], _pod_labels("DaemonSet"))
    replicas = _one("Deployment")["spec"]["replicas"]
    # one disruption at a time allowed: minAvailable == replicas would block every node drain
    assert replicas == 1 and budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}


def test_the_quota_admits_each_critical_priority_class_the_pods_use() -> None:
    """Outside kube-system, GKE admits system-*-critical pods only under a quota scoped to them."""
    [quota] = [d for d in BASE if d["kind"] == "ResourceQuota"]
    [scope] = quota["spec"]["scopeSelector"]["matchExpressions"]
    assert (scope["scopeName"], scope["operator"]) == ("PriorityClass", "In")
    used = {
        _one(kind)["spec"]["template"]["spec"]["priorityClassName"] for kind in ("Deployment", "DaemonSet")
    }
    assert used == {"system-cluster-critical", "system-node-critical"} == set(scope["values"])
    assert quota["spec"]["hard"] == {"pods": "1G"}  # GKE's own kube-system limit: never caps the DaemonSet


# -- rendered with a real kustomize --

OVERLAYS = ["overlays/stable", "overlays/multishare", "overlays/dev"]
COMPONENTS = ["components/service-account-key", "components/servicemonitor"]
#: what is rendered: each overlay alone and with every component, and the examples
RENDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "base": ("base", ()),
    "examples": ("examples", ()),
    **{overlay: (overlay, ()) for overlay in OVERLAYS},
    **{f"{overlay}+components": (overlay, tuple(COMPONENTS)) for overlay in OVERLAYS},
}
#: the Kubernetes versions docs/deploy.md supports: the minimum (the storage/v1 VolumeAttributesClass
#: of the example and of csi-provisioner v6 / csi-resizer v2) to the newest kubernetes-validate knows
KUBERNETES_VERSIONS = ["1.34", "1.35", "1.36", "1.37"]
#: kinds from CRDs, which kubernetes-validate has no schema for: checked by the tests below instead
CRD_KINDS = {
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): "external-snapshotter CRD",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator CRD",
}
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed"
)


@functools.cache
def _render(directory: str, components: tuple[str, ...] = ()) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of a directory, or of a kustomization listing it with ``components``."""
    with tempfile.TemporaryDirectory() as tmp:
        target = ROOT / directory
        if components:  # kustomize takes only relative paths to other roots
            rel = functools.partial(os.path.relpath, start=tmp)
            (Path(tmp) / "kustomization.yaml").write_text(
                yaml.safe_dump(
                    {
                        "resources": [rel(target)],
                        "components": [rel(ROOT / c) for c in components],
                    }
                )
            )
            target = Path(tmp)
        done = subprocess.run(
            ["kubectl", "kustomize", str(target)], check=False, capture_output=True, text=True
        )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def _rendered(name: str) -> tuple[dict[str, Any], ...]:
    directory, components = RENDERS[name]
    return _render(directory, components)


def _find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _driver(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    [workload] = [d for d in docs if d["kind"] == kind]
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    [driver] = [c for c in containers if c["name"] == "filestore-driver"]
    return driver


def _args(container: dict[str, Any]) -> argparse.Namespace:
    """A driver container's args as the driver parses them (SystemExit on an unknown flag)."""
    from csi.main import build_parser

    return build_parser().parse_args(container["args"])


@needs_kubectl
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates_against_the_kubernetes_schemas(version: str) -> None:
    """Strict: an unknown or misspelt field fails, as does a kind/apiVersion the version does not have.

    Each distinct object is validated once per version (the renders share most of them).
    """
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (test-only) not installed"
    )
    where: dict[str, list[str]] = {}  # each distinct object -> the renders that hold it
    for name in RENDERS:
        docs = _rendered(name)
        assert docs, name
        for doc in docs:
            where.setdefault(json.dumps(doc, sort_keys=True), []).append(name)
    errors = []
    for text, names in where.items():
        doc = json.loads(text)
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        what = f"{doc['kind']}/{doc['metadata']['name']} (in {', '.join(names)})"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{what}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{what}: {exc.message}")
    assert not errors, f"on Kubernetes {version}:\n" + "\n".join(errors)


@needs_kubectl
def test_the_volume_attributes_class_example_needs_kubernetes_1_34() -> None:
    """The stated minimum is real: 1.33 has no storage.k8s.io/v1 VolumeAttributesClass."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (test-only) not installed"
    )
    vac = _find(_rendered("examples"), "VolumeAttributesClass", "filestore-fast")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(vac, "1.33", strict=True)
    kubernetes_validate.validate(vac, KUBERNETES_VERSIONS[0], strict=True)


def test_docs_state_the_supported_kubernetes_versions() -> None:
    text = (ROOT.parents[1] / "docs" / "deploy.md").read_text()
    assert f"Kubernetes {KUBERNETES_VERSIONS[0]}" in text
    assert f"{KUBERNETES_VERSIONS[0]} to {KUBERNETES_VERSIONS[-1]}" in text


@needs_kubectl
def test_the_rendered_base_is_in_the_driver_namespace() -> None:
    namespaced = [
        d
        for d in _rendered("base")
        if d["kind"]
        not in {
            "Namespace",
            "CSIDriver",
            "ClusterRole",
            "ClusterRoleBinding",
        }
    ]
    assert namespaced and all(d["metadata"]["namespace"] == "filestore-csi" for d in namespaced)


@needs_kubectl
@pytest.mark.parametrize("name", [n for n in RENDERS if n.startswith("overlays/")])
def test_overlays_set_a_tagged_driver_image_and_args_the_driver_accepts(name: str) -> None:
    docs = _rendered(name)
    for kind in ("Deployment", "DaemonSet"):
        driver = _driver(docs, kind)
        repository, _, tag = driver["image"].rpartition(":")
        assert "/" in repository and tag and tag != "latest", driver["image"]
        _args(driver)
    images = {
        c["image"]
        for d in docs
        if d["kind"] in {"Deployment", "DaemonSet"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert all(":" in image.rpartition("/")[2] for image in images), images  # no implicit :latest


@needs_kubectl
@pytest.mark.parametrize("name", ["overlays/stable", "overlays/multishare"])
def test_stable_overlays_carry_the_workload_identity_annotation(name: str) -> None:
    account = _find(_rendered(name), "ServiceAccount", "filestore-csi-controller")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    node = _find(_rendered(name), "ServiceAccount", "filestore-csi-node")
    assert "annotations" not in node["metadata"]  # the node plugin never calls a Google API


@needs_kubectl
def test_the_multishare_overlay_labels_instances_with_the_cluster_name_the_operator_sets() -> None:
    from csi.controller.labels import cluster_labels
    from csi.errors import CsiError

    args = _args(_driver(_rendered("overlays/multishare"), "Deployment"))
    assert args.enable_multishare and args.gke_cluster_name == "CLUSTER_NAME"
    # the placeholder stops the driver at startup instead of labelling instances with it
    with pytest.raises(CsiError):
        cluster_labels(args.gke_cluster_name, "us-central1-a", args.is_regional)
    stable = _args(_driver(_rendered("overlays/stable"), "Deployment"))
    assert (stable.enable_multishare, stable.gke_cluster_name) == (False, "")


@needs_kubectl
def test_the_dev_overlay_runs_the_image_tools_image_sh_builds() -> None:
    script = (ROOT.parents[1] / "tools" / "image.sh").read_text()
    docs = _rendered("overlays/dev")
    for kind in ("Deployment", "DaemonSet"):
        driver = _driver(docs, kind)
        assert f"IMAGE=${{MOUNTKIT_IMAGE:-{driver['image']}}}" in script
        assert _args(driver).log_level == "DEBUG"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_key_secret_component_gives_the_controller_application_default_credentials(overlay: str) -> None:
    docs = _render(overlay, ("components/service-account-key",))
    [controller] = [d for d in docs if d["kind"] == "Deployment"]
    driver = _driver(docs, "Deployment")
    env = {e["name"]: e["value"] for e in driver["env"]}
    key = env["GOOGLE_APPLICATION_CREDENTIALS"]
    [mount] = [m for m in driver["volumeMounts"] if os.path.dirname(key) == m["mountPath"]]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in controller["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mount["name"]]["secret"]
    assert secret == {"secretName": "filestore-csi-driver-sa"}  # the whole Secret: its key is sa.json
    assert os.path.basename(key) == "sa.json"
    # only the controller calls the Filestore API; the node plugin gets no key
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in {e["name"] for e in _driver(docs, "DaemonSet")["env"]}
    # the base's own settings survive the patch
    assert driver["args"] == _driver(_render(overlay), "Deployment")["args"]


@needs_kubectl
def test_the_service_monitor_scrapes_both_metrics_services() -> None:
    docs = _render("overlays/stable", ("components/servicemonitor",))
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    services = [d for d in docs if d["kind"] == "Service"]
    selected = [
        s for s in services if _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert {s["metadata"]["name"] for s in selected} == {
        "filestore-csi-controller-metrics",
        "filestore-csi-node-metrics",
    }
    assert monitor["metadata"]["namespace"] == "filestore-csi" == selected[0]["metadata"]["namespace"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected)


@needs_kubectl
def test_the_volume_snapshot_classes_are_well_formed() -> None:
    """The CRD kind the schema check passes over: its required fields, by the external-snapshotter CRD."""
    classes = [d for d in _rendered("examples") if d["kind"] == "VolumeSnapshotClass"]
    assert classes
    for doc in classes:
        assert set(doc) <= {"apiVersion", "kind", "metadata", "driver", "deletionPolicy", "parameters"}
        assert doc["deletionPolicy"] in {"Delete", "Retain"}
        assert all(isinstance(v, str) for v in doc.get("parameters", {}).values())


@needs_kubectl
def test_the_stable_image_is_tagged_with_the_driver_version() -> None:
    from csi.version import driver_version

    for kind in ("Deployment", "DaemonSet"):
        assert _driver(_rendered("overlays/stable"), kind)["image"].endswith(f":{driver_version()}")
