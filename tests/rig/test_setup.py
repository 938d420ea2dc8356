"""rig/setup.sh on a fresh machine: pip stays quiet (no warning banners) and the steps say what
they do. A fresh venv is made here and the project installed into it as setup.sh does."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from rig import provision
from tests.support.fleet import REPO

SETUP = REPO / "rig" / "setup.sh"


def _setup_pip_env() -> dict[str, str]:
    """The environment setup.sh gives pip (its `export PIP_...` line), on a clean base."""
    exported = re.search(r"^export (PIP_.+)$", SETUP.read_text(), re.M)
    assert exported, "setup.sh exports no PIP_ settings"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(kv.split("=", 1) for kv in exported.group(1).split())
    return env


def test_a_fresh_venv_installs_the_project_without_any_banner(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**_setup_pip_env(), "PIP_FIND_LINKS": os.environ.get("PIP_FIND_LINKS", "")}
    # Editable, with build isolation (setuptools from the index), as setup.sh installs it;
    # --no-deps: the dependencies' wheels are not what this checks.
    res = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-e", str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "" and res.stderr == "", res.stdout + res.stderr
    # and it works: the package imports from the work tree
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import reconciler; print(reconciler.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    assert out.stdout.strip() == str(REPO / "reconciler" / "__init__.py")


def test_setup_announces_each_step_with_its_cost() -> None:
    """A second run (everything cached) still tells what it checked, in a few lines."""
    res = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == "", res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] in ("setup: .venv is up to date with pyproject.toml",) or lines[0].startswith(
        "setup: installing reconciler"
    ), lines
    ready = [ln for ln in lines if re.fullmatch(r"rig: \S+ ready \(.+\)", ln)]
    assert len(ready) == len(provision.SERVERS), lines
    assert re.fullmatch(r"rig: provisioned in [\d.]+s; cache .+", lines[-1]), lines
