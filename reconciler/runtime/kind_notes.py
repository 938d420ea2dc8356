"""What an operator should know about a kind beyond its numbers, in one order, for every
surface: `reconciler status` (reconciler/cli/status_text.py) and the fleet page
(reconciler/api/web/page.py) render these notes, each in its own style, from the kind's
entry of `/v1/status`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Topic(StrEnum):
    ERROR = "error"  # the kind needs more instances than maxInstances
    BLIND = "blind"  # sources this pass could not read: nothing was done that needs them
    DEGRADED = "degraded"  # a source of the kind unreadable since an earlier pass
    PIN = "pin"  # an operator's `scale` or `stop`
    VALVE = "valve"  # the safety valve holds the kind's plan
    OVERRIDES = "overrides"  # REST orchestrate's sizing, until policy.yaml changes
    HEARTBEATS = "heartbeats"
    AUTOSCALE = "autoscale"


ALERTS = frozenset({Topic.ERROR, Topic.BLIND, Topic.DEGRADED, Topic.VALVE})


@dataclass(frozen=True, slots=True)
class KindNote:
    topic: Topic
    text: str
    command: str | None = None  # the CLI command that acts on it, if any

    @property
    def alert(self) -> bool:
        return self.topic in ALERTS


def kind_notes(kind: str, k: dict[str, Any]) -> list[KindNote]:
    """The notes of one kind (`k`: its entry under `kinds` in /v1/status)."""
    notes: list[KindNote] = []
    if k.get("error"):
        notes.append(KindNote(Topic.ERROR, str(k["error"])))
    if k.get("blind"):
        notes.append(KindNote(Topic.BLIND, ", ".join(k["blind"])))
    for source, error in (k.get("degraded") or {}).items():
        notes.append(KindNote(Topic.DEGRADED, f"cannot read {source}: {error}"))
    pin = k.get("pin")
    if pin:
        n = pin.get("instances")
        what = "stopped" if n == 0 else f"pinned to {n} instances"
        notes.append(
            KindNote(Topic.PIN, f"{what} by {pin.get('by')}", command=f"reconciler start {kind}")
        )
    valve = k.get("valve") or {}
    if valve.get("engaged"):
        notes.append(
            KindNote(
                Topic.VALVE,
                f"held for {valve.get('passes')} pass(es): {valve.get('reason')}",
                command=f"reconciler confirm {kind}",
            )
        )
    overrides = k.get("overrides") or {}
    if overrides:
        given = ", ".join(f"{name}={value}" for name, value in sorted(overrides.items()))
        notes.append(KindNote(Topic.OVERRIDES, given))
    if k.get("heartbeat"):
        notes.append(KindNote(Topic.HEARTBEATS, str(k["heartbeat"])))
    auto = k.get("autoscale")
    if auto:
        notes.append(
            KindNote(Topic.AUTOSCALE, str(auto.get("text") if isinstance(auto, dict) else auto))
        )
    return notes
