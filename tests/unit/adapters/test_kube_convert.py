"""The kube adapter's pure parts: JSON -> model conversions and error mapping, no server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from kubernetes.client.rest import ApiException

from reconciler.adapters.kube.client import make_api_client
from reconciler.adapters.kube.convert import (
    _schedulable,
    _usage_from_dict,
    parse_go_duration,
    pod_from_dict,
)
from reconciler.adapters.kube.pods import KubePods
from reconciler.adapters.kube.watch import PodWatcher
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.model import Pod
from reconciler.domain.podspec import PodTemplate


def test_pod_from_dict_full() -> None:
    p = pod_from_dict(
        {
            "metadata": {
                "name": "iota-dac-3",
                "uid": "u1",
                "labels": {"instanceId": "3"},
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "deletionTimestamp": "2024-01-01T00:01:00Z",
            },
            "status": {"phase": "Running", "startTime": "2024-01-01T00:00:05Z"},
        }
    )
    assert p == Pod(
        name="iota-dac-3",
        instance_id=3,
        phase="Running",
        terminating=True,
        started_at=1704067205.0,
        uid="u1",
    )


def test_pod_from_dict_minimal() -> None:
    p = pod_from_dict(
        {
            "metadata": {
                "name": "x",
                "labels": {"instanceId": "-1"},
                "creationTimestamp": "2024-01-01T00:00:00Z",
            }
        }
    )
    assert p.phase == "Pending"
    assert p.instance_id is None
    assert p.terminating is False
    assert p.started_at == 1704067200.0  # no startTime: creationTimestamp
    assert pod_from_dict({"metadata": {"name": "y"}}).instance_id is None


@pytest.mark.parametrize(
    ("s", "sec"),
    [
        ("30s", 30.0),
        ("1m0s", 60.0),
        ("10.5s", 10.5),
        ("500ms", 0.5),
        ("1h2m3s", 3723.0),
        ("0", 0.0),
        ("15.011s", 15.011),
        ("250us", 0.00025),
        ("100ns", 1e-7),
    ],
)
def test_parse_go_duration(s: str, sec: float) -> None:
    assert parse_go_duration(s) == pytest.approx(sec)


@pytest.mark.parametrize("s", ["30", "s", "1x", "1s junk", "-1s"])
def test_parse_go_duration_rejects(s: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(s)


def test_usage_sums_containers() -> None:
    u = _usage_from_dict(
        {
            "timestamp": "2024-01-01T00:00:00Z",
            "window": "30s",
            "containers": [
                {"name": "a", "usage": {"cpu": "125000000n", "memory": "1Mi"}},
                {"name": "b", "usage": {"cpu": "375m", "memory": "1048576"}},
            ],
        }
    )
    assert u.cpu_millicores == pytest.approx(500.0)
    assert u.memory_bytes == 2 * 2**20
    assert u.timestamp == 1704067200.0 and u.window == 30.0


def _node(**kw: object) -> dict[str, object]:
    node: dict[str, object] = {
        "metadata": {"name": "n"},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    node.update(kw)
    return node


def test_schedulable() -> None:
    assert _schedulable(_node())
    assert not _schedulable(_node(spec={"unschedulable": True}))
    assert not _schedulable(_node(status={"conditions": [{"type": "Ready", "status": "False"}]}))
    assert not _schedulable(_node(status={}))
    assert not _schedulable(_node(spec={"taints": [{"key": "k", "effect": "NoSchedule"}]}))
    assert not _schedulable(_node(spec={"taints": [{"key": "k", "effect": "NoExecute"}]}))
    assert _schedulable(_node(spec={"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}))


def test_refused_connection_is_source_unavailable_fast() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = make_api_client(
        in_cluster=False,
        kubeconfig=None,
        url=f"http://127.0.0.1:{port}",
        token="t0ken",
        ca_file=None,
    )
    t = PodTemplate(
        "Thing",
        "iota",
        "w",
        {
            "kind": "Pod",
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "I"}]}]},
        },
    )
    k = KubePods(api, {"Thing": t}, request_timeout=2)
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailable) as ei:
        k.list_pods("Thing")
    with pytest.raises(SourceUnavailable):
        k.create_pod("Thing", 0)
    assert time.monotonic() - t0 < 3
    assert "t0ken" not in str(ei.value)
    assert k.writes == 1  # the create was attempted once (counted), the list is no write


class _FakeResp:
    """Just enough of a urllib3 response for the watch loop."""

    def __init__(self, lines: list[dict[str, object]]) -> None:
        self._data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
        self.connection = None

    def stream(self, amt: object = None, decode_content: bool = False) -> Iterator[bytes]:
        yield self._data

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


def _pod_json(name: str, phase: str, rv: str) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": rv,
            "uid": name,
            "labels": {"instanceId": "1"},
        },
        "status": {"phase": phase},
    }


def test_watch_410_relists_and_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    api = make_api_client(
        in_cluster=False, kubeconfig=None, url="http://127.0.0.1:9", token=None, ca_file=None
    )
    t = PodTemplate("Thing", "iota", "w", {"kind": "Pod", "spec": {}})
    seen: list[tuple[str, str | None, str]] = []
    w = PodWatcher(
        api,
        {"Thing": t},
        lambda k, p, e: seen.append((k, p.name if p else None, e)),
        backoff_initial=0.01,
    )
    lists: list[float] = []
    watch_rvs: list[str] = []
    # 1st list: pod a. Watch from rv 10 -> a goes Failed, then 410 Gone. 2nd list: a gone,
    # b there (so the relist must report a DELETED). Watch from rv 20: stop.
    list_answers = [
        ([_pod_json("a", "Running", "9")], "10"),
        ([_pod_json("b", "Running", "19")], "20"),
    ]

    def fake_list_all(
        what: str, fn: object, *args: object, **kwargs: object
    ) -> tuple[list[dict[str, object]], str]:
        lists.append(time.monotonic())
        return list_answers[min(len(lists), 2) - 1]

    def fake_watch(*args: object, **kwargs: object) -> _FakeResp:
        rv = str(kwargs["resource_version"])
        watch_rvs.append(rv)
        if rv == "10":
            return _FakeResp(
                [
                    {"type": "MODIFIED", "object": _pod_json("a", "Failed", "11")},
                    {
                        "type": "ERROR",
                        "object": {"kind": "Status", "code": 410, "reason": "Expired"},
                    },
                ]
            )
        w._stop.set()
        return _FakeResp([])

    monkeypatch.setattr(w._api, "list_all", fake_list_all)
    monkeypatch.setattr(w._api.core, "list_namespaced_pod", fake_watch)
    w._run("Thing")
    assert watch_rvs == ["10", "20"]
    assert len(lists) == 2
    assert seen == [
        ("Thing", "a", "ADDED"),
        ("Thing", "a", "MODIFIED"),
        ("Thing", "b", "ADDED"),
        ("Thing", None, "DELETED"),
    ]
    assert w.pods("Thing") == {"b": pod_from_dict(_pod_json("b", "Running", "19"))}


def test_watch_relists_after_410_and_backs_off_doubling_after_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = make_api_client(
        in_cluster=False, kubeconfig=None, url="http://127.0.0.1:9", token=None, ca_file=None
    )
    t = PodTemplate("Thing", "iota", "w", {"kind": "Pod", "spec": {}})
    w = PodWatcher(api, {"Thing": t}, lambda k, p, e: None, backoff_initial=0.1, backoff_max=1.0)
    calls: list[tuple[str, float]] = []

    def fake_list_all(*a: object, **k: object) -> tuple[list[dict[str, object]], str]:
        calls.append(("list", time.monotonic()))
        if len([c for c in calls if c[0] == "list"]) in (2, 3):
            raise SourceUnavailable("down")  # an error: backoff, then list again
        return [], "5"

    def fake_watch(*args: object, **kwargs: object) -> _FakeResp:
        calls.append(("watch", time.monotonic()))
        if len([c for c in calls if c[0] == "watch"]) == 1:
            raise ApiException(status=410, reason="Gone")  # expired: list again, no error
        w._stop.set()
        return _FakeResp([])

    monkeypatch.setattr(w._api, "list_all", fake_list_all)
    monkeypatch.setattr(w._api.core, "list_namespaced_pod", fake_watch)
    w._run("Thing")
    assert [what for what, _ in calls] == ["list", "watch", "list", "list", "list", "watch"]
    at = [when for _, when in calls]
    # The failed lists (calls 2 and 3) are retried after backoff_initial, then twice that
    # (less a little for the clocks' rounding).
    assert at[3] - at[2] >= 0.1 - 0.005
    assert at[4] - at[3] >= 0.2 - 0.005
    assert w.reconnects == 2  # the two errors; the 410 is no reconnect
    assert not w.healthy


def test_watch_remembers_the_uid_of_a_pod_added_and_deleted_between_two_looks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = make_api_client(
        in_cluster=False, kubeconfig=None, url="http://127.0.0.1:9", token=None, ca_file=None
    )
    t = PodTemplate("Thing", "iota", "w", {"kind": "Pod", "spec": {}})
    w = PodWatcher(api, {"Thing": t}, lambda k, p, e: None)
    gone = _pod_json("c", "Pending", "12")
    gone["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"  # type: ignore[index]

    def fake_watch(*args: object, **kwargs: object) -> _FakeResp:
        if kwargs["resource_version"] != "10":  # the second watch: done
            w._stop.set()
            return _FakeResp([])
        return _FakeResp(
            [
                {"type": "ADDED", "object": _pod_json("c", "Pending", "11")},
                {"type": "DELETED", "object": gone},
            ]
        )

    monkeypatch.setattr(
        w._api, "list_all", lambda *a, **kw: ([_pod_json("a", "Running", "9")], "10")
    )
    monkeypatch.setattr(w._api.core, "list_namespaced_pod", fake_watch)
    w._run("Thing")
    assert set(w.pods("Thing") or {}) == {"a"}
    assert w.gone("Thing") == {"c": "c"}  # its uid: the daemon's expectation of it is met
