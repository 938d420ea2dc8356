"""Reloading the policy (reconciler.runtime.policy_watch): a pod template edit counts as a
change."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from reconciler.domain.podspec import template_revision
from reconciler.runtime.policy_watch import reload_policy
from reconciler.state.daemon import DaemonState
from tests.support.fakes import REPO, write_policy


def test_a_template_edit_alone_is_picked_up_by_sighup_and_keeps_rest_overrides(
    tmp_path: Path,
) -> None:
    template = tmp_path / "dac.yml"
    shutil.copy(REPO / "templates/iota-dac/pod-template.yml", template)
    policy = write_policy(tmp_path, Thing={"template": str(template)})
    state = DaemonState()
    seen: list[dict[str, object]] = []
    assert reload_policy(state, policy, "start", seen.append)
    before = state.intents(state.policies())["Thing"].revision
    state.request_rebalance("Thing", {"maxInstances": 50})

    assert not reload_policy(state, policy, "SIGHUP", seen.append)  # nothing changed
    manifest = yaml.safe_load(template.read_text())
    manifest["metadata"].setdefault("labels", {})["release"] = "2"
    template.write_text(yaml.safe_dump(manifest))
    assert reload_policy(state, policy, "SIGHUP", seen.append)  # the template alone changed

    after = state.intents(state.policies())["Thing"].revision
    assert after != before and after == template_revision(state.policy.templates["Thing"])
    assert state.policies()["Thing"].max_instances == 50  # policy.yaml itself did not change
    assert len(seen) == 2  # the adapters got the new templates
