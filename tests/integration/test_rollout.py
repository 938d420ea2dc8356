"""Rolling replacement on the rig (apiserver + scheduler + kwok): a rolling restart and a pod
template edit replace every pod one at a time, and the kind never has fewer than all but one
of its pods Running."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from reconciler.domain.podspec import REVISION_ANNOTATION
from tests.integration.daemon import Running, running, settings_for
from tests.integration.fleet import REPO, eventually, seed, write_policy

TOKEN = "rollout-token"
PODS = 10


def running_pods(core: k8s.CoreV1Api, ns: str) -> dict[str, Any]:
    """The kind's Running pods that are not being deleted, by name."""
    return {
        p.metadata.name: p
        for p in core.list_namespaced_pod(ns).items
        if p.metadata.name.startswith("iota-dac-")
        and p.metadata.deletion_timestamp is None
        and p.status.phase == "Running"
    }


class Watch:
    """Samples the kind's Running pods every 50 ms in a thread; keeps the lowest count."""

    def __init__(self, core: k8s.CoreV1Api, ns: str) -> None:
        self.core, self.ns = core, ns
        self.lowest = PODS
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def running(self) -> dict[str, Any]:
        return running_pods(self.core, self.ns)

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.lowest = min(self.lowest, len(self.running()))
            self.samples += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def fleet_of_ten(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> Iterator[tuple[Running, k8s.CoreV1Api, str, Path]]:
    seed(pg_url, things=200, rules=5)
    template = tmp_path / "templates/iota-dac/pod-template.yml"
    template.parent.mkdir(parents=True)
    shutil.copy(REPO / "templates/iota-dac/pod-template.yml", template)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": PODS, "template": str(template)},
        Rule={"initInstances": 3},
    )
    with running(settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN)) as d:
        core = k8s.CoreV1Api(kube.api_client())
        watch = Watch(core, kube_namespace)
        eventually(lambda: len(watch.running()) == PODS, timeout=90)
        watch.close()
        yield d, core, kube_namespace, template


def roll_and_measure(core: k8s.CoreV1Api, ns: str, start: Any) -> tuple[int, float, dict]:
    watch = Watch(core, ns)
    before = {n: p.metadata.uid for n, p in watch.running().items()}
    t0 = time.monotonic()
    start()
    try:
        eventually(
            lambda: (
                (now := watch.running())
                and len(now) == PODS
                and all(p.metadata.uid != before[n] for n, p in now.items())
            ),
            timeout=180,
            interval=0.2,
        )
    finally:
        watch.close()
    return watch.lowest, time.monotonic() - t0, watch.running()


def test_a_rolling_restart_keeps_all_but_one_pod_running(
    fleet_of_ten: tuple[Running, k8s.CoreV1Api, str, Path],
) -> None:
    d, core, ns, _ = fleet_of_ten

    def restart() -> None:
        r = httpx.post(
            f"{d.url}/v1/api/orchestrations/Thing/restart",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text

    lowest, took, _ = roll_and_measure(core, ns, restart)
    print(f"\nFIGURE rolling restart of {PODS} pods: {took:.1f}s, lowest Running {lowest}")
    assert lowest >= PODS - 1


def test_a_template_edit_is_noticed_and_rolls_the_same_way(
    fleet_of_ten: tuple[Running, k8s.CoreV1Api, str, Path],
) -> None:
    _, core, ns, template = fleet_of_ten
    old = {p.metadata.annotations[REVISION_ANNOTATION] for p in running_pods(core, ns).values()}

    def edit() -> None:  # the file watch notices it: no SIGHUP here
        manifest = yaml.safe_load(template.read_text())
        manifest["metadata"].setdefault("labels", {})["release"] = "2"
        template.write_text(yaml.safe_dump(manifest))

    lowest, took, pods = roll_and_measure(core, ns, edit)
    print(f"\nFIGURE template roll of {PODS} pods: {took:.1f}s, lowest Running {lowest}")
    assert lowest >= PODS - 1
    revisions = {p.metadata.annotations[REVISION_ANNOTATION] for p in pods.values()}
    assert len(revisions) == 1 and revisions.isdisjoint(old)
    assert all(p.metadata.labels.get("release") == "2" for p in pods.values())
