"""The documentation site builds, strictly, and says what the code does.

- `mkdocs build --strict` (mkdocs.yml) succeeds: every page is in the nav, every link between
  pages and every #anchor resolves, the pages included from the repository's root exist, and
  links to the repository's files outside docs/ name files that exist (mkdocs_hooks.py). A
  copy of the site with one breakage of each kind must fail to build.
- The README stays a front page: at most 300 lines, the details in docs/.
- The metrics and alerts tables of docs/monitoring.md name every metric the daemon exports
  and every alert of dashboards/alerts.yaml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "docs" / "monitoring.md"
README_MAX_LINES = 300


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the site whose mkdocs.yml is in `root`."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError as e:
        pytest.fail(f"{e.name} is missing: pip install -e '.[dev]' (mkdocs, mkdocs-material)")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_site_builds_strict(tmp_path: Path) -> None:
    res = build(REPO, tmp_path / "site")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "WARNING" not in res.stderr, res.stderr
    site = tmp_path / "site"
    for page in ("install", "configuration", "operations", "runbook", "upgrades", "security"):
        assert (site / page / "index.html").is_file(), page
    # the included pages are there, not their include line
    security = (site / "security" / "index.html").read_text()
    assert "--8&lt;--" not in security and 'id="zookeeper' in security


def _copy_of_the_site(root: Path) -> Path:
    """A copy of the site's sources in `root` to break: mkdocs.yml and docs/ copied, the rest of
    the repository linked."""
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(REPO / "docs", root / "docs")
    for entry in REPO.iterdir():  # the rest as it is: the files pages link to or include
        if entry.name not in ("mkdocs.yml", "docs", ".git", ".venv", "site"):
            (root / entry.name).symlink_to(entry)
    return root


@pytest.mark.parametrize(
    ("breakage", "reported"),
    [
        ("[a page](no-such-page.md)", "no-such-page.md"),
        ("[a heading](install.md#no-such-heading)", "no-such-heading"),
        ("[a file of the repository](../no/such/file.py)", "no such file in the repository"),
        (None, "orphan.md"),  # a page left out of the nav
    ],
)
def test_a_broken_site_fails_to_build(tmp_path: Path, breakage: str | None, reported: str) -> None:
    root = _copy_of_the_site(tmp_path / "src")
    if breakage is None:
        (root / "docs" / "orphan.md").write_text("# Orphan\n\nIn no nav.\n")
    else:
        index = root / "docs" / "index.md"
        index.write_text(index.read_text() + f"\nSee {breakage}.\n")
    res = build(root, tmp_path / "site")
    assert res.returncode != 0, res.stdout + res.stderr
    assert reported in res.stdout + res.stderr


def test_the_readme_is_a_front_page() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the details to "
        "a page of docs/ and link it"
    )


# ------------------------------------------------------------------ tables that follow the code


def exported_metrics() -> set[str]:
    """The daemon's own metrics, as Prometheus sees them (counters with `_total`)."""
    import reconciler.adapters.kube.events  # noqa: F401  (registers reconciler_kube_events_total)
    from reconciler.telemetry.metrics import REGISTRY

    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("reconciler_"):
            suffix = "_total" if family.type == "counter" else ""
            names.add(family.name + suffix)
    return names


def documented_metrics() -> set[str]:
    text = MONITORING.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(reconciler_\w+)`", row.split("|")[1])}


def test_every_metric_is_in_the_monitoring_page() -> None:
    exported = exported_metrics()
    assert len(exported) > 25 and "reconciler_events_rejected_total" in exported
    assert exported - documented_metrics() == set(), "add these to docs/monitoring.md, Metrics"
    assert documented_metrics() - exported == set(), "docs/monitoring.md names metrics gone"


def test_every_alert_is_in_the_monitoring_page() -> None:
    rules = yaml.safe_load((REPO / "dashboards" / "alerts.yaml").read_text())
    alerts = [r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r]
    text = MONITORING.read_text().split("## Alerts", 1)[1]
    documented = re.findall(r"^\| `(\w+)` \|", text, flags=re.M)
    assert len(alerts) >= 9
    assert sorted(documented) == sorted(alerts), "docs/monitoring.md's alert table"
