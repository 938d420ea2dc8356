"""Provisioning that talks: a slow step keeps printing that it is still working, and says what
it costs before it starts (rig/progress.py, rig/heartbeat.sh, rig/provision.py)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig import progress, provision
from rig.errors import RigError

REPO = Path(__file__).resolve().parents[2]


def test_heartbeat_prints_while_a_slow_child_runs_and_stops_after(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    out = io.StringIO()
    child = [
        sys.executable,
        "-c",
        "import time\nfor i in range(12):\n print('compiling package', i, flush=True)\n"
        " time.sleep(0.1)",
    ]
    with open(log, "w") as fh, progress.heartbeat("building x", log, interval=0.25, out=out):
        subprocess.run(child, stdout=fh, check=True)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, lines  # ~1.2 s of work, a beat every 0.25 s
    for line in lines:
        assert re.fullmatch(
            rf"rig: still building x \(\d+s; log {re.escape(str(log))}: compiling package \d+\)",
            line,
        ), line
    time.sleep(0.6)  # under test: no beat in twice the interval after the step is over
    assert out.getvalue().splitlines() == lines  # silent once the step is over


def test_a_provisioning_command_beats_while_it_runs_and_fails_naming_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.2)
    log = tmp_path / "step.log"
    provision._run("demo", ["sh", "-c", "echo working; sleep 1"], log, what="sleeping on it")
    beats = [ln for ln in capsys.readouterr().out.splitlines() if "still" in ln]
    assert len(beats) >= 3, beats
    assert all(ln.startswith("rig: still demo: sleeping on it (") for ln in beats), beats
    assert beats[-1].endswith(": working)"), beats  # the log's last line: what it does now

    with pytest.raises(RigError) as err:
        provision._run("demo", ["sh", "-c", "echo broken >&2; exit 3"], log)
    assert "exit 3" in str(err.value) and str(log) in str(err.value)
    assert "broken" in str(err.value)


def test_elapsed_reads_like_a_person_would_say_it() -> None:
    assert progress.elapsed(6.7) == "6s"
    assert progress.elapsed(75) == "1m 15s"
    assert progress.elapsed(3725) == "1h 2m 5s"


def test_a_step_names_its_cost_before_it_starts(capsys: pytest.CaptureFixture[str]) -> None:
    progress.step("kube", "building kube-apiserver from Go modules", cost="~20 min, cached")
    assert capsys.readouterr().out == (
        "rig: kube: building kube-apiserver from Go modules (~20 min, cached)\n"
    )


def test_every_go_binary_has_a_stated_build_cost() -> None:
    built = {"etcd", "kwok", "kube-apiserver", "kube-scheduler", "kustomize", "helm"}
    assert set(provision.GO_BUILD_COST) == built
    assert all(re.search(r"\d+ (s|min)", cost) for cost in provision.GO_BUILD_COST.values())


def test_setup_sh_heartbeat_prints_while_the_command_runs_and_keeps_its_exit_status() -> None:
    script = f". {REPO}/rig/heartbeat.sh; with_heartbeat 'installing things' sleep 1.3; echo rc=$?"
    res = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "SETUP_HEARTBEAT_SECONDS": "0.4"},
    )
    lines = res.stdout.splitlines()
    assert lines[-1] == "rc=0"
    beats = lines[:-1]
    assert 2 <= len(beats) <= 4, lines
    assert all(re.fullmatch(r"setup: still installing things \(\d+s so far\)", b) for b in beats)

    failing = f". {REPO}/rig/heartbeat.sh; with_heartbeat 'x' sh -c 'exit 7'; echo rc=$?"
    res = subprocess.run(["bash", "-c", failing], capture_output=True, text=True, timeout=30)
    assert res.stdout.splitlines() == ["rc=7"]
