"""Rolling replacement on the rig (apiserver + scheduler + kwok): a rolling restart and a pod
template edit replace every pod one at a time, and the kind never has fewer than all but one
of its pods Running."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from reconciler.domain.podspec import REVISION_ANNOTATION
from tests.support.daemon import Running, running, settings_for
from tests.support.fleet import REPO, eventually, seed, write_policy

TOKEN = "rollout-token"
PODS = 10
MAX_UNAVAILABLE = 1  # rollout.maxUnavailable: the policy here leaves it at its default
MIN_SAMPLES = 5  # the sampler's looks at the pods while a roll goes on, at least


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
    """Samples the kind's Running pods (name -> uid) in a thread, as often as the apiserver
    answers (a roll on kwok takes a second or so), until `close()`."""

    def __init__(self, core: k8s.CoreV1Api, ns: str) -> None:
        self.core, self.ns = core, ns
        self.samples: list[dict[str, str]] = []
        self.failures: list[Exception] = []  # a failed list is no sample (shown if too few)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            try:
                pods = running_pods(self.core, self.ns)
            except Exception as e:
                self.failures.append(e)
                continue
            self.samples.append({n: p.metadata.uid for n, p in pods.items()})

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the sampler did not stop"


@dataclass
class Roll:
    before: dict[str, str]  # the Running pods' uids when the roll began
    samples: list[dict[str, str]]  # what the sampler saw during the roll
    took: float
    pods: dict[str, Any]  # the Running pods at the end

    @property
    def lowest(self) -> int:
        return min(len(sample) for sample in self.samples)


def assert_rolled_at_most_max_unavailable_at_a_time(roll: Roll, failures: list[Exception]) -> None:
    """The sampler saw the roll (enough samples, one with old and new pods both Running), and
    at no sample were more than MAX_UNAVAILABLE of the PODS pods not Running."""
    assert len(roll.samples) >= MIN_SAMPLES, (len(roll.samples), failures[-3:])
    unavailable = [PODS - len(sample) for sample in roll.samples]
    assert max(unavailable) <= MAX_UNAVAILABLE, unavailable
    new = [sum(uid != roll.before.get(n) for n, uid in s.items()) for s in roll.samples]
    assert any(0 < n < len(s) for n, s in zip(new, roll.samples, strict=True)), new


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
        eventually(lambda: len(running_pods(core, kube_namespace)) == PODS, timeout=90)
        yield d, core, kube_namespace, template


def roll_and_measure(core: k8s.CoreV1Api, ns: str, start: Any) -> Roll:
    before = {n: p.metadata.uid for n, p in running_pods(core, ns).items()}
    assert len(before) == PODS
    watch = Watch(core, ns)
    t0 = time.monotonic()
    start()
    try:
        pods = eventually(
            lambda: (
                (now := running_pods(core, ns))
                and len(now) == PODS
                and all(p.metadata.uid != before[n] for n, p in now.items())
                and now
            ),
            timeout=180,
            interval=0.05,
        )
    finally:
        watch.close()
    roll = Roll(before, watch.samples, time.monotonic() - t0, pods)
    assert_rolled_at_most_max_unavailable_at_a_time(roll, watch.failures)
    return roll


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

    roll = roll_and_measure(core, ns, restart)
    print(
        f"\nFIGURE rolling restart of {PODS} pods: {roll.took:.1f}s, lowest Running "
        f"{roll.lowest} in {len(roll.samples)} samples"
    )
    assert roll.lowest >= PODS - 1


def test_a_template_edit_is_noticed_and_rolls_the_same_way(
    fleet_of_ten: tuple[Running, k8s.CoreV1Api, str, Path],
) -> None:
    _, core, ns, template = fleet_of_ten
    old = {p.metadata.annotations[REVISION_ANNOTATION] for p in running_pods(core, ns).values()}

    def edit() -> None:  # the file watch notices it: no SIGHUP here
        manifest = yaml.safe_load(template.read_text())
        manifest["metadata"].setdefault("labels", {})["release"] = "2"
        template.write_text(yaml.safe_dump(manifest))

    roll = roll_and_measure(core, ns, edit)
    print(
        f"\nFIGURE template roll of {PODS} pods: {roll.took:.1f}s, lowest Running "
        f"{roll.lowest} in {len(roll.samples)} samples"
    )
    assert roll.lowest >= PODS - 1
    revisions = {p.metadata.annotations[REVISION_ANNOTATION] for p in roll.pods.values()}
    assert len(revisions) == 1 and revisions.isdisjoint(old)
    assert all(p.metadata.labels.get("release") == "2" for p in roll.pods.values())
