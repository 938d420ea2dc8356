"""CHANGELOG.md names the version that ships: the one `reconciler --version` prints (the
installed package's, from pyproject.toml) is its newest release heading, under an
`[Unreleased]` heading for what comes next; a chart's appVersion and the image the
StatefulSet runs are that version too."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHANGELOG = REPO / "CHANGELOG.md"
RECONCILER = Path(sys.executable).parent / "reconciler"
DEPLOYMENT = REPO / "deploy" / "kubernetes" / "statefulset.yaml"  # the workload

# Keep a Changelog: `## [1.2.3] - 2026-12-07`, and `## [Unreleased]` above them.
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)\] - (\d{4}-\d{2}-\d{2})\s*$")


def headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("## ")]


def releases(text: str) -> list[str]:
    """The versions of the release headings, newest (topmost) first."""
    return [m.group(1) for h in headings(text) if (m := RELEASE.match(h))]


def printed_version() -> str:
    res = subprocess.run(
        [str(RECONCILER), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    name, _, printed = res.stdout.strip().partition(" ")
    assert name == "reconciler", res.stdout
    return printed


def test_the_printed_version_is_the_package_version() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert printed_version() == version("reconciler") == declared, (
        "reinstall after a version bump: .venv/bin/pip install --no-deps -e ."
    )


def test_the_printed_version_is_the_newest_release_of_the_changelog() -> None:
    text = CHANGELOG.read_text()
    shipped = printed_version()
    assert f"## [{shipped}] - " in text, f"CHANGELOG.md has no heading for {shipped}"
    assert releases(text)[0] == shipped, (
        f"the newest release in CHANGELOG.md is {releases(text)[0]}, the package is {shipped}"
    )


def test_the_changelog_keeps_an_unreleased_heading_on_top() -> None:
    found = headings(CHANGELOG.read_text())
    assert found[0] == "## [Unreleased]", found[:2]
    assert found.count("## [Unreleased]") == 1


def test_every_heading_is_a_release_with_its_date_or_unreleased() -> None:
    text = CHANGELOG.read_text()
    for heading in headings(text):
        assert heading == "## [Unreleased]" or RELEASE.match(heading), heading
    dates = [m.group(2) for h in headings(text) if (m := RELEASE.match(h))]
    assert dates == sorted(dates, reverse=True), "newest first"
    versions = [tuple(int(x) for x in v.split("-")[0].split(".")) for v in releases(text)]
    assert versions == sorted(versions, reverse=True), "newest first"
    assert len(set(versions)) == len(versions), "a version twice"


def test_the_deployment_runs_the_image_of_this_version() -> None:
    docs = [d for d in yaml.safe_load_all(DEPLOYMENT.read_text()) if d]
    images = [c["image"] for d in docs for c in d["spec"]["template"]["spec"]["containers"]]
    assert images == [f"iota/reconciler:{version('reconciler')}"]


CHARTS = sorted(REPO.glob("charts/*/Chart.yaml")) + sorted(REPO.glob("deploy/**/Chart.yaml"))


@pytest.mark.skipif(not CHARTS, reason="no Helm chart in the repository")
@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_charts_app_version_is_this_version(chart: Path) -> None:
    app_version = str(yaml.safe_load(chart.read_text())["appVersion"])
    assert app_version == version("reconciler")
    assert f"## [{app_version}] - " in CHANGELOG.read_text()


# ------------------------------------------------------------------ the checks can fail


def test_the_release_headings_are_read_newest_first() -> None:
    text = "# Changelog\n\n## [Unreleased]\n\n## [0.3.0] - 2027-01-02\n\n## [0.2.0] - 2026-12-07\n"
    assert releases(text) == ["0.3.0", "0.2.0"]
    assert releases("## [Unreleased]\n## 0.3.0\n## [0.2.0]\n") == []
