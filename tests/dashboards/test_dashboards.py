"""/metrics passes promtool, and every panel of dashboards/reconciler.json returns data from
the rig's real Prometheus scraping two daemons, as in production: a leader wired to
ZooKeeper, PostgreSQL, the apiserver (kwok pods, the PodMetrics stand-in), MQTT and Kafka,
and its standby (`reconciler run` in a process of its own: the metrics registry is per
process). Both export the fleet's gauges; the fleet panels show one value per kind, not two.

What feeds which panel here (and in production):
- fleet overview, instances, pod phases, reconcile loop: every pass (tickSeconds: 1 here);
- pod CPU/memory: a kind with an `autoscale` block and metrics.k8s.io PodMetrics;
- heartbeat age: a kind with `heartbeat.enabled` and workers sending to Kafka `HeartBeat`;
- events received/malformed: cm/notify messages over MQTT (and heartbeats over Kafka);
- policy reloads / policy in force: loading and editing policy.yaml.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from paho.mqtt import client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion

from reconciler.adapters.sql.inventory import insert_ids
from reconciler.domain.podspec import managed_selector
from rig import podmetrics_standin
from tests.support.daemon import Running, running, settings_for
from tests.support.fleet import REPO, HeartbeatSender, eventually, seed, write_policy
from tests.support.processes import DaemonProcess

DASHBOARD = REPO / "dashboards" / "reconciler.json"
# Grafana's variables as the test substitutes them: all kinds, and a rate window of a few
# 1 s scrapes (rate() and histogram quantiles need at least two samples in the window).
SUBSTITUTE = {"$resource": ".*", "$__rate_interval": "10s", "$__range": "1m"}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])  # a collapsed row holds its panels
        else:
            yield p


def substitute(expr: str) -> str:
    for var, value in SUBSTITUTE.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def test_the_dashboard_is_importable_and_provisionable() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "reconciler-fleet"
    assert dash["title"]
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert "id" not in dash or dash["id"] is None  # Grafana assigns ids on import
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["resource"]["type"] == "query"
    assert "label_values(" in variables["resource"]["definition"]
    all_panels = list(panels(dash))
    ids = [p["id"] for p in dash["panels"]] + [
        p["id"] for p in all_panels if p not in dash["panels"]
    ]
    assert len(ids) == len(set(ids))
    for p in all_panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
    import yaml

    prov = REPO / "dashboards" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((prov / "dashboards" / "reconciler.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


def notify(host: str, port: int, payloads: list[bytes]) -> None:
    client = mqtt_client.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4()}")
    client.connect(host, port)
    client.loop_start()
    try:
        for data in payloads:
            client.publish("cm/notify", data, qos=1).wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()


def put_usage(kube: Any, namespace: str) -> None:
    """PodMetrics for every Thing pod: 175m CPU (70% of the 250m request), 180Mi memory."""
    api = kube.api_client()
    core = k8s.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector=managed_selector("Thing")).items
    assert pods
    for pod in pods:
        podmetrics_standin.put_pod_metrics(
            api,
            namespace,
            pod.metadata.name,
            {pod.spec.containers[0].name: ("175m", "180Mi")},
            labels=pod.metadata.labels,
        )


@pytest.fixture
def daemon(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    mqtt: Any,
    kafka: Any,
    tmp_path: Path,
) -> Iterator[tuple[Running, Path]]:
    seed(pg_url, things=60, rules=7)
    podmetrics_standin.install(kube.api_client())
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={
            "initInstances": 3,
            "maxInstances": 10,
            "heartbeat": {"enabled": True},
            "autoscale": {"cpuTargetPercent": 70, "periodSeconds": 1},
        },
        # 7 rules at 2 per instance need 4 instances, and 3 are allowed: over capacity.
        Rule={"initInstances": 3, "maxInstances": 3, "resourcePerInstance": 2},
    )
    settings = settings_for(zk_hosts, pg_url, kube, policy, mqtt=mqtt.url, kafka=kafka.bootstrap)
    with running(settings) as d:
        reconciler = d.app.daemon.ports
        if reconciler.autoscaler is None:  # until app.build wires the autoscaler (issue 6)
            from reconciler.reconcile.autoscale import Autoscaler

            reconciler.autoscaler = Autoscaler(d.app.pods)
        yield d, policy


@pytest.fixture
def standby(
    daemon: tuple[Running, Path], zk_hosts: str, pg_url: str, kube: Any, tmp_path: Path
) -> Iterator[DaemonProcess]:
    """A second daemon on the same policy, started once the in-process one leads."""
    d, policy = daemon
    eventually(lambda: d.app.daemon.status()["leadership"]["role"] == "leader", timeout=30)
    process = DaemonProcess(tmp_path, zk_hosts, pg_url, kube, policy, "standby")
    try:
        eventually(lambda: process.role() == "standby", timeout=60, what="the standby")
        yield process
    finally:
        process.close()


def test_metrics_pass_promtool_and_every_panel_returns_data(
    daemon: tuple[Running, Path],
    standby: DaemonProcess,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    mqtt: Any,
    kafka: Any,
    prometheus: Any,
) -> None:
    d, policy = daemon
    http = httpx.Client(base_url=d.url, timeout=30)
    eventually(lambda: http.get("/readyz").status_code == 200, timeout=30)
    eventually(lambda: d.app.daemon.status()["kinds"]["Thing"]["instances"] == 3, timeout=30)
    put_usage(kube, kube_namespace)
    workers = HeartbeatSender(kafka.bootstrap, {0, 1, 2})
    try:
        prometheus.scrape([d.target, f"127.0.0.1:{standby.port}"])
        # Row events (new Things, announced over MQTT) and garbage on both buses.
        new = [str(uuid.uuid4()) for _ in range(5)]
        insert_ids(pg_url, "Thing", new)
        notify(
            mqtt.host,
            mqtt.port,
            [json.dumps({"o": "c", "t": "Thing", "k": {"id": i}}).encode() for i in new]
            + [b"not json", b'{"o":"c"}'],
        )
        workers.producer.send("HeartBeat", b"garbage")
        # A policy edit: one more reload.
        policy.write_text(policy.read_text() + "# edited by the dashboard test\n")

        text = eventually(lambda: _metrics_with_everything(http), timeout=60)
        everything_at = time.time()
        promtool = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert promtool.returncode == 0, promtool.stdout + promtool.stderr

        dash = json.loads(DASHBOARD.read_text())
        eventually(lambda: prometheus.query('up{job="rig"} == 1'), timeout=30)

        def scraped_since(at: float) -> bool:
            """Every target's last scrape (1 s apart) began after `at`."""
            last = prometheus.query('timestamp(up{job="rig"})')
            return bool(last) and min(float(r["value"][1]) for r in last) > at

        # A few scrapes with everything in them (a rate needs two).
        eventually(lambda: scraped_since(everything_at + 2), timeout=30, what="3 scrapes")
        empty: dict[str, str] = {}
        for panel in panels(dash):
            for target in panel["targets"]:
                expr = substitute(target["expr"])
                try:
                    eventually(lambda e=expr: _has_finite_data(prometheus, e), timeout=20)
                except AssertionError:
                    empty[f"{panel['title']} [{target['refId']}]"] = expr
                    continue
                print(f"{panel['title']} [{target['refId']}]: {len(prometheus.query(expr))} series")
        assert not empty, f"panels without data: {json.dumps(empty, indent=2)}"
        _fleet_panels_count_the_fleet_once(prometheus, dash)
        # Our per-instance label is never renamed by Prometheus.
        assert not prometheus.query('{__name__=~"reconciler_.+", exported_instance!=""}')
        assert prometheus.query('reconciler_instance_used{instance_id="0", resource="Thing"}')
    finally:
        workers.close()
        http.close()


FLEET_PER_KIND = (
    "Instances",
    "Rows (resources to assign)",
    "Unassigned ids",
    "Over capacity",
    "Safety valve",
    "Degraded kinds",
)


def _fleet_panels_count_the_fleet_once(prometheus: Any, dash: dict[str, Any]) -> None:
    """Both daemons export the fleet's gauges (Prometheus holds two series per kind), yet a
    fleet panel has one series per kind, with the leader's value; per-replica panels have
    one series per daemon."""
    by_title = {p["title"]: p for p in panels(dash)}

    def panel(title: str) -> list[dict[str, Any]]:
        return prometheus.query(substitute(by_title[title]["targets"][0]["expr"]))

    def exporters(metric: str) -> dict[str, int]:
        return {
            r["metric"]["resource"]: int(r["value"][1])
            for r in prometheus.query(f"count by (resource) ({metric})")
        }

    assert exporters("reconciler_instances") == {"Thing": 2, "Rule": 2}
    for title in FLEET_PER_KIND:
        series = eventually(lambda t=title: panel(t), timeout=20)
        assert sorted(r["metric"]["resource"] for r in series) == ["Rule", "Thing"], title
        assert all(set(r["metric"]) == {"resource"} for r in series), (title, series)

    def instances() -> dict[str, float]:
        return {r["metric"]["resource"]: float(r["value"][1]) for r in panel("Instances")}

    # The row events above may have grown Thing for a pass or two: wait for it to settle.
    settled = {"Thing": 3.0, "Rule": 3.0}  # a sum over the two daemons would say 6
    eventually(lambda: instances() == settled, timeout=30, what=f"Instances {settled}")

    def each_thing_pod_once() -> bool:
        phases = panel("Pod phases")
        return sum(float(r["value"][1]) for r in phases if r["metric"]["resource"] == "Thing") == 3

    eventually(each_thing_pod_once, timeout=30, what="each Thing pod counted once")
    eventually(lambda: len(panel("Used per instance")) == 6, timeout=30, what="6 instances")
    both = {"Thing": 6, "Rule": 6}  # what Prometheus holds: both daemons' series
    eventually(lambda: exporters("reconciler_instance_used") == both, timeout=30)

    roles = {r["metric"]["identity"]: float(r["value"][1]) for r in panel("Leader")}
    assert roles["standby"] == 0.0 and sorted(roles.values()) == [0.0, 1.0], roles
    for title in ("Sources up", "Memory (RSS)", "Since the last clean pass"):
        instances_seen = {r["metric"]["instance"] for r in panel(title)}
        assert len(instances_seen) == 2, (title, instances_seen)


REQUIRED = [
    r'^reconciler_heartbeat_age_seconds\{instance_id="\d+",resource="Thing"\}',
    r'^reconciler_pod_cpu_usage_cores\{instance_id="\d+",resource="Thing"\}',
    r'^reconciler_pod_memory_usage_bytes\{instance_id="\d+",resource="Thing"\}',
    r'^reconciler_events_received_total\{source="mqtt"\} [1-9]',
    r'^reconciler_events_malformed_total\{source="mqtt"\} [1-9]',
    r'^reconciler_events_malformed_total\{source="kafka"\} [1-9]',
    # Counters are per process: earlier tests may have counted reloads too (so >= 2, not 2-9).
    r'^reconciler_policy_reloads_total\{result="ok"\} ([2-9]|[1-9]\d+)\.',
    r'^reconciler_over_capacity\{resource="Rule"\} 1',
    r'^reconciler_unassigned_ids\{resource="Rule"\} 1',
    r'^reconciler_source_up\{source="kafka"\} 1',
    r'^reconciler_source_up\{source="mqtt"\} 1',
]


def _metrics_with_everything(http: httpx.Client) -> str | None:
    text = http.get("/metrics").text
    missing = [r for r in REQUIRED if not re.search(r, text, re.M)]
    if missing:
        raise AssertionError(f"not in /metrics yet: {missing}")
    return text


def _has_finite_data(prometheus: Any, expr: str) -> bool:
    result = prometheus.query(expr)
    return bool(result) and all(math.isfinite(float(r["value"][1])) for r in result)
