"""A reconciler wired to the rig's real servers, for the end-to-end tests.

Same adapters as production (`reconciler.app` builds them from Settings); here they are
built directly so a test can count writes and run single passes deterministically.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.adapters.inventory import Inventory
from reconciler.adapters.kube import KubePods
from reconciler.adapters.zookeeper import ZkStore
from reconciler.loop import Daemon
from reconciler.podspec import load_pod_template
from reconciler.policy import LoadedPolicy, load_policy
from reconciler.reconcile import PassResult, Reconciler

REPO = Path(__file__).resolve().parents[2]


def write_policy(path: Path, namespace: str, *, tick: float = 60, **kinds: dict[str, Any]) -> Path:
    """policy.yaml for Thing/Rule in `namespace`; kinds' dicts override the defaults."""
    base = {
        "Thing": {
            "table": "Thing",
            "instanceName": "iota-dac",
            "template": str(REPO / "templates/iota-dac/pod-template.yml"),
            "namespace": namespace,
            "initInstances": 10,
            "maxInstances": 100,
            "resourcePerInstance": 5000,
        },
        "Rule": {
            "table": "Rule",
            "instanceName": "iota-rules-engine",
            "template": str(REPO / "templates/iota-rules-engine/pod-template.yml"),
            "namespace": namespace,
            "initInstances": 3,
            "maxInstances": 100,
            "resourcePerInstance": 500,
        },
    }
    for kind, override in kinds.items():
        base[kind] = {**base[kind], **override}
    path.write_text(yaml.safe_dump({"tickSeconds": tick, "kinds": base}, sort_keys=False))
    return path


@dataclass
class Fleet:
    zk: ZkStore
    inventory: Inventory
    pods: KubePods
    reconciler: Reconciler
    policy_path: Path

    def loaded(self) -> LoadedPolicy:
        loaded = load_policy(self.policy_path)
        self.pods.templates = {
            kind: load_pod_template(kind, p.namespace, p.instance_name, loaded.template_path(kind))
            for kind, p in loaded.policy.kinds.items()
        }
        return loaded

    def tick(self, **kw: Any) -> PassResult:
        result = self.reconciler.run(self.loaded(), trigger="test", **kw)
        assert not result.failed, [o.error for o in result.failed]
        return result

    def writes(self) -> tuple[int, int]:
        return self.zk.writes, self.pods.writes

    def daemon(self) -> Daemon:
        def set_templates(templates: dict[str, Any]) -> None:
            self.pods.templates = templates

        return Daemon(self.policy_path, self.reconciler, on_templates=set_templates)


@contextmanager
def fleet(zk_hosts: str, db_url: str, api_client: Any, policy_path: Path) -> Iterator[Fleet]:
    zk = ZkStore(zk_hosts)
    zk.start()
    inventory = Inventory(db_url)
    pods = KubePods(api_client, {})
    reconciler = Reconciler(store=zk, rows=inventory, pods=pods)
    try:
        yield Fleet(zk, inventory, pods, reconciler, policy_path)
    finally:
        zk.stop()
        inventory.close()


def read_layout(kazoo: Any, kind: str) -> dict[int, dict[str, Any]]:
    """Raw SPEC layout of a kind, read with kazoo directly (not through the adapter)."""
    root = f"/iota/orchestration/{kind}"
    out: dict[int, dict[str, Any]] = {}
    for child in kazoo.get_children(root):
        node = json.loads(kazoo.get(f"{root}/{child}")[0])
        out[int(child)] = {
            "node": node,
            "ids": json.loads(kazoo.get(f"{root}/{child}/resources")[0])["ids"],
            "times": json.loads(kazoo.get(f"{root}/{child}/_reload")[0])["times"],
            "children": sorted(kazoo.get_children(f"{root}/{child}")),
            "tmp": kazoo.get(f"{root}/{child}/tmp")[0],
        }
    return out


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until `check` returns a truthy value (returned) or raise its last error."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # e.g. a znode deleted while the check reads the tree
            last = e
        time.sleep(interval)
    if last:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


def daemon_env(tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any) -> dict[str, str]:
    """Environment for a `reconciler run` subprocess against the rig: ZooKeeper, PostgreSQL
    and the apiserver; no MQTT, no Kafka; nothing inherited that could leak in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "RECONCILER_ZK_HOSTS": zk_hosts,
        "RECONCILER_DATABASE_URL": pg_url,
        "RECONCILER_KUBE_URL": kube.url,
        "RECONCILER_KUBE_TOKEN": kube.token,
        "RECONCILER_KUBE_CA_FILE": str(kube.ca_file),
        "RECONCILER_MQTT_BROKERS": "",
        "RECONCILER_KAFKA_BOOTSTRAP": "",
        "RECONCILER_API_HOST": "127.0.0.1",
        "RECONCILER_API_PORT": "0",
        "RECONCILER_LOG_FORMAT": "json",
    }


class HeartbeatSender:
    """Stand-in for the fleet's workers: a Kafka heartbeat (SPEC format) for each instance
    in `instances` every 0.5 s. Change `instances` to silence or revive a worker."""

    def __init__(self, bootstrap: str, instances: set[int], resource: str = "Thing") -> None:
        from kafka import KafkaProducer

        self.instances = set(instances)
        self.resource = resource
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, retries=0, max_block_ms=2000, request_timeout_ms=2000
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for i in list(self.instances):
                value = {
                    "resource": self.resource,
                    "instanceId": str(i),
                    "timestamp": str(int(time.time())),
                }
                # Kafka stopped by a test: workers keep trying, as real ones do.
                with contextlib.suppress(Exception):
                    self.producer.send("HeartBeat", json.dumps(value).encode())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.producer.close(timeout=2)
