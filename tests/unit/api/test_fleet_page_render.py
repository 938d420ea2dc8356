"""reconciler/api/web/page.py: whatever the world puts in a status, the page shows it as text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from reconciler.api.web.page import heartbeat_text, phase_class, render

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def status(kind: str = "Thing", text: str = "ok") -> dict[str, Any]:
    return {
        "leadership": {"role": "leader", "election": False},
        "policy": {"path": text, "sha256": "61693884a864aa", "error": text},
        "lastPass": {"at": 1.0, "trigger": "tick", "ops": 2, "failed": [text]},
        "sources": {"database": text},
        "kinds": {
            kind: {
                "rows": 3,
                "instances": 1,
                "capacity": 4,
                "unassigned": 0,
                "error": text,
                "blind": [text],
                "heartbeat": text,
                "autoscale": {"text": text},
                "maxInstances": 10,
                "resourcePerInstance": 5000,
                "overrides": {"maxInstances": 4},
                "instanceList": [
                    {
                        "instanceId": "0",
                        "used": 3,
                        "count": 4,
                        "reloadTimes": 2,
                        "pod": text,
                        "phase": text,
                        "heartbeatAge": 12.34,
                    }
                ],
            }
        },
    }


def test_values_from_the_world_never_become_markup() -> None:
    html = render(status(kind=EVIL, text=EVIL))
    parser = Tags()
    parser.feed(html)
    names = [t for t, _ in parser.tags]
    assert names.count("script") == 1  # ours, with src
    assert ("script", {"src": "/ui/fleet.js", "defer": None}) in parser.tags
    assert "img" not in names
    assert not any(k.startswith("on") for _, attrs in parser.tags for k in attrs)
    assert html.count("&lt;script&gt;") >= 10  # every place the text appears, escaped
    # The kind name reaches ids and data attributes escaped, and intact once parsed.
    buttons = [a for t, a in parser.tags if t == "button" and a.get("class") == "orchestrate"]
    assert [b["data-kind"] for b in buttons] == [EVIL]
    assert ("section", {"class": "kind", "id": f"kind-{EVIL}"}) in parser.tags


def test_each_instance_row_shows_used_count_reload_heartbeat_pod_and_phase() -> None:
    html = render(status(text="Running"))
    row = re.search(r'<tr id="inst-Thing-0".*?</tr>', html, re.S)
    assert row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    assert cells == [
        "0",
        "3 / 4",
        "2",
        "12 s",
        "<code>Running</code>",
        '<span class="phase ok" data-col="phase">Running</span>',
    ]
    assert 'data-pod="Running"' in row.group(0)


def test_phases_get_a_class_from_a_fixed_table() -> None:
    assert phase_class("Running") == "ok"
    assert phase_class("Pending") == "warn"
    assert phase_class("Running (terminating)") == "warn"
    assert {phase_class(p) for p in ("Failed", "Unknown", "Missing", EVIL)} == {"bad"}
    assert (heartbeat_text(None), heartbeat_text(3.21), heartbeat_text(95.4)) == (
        "-",
        "3.2 s",
        "95 s",
    )


def test_a_daemon_without_a_policy_says_so() -> None:
    html = render({"policy": {"error": "kinds: required"}, "kinds": {}})
    assert "no kinds: the policy is not loaded" in html
    assert "policy rejected: kinds: required" in html


def test_a_plan_held_by_the_safety_valve_shows_why_and_a_confirm_button() -> None:
    s = status(text="ok")
    s["kinds"]["Thing"]["valve"] = {"engaged": True, "reason": EVIL, "passes": 2}
    s["kinds"]["Thing"]["degraded"] = {"database": EVIL}
    html = render(s)
    parser = Tags()
    parser.feed(html)
    buttons = [a for tag, a in parser.tags if tag == "button" and a.get("class") == "confirm"]
    assert buttons == [{"type": "button", "class": "confirm", "data-kind": "Thing"}]
    assert not [tag for tag, _ in parser.tags if tag == "img"]  # the reason did not become markup
    assert "held for 2 pass(es)" in html and "degraded: cannot read database" in html
    assert "<script>alert" not in html  # the reason is text, not markup

    s["kinds"]["Thing"]["valve"] = {"engaged": False, "reason": None, "passes": 0}
    assert 'class="confirm"' not in render(s)


def test_a_pinned_or_stopped_kind_says_so_and_how_to_undo_it() -> None:
    s = status(text="ok")
    assert "pinned to" not in render(s) and "stopped by" not in render(s)
    s["kinds"]["Thing"]["pin"] = {"instances": 5, "by": EVIL, "at": 1.0}
    html = render(s)
    assert "pinned to 5 instances by" in html and "reconciler start Thing" in html
    assert "<script>alert" not in html  # who asked is text, not markup
    s["kinds"]["Thing"]["pin"] = {"instances": 0, "by": "token", "at": 1.0}
    assert "stopped by token" in render(s)
