"""systemd/reconciler.service: systemd accepts it, and outside systemd the daemon notifies nobody.

The unit is checked by Debian's systemd (`systemd-analyze verify` and the offline security
rating); no server runs. The protocol itself, with `reconciler run` against the rig's servers
and a NOTIFY_SOCKET this test binds, is tests/integration/daemon/test_systemd.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNIT = REPO / "systemd" / "reconciler.service"
INSTALLED_BIN = "/opt/reconciler/.venv/bin/reconciler"
VENV_BIN = Path(sys.executable).parent / "reconciler"


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's `reconciler` (verify wants it to exist)."""
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_BIN} run" in text
    copy = tmp_path / "reconciler.service"
    copy.write_text(text.replace(INSTALLED_BIN, str(VENV_BIN)))
    return copy


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: apt-get install systemd (rig provisioning)"
    unit = _unit_copy(tmp_path)
    res = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on unknown or misspelt directives (it only warns): no output at all is
    # the real "accepted".
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr

    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    assert d["WatchdogSec"] == ["60s"]
    assert d["EnvironmentFile"] == ["-/etc/reconciler/env"]
    assert d["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert d["CapabilityBoundingSet"] == [""]


def test_unit_verify_catches_a_broken_copy(tmp_path: Path) -> None:
    """The check above can fail: a missing binary and a misspelt value are reported."""
    unit = _unit_copy(tmp_path)
    unit.write_text(
        unit.read_text()
        .replace(str(VENV_BIN), "/nonexistent/reconciler")
        .replace("Type=notify", "Type=notifyy")
    )
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "not executable" in res.stderr
    assert "Failed to parse service type" in res.stderr


def test_unit_security_exposure_is_ok(tmp_path: Path) -> None:
    unit = _unit_copy(tmp_path)
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", res.stdout)
    assert m, res.stdout[-2000:] + res.stderr
    # systemd's scale: 0 = locked down .. 10 = unprotected; below 2 it says "OK".
    assert float(m.group(1)) < 2.0 and m.group(2) == "OK", m.group(0)


def test_no_notify_socket_means_no_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd every notify is a no-op and no watchdog is armed."""
    from reconciler.runtime import systemd

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # armed for another process: not us
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0
