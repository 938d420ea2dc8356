"""What started a pass: the `trigger` of `PassResult`, the label of
`reconciler_reconciles_total{trigger}` and the `trigger` field of the "reconciled" log line."""

from __future__ import annotations

from enum import StrEnum


class Trigger(StrEnum):
    TICK = "tick"  # the tick was due, or a full pass was asked for
    POLICY = "policy"  # policy.yaml or a template changed, or SIGHUP: a full pass
    LEADER = "leader"  # this daemon just won the election: a full view first
    ORCHESTRATE = "orchestrate"  # an operator asked for a rebalance (REST)
    EVENT = "event"  # row events, checked against the database, changed a kind's rows
    POD = "pod"  # a managed pod died, vanished or started running
    HEARTBEAT = "heartbeat"  # the light pass that judges heartbeat silence between ticks
    PLAN = "plan"  # `reconciler plan`: a dry run that applies nothing
    CRASHED = "crashed"  # not a pass: the label a crashed pass is counted under
