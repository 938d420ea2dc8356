"""The fleet page's HTML, rendered from `ReadSide.status()` (pure: a dict in, a str out).

Every value that comes from the world (kind names, pod names, phases, error texts, notes) goes
through `esc`; nothing is marked safe. CSS classes are picked from fixed tables, never built
from values. The script (`assets.SCRIPT`) finds rows by their `id`s and buttons by their
`data-kind`, so it needs no markup of its own.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any

from reconciler.runtime.kind_notes import KindNote, Topic, kind_notes

SCRIPT_URL = "/ui/fleet.js"
STYLE_URL = "/ui/fleet.css"
ORCHESTRATIONS = "/v1/api/orchestrations"

# Pod phase -> CSS class (a fixed set: a phase string never becomes markup).
PHASE_CLASS = {"Running": "ok", "Pending": "warn", "Succeeded": "bad", "Failed": "bad"}


def esc(value: object) -> str:
    """Text for HTML content or a double-quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def dom_id(*parts: object) -> str:
    """An element id (escaped for the attribute; the script builds the same string)."""
    return esc("-".join(str(p) for p in parts))


def phase_class(phase: str) -> str:
    if phase.endswith("(terminating)"):
        return "warn"
    return PHASE_CLASS.get(phase, "bad")  # Missing, Unknown, anything new


def heartbeat_text(age: float | None) -> str:
    if age is None:
        return "-"
    return f"{age:.0f} s" if age >= 10 else f"{age:.1f} s"


def _facts(pairs: Iterable[tuple[str, object]]) -> str:
    """`name value` pairs; the script updates a value by its `data-fact` name."""
    return " ".join(
        f'<span class="fact"><span class="k">{esc(k)}</span> '
        f'<span class="v" data-fact="{esc(k)}">{esc(v)}</span></span>'
        for k, v in pairs
        if v is not None
    )


def instance_row(kind: str, inst: dict[str, Any]) -> str:
    iid = inst["instanceId"]
    phase = str(inst.get("phase") or "Missing")
    return (
        f'<tr id="{dom_id("inst", kind, iid)}" data-instance="{esc(iid)}" '
        f'data-pod="{esc(inst.get("pod"))}">'
        f'<td class="num">{esc(iid)}</td>'
        f'<td class="num" data-col="used">{esc(inst.get("used"))} / {esc(inst.get("count"))}</td>'
        f'<td class="num" data-col="reload">{esc(inst.get("reloadTimes"))}</td>'
        f'<td class="num" data-col="heartbeat">{esc(heartbeat_text(inst.get("heartbeatAge")))}</td>'
        f"<td><code>{esc(inst.get('pod'))}</code></td>"
        f'<td><span class="phase {phase_class(phase)}" data-col="phase">{esc(phase)}</span></td>'
        "</tr>"
    )


def note_html(kind: str, note: KindNote) -> str:
    """A note as a paragraph; a held plan gets the button that confirms it (POST
    .../confirm with the token, like orchestrate)."""
    css = "alert" if note.alert else "note"
    if note.topic is Topic.ERROR:
        return f'<p class="{css}">{esc(note.text)}</p>'
    if note.topic is Topic.VALVE:
        return (
            f'<p class="{css}">safety valve: {esc(note.text)} '
            f'<button type="button" class="confirm" data-kind="{esc(kind)}"'
            f">Confirm {esc(kind)}</button> "
            f'<output class="result" id="{dom_id("confirm-result", kind)}" role="status">'
            "</output></p>"
        )
    if note.topic is Topic.PIN:
        return (
            f'<p class="{css}">{esc(note.text)}: '
            f"<code>{esc(note.command)}</code> returns it to the policy</p>"
        )
    label = {Topic.OVERRIDES: "overrides until policy.yaml changes"}.get(note.topic, note.topic)
    return f'<p class="{css}">{esc(label)}: {esc(note.text)}</p>'


def kind_section(kind: str, k: dict[str, Any]) -> str:
    facts = _facts(
        [
            ("rows", k.get("rows")),
            ("instances", k.get("instances")),
            ("capacity", k.get("capacity")),
            ("unassigned", k.get("unassigned")),
            ("maxInstances", k.get("maxInstances")),
            ("resourcePerInstance", k.get("resourcePerInstance")),
        ]
    )
    notes = [note_html(kind, note) for note in kind_notes(kind, k)]
    rows = "".join(instance_row(kind, inst) for inst in k.get("instanceList") or [])
    if not rows:
        rows = '<tr><td colspan="6" class="empty">no instances yet</td></tr>'
    return f"""
<section class="kind" id="{dom_id("kind", kind)}">
  <header>
    <h2>{esc(kind)}</h2>
    <div class="facts">{facts}</div>
    <button type="button" class="orchestrate" data-kind="{esc(kind)}"
      >Orchestrate {esc(kind)}</button>
    <output class="result" id="{dom_id("orchestrate-result", kind)}" role="status"></output>
  </header>
  {"".join(notes)}
  <p class="stale" hidden>instances changed since this page was rendered:
    <a href="/">refresh</a></p>
  <table>
    <thead><tr><th class="num">instance</th><th class="num">used / count</th>
      <th class="num">reload</th><th class="num">heartbeat</th><th>pod</th><th>phase</th></tr>
    </thead>
    <tbody>{rows}</tbody>
  </table>
</section>"""


def _head_lines(status: dict[str, Any]) -> str:
    policy = status.get("policy") or {}
    last = status.get("lastPass") or {}
    leadership = status.get("leadership") or {}
    sha = policy.get("sha256")
    lines = [
        _facts(
            [
                ("policy", policy.get("path")),
                ("sha256", sha[:12] if sha else "not loaded"),
                ("last pass", last.get("trigger") or "none yet"),
                ("ops", last.get("ops")),
                ("failed", len(last.get("failed") or [])),
                ("role", leadership.get("role") if leadership.get("election") else None),
                ("updated", time.strftime("%H:%M:%S UTC", time.gmtime())),
            ]
        )
    ]
    alerts = []
    if policy.get("error"):
        alerts.append(f"policy rejected: {policy['error']}")
    alerts += [f"{name}: {err}" for name, err in sorted((status.get("sources") or {}).items())]
    alerts += [f"failed: {err}" for err in last.get("failed") or []]
    lines += [f'<p class="alert">{esc(a)}</p>' for a in alerts]
    return "\n".join(lines)


def render(status: dict[str, Any]) -> str:
    kinds: dict[str, Any] = status.get("kinds") or {}
    options = "".join(f'<option value="{esc(k)}">{esc(k)}</option>' for k in sorted(kinds))
    sections = "".join(kind_section(kind, kinds[kind]) for kind in sorted(kinds))
    if not sections:
        sections = '<p class="alert">no kinds: the policy is not loaded</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reconciler: fleet</title>
<link rel="stylesheet" href="{STYLE_URL}">
<script src="{SCRIPT_URL}" defer></script>
</head>
<body data-api="{ORCHESTRATIONS}">
<header class="top">
  <h1>reconciler fleet</h1>
  <div class="facts">{_head_lines(status)}</div>
  <nav><a href="/">refresh</a> <a href="/v1/status">/v1/status</a> <a href="/metrics">/metrics</a>
    <a href="/docs">API</a></nav>
</header>
<section class="tools">
  <form id="lookup" autocomplete="off">
    <h2>Where does a resource run?</h2>
    <label>kind <select id="lookup-kind">{options}</select></label>
    <label>resource id <input id="lookup-id" required spellcheck="false" size="38"></label>
    <button type="submit" id="lookup-go">Find</button>
    <output class="result" id="lookup-result" role="status"></output>
  </form>
  <form id="auth" autocomplete="off">
    <h2>Operator token</h2>
    <label>bearer token <input id="token" type="password" spellcheck="false"></label>
    <button type="button" id="token-forget">Forget</button>
    <small>for Orchestrate (RECONCILER_API_TOKEN); kept in this tab's sessionStorage only</small>
  </form>
</section>
<main>{sections}
</main>
</body>
</html>
"""
