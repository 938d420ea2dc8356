"""EventRecorder's parts that need no apiserver: the token bucket, the Event body, and that an
unreachable apiserver neither blocks nor raises into the caller (a real refused connection).
"""

from __future__ import annotations

import re
import socket
import time

from reconciler.adapters.kube.client import make_api_client
from reconciler.adapters.kube.event_series import (
    NOTE_LIMIT,
    PodEvent,
    Series,
    TokenBucket,
    _clip,
    event_body,
    micro_time,
)
from reconciler.adapters.kube.events import EventRecorder
from tests.support.polling import eventually


def test_a_token_bucket_allows_its_burst_then_one_per_refill() -> None:
    bucket = TokenBucket(burst=3, refill_seconds=10, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(9.9)
    assert bucket.take(10.0)
    assert not bucket.take(10.0)
    assert bucket.full(10.0 + 30) and bucket.tokens == 3  # never above the burst


def _event(**kw: object) -> PodEvent:
    base = dict(
        kind="Thing",
        namespace="iota",
        pod="iota-dac-3",
        action="Recreate",
        reason="PodDead",
        note="phase Failed",
        type="Warning",
        uid="u-1",
        at=1_700_000_000.25,
        mono=5.0,
    )
    return PodEvent(**(base | kw))  # type: ignore[arg-type]


def test_the_event_body_regards_the_pod_and_carries_a_series_only_when_repeated() -> None:
    series = Series(first=_event(), last_at=1_700_000_000.25)
    body = event_body(series, "reconciler-0")
    assert body["apiVersion"] == "events.k8s.io/v1"
    assert body["metadata"]["namespace"] == "iota"
    assert re.fullmatch(
        rf"iota-dac-3\.{1_700_000_000_250_000:x}[0-9a-f]{{4}}", body["metadata"]["name"]
    )
    assert body["regarding"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "iota",
        "name": "iota-dac-3",
        "uid": "u-1",
    }
    assert (body["reportingController"], body["reportingInstance"]) == (
        "reconciler",
        "reconciler-0",
    )
    assert body["eventTime"] == "2023-11-14T22:13:20.250000Z"
    assert "series" not in body
    series.count, series.last_at = 3, 1_700_000_060.0
    assert event_body(series, "r")["series"] == {
        "count": 3,
        "lastObservedTime": micro_time(1_700_000_060.0),
    }


def test_a_long_note_is_cut_to_the_apiservers_limit_on_a_character_boundary() -> None:
    note = _clip("é" * 2000, NOTE_LIMIT)  # 2 bytes each
    assert len(note.encode()) <= NOTE_LIMIT and note.endswith("...")
    assert note.startswith("é" * 500)
    assert _clip("short", NOTE_LIMIT) == "short"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_apiserver_neither_blocks_nor_raises_and_is_counted() -> None:
    api = make_api_client(
        in_cluster=False,
        kubeconfig=None,
        url=f"http://127.0.0.1:{_closed_port()}",
        token="t",
        ca_file=None,
    )
    recorder = EventRecorder(api, "r", idle_seconds=0.05, request_timeout=1, max_tries=2)
    try:
        t0 = time.monotonic()
        for i in range(50):
            recorder.pod_event("Thing", "iota", f"iota-dac-{i % 5}", "Create", "PodMissing", "x")
        assert time.monotonic() - t0 < 0.1
        assert recorder.wait_idle(20)
        eventually(lambda: recorder.counts["failed"] >= 10, timeout=10, interval=0.05)
    finally:
        recorder.close()
    counts = recorder.counts
    # 5 pods, one series each (45 occurrences aggregated), each tried max_tries = 2 times.
    assert counts["aggregated"] == 45
    assert counts["failed"] == 10, counts
    assert counts["created"] == 0
