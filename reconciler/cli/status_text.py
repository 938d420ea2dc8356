"""`reconciler status` as text: the daemon's /v1/status rendered for a terminal."""

from __future__ import annotations

from typing import Any


def format_status(data: dict[str, Any]) -> str:
    lines: list[str] = []
    pol = data["policy"]
    lines.append(
        f"policy {pol['path']} sha256 {str(pol['sha256'])[:12]}"
        + (f"  REJECTED EDIT: {pol['error']}" if pol.get("error") else "")
    )
    lead = data.get("leadership") or {}
    if lead.get("election"):
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
        if k.get("error"):
            lines.append(f"  ERROR: {k['error']}")
        if k.get("blind"):
            lines.append(f"  blind: {', '.join(k['blind'])}")
        for source, error in (k.get("degraded") or {}).items():
            lines.append(f"  DEGRADED: cannot read {source}: {error}")
        pin = k.get("pin")
        if pin:
            n = pin["instances"]
            what = "STOPPED" if n == 0 else f"PINNED to {n} instances"
            lines.append(f"  {what} by {pin['by']} (`reconciler start {kind}`: back to the policy)")
        valve = k.get("valve") or {}
        if valve.get("engaged"):
            lines.append(
                f"  SAFETY VALVE: held for {valve['passes']} pass(es): {valve['reason']} "
                f"(`reconciler confirm {kind}` lets it go ahead)"
            )
        if k.get("heartbeat"):
            lines.append(f"  heartbeats: {k['heartbeat']}")
        if k.get("autoscale"):
            auto = k["autoscale"]
            lines.append(f"  autoscale: {auto.get('text') if isinstance(auto, dict) else auto}")
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
