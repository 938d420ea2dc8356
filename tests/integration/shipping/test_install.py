"""`make install` creates exactly the paths systemd/reconciler.service uses, and systemd accepts
the unit as installed. Installed into a temp dir (PREFIX, SYSCONFDIR, UNITDIR overridden), with
a real venv and a real pip install of the project."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.fleet import REPO

UNIT = REPO / "systemd" / "reconciler.service"
DEFAULTS = {
    "PREFIX": "/opt/reconciler",
    "SYSCONFDIR": "/etc/reconciler",
    "UNITDIR": "/etc/systemd/system",
}


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _make_install(paths: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_REQUIRE", "VIRTUAL_ENV"))}
    return subprocess.run(
        ["make", "-C", str(REPO), "install", *(f"{k}={v}" for k, v in paths.items())],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("install")
    paths = {
        "PREFIX": root / "opt" / "reconciler",
        "SYSCONFDIR": root / "etc" / "reconciler",
        "UNITDIR": root / "units",
    }
    res = _make_install(paths)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == "", res.stderr  # quiet pip: no banners
    return {**paths, "root": root}


def test_the_default_paths_are_the_units(installed: dict[str, Path]) -> None:
    """With no override, install writes where the repository's unit looks."""
    res = subprocess.run(
        ["make", "-n", "-C", str(REPO), "install"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert " ".join(f"{k}={v}" for k, v in DEFAULTS.items()) in res.stdout
    d = _directives(UNIT.read_text())
    assert d["ExecStart"] == [f"{DEFAULTS['PREFIX']}/.venv/bin/reconciler run"]
    assert d["EnvironmentFile"] == [f"-{DEFAULTS['SYSCONFDIR']}/env"]
    assert f"RECONCILER_POLICY_PATH={DEFAULTS['SYSCONFDIR']}/config/policy.yaml" in d["Environment"]
    assert d["Documentation"] == [f"file://{DEFAULTS['PREFIX']}/README.md"]


def test_install_creates_every_path_the_installed_unit_names(installed: dict[str, Path]) -> None:
    unit = installed["UNITDIR"] / "reconciler.service"
    text = unit.read_text()
    # the repository's unit, with the two roots moved and nothing else changed
    assert text == UNIT.read_text().replace(DEFAULTS["PREFIX"], str(installed["PREFIX"])).replace(
        DEFAULTS["SYSCONFDIR"], str(installed["SYSCONFDIR"])
    )
    d = _directives(text)
    exec_start = Path(d["ExecStart"][0].split()[0])
    assert exec_start == installed["PREFIX"] / ".venv" / "bin" / "reconciler"
    assert os.access(exec_start, os.X_OK)
    env_file = Path(d["EnvironmentFile"][0].lstrip("-"))
    assert env_file.is_file() and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    policy = Path(dict(e.split("=", 1) for e in d["Environment"])["RECONCILER_POLICY_PATH"])
    assert policy.read_bytes() == (REPO / "config" / "policy.yaml").read_bytes()
    assert (
        Path(d["Documentation"][0].removeprefix("file://")).read_bytes()
        == (REPO / "README.md").read_bytes()
    )
    # every path a directive names under the install roots exists
    root = str(installed["root"])
    directives = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    mentioned = set(re.findall(rf"{re.escape(root)}[^\s`'\")]*", directives))
    assert len(mentioned) >= 4, mentioned
    missing = [p for p in mentioned if not Path(p.rstrip("/.,:")).exists()]
    assert not missing, missing


def test_systemd_analyze_verifies_the_unit_as_installed(installed: dict[str, Path]) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = installed["UNITDIR"] / "reconciler.service"
    res = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr


def test_the_installed_daemon_runs_and_reads_the_installed_policy(
    installed: dict[str, Path],
) -> None:
    exe = installed["PREFIX"] / ".venv" / "bin" / "reconciler"
    version = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert version.stdout.strip() == f"reconciler {importlib.metadata.version('reconciler')}"
    policy = installed["SYSCONFDIR"] / "config" / "policy.yaml"
    res = subprocess.run(
        [str(exe), "validate", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=installed["root"],
    )
    assert res.returncode == 0 and ": OK (" in res.stdout, res.stdout + res.stderr


def test_reinstall_keeps_an_edited_policy_and_the_env_file(installed: dict[str, Path]) -> None:
    policy = installed["SYSCONFDIR"] / "config" / "policy.yaml"
    env = installed["SYSCONFDIR"] / "env"
    policy.write_text(policy.read_text().replace("tickSeconds: 30", "tickSeconds: 45"))
    env.write_text("RECONCILER_ZK_HOSTS=zk:2181\n")
    res = _make_install({k: installed[k] for k in DEFAULTS})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "tickSeconds: 45" in policy.read_text()
    assert f"kept your {policy}" in res.stdout
    dist = policy.with_name("policy.yaml.dist")
    assert dist.read_bytes() == (REPO / "config" / "policy.yaml").read_bytes()
    assert env.read_text() == "RECONCILER_ZK_HOSTS=zk:2181\n"
