"""`make demo`, non-interactively: start it, see the fleet run, Ctrl-C, nothing left behind.

The demo starts its own servers (not the session's), the daemon and the fleet simulator; this
test drives it as a user would: wait for its "ready" banner, ask `reconciler status`, watch a
failed pod come back, send SIGINT, and check that every process it started is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rig.process import free_port, port_open
from tests.integration.fleet import REPO
from tests.polling import wait_for_line

RECONCILER = Path(sys.executable).parent / "reconciler"


def _descendants(root: int) -> set[int]:
    """Every live process under `root` (by parent pid), whatever its process group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def _wait_for(out: Path, pattern: str, timeout: float, proc: subprocess.Popen[bytes]) -> str:
    """The first match of `pattern` in the demo's output; fails at once if the demo exits."""
    return wait_for_line(out, pattern, timeout, proc=proc).group(0)


def test_demo_runs_the_fleet_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "demo.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "IOTA_"))}
    t0 = time.monotonic()
    with open(out, "wb") as fh:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "demo.run",
                "--things",
                "2500",
                "--rules",
                "800",
                "--api-port",
                str(port),
                "--fail-every",
                "8",
                "--summary-every",
                "5",
            ],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        ready = _wait_for(out, r"demo ready in [\d.]+s", 300, demo)
        ready_s = time.monotonic() - t0
        workdir = Path(_wait_for(out, r"working dir (\S+)", 5, demo).split()[-1])
        assert workdir.is_dir()

        res = subprocess.run(
            [str(RECONCILER), "status", "--url", url],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        status = res.stdout
        # Thing: 2500 rows -> initInstances 10; Rule: 800 rows -> initInstances 10 too (the
        # shipped policy runs both kinds at the old orchestrator's seed defaults).
        assert re.search(r"^Thing: rows=\d+ instances=10 ", status, re.M), status
        assert re.search(r"^Rule: rows=\d+ instances=10 ", status, re.M), status
        assert len(re.findall(r"iota-dac-\d+ Running", status)) == 10, status
        assert len(re.findall(r"iota-rules-engine-\d+ Running", status)) == 10, status
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'reconciler_instances{resource="Thing"} 10.0' in metrics

        # The simulator fails a pod every 8 s; the daemon recreates it.
        failed = _wait_for(out, r"pod (\S+) \(\w+ instance \d+\) set to Failed", 60, demo)
        pod = failed.split()[1]
        _wait_for(out, rf'RecreatePod.*"pod": "{re.escape(pod)}"', 60, demo)
        # ... and row inserts with their MQTT events reach the assignment
        _wait_for(out, r"published \d+ 'c' events", 60, demo)

        procs = _descendants(demo.pid)
        assert len(procs) >= 7, procs  # 5 servers (kube = 4 processes), daemon, simulator
        t_int = time.monotonic()
        os.kill(demo.pid, signal.SIGINT)
        assert demo.wait(90) == 0, out.read_text()[-4000:]
        stop_s = time.monotonic() - t_int
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
    text = out.read_text()
    assert "SIGINT: stopping everything" in text
    assert re.search(r"stopped everything in [\d.]+s", text)
    leftovers = [p for p in procs if _alive(p)]
    assert not leftovers, [Path(f"/proc/{p}/cmdline").read_bytes() for p in leftovers]
    assert not port_open(port), "the daemon's REST port is still open"
    assert not workdir.exists(), "the demo's temp dir was not removed"
    print(
        f"{ready}; test saw it ready after {ready_s:.1f}s; "
        f"SIGINT -> all {len(procs)} processes gone in {stop_s:.1f}s"
    )
