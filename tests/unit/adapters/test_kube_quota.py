"""ResourceQuota objects (the apiserver's JSON) -> the room they leave, pure
(reconciler/adapters/kube/quota.py `room_from_quotas`)."""

from __future__ import annotations

from typing import Any

from reconciler.adapters.kube.client import KubeError
from reconciler.adapters.kube.quota import is_quota_refusal, room_from_quotas

MI = 2**20


def quota(
    name: str,
    hard: dict[str, str],
    used: dict[str, str] | None,
    *,
    scopes: list[str] | None = None,
    version: str = "1",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    status = {} if used is None else {"hard": hard, "used": used}
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": spec, "status": status}


def test_no_quota_leaves_every_resource_unlimited() -> None:
    room = room_from_quotas([])
    assert (room.pods, room.cpu_m, room.mem_bytes, room.limited) == (None, None, None, False)


def test_room_is_hard_minus_used_per_resource() -> None:
    room = room_from_quotas(
        [
            quota(
                "q",
                {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi"},
                {"pods": "3", "requests.cpu": "1500m", "requests.memory": "1Gi"},
            )
        ]
    )
    assert (room.pods, room.cpu_m, room.mem_bytes) == (7, 2500.0, 7 * 1024 * MI)
    assert "pods 3/10 (quota q)" in room.describe()


def test_the_short_names_count_like_requests_and_the_least_room_of_all_quotas_wins() -> None:
    room = room_from_quotas(
        [
            quota("a", {"cpu": "2", "count/pods": "5"}, {"cpu": "1", "count/pods": "4"}),
            quota("b", {"pods": "9", "memory": "1Gi"}, {"pods": "2", "memory": "0"}),
        ]
    )
    assert (room.pods, room.cpu_m, room.mem_bytes) == (1, 1000.0, 1024 * MI)


def test_used_past_hard_leaves_no_room_not_negative_room() -> None:
    assert room_from_quotas([quota("q", {"pods": "3"}, {"pods": "5"})]).pods == 0


def test_a_quota_without_a_status_yet_admits_nothing_it_limits() -> None:
    """The admission plugin refuses every pod while the controller has not written
    `status.hard`."""
    room = room_from_quotas([quota("q", {"pods": "10"}, None)])
    assert room.pods == 0
    assert "status not written yet" in room.describe()


def test_a_scoped_quota_is_left_to_the_apiserver_but_counts_in_the_fingerprint() -> None:
    room = room_from_quotas([quota("s", {"pods": "1"}, {"pods": "1"}, scopes=["NotBestEffort"])])
    assert room.pods is None
    assert room.fingerprint == ("s@1",)
    changed = room_from_quotas(
        [quota("s", {"pods": "2"}, {"pods": "1"}, scopes=["X"], version="2")]
    )
    assert changed.fingerprint != room.fingerprint


def test_a_create_refused_by_a_quota_is_told_apart_from_other_403s() -> None:
    refusal = KubeError(
        403,
        "Forbidden",
        'pods "iota-rules-engine-3" is forbidden: exceeded quota: pods, requested: pods=1, '
        "used: pods=3, limited: pods=3",
    )
    assert is_quota_refusal(refusal)
    assert not is_quota_refusal(KubeError(403, "Forbidden", "User cannot create pods"))
    assert not is_quota_refusal(KubeError(422, "Invalid", "exceeded quota"))
