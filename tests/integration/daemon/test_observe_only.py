"""Observe-only beside the old orchestrator's fleet (issue 25, "Done when"): the daemon reads
everything for several passes, full and event passes among them (a row event over MQTT, a pod
change through the watch), and writes nothing: every ZooKeeper node's stat is as before (no
node created, changed or deleted, not even an election node; no ACL change, though the daemon
logs in), the pod list keeps its names, uids and resourceVersions, and no Kubernetes Event is
recorded. Then a daemon that acts starts on the same world: what its first pass applies is,
kind by kind and operation by operation, what the observer listed on `GET /v1/plan` and in
`reconciler_pending_operations`.

The world is built as `@iota/orchestrator` leaves it (SPEC layout written with kazoo, pods
named `<instanceName>-<id>` carrying only `instanceId`), with rows the old one never assigned,
one Failed pod and one missing pod.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from structlog.testing import capture_logs

from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.domain.podspec import KIND_LABEL, MANAGED_BY_LABEL, render_pod
from reconciler.policy.templates import load_pod_template
from reconciler.telemetry.metrics import TICKS
from tests.integration.daemon.test_events_e2e import Publisher
from tests.support.daemon import running, settings_for
from tests.support.fleet import REPO, eventually, uuids

NAMES = {"Thing": "iota-dac", "Rule": "iota-rules-engine"}
# Rows per kind the old orchestrator assigned (10 instances each), and rows it never did.
ASSIGNED = {"Thing": 200, "Rule": 60}
UNASSIGNED = {"Thing": 15, "Rule": 4}
FAILED_POD, MISSING_POD = "iota-rules-engine-4", "iota-dac-7"


def old_world(kazoo: Any, core: k8s.CoreV1Api, ns: str, pg_url: str) -> None:
    """Both kinds as the old orchestrator left them: 10 instances (count = rows // 10 + 1,
    `_reload.times` 3), one unlabelled pod per instance; then rows it never assigned."""
    create_tables(pg_url)
    for kind, rows in ASSIGNED.items():
        ids = sorted(uuids(rows))
        insert_ids(pg_url, kind, ids + uuids(UNASSIGNED[kind]))
        count, share = rows // 10 + 1, rows // 10
        for i in range(10):
            part = ids[i * share : (i + 1) * share]
            base = f"/iota/orchestration/{kind}/{i}"
            kazoo.ensure_path(base)
            kazoo.set(base, json.dumps({"used": len(part), "count": count}).encode())
            kazoo.create(f"{base}/tmp", b"")
            kazoo.create(f"{base}/_reload", json.dumps({"times": 3}).encode())
            kazoo.create(f"{base}/resources", json.dumps({"ids": part}).encode())
        name = NAMES[kind]
        template = load_pod_template(kind, ns, name, REPO / f"templates/{name}/pod-template.yml")
        for i in range(10):
            body = render_pod(template, i)
            for ours in (MANAGED_BY_LABEL, KIND_LABEL):
                body["metadata"]["labels"].pop(ours)
            if body["metadata"]["name"] != MISSING_POD:
                core.create_namespaced_pod(ns, body)


def policy_for(path: Path, ns: str) -> Path:
    """The shipped sizing (the old defaults), both kinds in `ns`, a full pass every 2 s."""
    kinds = {
        kind: {
            "table": kind,
            "instanceName": name,
            "template": str(REPO / f"templates/{name}/pod-template.yml"),
            "namespace": ns,
            "initInstances": 10,
            "maxInstances": 100,
            "resourcePerInstance": 5000,
        }
        for kind, name in NAMES.items()
    }
    path.write_text(yaml.safe_dump({"tickSeconds": 2, "kinds": kinds}))
    return path


def zk_tree(kazoo: Any, path: str = "/") -> dict[str, Any]:
    """Every node under `path` (the test's chroot: inside the daemon's root and outside it)
    with its whole stat: mzxid, cversion, version, aversion, ..."""
    stat = kazoo.exists(path)
    assert stat is not None, path
    out = {path: stat}
    for child in kazoo.get_children(path):
        out.update(zk_tree(kazoo, f"{path.rstrip('/')}/{child}"))
    return out


def pod_list(core: k8s.CoreV1Api, ns: str) -> dict[str, tuple[str, str]]:
    return {
        p.metadata.name: (p.metadata.uid, p.metadata.resource_version)
        for p in core.list_namespaced_pod(ns).items
    }


def our_events(kube: Any, ns: str) -> list[str]:
    """Kubernetes Events any reconciler recorded in `ns` (events.k8s.io and core/v1)."""
    with kube.api_client() as api:
        v1 = k8s.EventsV1Api(api).list_namespaced_event(ns).items
        core = k8s.CoreV1Api(api).list_namespaced_event(ns).items
    return [e.metadata.name for e in v1 if e.reporting_controller == "reconciler"] + [
        e.metadata.name for e in core if (e.reporting_component or "") == "reconciler"
    ]


def pending_gauge(metrics_text: str) -> dict[tuple[str, str], float]:
    """reconciler_pending_operations as /metrics shows it: (resource, op) -> value."""
    out = {}
    for m in re.finditer(r"^reconciler_pending_operations\{([^}]*)\} (\S+)$", metrics_text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels["resource"], labels["op"])] = float(m.group(2))
    return out


def planned(op: dict[str, Any]) -> tuple[Any, ...]:
    """An operation of /v1/plan, as comparable with a log line of the leader's."""
    return (op["op"], op["reason"], op.get("instanceId"), op.get("pod"), op.get("used"))


def applied(event: dict[str, Any]) -> tuple[Any, ...]:
    """An `operation applied` log event, in `planned`'s terms."""
    return (
        event["op"],
        event["reason"],
        event.get("instance_id"),
        event.get("pod"),
        event.get("used"),
    )


def test_observe_only_beside_the_old_fleet_writes_nothing_and_plans_what_the_leader_does(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    mqtt: Any,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    core = k8s.CoreV1Api(kube.api_client())
    old_world(kazoo_client, core, ns, pg_url)
    eventually(
        lambda: (
            len(pods := core.list_namespaced_pod(ns).items) == 19
            and all(p.status.phase == "Running" for p in pods)
        ),
        timeout=60,
    )
    core.patch_namespaced_pod(
        FAILED_POD, ns, {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}}
    )
    core.patch_namespaced_pod_status(FAILED_POD, ns, {"status": {"phase": "Failed"}})
    policy = policy_for(tmp_path / "policy.yaml", ns)
    tree, pods = zk_tree(kazoo_client), pod_list(core, ns)
    assert our_events(kube, ns) == []

    observer = settings_for(
        zk_hosts,
        pg_url,
        kube,
        policy,
        mqtt=mqtt.url,
        token="t",
        identity="observer",
        observe_only=True,
        # logged in: a leader would bring the old open ACLs in line; the observer must not
        zk_username="reconciler",
        zk_password="secret",
    )
    with capture_logs() as logs, running(observer) as d:
        app = d.app

        def events(name: str) -> list[dict[str, Any]]:
            return [e for e in list(logs) if e["event"] == name]

        eventually(lambda: app.daemon.passes >= 3, timeout=60, what="3 full passes")
        # a row event, right after a pass (the next tick is 2 s away): an event pass over Rule
        # plans one more id
        passes = app.daemon.passes
        eventually(lambda: app.daemon.passes > passes, timeout=10, what="a pass")
        rid = str(uuid.uuid4())
        insert_ids(pg_url, "Rule", [rid])
        pub = Publisher(mqtt.host, mqtt.port)
        try:
            pub.send({"o": "c", "t": "Rule", "k": {"id": rid}})
            eventually(
                lambda: any(
                    e.get("trigger") == "event" for e in events("pending operations changed")
                ),
                timeout=30,
                what="an event pass that planned the new row",
            )
        finally:
            pub.close()
        # a pod change the watch sees: the missing pod comes (someone else made it, labelled
        # as ours) and runs; a pod pass over Thing plans no CreatePod for it any more
        pod_passes = TICKS.labels("pod")._value.get()
        template = load_pod_template(
            "Thing", ns, "iota-dac", REPO / "templates/iota-dac/pod-template.yml"
        )
        core.create_namespaced_pod(ns, render_pod(template, 7))
        made = eventually(
            lambda: (
                (p := core.read_namespaced_pod(MISSING_POD, ns)).status.phase == "Running" and p
            ),
            timeout=30,
        )
        pods[MISSING_POD] = (made.metadata.uid, made.metadata.resource_version)
        eventually(
            lambda: TICKS.labels("pod")._value.get() > pod_passes, timeout=30, what="a pod pass"
        )
        # ... and full passes after both, so the plan is the world's as it is now
        passes = app.daemon.passes
        eventually(lambda: app.daemon.passes >= passes + 2, timeout=30, what="2 more passes")

        with d.client() as http:
            status = http.get("/v1/status").json()
            plan = http.get("/v1/plan").json()  # a read: no token needed
            scrape = http.get("/metrics").text
            refused = http.post(
                "/v1/api/orchestrations/Rule/orchestrate", headers={"Authorization": "Bearer t"}
            )
        triggers = {e["trigger"] for e in events("pending operations changed")}
        said = events("observe-only")
        zk_writes, pod_writes = app.zk.session.writes, app.pods.writes
        observed_passes = app.daemon.passes

    # nothing written
    assert zk_tree(kazoo_client) == tree
    assert pod_list(core, ns) == pods
    assert our_events(kube, ns) == []
    assert (zk_writes, pod_writes) == (0, 0)
    assert not events("write refused: observe-only")  # and no write even attempted
    # it said what it is, and claims no leadership
    assert said and said[0]["identity"] == "observer" and said[0]["log_level"] == "warning"
    assert status["leadership"]["role"] == "observe-only" and status["leadership"]["observeOnly"]
    assert "reconciler_observe_only 1.0" in scrape
    assert 'reconciler_leader{identity="observer"}' not in scrape
    assert refused.status_code == 503 and "observe-only" in refused.json()["error"]
    assert {"tick", "event", "pod"} <= triggers  # full and event passes planned, and told

    # what it would apply: the adoptions, the repairs, the rows the old one never assigned
    assert plan["role"] == "observe-only" and plan["partial"] is False and plan["sources"] == {}
    for kind in NAMES:
        entry = plan["kinds"][kind]
        assert entry["pass"]["trigger"] == "tick" and entry["pass"]["applied"] is False
        assert entry["rows"] == ASSIGNED[kind] + UNASSIGNED[kind] + (kind == "Rule")
        assert entry["moves"] == 0
    counts = {k: plan["kinds"][k]["counts"] for k in NAMES}
    assert counts["Thing"]["AdoptPod"] == 9, json.dumps(plan)  # not the pod made labelled meanwhile
    assert counts["Rule"]["AdoptPod"] == 9 and counts["Rule"]["RecreatePod"] == 1
    assert all(counts[k]["WriteInstance"] >= 1 for k in NAMES)  # the unassigned rows
    assert all(counts[k]["DeleteInstance"] == counts[k]["DeletePod"] == 0 for k in NAMES)
    gauge = pending_gauge(scrape)
    assert {(k, op): float(n) for k in NAMES for op, n in counts[k].items()} == {
        key: value for key, value in gauge.items() if key[0] in NAMES
    }

    # the daemon that acts, started on the same world: its first pass applies exactly that
    leader = settings_for(zk_hosts, pg_url, kube, policy, identity="leader", leader_election=False)
    with capture_logs() as logs, running(leader) as d, d.client() as http:
        eventually(
            lambda: any(e["event"] == "reconciled" for e in list(logs)),
            timeout=60,
            what="the leader's first pass",
        )
        # the leader serves /v1/plan too: what it applied is done, so nothing stays pending
        # once the Failed pod's successor is made
        done = eventually(
            lambda: (
                (doc := http.get("/v1/plan").json())["pending"] == 0
                and doc["kinds"]["Rule"]["pass"]["applied"]
                and doc
            ),
            timeout=60,
            what="a converged leader's empty plan",
        )
        assert done["role"] == "leader"
    first: list[dict[str, Any]] = []
    for e in logs:
        if e["event"] == "reconciled":
            assert e["failed"] == e["left"] == 0, e
            assert e["applied"] == e["ops"] == plan["pending"]
            break
        assert e["event"] not in ("operation failed", "operation refused", "operation pending"), e
        if e["event"] == "operation applied":
            first.append(e)
    for kind in NAMES:
        would = Counter(planned(op) for op in plan["kinds"][kind]["operations"])
        did = Counter(applied(e) for e in first if e["resource"] == kind)
        assert did == would, kind
    assert zk_tree(kazoo_client) != tree  # (the comparison above can tell a write)
    print(
        f"\nFIGURE observe-only: {observed_passes} passes wrote nothing; "
        f"{plan['pending']} operations pending = the {len(first)} the leader's first pass applied"
    )
