"""deploy/: the image recipe and the Kubernetes manifests, against the rig's real apiserver.

- Every manifest passes the apiserver's own validation and admission (server-side apply with
  dryRun=All: nothing is stored).
- The ServiceAccount and its RBAC are created for real; a token of that ServiceAccount (a real
  TokenRequest, read through the daemon's in-cluster mode) runs the real KubePods adapter and
  PodWatcher, and everything outside the daemon's calls is refused (403).
- The manifests are what `kubectl apply -k .` applies: the repository root's kustomization.yaml
  rendered by kustomize (the rig builds it), over the files the Helm chart renders
  (tests/integration/shipping/test_chart.py checks they are current). Its ConfigMap is
  generated from config/policy.yaml and templates/, carries them byte for byte, is mounted
  where the StatefulSet's RECONCILER_POLICY_PATH says, and validates as `reconciler validate`
  does.
- The Dockerfile installs what pyproject.toml builds and agrees with the StatefulSet.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import provision
from tests.support.fleet import REPO, eventually
from tests.support.kubelet import KubeletConfigMapVolume

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
KUSTOMIZATION = REPO / "kustomization.yaml"
# In deploy/kubernetes/ but not applied by `kubectl apply -k .`: the Secret is an example (the
# real one is created out of band, never from git); the PrometheusRule and ServiceMonitor need
# the Prometheus Operator's CRDs and the dashboard Grafana's sidecar (each applied on its own
# where those run); values.yaml is what the files are rendered with, not a manifest.
NOT_IN_KUSTOMIZATION = {
    "secret.example.yaml",
    "prometheusrule.yaml",
    "servicemonitor.yaml",
    "grafana-dashboard.yaml",
    "values.yaml",
}
NS = "iota"
SA_USER = f"system:serviceaccount:{NS}:reconciler"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@functools.cache
def _rendered() -> tuple[dict[str, Any], ...]:
    """`kustomize build` of the repository root: what `kubectl apply -k .` sends."""
    res = subprocess.run(
        [str(provision.ensure_kustomize()), "build", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return tuple(d for d in yaml.safe_load_all(res.stdout) if d)


def manifests(include_secret: bool = False) -> list[dict[str, Any]]:
    docs = [copy.deepcopy(d) for d in _rendered()]
    if include_secret:
        docs += _docs(K8S / "secret.example.yaml")
    return docs


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in manifests(include_secret=True) if d["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    (doc,) = _by_kind(kind)
    return doc


# ------------------------------------------------------------------ the files themselves


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    listed = {Path(r) for r in kustomization["resources"]}
    on_disk = {p.relative_to(REPO) for p in K8S.glob("*.yaml")}
    assert listed == {p for p in on_disk if p.name not in NOT_IN_KUSTOMIZATION}
    # One entry point, the root's.
    assert not (K8S / "kustomization.yaml").exists()
    kinds = sorted(d["kind"] for d in manifests())
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "PodDisruptionBudget",
            "ConfigMap",
            "StatefulSet",
            "Service",
            "Service",
        ]
    )
    for d in manifests():
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == NS, d["metadata"]


def test_configmap_is_generated_from_the_repositorys_policy_and_templates() -> None:
    """Not a copy that can drift: kustomize reads config/policy.yaml and the templates the
    policy names, and each kind's template is among them."""
    from reconciler.policy.loader import load_policy

    (generator,) = yaml.safe_load(KUSTOMIZATION.read_text())["configMapGenerator"]
    sources = {key: REPO / path for key, _, path in (f.partition("=") for f in generator["files"])}
    assert sources["policy.yaml"] == REPO / "config" / "policy.yaml"
    loaded = load_policy(REPO / "config" / "policy.yaml")
    for kind in loaded.policy.kinds:
        assert loaded.template_path(kind).resolve() in {p.resolve() for p in sources.values()}
    assert all(p.is_relative_to(REPO) and p.is_file() for p in sources.values())
    assert generator["options"]["disableNameSuffixHash"] is True  # edited in place (README)
    assert _one("ConfigMap")["metadata"]["name"] == generator["name"]
    # the chart renders none for the plain manifests: it mounts this one
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert values["policy"]["existingConfigMap"] == generator["name"]


def test_configmap_is_the_repositorys_policy_and_templates(tmp_path: Path) -> None:
    from reconciler.policy.loader import load_policy
    from reconciler.policy.templates import load_pod_template

    cm = _one("ConfigMap")
    sts = _one("StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    (volume,) = [
        v
        for v in sts["spec"]["template"]["spec"]["volumes"]
        if v.get("configMap", {}).get("name") == cm["metadata"]["name"]
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    items = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
    assert set(items) == set(cm["data"])

    # What the kubelet would put on the pod's disk, in a temp dir instead of the mount path.
    root = tmp_path / "policy-volume"
    KubeletConfigMapVolume(root, {rel: cm["data"][key] for key, rel in items.items()})
    policy_path = Path(env["RECONCILER_POLICY_PATH"])
    assert policy_path.is_relative_to(mount["mountPath"])
    local_policy = root / policy_path.relative_to(mount["mountPath"])
    assert local_policy.read_bytes() == (REPO / "config" / "policy.yaml").read_bytes()

    loaded = load_policy(local_policy)
    for kind, p in loaded.policy.kinds.items():
        template_path = loaded.template_path(kind)
        assert template_path.is_relative_to(root), template_path  # found inside the mount
        repo_template = REPO / "templates" / p.instance_name / "pod-template.yml"
        assert template_path.read_bytes() == repo_template.read_bytes()
        assert p.namespace == NS
        load_pod_template(kind, p.namespace, p.instance_name, template_path)
    # The same check through the CLI an operator would run.
    res = subprocess.run(
        [str(Path(sys.executable).parent / "reconciler"), "validate", str(local_policy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0 and ": OK (" in res.stdout, res.stdout + res.stderr


def test_statefulset_runs_the_daemon_in_pod_mode() -> None:
    sts = _one("StatefulSet")
    spec = sts["spec"]
    # Two replicas electing a leader, with stable names (their identities), started and
    # replaced side by side; the headless Service gives each its DNS name.
    assert spec["replicas"] == 2 and spec["updateStrategy"]["type"] == "RollingUpdate"
    assert spec["podManagementPolicy"] == "Parallel"
    headless = next(s for s in _by_kind("Service") if s["spec"].get("clusterIP") == "None")
    assert spec["serviceName"] == headless["metadata"]["name"]
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["RECONCILER_KUBE_IN_CLUSTER"]["value"] == "true"
    assert env["RECONCILER_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["RECONCILER_API_ADVERTISE_URL"]["value"] == "http://$(POD_IP):8080"
    assert "IOTA_MQTT_BROKERS" not in env and "RECONCILER_MQTT_BROKERS" in env
    # Secrets as files of the example Secret's keys, never in the environment.
    secret = next(s for s in _by_kind("Secret") if s["metadata"]["name"] == "reconciler")
    (credentials,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "credentials"]
    files = {
        f"{mount['mountPath']}/{item['path']}": (source["secret"]["name"], item["key"])
        for source in credentials["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    for name in ("RECONCILER_DATABASE_URL_FILE", "RECONCILER_API_TOKEN_FILE"):
        secret_name, key = files[env[name]["value"]]
        assert secret_name == secret["metadata"]["name"] and key in secret["stringData"]
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    res = c["resources"]
    assert res["requests"] and res["limits"]
    port = c["ports"][0]["containerPort"]
    assert env["RECONCILER_API_PORT"]["value"] == str(port)
    for svc in _by_kind("Service"):
        assert svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
        assert svc["spec"]["ports"][0]["targetPort"] == c["ports"][0]["name"]

    # The image the StatefulSet runs: same user, port and entry point.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(
        r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.M
    )
    user = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert user == [
        (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"]))
    ]
    assert f"EXPOSE {port}" in dockerfile
    assert 'ENTRYPOINT ["reconciler", "run"]' in dockerfile


def test_dockerfile_copies_what_exists_and_pip_builds_it(tmp_path: Path) -> None:
    """No Docker engine here: check each COPY source exists, then build the wheel exactly
    from the files the build stage copies, and check it holds the package and the CLI."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources += parts[:-1]
    assert sources, "no COPY lines"
    for src in sources:
        assert (REPO / src).exists(), src
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for src in sources:  # not excluded from the build context
        assert f"!{src.rstrip('/')}/" in ignore or f"!{src.rstrip('/')}" in ignore, src

    ctx = tmp_path / "src"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, ctx / name)
    shutil.copytree(
        REPO / "reconciler", ctx / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    # With build isolation, as `pip wheel .` in the image does (pip fetches setuptools>=68).
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "wheels"),
            str(ctx),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (wheel,) = (tmp_path / "wheels").glob("reconciler-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "reconciler = reconciler.cli.main:main" in z.read(entry_points).decode()
    # Every module of every package, the subpackages' __init__ files included.
    shipped = {
        str(p.relative_to(REPO))
        for p in (REPO / "reconciler").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert len(shipped) > 100
    assert shipped - names == set()


# ------------------------------------------------------------------ against the apiserver


def _dynamic(api_client: Any) -> Any:
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api_client)


def _apply(dyn: Any, doc: dict[str, Any], *, dry_run: bool) -> Any:
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    kw: dict[str, Any] = {"field_manager": "reconciler-deploy-test", "force_conflicts": True}
    if dry_run:
        kw["dry_run"] = "All"
    return resource.server_side_apply(body=doc, namespace=doc["metadata"].get("namespace"), **kw)


def test_manifests_pass_server_side_dry_run(kube: Any) -> None:
    from kubernetes.dynamic.exceptions import NotFoundError

    with kube.api_client() as api:
        dyn = _dynamic(api)
        for doc in manifests(include_secret=True):
            out = _apply(dyn, doc, dry_run=True)
            assert out.kind == doc["kind"] and out.metadata.name == doc["metadata"]["name"]
            if doc["kind"] == "StatefulSet":
                # defaulted and validated by the apiserver, as a real apply would be
                assert out.spec.template.spec.containers[0].terminationMessagePath
        # dryRun=All stored nothing
        with pytest.raises(NotFoundError):
            dyn.resources.get(api_version="apps/v1", kind="StatefulSet").get(
                name="reconciler", namespace=NS
            )


def test_manifests_are_refused_when_broken(kube: Any) -> None:
    """The dry run really validates: a bad field in the StatefulSet is a 422."""
    from kubernetes.dynamic.exceptions import ApiException

    sts = _one("StatefulSet")
    sts["spec"]["podManagementPolicy"] = "Sideways"
    with kube.api_client() as api, pytest.raises(ApiException) as err:
        _apply(_dynamic(api), sts, dry_run=True)
    assert err.value.status == 422


@pytest.fixture
def reconciler_rbac(kube: Any) -> Iterator[list[dict[str, Any]]]:
    """The ServiceAccount, Roles and bindings of rbac.yaml, created for real; removed after."""
    docs = _docs(K8S / "rbac.yaml")
    with kube.api_client() as api:
        dyn = _dynamic(api)
        for doc in docs:
            _apply(dyn, doc, dry_run=False)
        try:
            yield docs
        finally:
            for doc in reversed(docs):
                resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
                with contextlib.suppress(Exception):
                    resource.delete(
                        name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace")
                    )


@pytest.fixture
def in_cluster_client(
    kube: Any, reconciler_rbac: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The daemon's in-pod ApiClient (RECONCILER_KUBE_IN_CLUSTER=true) with a real token of
    ServiceAccount iota/reconciler (TokenRequest), put where a pod would have it."""
    from kubernetes import client
    from kubernetes.config import incluster_config

    from reconciler.adapters.kube.client import make_api_client

    with kube.api_client() as api:
        tr = client.CoreV1Api(api).create_namespaced_service_account_token(
            "reconciler",
            NS,
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(tr.status.token)
    shutil.copy(kube.ca_file, sa_dir / "ca.crt")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(sa_dir / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(sa_dir / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube.port))
    api_client = make_api_client(
        in_cluster=True, kubeconfig=None, url=None, token=None, ca_file=None
    )
    # who the apiserver thinks we are
    review = client.AuthenticationV1Api(api_client).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    assert review.status.user_info.username == SA_USER
    assert "system:serviceaccounts:iota" in review.status.user_info.groups
    try:
        yield api_client
    finally:
        api_client.close()


def _templates() -> dict[str, Any]:
    from reconciler.policy.loader import load_policy
    from reconciler.policy.templates import load_pod_template

    loaded = load_policy(REPO / "config" / "policy.yaml")
    return {
        kind: load_pod_template(kind, p.namespace, p.instance_name, loaded.template_path(kind))
        for kind, p in loaded.policy.kinds.items()
    }


def test_serviceaccount_can_make_the_daemons_calls(kube: Any, in_cluster_client: Any) -> None:
    """The real adapter, end to end, as the ServiceAccount: every call it makes is allowed."""
    from reconciler.adapters.kube.client import PodStillTerminating
    from reconciler.adapters.kube.pods import KubePods
    from reconciler.adapters.kube.watch import PodWatcher
    from reconciler.domain.podspec import render_pod
    from rig import podmetrics_standin as pm

    templates = _templates()
    pods = KubePods(in_cluster_client, templates)
    iid = 900 + int(time.time()) % 50  # well above what other tests in `iota` use
    name = f"iota-dac-{iid}"
    with kube.api_client() as admin:
        had_metrics = pm._served(admin)
        pm.install(admin)
    seen: list[tuple[str, str | None]] = []
    watcher = PodWatcher(
        in_cluster_client,
        templates,
        lambda kind, pod, ev: seen.append((ev, pod.name if pod else None)),
    )
    try:
        watcher.start()  # list + watch in iota
        eventually(lambda: watcher.healthy, timeout=15)
        before = pods.list_pods("Thing")
        assert name not in before
        created = pods.create_pod("Thing", iid)
        assert created.name == name
        eventually(lambda: ("ADDED", name) in seen, timeout=15)
        running = eventually(
            lambda: (p := pods.get_pod("Thing", name)) and p.phase == "Running" and p, timeout=30
        )  # bound, kwok runs it
        # What the daemon does for a dead pod: delete this incarnation (uid precondition),
        # then create it again once the name is free (a later pass; polled here).
        pods.delete_pod("Thing", name, grace_seconds=0, uid=running.uid)

        def create_when_free() -> Any:
            try:
                return pods.create_pod("Thing", iid)
            except PodStillTerminating:
                return None

        recreated = eventually(create_when_free, timeout=15)
        assert recreated.uid != running.uid
        assert pods.get_pod("Thing", name).uid != running.uid
        # Bound to a node before its requests count in node_capacity (the scheduler's job).
        eventually(lambda: (p := pods.get_pod("Thing", name)) and p.phase == "Running", timeout=30)

        labels = render_pod(templates["Thing"], iid)["metadata"]["labels"]
        with kube.api_client() as admin:
            pm.put_pod_metrics(admin, NS, name, {"iota-dac": ("120m", "200Mi")}, labels=labels)
        usage = pods.pod_usage("Thing")
        assert usage[name].cpu_millicores == pytest.approx(120)

        nodes = pods.node_capacity()  # nodes list + pods list in all namespaces
        assert {n.name for n in nodes} >= set(kube.node_names)
        assert sum(n.requested_cpu_m for n in nodes) >= 250  # our pod's request is counted

        pods.delete_pod("Thing", name, grace_seconds=0)
        eventually(lambda: pods.get_pod("Thing", name) is None, timeout=15)
        assert watcher.healthy  # the watch was never refused
        assert watcher.reconnects == 0
    finally:
        watcher.stop()
        with kube.api_client() as admin:
            from kubernetes import client

            with contextlib.suppress(Exception):
                client.CoreV1Api(admin).delete_namespaced_pod(name, NS, grace_period_seconds=0)
            with contextlib.suppress(Exception):
                client.CustomObjectsApi(admin).delete_namespaced_custom_object(
                    pm.GROUP, pm.VERSION, NS, pm.PLURAL, name
                )
            if not had_metrics:
                pm.uninstall(admin)


# (verb, group, resource, subresource, namespace) the daemon needs: all allowed.
NEEDED = [
    ("get", "", "pods", "", NS),
    ("list", "", "pods", "", NS),
    ("watch", "", "pods", "", NS),
    ("create", "", "pods", "", NS),
    ("delete", "", "pods", "", NS),
    ("patch", "", "pods", "", NS),  # adopt_pod: our labels on the old orchestrator's pods
    ("list", "metrics.k8s.io", "pods", "", NS),
    ("list", "", "resourcequotas", "", NS),  # quota_room: the room before a scale-up
    ("list", "", "nodes", "", ""),
    ("list", "", "pods", "", ""),  # all namespaces, for the capacity check
    ("create", "events.k8s.io", "events", "", NS),  # EventRecorder: a new Event
    ("patch", "events.k8s.io", "events", "", NS),  # EventRecorder: its series, when repeated
]
# Near misses and escalations: all refused.
REFUSED = [
    ("update", "", "pods", "", NS),
    ("deletecollection", "", "pods", "", NS),
    ("patch", "", "pods", "status", NS),
    ("create", "", "pods", "exec", NS),
    ("get", "", "pods", "log", NS),
    ("create", "", "pods", "eviction", NS),
    ("get", "", "pods", "", "kube-system"),
    ("create", "", "pods", "", "default"),
    ("delete", "", "pods", "", "kube-system"),
    ("watch", "", "pods", "", ""),
    ("get", "metrics.k8s.io", "pods", "", NS),
    ("list", "metrics.k8s.io", "nodes", "", ""),
    ("get", "", "secrets", "", NS),
    ("list", "", "secrets", "", NS),
    ("create", "", "secrets", "", NS),
    ("get", "", "configmaps", "", NS),
    ("get", "", "resourcequotas", "", NS),
    ("update", "", "resourcequotas", "", NS),
    ("list", "", "resourcequotas", "", "kube-system"),
    ("create", "", "serviceaccounts", "token", NS),
    ("get", "", "nodes", "", ""),
    ("patch", "", "nodes", "", ""),
    ("delete", "", "nodes", "", ""),
    ("create", "", "nodes", "", ""),
    ("delete", "", "namespaces", "", ""),
    ("create", "apps", "deployments", "", NS),
    ("create", "rbac.authorization.k8s.io", "rolebindings", "", NS),
    ("escalate", "rbac.authorization.k8s.io", "roles", "", NS),
    ("create", "", "events", "", NS),
    ("get", "events.k8s.io", "events", "", NS),
    ("list", "events.k8s.io", "events", "", NS),
    ("update", "events.k8s.io", "events", "", NS),
    ("delete", "events.k8s.io", "events", "", NS),
    ("create", "events.k8s.io", "events", "", "kube-system"),
]


def _allowed(api_client: Any, verb: str, group: str, resource: str, sub: str, ns: str) -> bool:
    from kubernetes import client

    attrs: dict[str, str] = {"verb": verb, "group": group, "resource": resource}
    if sub:
        attrs["subresource"] = sub
    if ns:
        attrs["namespace"] = ns
    review = client.AuthorizationV1Api(api_client).create_self_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
    )
    return bool(review.status.allowed)


def test_serviceaccount_is_allowed_exactly_the_daemons_calls(in_cluster_client: Any) -> None:
    wrong = [(a, "should be allowed") for a in NEEDED if not _allowed(in_cluster_client, *a)]
    wrong += [(a, "should be refused") for a in REFUSED if _allowed(in_cluster_client, *a)]
    assert not wrong, wrong


def test_serviceaccount_can_record_pod_events(kube: Any, in_cluster_client: Any) -> None:
    """The real EventRecorder as the ServiceAccount: the create and the series patch pass."""
    from kubernetes import client

    from reconciler.adapters.kube.events import EventRecorder

    recorder = EventRecorder(in_cluster_client, "reconciler-deploy-test", idle_seconds=0.1)
    pod = f"iota-dac-{900 + int(time.time()) % 50}"
    try:
        for _ in range(2):
            recorder.pod_event("Thing", NS, pod, "Recreate", "PodDead", "phase Failed")
            assert recorder.wait_idle(10)
    finally:
        recorder.close()
    assert (recorder.counts["created"], recorder.counts["patched"]) == (1, 1), recorder.counts
    assert recorder.counts["failed"] == 0
    with kube.api_client() as admin:
        events = client.EventsV1Api(admin)
        mine = [
            e
            for e in events.list_namespaced_event(NS).items
            if e.reporting_instance == "reconciler-deploy-test" and e.regarding.name == pod
        ]
        for e in mine:
            events.delete_namespaced_event(e.metadata.name, NS)
    assert [e.series.count for e in mine] == [2]


def test_serviceaccount_is_refused_elsewhere_for_real(kube: Any, in_cluster_client: Any) -> None:
    """Not just the review: real calls outside the daemon's scope answer 403."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(in_cluster_client)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "intruder"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    calls = {
        "create secret in iota": lambda: core.create_namespaced_secret(
            NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "stolen"}}
        ),
        "list secrets in iota": lambda: core.list_namespaced_secret(NS),
        "delete a node": lambda: core.delete_node(kube.node_names[0]),
        "cordon a node": lambda: core.patch_node(
            kube.node_names[0], {"spec": {"unschedulable": True}}
        ),
        "get a pod in kube-system": lambda: core.read_namespaced_pod("x", "kube-system"),
        "create a pod in default": lambda: core.create_namespaced_pod("default", pod),
        "patch a pod's status in iota": lambda: core.patch_namespaced_pod_status(
            "iota-dac-0", NS, {"status": {"phase": "Failed"}}
        ),
        "delete the namespace": lambda: core.delete_namespace(NS),
        "create a statefulset": lambda: client.AppsV1Api(
            in_cluster_client
        ).create_namespaced_stateful_set(NS, _one("StatefulSet")),
    }
    answers = {}
    for what, call in calls.items():
        try:
            call()
            answers[what] = "ALLOWED"
        except ApiException as e:
            answers[what] = e.status
    assert answers == dict.fromkeys(calls, 403), answers
