"""Taking over a fleet the old orchestrator left: its layout, its unlabelled pods, one Failed.

The world is built the way `@iota/orchestrator` leaves it (SPEC layout written with kazoo,
pods named `<instanceName>-<id>` carrying only `instanceId`), then the daemon's passes run on
it with the shipped sizing (the seed's defaults: init 10, 5000 per instance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from reconciler.adapters.inventory import create_tables, insert_ids
from reconciler.podspec import KIND_LABEL, MANAGED_BY_LABEL, load_pod_template, render_pod
from tests.integration.fleet import REPO, eventually, fleet, read_layout, uuids

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
            writes_before = f.zk.writes
            added = uuids(100)
            for rid in added:
                insert_ids(pg_url, "Rule", [rid])
                f.tick()
            grown = read_layout(kazoo_client, "Rule")
            grow_writes = f.zk.writes - writes_before

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
