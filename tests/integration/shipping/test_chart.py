"""charts/reconciler with the rig's helm (rig/provision.py builds it), against the rig's
apiserver where it matters:

- `helm lint --strict` passes; a wrong value (type, unknown key, enum) fails lint and template
  (values.schema.json).
- The plain manifests in deploy/kubernetes/ and the chart's copies of the repository's files
  are what `make manifests` makes now (deploy/render.py), and a changed source shows as stale.
- Every credential and TLS file the chart wires reaches the daemon's real Settings as a
  `*_FILE` setting pointing at a file of the mounted Secrets; the example Secrets hold every
  key it mounts.
- The policy mount is laid out so the daemon's file watch follows the kubelet's updates
  (policy.yaml beside the `..data` link the kubelet swaps) and the policy's template paths
  resolve inside it.
- `helm template` with every option on (ServiceMonitor, PodMonitor, PrometheusRule, the
  Grafana dashboard, every credential) is applied server-side to the apiserver, which has the
  Prometheus operator's CRDs (from its Go module, rig/provision.py).
- `helm install` puts the StatefulSet (2 replicas), PDB, RBAC and Services on the apiserver;
  no controller-manager runs on the rig, so FakeStatefulSetController makes the two pods from
  the StatefulSet's template as the real controller would, and kwok runs them. `helm upgrade`
  with another policy changes the mounted ConfigMap and leaves the pod template alone (no
  roll, docs/install.md); `helm rollback` restores it. An observe-only release beside it
  gets a read-only Role.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import provision
from tests.support.fleet import REPO, eventually
from tests.support.kubelet import KubeletConfigMapVolume

CHART = REPO / "charts" / "reconciler"
K8S = REPO / "deploy" / "kubernetes"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
sys.path.insert(0, str(REPO / "deploy"))
import render  # noqa: E402  (deploy/ is not a package: found through sys.path)

# Every credential and TLS file the chart can mount, from the example Secrets' names and keys.
EVERY_CREDENTIAL = {
    "zookeeper": {
        "auth": {"username": "reconciler", "existingSecret": "reconciler"},
        "tls": {"existingSecret": "reconciler-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
    },
    "mqtt": {
        "brokers": "mqtts://mosquitto.iota.svc:8883",
        "auth": {"username": "reconciler", "existingSecret": "reconciler"},
        "tls": {"existingSecret": "reconciler-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
    },
    "kafka": {
        "securityProtocol": "SASL_SSL",
        "sasl": {
            "mechanism": "SCRAM-SHA-512",
            "username": "reconciler",
            "existingSecret": "reconciler",
        },
        "tls": {"existingSecret": "reconciler-tls"},
    },
    "api": {"tls": {"existingSecret": "reconciler-tls"}},
}
EVERY_OPTION = {
    **EVERY_CREDENTIAL,
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "podMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    "grafanaDashboard": {"enabled": True},
}
CREDENTIALS_MOUNT = "/var/run/secrets/reconciler"


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HELM_*_HOME for these tests: nothing of the user's helm set-up is read or written."""
    return tmp_path_factory.mktemp("helm-home")


def helm(
    home: Path, *args: str, kubeconfig: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    res = subprocess.run(
        [str(provision.ensure_helm()), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    if check:
        assert res.returncode == 0, f"helm {' '.join(args)}:\n{res.stdout}{res.stderr}"
    return res


def values_file(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def template(home: Path, *args: str, namespace: str = "iota") -> list[dict[str, Any]]:
    out = helm(home, "template", "reconciler", str(CHART), "--namespace", namespace, *args)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return doc


def example_secrets(namespace: str = "iota") -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = namespace
    return docs


# ------------------------------------------------------------------ the chart itself


def test_helm_lint_passes(helm_home: Path) -> None:
    res = helm(helm_home, "lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout


def test_helm_lint_passes_with_every_option_and_observe_only(
    helm_home: Path, tmp_path: Path
) -> None:
    values = values_file(tmp_path, {**EVERY_OPTION, "observeOnly": True, "replicas": 1})
    helm(helm_home, "lint", "--strict", str(CHART), "--values", str(values))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("replicas=two", "at '/replicas': got string, want integer"),
        ("replicas=0", "at '/replicas': minimum"),
        ("imageTag=1.0", "additional properties 'imageTag' not allowed"),
        ("kafka.securityProtocol=TLS", "at '/kafka/securityProtocol'"),
        ("image.digest=latest", "at '/image/digest'"),
        ("observeOnly=maybe", "at '/observeOnly'"),
        ("zookeeper.auth.pasword=x", "additional properties 'pasword' not allowed"),
    ],
)
def test_a_wrong_value_fails_lint_and_template(helm_home: Path, value: str, error: str) -> None:
    rendered = helm(helm_home, "template", "r", str(CHART), "--set", value, check=False)
    assert rendered.returncode != 0 and error in rendered.stderr, rendered.stderr
    linted = helm(helm_home, "lint", str(CHART), "--set", value, check=False)
    assert linted.returncode != 0 and error in linted.stdout + linted.stderr


def test_an_existing_policy_configmap_needs_its_instance_names(helm_home: Path) -> None:
    res = helm(
        helm_home,
        "template",
        "r",
        str(CHART),
        "--set",
        "policy.existingConfigMap=mine",
        check=False,
    )
    assert res.returncode != 0 and "policy.instanceNames" in res.stderr
    docs = template(
        helm_home,
        "--set",
        "policy.existingConfigMap=mine",
        "--set",
        "policy.instanceNames={iota-dac}",
    )
    assert not [d for d in docs if d["kind"] == "ConfigMap"]  # the chart makes none
    volumes = one(docs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert {v["configMap"]["name"] for v in volumes if "configMap" in v} == {"mine"}


# ------------------------------------------------------------------ one source of truth


def test_the_charts_copies_are_the_repositorys_files() -> None:
    copies = render.chart_copies()
    assert {p.relative_to(CHART).as_posix() for p in copies} >= {
        "files/alerts.yaml",
        "files/reconciler.json",
        "files/policy.yaml",
        "files/templates/iota-dac.pod-template.yml",
        "files/templates/iota-rules-engine.pod-template.yml",
    }
    assert render.stale(copies) == [], "run `make manifests`"


def test_the_plain_manifests_are_the_chart_rendered() -> None:
    wanted = render.manifests()
    on_disk = {
        p for p in K8S.glob("*.yaml") if p.name not in ("secret.example.yaml", "values.yaml")
    }
    assert set(wanted) == on_disk
    assert render.stale(wanted) == [], "run `make manifests`"
    # The plain values mount kustomize's ConfigMap: every kind of the repository's policy.
    from reconciler.policy.loader import load_policy

    names = yaml.safe_load(render.VALUES.read_text())["policy"]["instanceNames"]
    kinds = load_policy(REPO / "config" / "policy.yaml").policy.kinds.values()
    assert sorted(names) == sorted(k.instance_name for k in kinds)
    # namespace first, so `kubectl apply` of the files in kustomization.yaml's order works
    kustomization = yaml.safe_load((REPO / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == "deploy/kubernetes/namespace.yaml"


def test_a_changed_source_changes_its_manifest_and_the_check_sees_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The checks above can fail: an alert edited in dashboards/alerts.yaml (here, in what
    the chart's copy would be) renders another PrometheusRule and nothing else, and a file
    that is not what renders is named stale."""
    real = render.chart_copies()
    current = render.manifests()
    alerts = CHART / "files" / "alerts.yaml"
    edited = {**real, alerts: real[alerts].replace(b"for: 5m", b"for: 50m", 1)}
    assert edited[alerts] != real[alerts]
    monkeypatch.setattr(render, "chart_copies", lambda: edited)
    changed = render.manifests()
    rule = K8S / "prometheusrule.yaml"
    assert [p for p in current if changed[p] != current[p]] == [rule]
    on_disk = tmp_path / rule.name
    on_disk.write_bytes(current[rule])
    assert render.stale({on_disk: changed[rule]}) == [on_disk]
    assert render.stale({on_disk: current[rule]}) == []


# ------------------------------------------------------------------ what the pod gets


def _pod_env(container: dict[str, Any], pod_name: str, pod_ip: str, mount: Path) -> dict[str, str]:
    """The container's environment as the kubelet gives it: field refs resolved, $(VAR)
    expanded, the credentials mount at `mount` instead of /var/run/secrets/reconciler."""
    fields = {"metadata.name": pod_name, "status.podIP": pod_ip}
    env: dict[str, str] = {}
    for e in container["env"]:
        if "valueFrom" in e:
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
            continue
        value = str(e["value"])
        for name, known in env.items():
            value = value.replace(f"$({name})", known)
        env[e["name"]] = value.replace(CREDENTIALS_MOUNT, str(mount))
    return env


def _secret_data(secrets: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {
        (s["metadata"]["name"], key): value
        for s in secrets
        for key, value in s["stringData"].items()
    }


def _settings_of_pod(
    docs: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """The daemon's real Settings in pod reconciler-0 (IP 10.1.2.3) of the rendered
    StatefulSet, its mounted Secrets made from the example Secrets (each key the chart
    mounts must be there); with the pod's environment and its container."""
    from reconciler.config.settings import Settings

    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (credentials,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    (mounted,) = [m for m in container["volumeMounts"] if m["name"] == "credentials"]
    assert mounted["mountPath"] == CREDENTIALS_MOUNT and mounted["readOnly"] is True
    data = _secret_data(example_secrets())
    mount = tmp_path / "credentials"
    for source in credentials["projected"]["sources"]:
        secret = source["secret"]["name"]
        for item in source["secret"]["items"]:
            assert (secret, item["key"]) in data, f"{secret}/{item['key']} not in the example"
            (mount / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            (mount / item["path"]).write_text(data[(secret, item["key"])])
    env = _pod_env(container, "reconciler-0", "10.1.2.3", mount)
    for name in list(os.environ):
        if name.startswith(("RECONCILER_", "IOTA_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None), env, container  # type: ignore[call-arg]


def test_every_credential_reaches_the_settings_as_a_file(
    helm_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = template(helm_home, "--values", str(values_file(tmp_path, EVERY_CREDENTIAL)))
    settings, env, container = _settings_of_pod(docs, tmp_path, monkeypatch)
    data = _secret_data(example_secrets())

    secret = data[("reconciler", "database-url")]
    assert settings.database_url.get_secret_value() == secret
    for field, key in [
        ("api_token", "api-token"),
        ("zk_password", "zk-password"),
        ("mqtt_password", "mqtt-password"),
        ("kafka_sasl_password", "kafka-sasl-password"),
    ]:
        assert getattr(settings, field).get_secret_value() == data[("reconciler", key)], field
    for field in ("zk_tls_ca_file", "mqtt_ca_file", "kafka_ca_file"):
        assert Path(getattr(settings, field)).read_text() == data[("reconciler-tls", "ca.crt")]
    for field in ("zk_tls_cert_file", "mqtt_cert_file", "api_tls_cert_file"):
        assert Path(getattr(settings, field)).read_text() == data[("reconciler-tls", "tls.crt")]
    for field in ("zk_tls_key_file", "mqtt_key_file", "api_tls_key_file"):
        assert Path(getattr(settings, field)).read_text() == data[("reconciler-tls", "tls.key")]
    assert (settings.zk_username, settings.mqtt_username) == ("reconciler", "reconciler")
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert settings.identity == "reconciler-0"
    assert (settings.api_host, settings.api_port, settings.kube_in_cluster) == (
        "0.0.0.0",
        8080,
        True,
    )
    assert settings.mqtt_brokers == "mqtts://mosquitto.iota.svc:8883"
    # No secret in the environment, only paths to them.
    assert not set(data.values()) & set(env.values())
    # The address a standby forwards writes to: this pod's own, https with the API's TLS.
    assert settings.api_advertise_url == "https://10.1.2.3:8080"
    assert settings.observe_only is False
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["scheme"]) == ("/readyz", "HTTPS")


def test_the_plain_manifests_mount_only_keys_of_the_example_secret() -> None:
    docs = [d for d in yaml.safe_load_all((K8S / "statefulset.yaml").read_text()) if d]
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (credentials,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    data = _secret_data(example_secrets())
    mounted = {
        (s["secret"]["name"], i["key"])
        for s in credentials["projected"]["sources"]
        for i in s["secret"]["items"]
    }
    assert mounted == {("reconciler", "database-url"), ("reconciler", "api-token")}
    assert mounted <= set(data)
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "IOTA_MQTT_BROKERS" not in env and env["RECONCILER_MQTT_BROKERS"]["value"]
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())


def test_observe_only_sets_the_mode_and_its_role_only_reads(
    helm_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = template(helm_home, "--set", "observeOnly=true", "--set", "replicas=1")
    settings, _, _ = _settings_of_pod(docs, tmp_path, monkeypatch)
    assert settings.observe_only is True
    assert settings.api_advertise_url == "http://10.1.2.3:8080"
    env = {
        e["name"]: e.get("value")
        for e in one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["RECONCILER_OBSERVE_ONLY"] == "true"
    verbs = {
        (group, resource, verb)
        for rule in one(docs, "Role")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert verbs == {
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("metrics.k8s.io", "pods", "list"),
        ("", "resourcequotas", "list"),
    }
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]  # one replica: no PDB
    default_env = {
        e["name"]
        for e in one(template(helm_home), "StatefulSet")["spec"]["template"]["spec"]["containers"][
            0
        ]["env"]
    }
    assert "RECONCILER_OBSERVE_ONLY" not in default_env


# ------------------------------------------------------------------ the mounted policy


def test_the_mounted_policy_follows_every_configmap_update(helm_home: Path, tmp_path: Path) -> None:
    """The policy volume as the kubelet lays it out from the rendered StatefulSet and
    ConfigMap: the policy's template paths resolve inside it, and the daemon's watch (the
    layout of tests/unit/runtime/test_policy_watch.py: policy.yaml beside `..data`) sees every
    update, of the policy or of a template, not only the first, and reads the new files."""
    from reconciler.policy.loader import load_policy
    from reconciler.runtime.policy_watch import watch_policy_file

    docs = template(helm_home)
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    data = one(docs, "ConfigMap", "reconciler-policy")["data"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    policy_path = tmp_path / env["RECONCILER_POLICY_PATH"].lstrip("/")
    (mount,) = [
        m
        for m in container["volumeMounts"]
        if policy_path.is_relative_to(tmp_path / m["mountPath"].lstrip("/"))
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    items = {i["path"]: i["key"] for i in volume["configMap"]["items"]}
    assert set(items.values()) == set(data)  # every key of the ConfigMap is mounted
    path_of = {key: path for path, key in items.items()}
    files = {path: data[key] for path, key in items.items()}
    root = tmp_path / mount["mountPath"].lstrip("/")
    folder = KubeletConfigMapVolume(root, files)
    policy_file = policy_path.relative_to(root).as_posix()

    def check_loaded() -> None:
        loaded = load_policy(policy_path)
        assert policy_path.read_text() == files[policy_file]
        for kind, p in loaded.policy.kinds.items():
            template_file = path_of[f"{p.instance_name}.pod-template.yml"]
            assert loaded.template_path(kind).read_text() == files[template_file]

    check_loaded()
    loaded = load_policy(policy_path)
    templates = [loaded.template_path(kind) for kind in loaded.policy.kinds]
    template_file = path_of[next(k for k in data if k.endswith(".pod-template.yml"))]
    seen: list[int] = []
    stop = threading.Event()
    watch_policy_file(policy_path, lambda: seen.append(1), stop, templates)
    try:

        def watching() -> bool:  # the watch starts in a thread of its own: once it sees one
            folder.update(files)
            return bool(seen)

        eventually(watching, timeout=15, interval=0.5)
        for n, path in enumerate([policy_file, template_file] * 2):
            before = len(seen)
            files = {**files, path: files[path] + f"# edit {n}\n"}
            folder.update(files)
            eventually(lambda before=before: len(seen) > before, timeout=10, what=f"edit {n}")
            check_loaded()
    finally:
        stop.set()


# ------------------------------------------------------------------ against the apiserver


def _dynamic(api_client: Any) -> Any:
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api_client)


def _apply(dyn: Any, doc: dict[str, Any], namespace: str | None) -> Any:
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    return resource.server_side_apply(
        body=doc,
        namespace=namespace if resource.namespaced else None,
        field_manager="reconciler-chart-test",
        force_conflicts=True,
    )


@pytest.fixture(scope="module")
def monitoring_crds(kube: Any) -> list[str]:
    """The Prometheus operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs on the
    rig's apiserver, established."""
    from kubernetes import client

    names = []
    with kube.api_client() as api:
        dyn = _dynamic(api)
        for path in sorted(provision.ensure_monitoring_crds().glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            _apply(dyn, crd, None)
            names.append(crd["metadata"]["name"])
        ext = client.ApiextensionsV1Api(api)

        def established(name: str) -> bool:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        for name in names:
            eventually(lambda name=name: established(name), timeout=30)
        dyn.resources.invalidate_cache()
    return names


def test_helm_template_with_every_option_applies_server_side(
    kube: Any, kube_namespace: str, monitoring_crds: list[str], helm_home: Path, tmp_path: Path
) -> None:
    values = values_file(tmp_path, EVERY_OPTION)
    docs = template(helm_home, "--values", str(values), namespace=kube_namespace)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "StatefulSet",
            "Service",
            "Service",
            "PodDisruptionBudget",
            "ServiceMonitor",
            "PodMonitor",
            "PrometheusRule",
        ]
    )
    cluster_scoped = [d for d in docs if d["kind"].startswith("Cluster")]
    with kube.api_client() as api:
        dyn = _dynamic(api)
        try:
            for doc in [*example_secrets(kube_namespace), *docs]:
                out = _apply(dyn, doc, kube_namespace)
                assert out.metadata.name == doc["metadata"]["name"]
            rule = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="PrometheusRule")
            stored = rule.get(name="reconciler", namespace=kube_namespace).to_dict()
            # the chart's copies (test_the_charts_copies_are_the_repositorys_files: current)
            alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
            assert stored["spec"] == alerts  # the CRD's schema kept every field
            assert stored["metadata"]["labels"]["release"] == "prometheus"
            dashboard = one(docs, "ConfigMap", "reconciler-dashboard")
            assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
            assert json.loads(dashboard["data"]["reconciler.json"]) == json.loads(
                (CHART / "files" / "reconciler.json").read_text()
            )
        finally:
            for doc in cluster_scoped:
                resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
                with contextlib.suppress(Exception):
                    resource.delete(name=doc["metadata"]["name"])


class FakeStatefulSetController:
    """The part of kube-controller-manager's StatefulSet controller the rig lacks: the pods
    <name>-0 .. <name>-(replicas-1) from the StatefulSet's pod template, owned by it, with the
    labels and hostname the real controller sets. kwok then runs them."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace

    def sync(self, name: str) -> list[str]:
        sts = self.apps.read_namespaced_stateful_set(name, self.namespace)
        template = self.apps.api_client.sanitize_for_serialization(sts.spec.template)
        pods = []
        for ordinal in range(sts.spec.replicas):
            pod_name = f"{name}-{ordinal}"
            spec = {**template["spec"], "hostname": pod_name, "subdomain": sts.spec.service_name}
            labels = {
                **template["metadata"]["labels"],
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(ordinal),
            }
            owner = {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": name,
                "uid": sts.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "labels": labels,
                    "annotations": template["metadata"].get("annotations", {}),
                    "ownerReferences": [owner],
                },
                "spec": spec,
            }
            self.core.create_namespaced_pod(self.namespace, body)
            pods.append(pod_name)
        return pods


def _configmap_data(kube: Any, namespace: str, name: str) -> dict[str, str]:
    from kubernetes import client

    with kube.api_client() as api:
        return client.CoreV1Api(api).read_namespaced_config_map(name, namespace).data


def _statefulset(kube: Any, namespace: str) -> Any:
    from kubernetes import client

    with kube.api_client() as api:
        return client.AppsV1Api(api).read_namespaced_stateful_set("reconciler", namespace)


@pytest.fixture
def installed(kube: Any, kube_namespace: str, helm_home: Path) -> Iterator[tuple[str, Path]]:
    """The install order of docs/install.md in a fresh namespace: the Secret, then `helm
    install reconciler`; uninstalled after (its ClusterRole and binding are cluster-wide)."""
    from kubernetes import client

    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        (secret, _tls) = example_secrets(kube_namespace)
        core.create_namespaced_secret(kube_namespace, secret)
    helm(
        helm_home,
        "install",
        "reconciler",
        str(CHART),
        "--namespace",
        kube_namespace,
        kubeconfig=kube.kubeconfig,
    )
    try:
        yield kube_namespace, kube.kubeconfig
    finally:
        for release in ("reconciler-observe", "reconciler"):
            helm(
                helm_home,
                "uninstall",
                release,
                "--namespace",
                kube_namespace,
                kubeconfig=kube.kubeconfig,
                check=False,
            )


def test_helm_install_puts_two_replicas_pdb_rbac_and_services_on_the_apiserver(
    kube: Any, installed: tuple[str, Path], helm_home: Path
) -> None:
    from kubernetes import client

    namespace, kubeconfig = installed
    status = helm(helm_home, "status", "reconciler", "-n", namespace, kubeconfig=kubeconfig)
    assert "STATUS: deployed" in status.stdout
    assert "reconciler status --url" in status.stdout  # NOTES.txt
    with kube.api_client() as api:
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        sts = _statefulset(kube, namespace)
        assert sts.spec.replicas == 2 and sts.spec.pod_management_policy == "Parallel"
        headless = core.read_namespaced_service(sts.spec.service_name, namespace)
        assert headless.spec.cluster_ip == "None"
        service = core.read_namespaced_service("reconciler", namespace)
        assert service.spec.selector.items() <= sts.spec.template.metadata.labels.items()
        pdb = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("reconciler", namespace)
        assert pdb.spec.min_available == 1
        assert pdb.spec.selector.match_labels == sts.spec.selector.match_labels
        role = rbac.read_namespaced_role("reconciler", namespace)
        assert "create" in role.rules[0].verbs
        binding = rbac.read_cluster_role_binding(f"{namespace}-reconciler-capacity")
        assert binding.subjects[0].namespace == namespace
        assert core.read_namespaced_service_account("reconciler", namespace)

        pods = FakeStatefulSetController(api, namespace).sync("reconciler")
        assert pods == ["reconciler-0", "reconciler-1"]

        def running() -> bool:
            phases = [core.read_namespaced_pod(p, namespace).status.phase for p in pods]
            return phases == ["Running", "Running"]

        eventually(running, timeout=60)  # scheduled on kwok's nodes, which run them
        selected = core.list_namespaced_pod(
            namespace,
            label_selector=",".join(f"{k}={v}" for k, v in service.spec.selector.items()),
        )
        assert sorted(p.metadata.name for p in selected.items) == pods


def test_helm_upgrade_changes_the_policy_without_a_roll_and_rollback_restores_it(
    kube: Any, installed: tuple[str, Path], helm_home: Path, tmp_path: Path
) -> None:
    namespace, kubeconfig = installed
    original = _configmap_data(kube, namespace, "reconciler-policy")
    assert original["policy.yaml"] == (REPO / "config" / "policy.yaml").read_text()
    before = _statefulset(kube, namespace)

    edited = tmp_path / "policy.yaml"
    edited.write_text(original["policy.yaml"].replace("tickSeconds: 30", "tickSeconds: 20", 1))
    helm(
        helm_home,
        "upgrade",
        "reconciler",
        str(CHART),
        "-n",
        namespace,
        "--reuse-values",
        "--set-file",
        f"policy.policyYaml={edited}",
        kubeconfig=kubeconfig,
    )
    upgraded = _configmap_data(kube, namespace, "reconciler-policy")
    assert upgraded["policy.yaml"] == edited.read_text()
    assert "tickSeconds: 20" in upgraded["policy.yaml"]
    after = _statefulset(kube, namespace)
    # The pod template is untouched: the StatefulSet controller would not roll the pods; the
    # kubelet refreshes the mounted file and the daemon re-reads it.
    assert after.metadata.generation == before.metadata.generation
    assert after.spec.template == before.spec.template

    # What does roll them (the check above can tell): an image change.
    helm(
        helm_home,
        "upgrade",
        "reconciler",
        str(CHART),
        "-n",
        namespace,
        "--reuse-values",
        "--set",
        "image.tag=0.0.1-other",
        kubeconfig=kubeconfig,
    )
    assert _statefulset(kube, namespace).metadata.generation == before.metadata.generation + 1

    helm(helm_home, "rollback", "reconciler", "1", "-n", namespace, kubeconfig=kubeconfig)
    assert _configmap_data(kube, namespace, "reconciler-policy") == original
    restored = _statefulset(kube, namespace)
    # The chart's own appVersion, which is this package's version (tests/docs/test_changelog.py).
    assert (
        restored.spec.template.spec.containers[0].image
        == f"iota/reconciler:{version('reconciler')}"
    )
    history = helm(helm_home, "history", "reconciler", "-n", namespace, kubeconfig=kubeconfig)
    assert "Rollback to 1" in history.stdout


def test_an_observe_only_release_beside_it_may_only_read(
    kube: Any, installed: tuple[str, Path], helm_home: Path
) -> None:
    """`helm install reconciler-observe ... --set observeOnly=true` as docs/install.md says:
    its own ServiceAccount, allowed to read pods and refused every write."""
    from kubernetes import client

    namespace, kubeconfig = installed
    helm(
        helm_home,
        "install",
        "reconciler-observe",
        str(CHART),
        "-n",
        namespace,
        "--set",
        "observeOnly=true",
        "--set",
        "replicas=1",
        kubeconfig=kubeconfig,
    )
    user = f"system:serviceaccount:{namespace}:reconciler-observe"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]

    def allowed(verb: str, resource: str, group: str = "") -> bool:
        with kube.api_client() as api:
            review = client.AuthorizationV1Api(api).create_subject_access_review(
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {
                        "user": user,
                        "groups": groups,
                        "resourceAttributes": {
                            "namespace": namespace,
                            "verb": verb,
                            "group": group,
                            "resource": resource,
                        },
                    },
                }
            )
        return bool(review.status.allowed)

    assert [allowed(v, "pods") for v in ("get", "list", "watch")] == [True] * 3
    assert allowed("list", "pods", "metrics.k8s.io") and allowed("list", "resourcequotas")
    refused = [("create", "pods", ""), ("delete", "pods", ""), ("patch", "pods", "")]
    refused += [("create", "events", "events.k8s.io"), ("patch", "events", "events.k8s.io")]
    assert [allowed(*r) for r in refused] == [False] * len(refused)
    with kube.api_client() as api:
        apps = client.AppsV1Api(api)
        observe = apps.read_namespaced_stateful_set("reconciler-observe", namespace)
        env = {e.name: e.value for e in observe.spec.template.spec.containers[0].env}
        assert env["RECONCILER_OBSERVE_ONLY"] == "true"
        main = client.CoreV1Api(api).read_namespaced_service("reconciler", namespace)
        # the main Service never selects the observe-only pods
        labels = observe.spec.template.metadata.labels
        assert not main.spec.selector.items() <= labels.items()
