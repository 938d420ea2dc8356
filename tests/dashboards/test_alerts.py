"""dashboards/alerts.yaml: Prometheus accepts the rules, each alert fires on the series that
should fire it and not before (promtool's rule unit tests), every metric they read is one the
daemon exports, and the PrometheusRule manifest carries the same rules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from reconciler.telemetry import metrics
from tests.support.fleet import REPO

RULES = REPO / "dashboards" / "alerts.yaml"
RULE_TESTS = REPO / "dashboards" / "alerts.test.yaml"
PROMETHEUS_RULE = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"
GENERATOR = REPO / "deploy" / "prometheusrule.py"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def _alerts(groups: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in groups["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_accepts_the_rules() -> None:
    res = _promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(_alerts(yaml.safe_load(RULES.read_text())))} rules found" in res.stdout


def test_each_alert_fires_on_its_series_and_not_before() -> None:
    res = _promtool("test", "rules", str(RULE_TESTS))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    names = {a["alert"] for a in _alerts(yaml.safe_load(RULES.read_text()))}
    assert names >= {
        "ReconcilerNoSuccessfulPass",
        "ReconcilerSourceDown",
        "ReconcilerIdsUnassigned",
        "ReconcilerKindOverCapacity",
        "ReconcilerNoLeader",
        "ReconcilerPolicyRejected",
        "ReconcilerPassesCrashing",
        "ReconcilerPassOverruns",
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == names, names - firing
    assert quiet == names, names - quiet


def test_every_alert_says_how_bad_how_long_what_and_where_to_read_more() -> None:
    for alert in _alerts(yaml.safe_load(RULES.read_text())):
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in ("critical", "warning"), name
        assert re.fullmatch(r"\d+[smh]", str(alert.get("for", ""))), name
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key), f"{name}: no {key}"


def _daemons(case: dict[str, Any]) -> set[str]:
    return {
        m.group(1)
        for s in case.get("input_series", [])
        if (m := re.search(r'\binstance="([^"]+)"', s["series"]))
    }


def test_every_alert_is_tested_with_a_leader_and_a_standby_scraped() -> None:
    """Two replicas export the same series in production: each alert has a case with two
    daemons' series (one alert, not two; a standby alone fires no fleet alert)."""
    names = {a["alert"] for a in _alerts(yaml.safe_load(RULES.read_text()))}
    with_two: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        if len(_daemons(case)) >= 2:
            with_two |= {check["alertname"] for check in case.get("alert_rule_test", [])}
    assert names - with_two == set()


def _exported() -> set[str]:
    names: set[str] = set()
    for collector in metrics.REGISTRY._collector_to_names:
        names.update(metrics.REGISTRY._collector_to_names[collector])
    return names


def test_the_rules_and_their_tests_read_only_metrics_the_daemon_exports() -> None:
    exported = _exported()
    used = set(re.findall(r"\breconciler_[a-z_]+", RULES.read_text()))
    used |= set(re.findall(r"\breconciler_[a-z_]+", RULE_TESTS.read_text()))
    assert used, "no reconciler_* metric in the rules"
    assert used <= exported, sorted(used - exported)


def test_the_prometheusrule_is_generated_from_the_rule_file() -> None:
    res = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    manifest = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["namespace"] == "iota"
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())


def test_a_hand_edit_of_the_prometheusrule_is_caught(tmp_path: Path) -> None:
    """The check above can fail: the generator's --check compares bytes."""
    sys.path.insert(0, str(GENERATOR.parent))
    try:
        import prometheusrule  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(GENERATOR.parent))
    edited = tmp_path / "prometheusrule.yaml"
    edited.write_text(PROMETHEUS_RULE.read_text().replace("for: 5m", "for: 50m", 1))
    assert prometheusrule.main(["--check"], target=edited) == 1
    assert prometheusrule.main(["--check"]) == 0
