"""EventRecorder against the rig's real kube-apiserver: what `kubectl get events` shows.

Events are listed back through events.k8s.io/v1 (what the recorder writes) and through core/v1
(what `kubectl get events` and `kubectl describe pod` read): the same objects, two views.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.adapters.kube.client import make_api_client
from reconciler.adapters.kube.events import EventRecorder
from tests.support.polling import eventually


@pytest.fixture
def admin(kube: Any) -> Iterator[Any]:
    with kube.api_client() as api:
        yield api


@pytest.fixture
def pod(admin: Any, kube_namespace: str) -> dict[str, str]:
    """A real pod for the Events to regard (Pending or Running: kwok decides, either is fine)."""
    name = f"iota-dac-{uuid.uuid4().hex[:4]}"
    made = client.CoreV1Api(admin).create_namespaced_pod(
        kube_namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "w", "image": "iota/worker"}]},
        },
    )
    return {"name": name, "uid": made.metadata.uid}


def recorder_for(kube: Any, token: str | None = None, **kw: Any) -> EventRecorder:
    api = make_api_client(
        in_cluster=False,
        kubeconfig=None,
        url=kube.url,
        token=token or kube.token,
        ca_file=str(kube.ca_file),
    )
    kw.setdefault("idle_seconds", 0.1)
    return EventRecorder(api, f"reconciler-test-{uuid.uuid4().hex[:6]}", **kw)


def events_v1(admin: Any, namespace: str) -> list[Any]:
    """Ours: the scheduler posts Events about the same pod too."""
    items = client.EventsV1Api(admin).list_namespaced_event(namespace).items
    return [e for e in items if e.reporting_controller == "reconciler"]


def test_a_recorded_recreate_is_listed_as_an_event_about_the_pod(
    kube: Any, admin: Any, kube_namespace: str, pod: dict[str, str]
) -> None:
    recorder = recorder_for(kube)
    try:
        t0 = time.monotonic()
        recorder.pod_event(
            "Thing",
            kube_namespace,
            pod["name"],
            "Recreate",
            "PodDead",
            "Thing instance 7: phase Failed; deleted, created again once the name is free",
            uid=pod["uid"],
        )
        returned_in = time.monotonic() - t0
        assert recorder.wait_idle(10)
    finally:
        recorder.close()
    assert returned_in < 0.05, f"pod_event took {returned_in:.3f}s: it must not wait"
    assert recorder.counts["created"] == 1 and recorder.counts["failed"] == 0, recorder.counts

    (ev,) = events_v1(admin, kube_namespace)
    assert (ev.action, ev.reason, ev.type) == ("Recreate", "PodDead", "Warning")
    assert ev.reporting_controller == "reconciler"
    assert ev.reporting_instance == recorder.identity
    assert ev.note.startswith("Thing instance 7: phase Failed")
    assert ev.regarding.kind == "Pod" and ev.regarding.api_version == "v1"
    assert (ev.regarding.name, ev.regarding.uid) == (pod["name"], pod["uid"])
    assert ev.regarding.namespace == kube_namespace
    assert ev.series is None  # one occurrence so far
    assert ev.event_time is not None

    # `kubectl get events` / `kubectl describe pod` read core/v1: the same object.
    (core,) = (
        client.CoreV1Api(admin)
        .list_namespaced_event(
            kube_namespace,
            field_selector=f"involvedObject.name={pod['name']},reportingComponent=reconciler",
        )
        .items
    )
    assert core.metadata.name == ev.metadata.name
    assert (core.reason, core.type, core.action) == ("PodDead", "Warning", "Recreate")
    assert core.involved_object.uid == pod["uid"]
    assert core.message == ev.note
    assert core.reporting_component == "reconciler"


def test_repeated_identical_events_update_one_series(
    kube: Any, admin: Any, kube_namespace: str, pod: dict[str, str]
) -> None:
    recorder = recorder_for(kube)
    args = ("Thing", kube_namespace, pod["name"], "Recreate", "HeartbeatSilent")
    try:
        for i in range(5):
            recorder.pod_event(*args, f"no heartbeat for 95 s (#{i})", uid=pod["uid"])
            assert recorder.wait_idle(10)
        # Another reason about the same pod is another Event.
        recorder.pod_event("Thing", kube_namespace, pod["name"], "Create", "PodMissing", "x")
        assert recorder.wait_idle(10)
    finally:
        recorder.close()

    events = {e.reason: e for e in events_v1(admin, kube_namespace)}
    assert sorted(events) == ["HeartbeatSilent", "PodMissing"]
    silent = events["HeartbeatSilent"]
    assert silent.series is not None
    assert silent.series.count == 5
    assert silent.series.last_observed_time > silent.event_time
    assert silent.note == "no heartbeat for 95 s (#0)"  # the first occurrence's note
    assert events["PodMissing"].series is None
    # A worker that fell silent is a Warning; creating a missing pod is routine.
    assert (silent.type, events["PodMissing"].type) == ("Warning", "Normal")
    assert recorder.counts["created"] == 2
    assert recorder.counts["patched"] == 4
    assert recorder.counts["aggregated"] == 4
    # core/v1 shows the series as the count `kubectl get events` prints (x5).
    core = client.CoreV1Api(admin).read_namespaced_event(silent.metadata.name, kube_namespace)
    assert core.series.count == 5


def test_a_burst_becomes_one_write_and_a_rate_limited_count_is_written_later(
    kube: Any, admin: Any, kube_namespace: str, pod: dict[str, str]
) -> None:
    # One write per pod, then one token every 2 s (production: 25, then one per 300 s).
    recorder = recorder_for(kube, burst=1, refill_seconds=2.0)
    args = ("Rule", kube_namespace, pod["name"], "Delete", "ScaleDown")
    try:
        recorder.pod_event(*args, "Rule instance 4 removed: 5 -> 4 instances")
        assert recorder.wait_idle(10)
        assert recorder.counts["created"] == 1
        for _ in range(3):  # the bucket is empty now: counted, not written yet
            recorder.pod_event(*args, "again")
        assert recorder.wait_idle(10)
        (ev,) = events_v1(admin, kube_namespace)
        assert ev.series is None
        assert recorder.counts["rate_limited"] == 1

        def count_written() -> int | None:
            (e,) = events_v1(admin, kube_namespace)
            return e.series.count if e.series else None

        # The next token (2 s later) writes all four occurrences at once.
        assert eventually(count_written, timeout=10) == 4
    finally:
        recorder.close()
    assert recorder.counts["patched"] == 1
    assert recorder.counts["failed"] == 0
    assert ev.type == "Normal"


def test_a_refused_write_is_counted_and_never_raised(
    kube: Any, admin: Any, kube_namespace: str, pod: dict[str, str]
) -> None:
    recorder = recorder_for(kube, token=kube.tokens["nobody"])  # no rights at all: 403
    try:
        recorder.pod_event("Thing", kube_namespace, pod["name"], "Create", "PodMissing", "n")
        recorder.pod_event("Thing", kube_namespace, pod["name"], "Create", "PodMissing", "n")
        assert recorder.wait_idle(10)
        time.sleep(0.5)  # under test: a few idle flushes, and the refusal not retried in them
    finally:
        recorder.close()
    assert recorder.counts["failed"] == 1, recorder.counts
    assert recorder.counts["created"] == 0
    assert events_v1(admin, kube_namespace) == []
