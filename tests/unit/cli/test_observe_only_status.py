"""`reconciler status` says when the daemon it asks is observe-only (cli/status_text.py)."""

from __future__ import annotations

from typing import Any

from reconciler.cli.status_text import format_status


def status(leadership: dict[str, Any]) -> dict[str, Any]:
    return {
        "leadership": leadership,
        "policy": {"path": "config/policy.yaml", "sha256": "c31929a730eb00", "error": None},
        "lastPass": {"at": 1.0, "trigger": "tick", "ops": 3, "failed": []},
        "sources": {},
        "kinds": {},
    }


def test_an_observe_only_daemon_says_so_and_names_no_leader() -> None:
    text = format_status(
        status(
            {
                "role": "observe-only",
                "identity": None,
                "leader": None,
                "election": False,
                "observeOnly": True,
            }
        )
    )
    assert "role: observe-only: plans every pass, writes nothing (`GET /v1/plan`)" in text
    assert "leader:" not in text


def test_a_single_daemon_without_election_prints_no_role_line() -> None:
    lead = {"role": "leader", "identity": None, "leader": None, "election": False}
    assert "role:" not in format_status(status({**lead, "observeOnly": False}))
