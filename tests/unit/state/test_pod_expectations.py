"""Pod expectations (reconciler/state/expectations.py): what the watch cache has not shown yet."""

from __future__ import annotations

from reconciler.domain.model import Pod
from reconciler.state.expectations import EXPECTATION_SECONDS, PodExpectations


def test_a_created_pod_counts_as_pending_until_the_cache_shows_it() -> None:
    exp = PodExpectations()
    exp.created("Thing", "iota-dac-1", 1, now=0.0, uid="new")
    assert exp.view("Thing", {}, now=1.0)["iota-dac-1"].phase == "Pending"
    shown = {"iota-dac-1": Pod("iota-dac-1", 1, "Running", uid="new")}
    assert exp.view("Thing", shown, now=2.0) == shown
    assert exp.view("Thing", {}, now=3.0) == {}  # fulfilled: no longer held


def test_a_created_pod_the_watch_saw_deleted_is_missing_at_once() -> None:
    exp = PodExpectations()
    exp.created("Thing", "iota-dac-1", 1, now=0.0, uid="new")
    assert exp.view("Thing", {}, now=1.0, gone={"iota-dac-1": "new"}) == {}
    assert exp.view("Thing", {}, now=2.0) == {}  # fulfilled, not merely skipped once


def test_the_deletion_of_an_older_incarnation_leaves_the_created_pod_expected() -> None:
    exp = PodExpectations()
    exp.created("Thing", "iota-dac-1", 1, now=0.0, uid="new")
    view = exp.view("Thing", {}, now=1.0, gone={"iota-dac-1": "old"})
    assert view["iota-dac-1"].phase == "Pending"
    assert exp.view("Thing", {}, now=EXPECTATION_SECONDS + 1.0) == {}  # expired
