"""docs/runbook.md and dashboards/alerts.yaml agree, both ways: every alert's `runbook_url`
points at a section of the runbook (its anchor is the one GitHub and MkDocs give the
heading), and every alert section of the runbook names an alert that exists. The
PrometheusRule carries the same annotations (tests/dashboards/test_alerts.py checks that it
is generated from alerts.yaml)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "dashboards" / "alerts.yaml"
RUNBOOK = REPO / "docs" / "runbook.md"
MKDOCS = REPO / "mkdocs.yml"
BASE = "https://github.com/iota-platform/reconciler/blob/main/docs/runbook.md"

# An alert's section: a second-level heading that is one CamelCase word (the alert's name).
# Other sections ("Where to look") have words with spaces.
ALERT_HEADING = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _outside_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def headings(text: str, level: int = 2) -> list[str]:
    marks = "#" * level
    return re.findall(rf"^{marks} (.+?)\s*#*\s*$", _outside_code_blocks(text), flags=re.M)


def anchor(heading: str) -> str:
    """The id GitHub and MkDocs (Python-Markdown's toc slugify) give a heading: lower case,
    punctuation dropped, spaces to hyphens (they differ only on runs of spaces and hyphens,
    which no heading here has)."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower())


def sections(text: str) -> dict[str, str]:
    """Each second-level section's heading -> its text, up to the next one."""
    parts = re.split(r"^## (.+?)\s*$", _outside_code_blocks(text), flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def broken_runbook_links(rules: list[dict[str, Any]], runbook: str) -> list[str]:
    anchors = {anchor(h) for h in headings(runbook, 2)}
    problems = []
    for rule in rules:
        url = (rule.get("annotations") or {}).get("runbook_url")
        name = rule["alert"]
        if not url:
            problems.append(f"{name}: no runbook_url annotation")
            continue
        parts = urlsplit(url)
        page = url.split("#", 1)[0]
        if page != BASE:
            problems.append(f"{name}: runbook_url {url} is not {BASE}#<anchor>")
        if parts.fragment not in anchors:
            problems.append(f"{name}: docs/runbook.md has no section #{parts.fragment}")
        elif parts.fragment != anchor(name):
            problems.append(f"{name}: runbook_url points at #{parts.fragment}, not its own section")
    return problems


def sections_without_alert(rules: list[dict[str, Any]], runbook: str) -> list[str]:
    names = {rule["alert"] for rule in rules}
    return [h for h in headings(runbook, 2) if ALERT_HEADING.match(h) and h not in names]


def test_every_alert_links_to_its_own_section_of_the_runbook() -> None:
    assert broken_runbook_links(alerts(), RUNBOOK.read_text()) == []


def test_every_alert_section_of_the_runbook_names_an_alert() -> None:
    assert sections_without_alert(alerts(), RUNBOOK.read_text()) == []


def test_each_alert_has_exactly_one_section() -> None:
    found = headings(RUNBOOK.read_text(), 2)
    for rule in alerts():
        assert found.count(rule["alert"]) == 1, rule["alert"]


def test_each_section_says_what_it_means_where_to_look_and_what_to_do() -> None:
    text = sections(RUNBOOK.read_text())
    for rule in alerts():
        body = text[rule["alert"]]
        for part in ("**Means.**", "**Look at.**", "**Do.**"):
            assert part in body, f"{rule['alert']}: no {part}"
        # What to look at starts with what the alert itself reads.
        for metric in set(re.findall(r"\breconciler_[a-z_]+", str(rule["expr"]))):
            assert metric in body, f"{rule['alert']}: its section never names {metric}"


def test_the_runbook_links_only_to_its_own_sections() -> None:
    text = RUNBOOK.read_text()
    anchors = {anchor(h) for level in range(1, 7) for h in headings(text, level)}
    for target in re.findall(r"\]\(#([^)]+)\)", _outside_code_blocks(text)):
        assert target in anchors, target


def test_the_runbook_base_is_the_sites_repository() -> None:
    """When the MkDocs site names its repository, the runbook links point into it."""
    if not MKDOCS.exists():
        pytest.skip("no mkdocs.yml yet")
    # mkdocs.yml may hold python tags (!!python/name:...) that safe_load refuses.
    match = re.search(r"^repo_url:\s*['\"]?(\S+?)['\"]?\s*$", MKDOCS.read_text(), flags=re.M)
    if match is None:
        pytest.skip("mkdocs.yml names no repo_url")
    assert BASE.startswith(match.group(1).rstrip("/") + "/"), match.group(1)


# ------------------------------------------------------------------ the checks can fail

RUNBOOK_SAMPLE = """\
# Runbook

## Where to look

Status and logs.

## ReconcilerNoLeader

**Means.** ...

## ReconcilerRetired

**Means.** An alert that was removed.

```
## NotAHeading
```
"""


def _rule(name: str, url: str | None) -> dict[str, Any]:
    annotations = {"summary": "s"} | ({"runbook_url": url} if url else {})
    return {"alert": name, "expr": "up == 0", "annotations": annotations}


def test_the_checks_find_a_missing_link_a_missing_section_and_a_stale_section() -> None:
    rules = [
        _rule("ReconcilerNoLeader", f"{BASE}#reconcilernoleader"),
        _rule("ReconcilerAbsent", f"{BASE}#reconcilerabsent"),
        _rule("ReconcilerSourceDown", None),
        _rule("ReconcilerKindDegraded", f"{BASE}#reconcilernoleader"),
        _rule("ReconcilerPaged", "https://example.com/runbook#reconcilerpaged"),
    ]
    assert broken_runbook_links(rules, RUNBOOK_SAMPLE) == [
        "ReconcilerAbsent: docs/runbook.md has no section #reconcilerabsent",
        "ReconcilerSourceDown: no runbook_url annotation",
        "ReconcilerKindDegraded: runbook_url points at #reconcilernoleader, not its own section",
        f"ReconcilerPaged: runbook_url https://example.com/runbook#reconcilerpaged is not "
        f"{BASE}#<anchor>",
        "ReconcilerPaged: docs/runbook.md has no section #reconcilerpaged",
    ]
    assert sections_without_alert(rules, RUNBOOK_SAMPLE) == ["ReconcilerRetired"]


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("ReconcilerNoLeader", "reconcilernoleader"),
        ("Where to look", "where-to-look"),
        ("Rolling back: 0.2.0 to 0.1.0", "rolling-back-020-to-010"),
    ],
)
def test_anchors_are_githubs_and_mkdocs(heading: str, expected: str) -> None:
    assert anchor(heading) == expected
