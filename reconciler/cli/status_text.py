"""`reconciler status` as text: the daemon's /v1/status rendered for a terminal."""

from __future__ import annotations

from typing import Any

from reconciler.runtime.kind_notes import KindNote, Topic, kind_notes


def format_status(data: dict[str, Any]) -> str:
    lines: list[str] = []
    pol = data["policy"]
    lines.append(
        f"policy {pol['path']} sha256 {str(pol['sha256'])[:12]}"
        + (f"  REJECTED EDIT: {pol['error']}" if pol.get("error") else "")
    )
    lead = data.get("leadership") or {}
    if lead.get("observeOnly"):
        lines.append("role: observe-only: plans every pass, writes nothing (`GET /v1/plan`)")
    elif lead.get("election"):
        lines.append(
            f"role: {lead['role']} (identity {lead['identity']}); leader: {lead['leader'] or '-'}"
        )
    last = data["lastPass"]
    lines.append(f"last pass: {last['trigger']} ops={last['ops']} failed={len(last['failed'])}")
    for source, error in data.get("sources", {}).items():
        lines.append(f"source down: {source}: {error}")
    for kind, k in data["kinds"].items():
        lines.append("")
        lines.append(
            f"{kind}: rows={k['rows']} instances={k['instances']} capacity={k['capacity']} "
            f"unassigned={k['unassigned']} (max {k['maxInstances']}, "
            f"per {k['resourcePerInstance']})"
        )
        for note in kind_notes(kind, k):
            lines.extend(_note_line(note))
        lines.append(f"  {'instance':>8}  {'used/count':>11}  {'reload':>6}  {'heartbeat':>9}  pod")
        for inst in k["instanceList"]:
            age = inst.get("heartbeatAge")
            heard = f"{age:.0f}s" if age is not None else "-"
            lines.append(
                f"  {inst['instanceId']:>8}  {inst['used']:>5}/{inst['count']:<5}  "
                f"{inst['reloadTimes']:>6}  {heard:>9}  "
                f"{inst['pod']} {inst['phase']}"
            )
    return "\n".join(lines)


def _note_line(note: KindNote) -> list[str]:
    """A note as `status` prints it (indented under its kind); the overrides are left to the
    orchestration itself (`maxInstances`, `per` on the kind's line)."""
    if note.topic is Topic.ERROR:
        return [f"  ERROR: {note.text}"]
    if note.topic is Topic.DEGRADED:
        return [f"  DEGRADED: {note.text}"]
    if note.topic is Topic.PIN:
        first, _, rest = note.text.partition(" ")
        return [f"  {first.upper()} {rest} (`{note.command}`: back to the policy)"]
    if note.topic is Topic.VALVE:
        return [f"  SAFETY VALVE: {note.text} (`{note.command}` lets it go ahead)"]
    if note.topic is Topic.OVERRIDES:
        return []
    return [f"  {note.topic}: {note.text}"]  # blind, heartbeats, autoscale
