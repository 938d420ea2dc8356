"""Taking over a fleet the old orchestrator left: its layout, its unlabelled pods, one Failed.

The world is built the way `@iota/orchestrator` leaves it (SPEC layout written with kazoo,
pods named `<instanceName>-<id>` carrying only `instanceId`), then the daemon's passes run on
it with the shipped sizing (the seed's defaults: init 10, 5000 per instance).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from kafka import KafkaProducer
from kubernetes import client as k8s

from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.domain.podspec import KIND_LABEL, MANAGED_BY_LABEL, render_pod
from reconciler.policy.templates import load_pod_template
from tests.support.daemon import running, settings_for
from tests.support.fleet import REPO, eventually, fleet, read_layout, uuids

RULES = 840


def old_orchestrator_world(kazoo: Any, core: k8s.CoreV1Api, ns: str, rules: list[str]) -> None:
    """10 Rule instances sized the old way (count = rows // 10 + 1), written as the Node.js
    orchestrator wrote them, and one unlabelled pod per instance; instance 4's pod Failed."""
    count = len(rules) // 10 + 1
    for i in range(10):
        ids = rules[i * 84 : (i + 1) * 84]
        base = f"/iota/orchestration/Rule/{i}"
        kazoo.ensure_path(base)
        kazoo.set(base, json.dumps({"used": len(ids), "count": count}).encode())
        kazoo.create(f"{base}/tmp", b"")
        kazoo.create(f"{base}/_reload", json.dumps({"times": 3}).encode())
        kazoo.create(f"{base}/resources", json.dumps({"ids": ids}).encode())
    template = load_pod_template(
        "Rule", ns, "iota-rules-engine", REPO / "templates/iota-rules-engine/pod-template.yml"
    )
    for i in range(10):
        body = render_pod(template, i)
        labels = body["metadata"]["labels"]
        for ours in (MANAGED_BY_LABEL, KIND_LABEL):
            labels.pop(ours)
        core.create_namespaced_pod(ns, body)


def test_the_old_orchestrators_fleet_is_taken_over_without_touching_a_healthy_worker(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, kazoo_client: Any, tmp_path: Path
) -> None:
    ns = kube_namespace
    create_tables(pg_url)
    rules = sorted(uuids(RULES))
    insert_ids(pg_url, "Rule", rules)
    # Only Rule: Thing would start a fleet of its own beside the one under test.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "tickSeconds": 60,
                "kinds": {
                    "Rule": {
                        "table": "Rule",
                        "instanceName": "iota-rules-engine",
                        "template": str(REPO / "templates/iota-rules-engine/pod-template.yml"),
                        "namespace": ns,
                        # the shipped policy's values: the seed's defaults
                        "initInstances": 10,
                        "maxInstances": 100,
                        "resourcePerInstance": 5000,
                    }
                },
            }
        )
    )
    with kube.api_client() as api:
        core = k8s.CoreV1Api(api)
        old_orchestrator_world(kazoo_client, core, ns, rules)
        eventually(
            lambda: (
                all(p.status.phase == "Running" for p in core.list_namespaced_pod(ns).items)
                and len(core.list_namespaced_pod(ns).items) == 10
            ),
            timeout=60,
        )
        core.patch_namespaced_pod(
            "iota-rules-engine-4",
            ns,
            {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}},
        )
        core.patch_namespaced_pod_status("iota-rules-engine-4", ns, {"status": {"phase": "Failed"}})
        before = read_layout(kazoo_client, "Rule")
        uids = {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(ns).items}

        with fleet(zk_hosts, pg_url, kube.api_client(), policy) as f:
            f.tick()  # adopts 9 live pods, deletes the Failed one (uid precondition)
            eventually(
                lambda: (
                    "iota-rules-engine-4"
                    not in {p.metadata.name for p in core.list_namespaced_pod(ns).items}
                    or core.read_namespaced_pod("iota-rules-engine-4", ns).metadata.uid
                    != uids["iota-rules-engine-4"]
                ),
                timeout=30,
            )
            f.tick()  # its successor
            third = f.tick()
            after = read_layout(kazoo_client, "Rule")
            pods = {p.metadata.name: p for p in core.list_namespaced_pod(ns).items}

            # 100 single creates, one pass each (a row event's pass): the seed's growth rule.
            writes_before = f.zk.session.writes
            added = uuids(100)
            for rid in added:
                insert_ids(pg_url, "Rule", [rid])
                f.tick()
            grown = read_layout(kazoo_client, "Rule")
            grow_writes = f.zk.session.writes - writes_before

        assert {i: x["ids"] for i, x in after.items()} == {i: x["ids"] for i, x in before.items()}
        assert {i: x["times"] for i, x in after.items()} == {i: 3 for i in range(10)}
        assert {i: x["node"] for i, x in after.items()} == {i: x["node"] for i, x in before.items()}
        assert third.plan.ops == ()  # converged

        assert len(pods) == 10
        for name, pod in pods.items():
            assert pod.metadata.labels[MANAGED_BY_LABEL] == "reconciler", name
            assert pod.metadata.labels[KIND_LABEL] == "Rule", name
            if name != "iota-rules-engine-4":
                assert pod.metadata.uid == uids[name], f"healthy {name} was replaced"
        replaced = pods["iota-rules-engine-4"]
        assert replaced.metadata.uid != uids["iota-rules-engine-4"]
        assert replaced.status.phase != "Failed"

    # The ten old instances took one id each (their room), then new instances 10 and 11 were
    # added with the kind's count; nobody else's ids moved or reloaded twice.
    count = RULES // 10 + 1
    assert sorted(grown) == list(range(12))
    assert all(x["node"]["count"] == count for x in grown.values())
    for i in range(10):
        assert set(before[i]["ids"]) <= set(grown[i]["ids"])  # no id left its instance
        assert len(grown[i]["ids"]) == count and grown[i]["times"] == 4  # one new id, one reload
    assert len(grown[10]["ids"]) == count and len(grown[11]["ids"]) == 100 - 10 - count
    assert {rid for x in grown.values() for rid in x["ids"]} == set(rules) | set(added)
    assert grow_writes == 100  # one instance write per create


# --- the same takeover by the daemon itself, with the shipped policy and Kafka heartbeats ---

THINGS = 300


def old_kind(
    kazoo: Any, core: k8s.CoreV1Api, ns: str, kind: str, name: str, ids: list[str]
) -> None:
    """10 instances of `kind` as the Node.js orchestrator left them (count = rows // 10 + 1,
    `_reload.times` 3), and one pod per instance carrying only `instanceId`."""
    count, share = len(ids) // 10 + 1, -(-len(ids) // 10)
    for i in range(10):
        part = ids[i * share : (i + 1) * share]
        base = f"/iota/orchestration/{kind}/{i}"
        kazoo.ensure_path(base)
        kazoo.set(base, json.dumps({"used": len(part), "count": count}).encode())
        kazoo.create(f"{base}/tmp", b"")
        kazoo.create(f"{base}/_reload", json.dumps({"times": 3}).encode())
        kazoo.create(f"{base}/resources", json.dumps({"ids": part}).encode())
    template = load_pod_template(kind, ns, name, REPO / f"templates/{name}/pod-template.yml")
    for i in range(10):
        body = render_pod(template, i)
        for ours in (MANAGED_BY_LABEL, KIND_LABEL):
            body["metadata"]["labels"].pop(ours)
        core.create_namespaced_pod(ns, body)


def shipped_policy(path: Path, ns: str) -> Path:
    """config/policy.yaml as shipped, but for the test's namespace (templates made absolute)."""
    policy = yaml.safe_load((REPO / "config/policy.yaml").read_text())
    for kind in policy["kinds"].values():
        kind["namespace"] = ns
        kind["template"] = str((REPO / "config" / kind["template"]).resolve())
    path.write_text(yaml.safe_dump(policy))
    return path


class GoWorkers:
    """The Go workers' heartbeats on `HeartBeat`: `heartBeat.Timestamp` or no time at all,
    `instanceId` as text or as a number; every 0.5 s (workers send one a minute; the daemon
    reads from the latest offset, so the first ones may land before it joined)."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        self.sent = 0
        self.stop = threading.Event()
        self.beat_all()  # creates the topic before the daemon's consumers join
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def beat_all(self) -> None:
        for kind in ("Thing", "Rule"):
            for i in range(10):
                beat: dict[str, Any] = {"resource": kind, "instanceId": i if i % 2 else str(i)}
                if i % 3 == 0:
                    beat["Timestamp"] = str(int(time.time()))
                self.producer.send("HeartBeat", json.dumps(beat).encode()).get(timeout=10)
                self.sent += 1

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.beat_all()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.producer.close(timeout=5)


def kafka_events(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('reconciler_events_received_total{source="kafka"}'):
            return float(line.split()[-1])
    return 0.0


def test_the_daemon_takes_over_with_the_shipped_policy_and_counts_go_heartbeats_from_kafka(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    kafka: Any,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    ns = kube_namespace
    create_tables(pg_url)
    things, rules = sorted(uuids(THINGS)), sorted(uuids(RULES))
    insert_ids(pg_url, "Thing", things)
    insert_ids(pg_url, "Rule", rules)
    policy = shipped_policy(tmp_path / "policy.yaml", ns)
    core = k8s.CoreV1Api(kube.api_client())
    old_kind(kazoo_client, core, ns, "Thing", "iota-dac", things)
    old_kind(kazoo_client, core, ns, "Rule", "iota-rules-engine", rules)
    eventually(
        lambda: (
            (pods := core.list_namespaced_pod(ns).items)
            and len(pods) == 20
            and all(p.status.phase == "Running" for p in pods)
        ),
        timeout=60,
    )
    failed = "iota-rules-engine-4"
    core.patch_namespaced_pod(
        failed, ns, {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}}
    )
    core.patch_namespaced_pod_status(failed, ns, {"status": {"phase": "Failed"}})
    before = {k: read_layout(kazoo_client, k) for k in ("Thing", "Rule")}
    uids = {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(ns).items}
    workers = GoWorkers(kafka.bootstrap)
    settings = settings_for(zk_hosts, pg_url, kube, policy, kafka=kafka.bootstrap, token="t")
    try:
        with running(settings) as d:
            counted_before = kafka_events(d.url)

            def heard() -> bool:
                thing = httpx.get(f"{d.url}/v1/status", timeout=10).json()["kinds"]["Thing"]
                ages = [i["heartbeatAge"] for i in thing["instanceList"]]
                return len(ages) == 10 and all(a is not None for a in ages)

            eventually(heard, timeout=45, interval=0.5)
            pods = eventually(
                lambda: (
                    (now := {p.metadata.name: p for p in core.list_namespaced_pod(ns).items})
                    and now.get(failed) is not None
                    and now[failed].metadata.uid != uids[failed]
                    and now[failed].status.phase == "Running"
                    and now
                ),
                timeout=45,
            )
            status = httpx.get(f"{d.url}/v1/status", timeout=10).json()
            counted = kafka_events(d.url) - counted_before
            zk_writes = d.app.zk.session.writes
            after = {k: read_layout(kazoo_client, k) for k in ("Thing", "Rule")}
    finally:
        workers.close()
    took = time.monotonic() - started
    print(
        f"\nFIGURE takeover of 20 old instances with Kafka heartbeats: {took:.1f}s, "
        f"{counted:.0f} heartbeats counted of {workers.sent} sent, {zk_writes} ZooKeeper writes"
    )

    assert after == before  # no id moved, no `_reload` bump, no count rewritten
    assert zk_writes == 0
    assert len(pods) == 20
    for name, pod in pods.items():
        assert pod.metadata.labels[MANAGED_BY_LABEL] == "reconciler", name  # adopted
        if name != failed:
            assert pod.metadata.uid == uids[name], f"healthy {name} was replaced"
    assert counted >= 10  # Thing's heartbeats (enabled in the shipped policy) are counted
    rule_ages = [i["heartbeatAge"] for i in status["kinds"]["Rule"]["instanceList"]]
    assert rule_ages == [None] * 10  # Rule's are not watched: heartbeats off for it, as before
    for kind in ("Thing", "Rule"):
        assert status["kinds"][kind]["instances"] == 10
        assert status["kinds"][kind]["unassigned"] == 0
    assert took < 60
