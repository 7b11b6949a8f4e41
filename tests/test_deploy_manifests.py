"""Kubernetes manifests (deploy/k8s): every overlay renders with `kubectl kustomize`, every object it renders
passes `kubernetes-validate --strict` (the Kubernetes schemas, offline), KEDA's ScaledObject (a CRD those
schemas lack) is checked against its documented structure, and what docs/deploy.md promises holds in the
rendered objects: one broker that is replaced, never doubled; only pipeline pods reach it; non-root pods with
read-only roots; GPUs requested in the GPU overlay; configs the services are given that really load.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "cpu-hpa", "gpu")
BROKER_PORTS = {
    "frames-in": 5550,
    "frames-out": 5551,
    "results-in": 5552,
    "results-out": 5553,
    "control": 5554,
}
VALIDATE = Path(sys.executable).with_name("kubernetes-validate")
KEYS = Path("components") / "curve-keys" / "keys"
# What each role's Secret holds: its own pair, the broker's public key, and the allowlist only where a
# CURVE server checks clients (the broker; safety for its history socket). No one gets another's secret.
ROLE_KEYS = {
    "broker": {"broker.key", "broker.key_secret", "allowlist.txt"},
    "worker": {"broker.key", "worker.key", "worker.key_secret"},
    "edge": {"broker.key", "edge.key", "edge.key_secret"},
    "safety": {"broker.key", "safety.key", "safety.key_secret", "allowlist.txt"},
    "viewer": {"broker.key", "safety.key", "subscriber.key", "subscriber.key_secret"},
}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: it renders the Kustomize overlays"
)


def _render(tree: Path, overlay: str) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def keyed_tree(tmp_path_factory) -> Path:
    """deploy/k8s as a site has it: a copy with CURVE keys made by `anjeon keys init` (never in git)."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("keys"))
    made = subprocess.run(
        [str(VALIDATE.with_name("anjeon")), "keys", "init", str(tree / KEYS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return tree


@pytest.fixture(scope="module")
def rendered(keyed_tree) -> dict[str, list[dict]]:
    return {overlay: _render(keyed_tree, overlay) for overlay in OVERLAYS}


def _kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def _workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def _strict_validate(tmp_path: Path, docs: list[dict]) -> subprocess.CompletedProcess:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return subprocess.run([str(VALIDATE), "--strict", str(path)], capture_output=True, text=True, timeout=300)


def _is_keda(doc: dict) -> bool:
    return doc["apiVersion"].startswith("keda.sh/")


# ---------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_passes_strict_schema_validation(rendered, overlay, tmp_path):
    docs = rendered[overlay]
    result = _strict_validate(tmp_path, docs)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"passed for resource (\S+)", result.stdout + result.stderr)
    core = [d for d in docs if not _is_keda(d)]
    assert len(passed) == len(core), f"validated {passed}, rendered {[d['kind'] for d in core]}"


def test_strict_validation_rejects_a_misspelt_field(rendered, tmp_path):
    """The check above can fail: a field the schema does not know is refused, not ignored."""
    docs = copy.deepcopy(rendered["cpu"])
    broker = _one(docs, "Deployment", "anjeon-broker")
    broker["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = (
        True  # belongs in securityContext
    )
    result = _strict_validate(tmp_path, docs)
    assert result.returncode != 0
    assert "readOnlyRootFilesystem" in result.stdout + result.stderr


# KEDA's ScaledObject as its reference documents it (keda.sh/docs, "ScaledObject specification"): only the
# fields below exist; a typo would be silently dropped by nothing but KEDA's own admission webhook.
_BEHAVIOR = {"type": "object"}  # checked against the real HPA schema in the test below
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {"type": "object", "required": ["failureThreshold", "replicas"]},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": _BEHAVIOR},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {"type": "object", "required": ["name"]},
                            # KEDA reads every trigger's metadata as strings.
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}
# The Prometheus scaler's metadata (keda.sh/docs, "Prometheus" scaler).
PROMETHEUS_METADATA = {
    "serverAddress",
    "query",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "queryParameters",
    "unsafeSsl",
    "timeout",
    "authModes",
}


def _scaled_objects(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "ScaledObject"]


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_keda_scaled_object_is_well_formed_and_targets_the_workers(rendered, overlay):
    import jsonschema

    docs = rendered[overlay]
    (scaled,) = _scaled_objects(docs)
    jsonschema.validate(scaled, SCALED_OBJECT)
    spec = scaled["spec"]
    target = _one(docs, "Deployment", spec["scaleTargetRef"]["name"])
    assert target["metadata"]["namespace"] == scaled["metadata"]["namespace"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    names = [t["name"] for t in spec["triggers"]]
    assert len(set(names)) == len(names)
    for trigger in spec["triggers"]:
        assert trigger["type"] == "prometheus"
        meta = trigger["metadata"]
        assert set(meta) <= PROMETHEUS_METADATA, set(meta) - PROMETHEUS_METADATA
        assert meta["serverAddress"].startswith("http")
        assert float(meta["threshold"]) > 0
        _check_promql(meta["query"])


def _check_promql(query: str) -> None:
    """What can be checked without a Prometheus: brackets balance, and every metric it reads is one anjeon
    exports (named in docs/metrics.md), in this namespace."""
    depth = 0
    for ch in query:
        depth += {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, query
    assert depth == 0, query
    metrics = set(re.findall(r"\b(anjeon_[a-z0-9_]+)", query))
    assert metrics, f"the query reads no anjeon metric: {query}"
    documented = ROOT / "docs" / "metrics.md"
    if documented.exists():
        text = documented.read_text()
        for metric in metrics:
            assert re.search(rf"\b{re.escape(metric)}\b", text), f"{metric} is not in docs/metrics.md"
    assert query.count("anjeon_") == query.count('namespace="anjeon"'), "every series of this namespace only"


def test_keda_hpa_behaviour_passes_the_real_hpa_schema(rendered):
    """KEDA hands `advanced.horizontalPodAutoscalerConfig.behavior` to the HPA it makes: validate it as one."""
    import kubernetes_validate

    for overlay in ("cpu", "gpu"):
        (scaled,) = _scaled_objects(rendered[overlay])
        behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "probe"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "anjeon-worker"},
                "maxReplicas": 2,
                "behavior": behavior,
            },
        }
        kubernetes_validate.validate(hpa, "1.37.0", strict=True)


# ---------------------------------------------------------------------------- what the docs promise


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_broker_replaced_never_doubled_behind_a_service_for_its_five_ports(rendered, overlay):
    docs = rendered[overlay]
    broker = _one(docs, "Deployment", "anjeon-broker")
    assert broker["spec"]["replicas"] == 1
    assert broker["spec"]["strategy"]["type"] == "Recreate"
    assert not [
        d
        for d in docs
        if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
        and d["spec"]["scaleTargetRef"]["name"] == "anjeon-broker"
    ]
    service = _one(docs, "Service", "anjeon-broker")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == BROKER_PORTS
    labels = broker["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    container_ports = {
        p["name"]: p["containerPort"] for p in broker["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {k: container_ports[k] for k in BROKER_PORTS} == BROKER_PORTS


def _pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_pipeline_pods_reach_the_broker(rendered, overlay):
    docs = rendered[overlay]
    broker = _one(docs, "Deployment", "anjeon-broker")
    policies = [
        p for p in _kind(docs, "NetworkPolicy") if _matches(p["spec"]["podSelector"], _pod_labels(broker))
    ]
    assert len(policies) == 1
    rules = policies[0]["spec"]["ingress"]
    assert "Ingress" in policies[0]["spec"]["policyTypes"]
    pipeline_selectors = []
    for rule in rules:
        ports = {(p["port"], p.get("endPort", p["port"])) for p in rule["ports"]}
        for peer in rule["from"]:
            assert "podSelector" in peer or "ipBlock" in peer or "namespaceSelector" in peer
            if "podSelector" in peer:
                pipeline_selectors.append(peer["podSelector"])
                assert ports == {(5550, 5554)}
            elif "namespaceSelector" in peer:  # Prometheus: the metrics port only
                assert all(lo == hi and lo not in BROKER_PORTS.values() for lo, hi in ports)
            else:  # camera hosts outside the cluster: push frames and heartbeat, nothing else
                assert {lo for lo, _ in ports} <= {BROKER_PORTS["frames-in"], BROKER_PORTS["control"]}
    assert len(pipeline_selectors) == 1
    for workload in _workloads(docs):
        talks_to_broker = (
            "tcp://anjeon-broker:5550" in workload["spec"]["template"]["spec"]["containers"][0]["args"]
        )
        if talks_to_broker:
            assert _matches(pipeline_selectors[0], _pod_labels(workload)), workload["metadata"]["name"]
    # ...and nothing else in the namespace carries the label by accident: the selector is the pipeline's.
    assert pipeline_selectors[0]["matchLabels"] == {"anjeon.io/pipeline": "true"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_unprivileged_with_read_only_roots(rendered, overlay):
    for workload in _workloads(rendered[overlay]):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{workload['metadata']['name']}: a read-only root needs a writable /tmp"


def _worker_container(docs: list[dict]) -> dict:
    return _one(docs, "Deployment", "anjeon-worker")["spec"]["template"]["spec"]["containers"][0]


def test_gpu_overlay_asks_for_a_gpu_per_worker_and_the_cuda_image(rendered):
    worker = _worker_container(rendered["gpu"])
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["image"].endswith("-cuda")
    assert worker["args"][worker["args"].index("--device") + 1].startswith("cuda")
    cpu_worker = _worker_container(rendered["cpu"])
    assert "nvidia.com/gpu" not in cpu_worker["resources"].get("limits", {})
    assert not cpu_worker["image"].endswith("-cuda")


def test_cpu_hpa_overlay_scales_the_workers_without_keda(rendered):
    docs = rendered["cpu-hpa"]
    assert not _scaled_objects(docs)
    (hpa,) = _kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "anjeon-worker"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # HPA CPU utilisation is relative to the request: without one it cannot work.
    assert "cpu" in _worker_container(docs)["resources"]["requests"]


def test_safety_keeps_its_store_on_a_claimed_volume(rendered):
    docs = rendered["gpu"]
    safety = _one(docs, "StatefulSet", "anjeon-safety")
    assert safety["spec"]["replicas"] == 1
    (claim,) = safety["spec"]["volumeClaimTemplates"]
    container = safety["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    store = container["args"][container["args"].index("--store") + 1]
    assert store.startswith(mounts[claim["metadata"]["name"]] + "/")


def _configmap_files(docs: list[dict]) -> dict[str, str]:
    return {key: text for cm in _kind(docs, "ConfigMap") for key, text in cm["data"].items()}


def test_the_site_config_given_to_the_services_loads(rendered, tmp_path):
    """The config a pod gets is the one `anjeon config validate` accepts, and safety's store is on its volume."""
    from anjeon.config import load_site_config

    files = _configmap_files(rendered["cpu"])
    path = tmp_path / "site.yaml"
    path.write_text(files["site.yaml"])
    site = load_site_config(path)
    assert site.safety is not None and site.safety.cameras
    assert site.safety.store.startswith("/var/lib/anjeon/")
    example = K8S / "components" / "edges" / "cameras-east.example.yaml"
    assert load_site_config(example).cameras


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_file_a_container_is_given_lies_on_a_mounted_volume(rendered, overlay):
    docs = rendered[overlay]
    for workload in _workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"] for v in pod["volumes"]} | {
            c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])
        }
        for container in pod["containers"]:
            mounts = container["volumeMounts"]
            assert {m["name"] for m in mounts} <= volumes
            args = container["args"]
            for flag in ("--config", "--users", "--store", "--acks"):
                if flag in args:
                    path = args[args.index(flag) + 1]
                    assert any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts), (
                        flag,
                        path,
                    )


def test_viewer_serves_beyond_loopback_only_with_a_login_behind_an_ingress(rendered):
    docs = rendered["cpu"]
    viewer = _one(docs, "Deployment", "anjeon-viewer")["spec"]["template"]["spec"]["containers"][0]
    args = viewer["args"]
    assert args[args.index("--bind") + 1] == "0.0.0.0" and "--users" in args
    ingress = _one(docs, "Ingress", "anjeon-viewer")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = _one(docs, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_anjeon_namespace(rendered, overlay):
    """Components are outside the base, whose namespace does not reach them: the overlays must set it."""
    for doc in rendered[overlay]:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "anjeon", f"{doc['kind']}/{doc['metadata']['name']}"


def test_without_keys_the_overlays_refuse_to_render(tmp_path):
    """No plaintext by accident: a site that has not made its keys gets an error, not an open bus."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("keys"))
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays" / "gpu")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "broker.key" in out.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_role_mounts_only_its_own_keys(rendered, keyed_tree, overlay):
    import base64

    docs = rendered[overlay]
    secrets = {d["metadata"]["name"]: d for d in _kind(docs, "Secret")}
    for workload in _workloads(docs):
        role = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"name": "ANJEON_KEYS", "value": "/etc/anjeon/keys"} in container["env"], role
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/anjeon/keys"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        secret = secrets[volume["secret"]["secretName"]]
        assert set(secret["data"]) == ROLE_KEYS[role], role
        for name, value in secret["data"].items():  # the very files `anjeon keys init` wrote
            assert base64.b64decode(value) == (keyed_tree / KEYS / name).read_bytes()
