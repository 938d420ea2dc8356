"""REST overrides on top of a kind's policy (policy.effective)."""

from __future__ import annotations

import pydantic
import pytest

from reconciler.policy.schema import KindPolicy, effective

BASE = {"table": "Thing", "instanceName": "iota-dac", "template": "t.yml"}


def test_overrides_replace_the_policy_values_and_keep_the_rest() -> None:
    policy = KindPolicy.model_validate(
        {**BASE, "heartbeat": {"enabled": True}, "autoscale": {"cpuTargetPercent": 50}}
    )
    merged = effective(policy, {"maxInstances": 50, "resourcePerInstance": 7})
    assert (merged.max_instances, merged.resource_per_instance) == (50, 7)
    assert merged.heartbeat == policy.heartbeat
    assert merged.autoscale == policy.autoscale
    assert effective(policy, None) is policy


def test_an_override_below_init_instances_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="must not exceed maxInstances"):
        effective(KindPolicy.model_validate(BASE), {"maxInstances": 5})
