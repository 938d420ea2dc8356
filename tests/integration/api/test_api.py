"""The REST API over HTTP, on a daemon wired to the real ZooKeeper, PostgreSQL and apiserver."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.domain.model import Instance
from reconciler.runtime.loop import Wake, WakeReason
from tests.support.daemon import Running, running, settings_for
from tests.support.fleet import eventually, read_layout, seed, write_policy

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORCH = "/v1/api/orchestrations"


@pytest.fixture
def world(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> dict[str, Any]:
    things, rules = (sorted(ids) for ids in seed(pg_url, things=24, rules=7))
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 3, "maxInstances": 10, "resourcePerInstance": 30},
        Rule={"initInstances": 3, "maxInstances": 5, "resourcePerInstance": 100},
    )
    settings = settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN)
    return {"settings": settings, "things": things, "rules": rules, "policy": policy}


@pytest.fixture
def daemon(world: dict[str, Any]) -> Iterator[Running]:
    with running(world["settings"]) as d:
        with d.client() as c:
            eventually(lambda: c.get("/readyz").status_code == 200, timeout=30)
            eventually(lambda: len(c.get(f"{ORCH}/Thing").json()["instances"]) == 3)
        yield d


def test_the_old_ui_paths_answer_with_the_old_shapes(
    daemon: Running, world: dict[str, Any], kazoo_client: Any
) -> None:
    with daemon.client() as c:
        orch = c.get(f"{ORCH}/Thing")
        assert orch.status_code == 200
        body = orch.json()
        assert body["resource"] == "Thing"
        assert (body["maxInstances"], body["resourcePerInstance"]) == (10, 30)
        layout = read_layout(kazoo_client, "Thing")
        assert [i["instanceId"] for i in body["instances"]] == ["0", "1", "2"]
        for inst in body["instances"]:
            zk = layout[int(inst["instanceId"])]
            assert inst["resources"] == zk["ids"]
            assert (inst["used"], inst["count"]) == (zk["node"]["used"], zk["node"]["count"])
        assert sorted(r for i in body["instances"] for r in i["resources"]) == world["things"]
        assert body["unassigned"] == 0

        # runIn: the instance id whose resources hold the id, at the top of the JSON body.
        for thing in world["things"][:5]:
            r = c.get(f"{ORCH}/Thing/{thing}/instances")
            assert r.status_code == 200
            assert r.json().keys() == {"runIn"}
            assert thing in layout[int(r.json()["runIn"])]["ids"]
        rule = world["rules"][0]
        assert c.get(f"{ORCH}/Rule/{rule}/instances").json()["runIn"] in {"0", "1", "2"}

        missing = c.get(f"{ORCH}/Thing/{uuid.uuid4()}/instances")
        assert missing.status_code == 404
        assert "is not assigned to any instance" in missing.json()["error"]
        # A Rule id is not a Thing.
        assert c.get(f"{ORCH}/Thing/{rule}/instances").status_code == 404
        unknown = c.get(f"{ORCH}/Widget")
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "unknown resource 'Widget' (known: Rule, Thing)"}
        assert c.get(f"{ORCH}/Widget/x/instances").status_code == 404

        assert c.get("/healthz").text == "ok"
        assert c.get("/readyz").json() == {"ready": True, "problems": {}}
        status = c.get("/v1/status").json()
        assert status["kinds"]["Thing"]["rows"] == 24
        assert "reconciler_instance_used" in c.get("/metrics").text
        spec = c.get("/openapi.json").json()
        assert {
            "/v1/api/orchestrations/{resource}/orchestrate",
            "/v1/api/orchestrations/{resource}",
            "/v1/api/orchestrations/{resource}/{id}/instances",
            "/readyz",
            "/healthz",
            "/metrics",
        } <= spec["paths"].keys()


def test_post_orchestrate_needs_the_token_and_names_each_invalid_field(daemon: Running) -> None:
    url = f"{ORCH}/Thing/orchestrate"
    with daemon.client() as c:
        assert c.post(url).status_code == 401
        assert c.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        # Authentication comes before validation: no details for a caller without the token.
        assert c.post(url, json={"maxInstances": 1000}).status_code == 401
        assert c.post(url, headers={"Authorization": "Basic " + TOKEN}).status_code == 401

        def bad(body: Any, **kw: Any) -> dict[str, Any]:
            r = c.post(url, headers=AUTH, **({"json": body} | kw))
            assert r.status_code == 400, r.text
            return r.json()

        r = bad({"maxInstances": 101})
        assert [e["field"] for e in r["errors"]] == ["maxInstances"]
        assert "maxInstances" in r["error"]
        assert [e["field"] for e in bad({"maxInstances": 2})["errors"]] == ["maxInstances"]
        assert [e["field"] for e in bad({"resourcePerInstance": 0})["errors"]] == [
            "resourcePerInstance"
        ]
        assert [e["field"] for e in bad({"resourcePerInstance": 5001})["errors"]] == [
            "resourcePerInstance"
        ]
        assert [e["field"] for e in bad({"resourcePerInstance": "10"})["errors"]] == [
            "resourcePerInstance"
        ]
        assert [e["field"] for e in bad({"maxInstance": 5})["errors"]] == ["maxInstance"]
        assert [e["field"] for e in bad([1, 2])["errors"]] == ["body"]
        malformed = c.post(
            url, headers={**AUTH, "Content-Type": "application/json"}, content=b"{nope"
        )
        assert malformed.status_code == 400
        assert malformed.json()["errors"][0]["field"] == "body"
        # In range, but below the kind's initInstances (3 <= 2 fails above; Rule has init 3):
        # and an override that cannot hold the rows: 24 rows at 1 per instance need 25 > 10.
        r = bad({"resourcePerInstance": 1})
        assert r["errors"][0]["field"] == "resourcePerInstance"
        assert "require instances more than the max: 25/10" in r["error"]
        assert c.post(f"{ORCH}/Widget/orchestrate", headers=AUTH).status_code == 404
        # Nothing above changed the policy in force.
        status = c.get("/v1/status").json()["kinds"]["Thing"]
        assert status["overrides"] == {}


def lopsided(zk_hosts: str, things: list[str]) -> None:
    """Thing as an earlier orchestrator left it: 20/2/2, all within capacity 30."""
    session = ZkSession(zk_hosts)
    session.start()
    store = ZkStore(session)
    try:
        for i, ids in enumerate([things[:20], things[20:22], things[22:]]):
            store.write_instance("Thing", Instance(i, frozenset(ids), 30, 4), create=True)
    finally:
        session.stop()


def test_orchestrate_rebalances_a_lopsided_assignment_and_overrides_last_until_policy_changes(
    world: dict[str, Any], kazoo_client: Any
) -> None:
    settings, things = world["settings"], world["things"]
    lopsided(settings.zk_hosts, things)
    with running(settings) as d, d.client(headers=AUTH) as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=30)
        eventually(lambda: d.app.daemon.last_pass is not None)
        # A tick keeps every id where it is (sticky): still 20/2/2.
        before = c.get(f"{ORCH}/Thing").json()
        assert [i["used"] for i in before["instances"]] == [20, 2, 2]

        r = c.post(f"{ORCH}/Thing/orchestrate")
        assert r.status_code == 200, r.text
        after = r.json()
        assert [i["used"] for i in after["instances"]] == [8, 8, 8]
        layout = read_layout(kazoo_client, "Thing")
        assert {i: v["node"]["used"] for i, v in layout.items()} == {0: 8, 1: 8, 2: 8}
        assert [layout[i]["times"] for i in range(3)] == [5, 5, 5]
        # Minimal movement: instance 0 kept 8 of its 20, the others kept theirs.
        assert set(layout[0]["ids"]) <= set(things[:20])
        assert set(things[20:22]) <= set(layout[1]["ids"])
        assert c.get(f"{ORCH}/Thing").json() == after

        # Overrides: resourcePerInstance 5 -> 24 // 5 + 1 = 5 instances of capacity 5.
        r = c.post(f"{ORCH}/Thing/orchestrate", json={"resourcePerInstance": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["resourcePerInstance"] == 5
        assert [(i["used"] <= 5, i["count"]) for i in body["instances"]] == [(True, 5)] * 5
        assert sum(i["used"] for i in body["instances"]) == 24
        assert sorted(read_layout(kazoo_client, "Thing")) == [0, 1, 2, 3, 4]
        status = c.get("/v1/status").json()["kinds"]["Thing"]
        assert status["overrides"] == {"resourcePerInstance": 5}
        # ... and they hold on later passes,
        passes = d.app.daemon.last_pass_at
        d.app.daemon.wake(Wake(WakeReason.POD, kind="Thing"))
        eventually(lambda: d.app.daemon.last_pass_at != passes)
        assert c.get(f"{ORCH}/Thing").json()["resourcePerInstance"] == 5
        assert sorted(read_layout(kazoo_client, "Thing")) == [0, 1, 2, 3, 4]

        # until policy.yaml next changes.
        policy: Path = world["policy"]
        policy.write_text(policy.read_text().replace("tickSeconds: 60", "tickSeconds: 59"))
        eventually(lambda: c.get(f"{ORCH}/Thing").json()["resourcePerInstance"] == 30, timeout=30)
        assert c.get("/v1/status").json()["kinds"]["Thing"]["overrides"] == {}


def test_readyz_names_what_is_missing(daemon: Running, zk: Any, kube: Any) -> None:
    with daemon.client() as c:
        assert c.get("/readyz").status_code == 200
        zk.stop()
        try:
            r = eventually(lambda: (r := c.get("/readyz")).status_code == 503 and r, timeout=30)
            assert r.json()["ready"] is False
            assert set(r.json()["problems"]) == {"zookeeper"}
            assert "no ZooKeeper session" in r.json()["problems"]["zookeeper"]
            # Nothing can be rebalanced blind: 503, and the UI shows a failure. Without its
            # session the daemon does not lead, and knows no leader to forward to.
            post = c.post(f"{ORCH}/Thing/orchestrate", headers=AUTH)
            assert post.status_code == 503
            assert "ZooKeeper cannot be reached" in post.json()["error"]
            assert int(post.headers["Retry-After"]) > 0
        finally:
            zk.start()
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=60)

        kube.stop()
        try:
            r = eventually(lambda: (r := c.get("/readyz")).status_code == 503 and r, timeout=30)
            problems = r.json()["problems"]
            assert set(problems) == {"apiserver"}
            assert "/version" in problems["apiserver"]
        finally:
            kube.start()
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=60)


def test_schemathesis_finds_no_server_error(daemon: Running, tmp_path: Path) -> None:
    """Schema-driven fuzzing of every operation in /openapi.json (bounded examples)."""
    # Random kind names only ever reach the 404 (tested above): pin the kind so that the
    # fuzzer's bodies reach the orchestration itself.
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.resource" = "Thing"\n')
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{daemon.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "25",
        "--seed",
        "1",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    with httpx.Client(base_url=daemon.url) as c:
        assert c.get("/readyz").status_code == 200
    events = [json.loads(line) for p in tmp_path.glob("*.ndjson") for line in p.open()]
    assert events, "schemathesis wrote no report"


def test_orchestrate_answers_409_when_the_kind_needs_more_than_max_instances(
    world: dict[str, Any],
) -> None:
    policy: Path = world["policy"]
    # 7 rules at 2 per instance need 7 // 2 + 1 = 4 instances; 3 are allowed.
    policy.write_text(
        policy.read_text()
        .replace("maxInstances: 5", "maxInstances: 3")
        .replace("resourcePerInstance: 100", "resourcePerInstance: 2")
    )
    with running(world["settings"]) as d, d.client(headers=AUTH) as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=30)
        r = c.post(f"{ORCH}/Rule/orchestrate")
        assert r.status_code == 409
        assert r.json() == {"error": "require instances more than the max: 4/3 (1 ids unassigned)"}
        orch = c.get(f"{ORCH}/Rule").json()
        assert [i["used"] for i in orch["instances"]] == [2, 2, 2]
        assert (orch["unassigned"], orch["error"]) == (
            1,
            "require instances more than the max: 4/3",
        )


def test_an_emptied_table_is_held_until_an_operator_confirms(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path, kazoo_client: Any
) -> None:
    from reconciler.adapters.sql.inventory import delete_ids

    things, _ = seed(pg_url, things=400, rules=5)
    # A long tick: the valve would let go by itself after 3 full passes with the same picture.
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace, tick=3600)
    with running(settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN)) as d:
        eventually(
            lambda: sum(len(i["ids"]) for i in read_layout(kazoo_client, "Thing").values()) == 400,
            timeout=60,
        )
        delete_ids(pg_url, "Thing", things)  # the table reads empty now
        d.app.daemon.wake(Wake(WakeReason.TICK))  # one full pass sees it
        with d.client() as c:
            valve = eventually(
                lambda: (
                    (v := c.get("/v1/status").json()["kinds"]["Thing"]["valve"])["engaged"] and v
                ),
                timeout=30,
            )
            assert "unassign 400 of 400" in valve["reason"]
            metrics = c.get("/metrics").text
            assert 'reconciler_safety_valve_engaged{resource="Thing"} 1.0' in metrics
            held = sum(len(i["ids"]) for i in read_layout(kazoo_client, "Thing").values())
            assert held == 400  # nothing was unassigned
            assert c.post(f"{ORCH}/Thing/confirm").status_code == 401  # the token is needed
        cli = subprocess.run(
            [
                str(Path(sys.executable).parent / "reconciler"),
                "confirm",
                "Thing",
                "--url",
                d.url,
                "--token",
                TOKEN,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert "Thing: confirmed" in cli.stdout
        eventually(
            lambda: all(not i["ids"] for i in read_layout(kazoo_client, "Thing").values()),
            timeout=30,
        )
        with d.client() as c:
            assert c.post(f"{ORCH}/Thing/confirm", headers=AUTH).status_code == 409
