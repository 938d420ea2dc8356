"""`make demo`, non-interactively: start it, see the fleet run, Ctrl-C, nothing left behind.

The demo starts its own servers (not the session's), the daemon and the fleet simulator; this
test drives it as a user would: wait for its "ready" banner, ask `reconciler status` with the
environment the banner says to export, edit the demo's copy of the policy (a good edit, a
broken one that is rejected while the last good policy stays, the fix) and send SIGHUP, watch
a failed pod come back, send SIGINT, and check that every process it started is gone. On the
way: the daemon runs on the copy, not on the checkout's config/policy.yaml, and no process
has a secret on its command line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from demo.run import POLICY, POLICY_DIR, PolicyStory, copy_policy, summary
from reconciler.policy.loader import load_policy_and_templates
from rig.process import free_port, port_open
from tests.support.fleet import REPO
from tests.support.polling import wait_for_line

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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _save(path: Path, text: str) -> None:
    """As an editor saves: a new file renamed over the old one (no half-written file seen)."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_the_policy_copy_is_git_ignored_and_works_where_it_is(tmp_path: Path) -> None:
    """The default copy (.demo/) leaves `git status` clean; a copy anywhere keeps the
    repository's layout, so its template paths resolve inside the copy."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(POLICY_DIR / "config" / "policy.yaml")],
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert ignored.returncode == 0, ".demo/ is not in .gitignore"
    copy = copy_policy(tmp_path / "copy")
    assert copy == tmp_path / "copy" / "config" / "policy.yaml"
    assert copy.read_bytes() == POLICY.read_bytes()
    loaded, templates = load_policy_and_templates(copy)
    for kind in loaded.policy.kinds:
        assert tmp_path in loaded.template_path(kind).parents, loaded.template_path(kind)
    assert set(templates) == set(loaded.policy.kinds)
    # A fresh copy: an edit of an earlier one is replaced.
    copy.write_text("tickSeconds: nonsense\n")
    assert copy_policy(tmp_path / "copy").read_bytes() == POLICY.read_bytes()


def test_the_console_tells_reloads_rejections_and_recoveries() -> None:
    story = PolicyStory()
    told = [
        story.tell(ev)
        for ev in (
            {"event": "policy loaded", "why": "start", "sha256": "aaa", "kinds": ["Thing"]},
            {"event": "reconciled", "trigger": "tick"},
            {
                "event": "policy rejected",
                "why": "file changed",
                "error": "line 7: bad",
                "keeping": "aaa",
            },
            {"event": "policy loaded", "why": "file changed", "sha256": "bbb", "kinds": ["Thing"]},
            {"event": "policy unchanged", "why": "SIGHUP", "sha256": "bbb"},
            {"event": "policy loaded", "why": "SIGHUP", "sha256": "ccc", "kinds": ["Thing"]},
        )
    ]
    assert told[0] is not None and told[0].startswith("policy loaded (start): sha256 aaa")
    assert told[1] is None  # not a policy event: shown as it is
    assert told[2] == (
        "policy REJECTED (file changed): the last good policy (sha256 aaa) stays in force. "
        "Why: line 7: bad"
    )
    assert told[3] is not None and told[3].startswith(
        "policy RECOVERED, the fixed edit is in force (file changed): sha256 bbb"
    )
    assert told[4] == "policy unchanged (SIGHUP): sha256 bbb is already in force"
    assert told[5] is not None and told[5].startswith("policy loaded (SIGHUP): sha256 ccc")
    status = {
        "kinds": {},
        "lastPass": {"trigger": "tick", "ops": 0},
        "policy": {"sha256": "aaaaaaaaaaaaaaaa", "error": "line 7: bad"},
    }
    assert summary(status).endswith("| policy edit REJECTED, aaaaaaaaaaaa still in force")


def test_demo_runs_the_fleet_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "demo.out"
    policy_dir = tmp_path / "policy"  # not .demo/: a demo someone runs by hand keeps its copy
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
                "--policy-dir",
                str(policy_dir),
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
        banner = out.read_text()
        for place in (f"{url}/\n", f"{url}/metrics", f"{url}/v1/api/orchestrations/Thing"):
            assert place in banner, place

        # The daemon runs on the copy; `reconciler status` finds it with what the banner says
        # to export, no --url.
        policy = policy_dir / "config" / "policy.yaml"
        assert f"{policy}\n" in banner
        exports = re.search(r"^\s*export (RECONCILER_API_HOST=.*)$", banner, re.M)
        assert exports, banner
        cli_env = dict(env, **dict(kv.split("=", 1) for kv in exports.group(1).split()))
        assert cli_env["RECONCILER_API_PORT"] == str(port)
        assert cli_env["RECONCILER_POLICY_PATH"] == str(policy)
        res = subprocess.run(
            [str(RECONCILER), "status"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=cli_env,
        )
        assert res.returncode == 0, res.stderr
        status = res.stdout
        assert status.startswith(f"policy {policy} sha256 "), status

        # No secret on any command line: the simulator's token is in a 0600 file.
        token_file = workdir / "fleet-simulator.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((workdir / "env").stat().st_mode) == 0o600
        secrets = {token_file.read_text().strip()}
        secrets |= set(
            re.findall(r"^export IOTA_AUTH_TOKEN='(.+)'$", (workdir / "env").read_text(), re.M)
        )
        assert len(secrets) == 2 and all(len(s) >= 16 for s in secrets), secrets
        cmdlines = {pid: _cmdline(pid) for pid in _descendants(demo.pid)}
        simulator = [c for c in cmdlines.values() if "demo.fleet_simulator" in c]
        assert len(simulator) == 1, cmdlines
        assert f"--kube-token-file {token_file}" in simulator[0]
        assert "postgresql" not in simulator[0]  # the database URL came by the environment
        leaks = {pid: c for pid, c in cmdlines.items() if any(s in c for s in secrets)}
        assert not leaks, leaks
        # Thing: 2500 rows -> initInstances 10; Rule: 800 rows -> initInstances 10 too (the
        # shipped policy runs both kinds at the old orchestrator's seed defaults).
        assert re.search(r"^Thing: rows=\d+ instances=10 ", status, re.M), status
        assert re.search(r"^Rule: rows=\d+ instances=10 ", status, re.M), status
        assert len(re.findall(r"iota-dac-\d+ Running", status)) == 10, status
        assert len(re.findall(r"iota-rules-engine-\d+ Running", status)) == 10, status
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'reconciler_instances{resource="Thing"} 10.0' in metrics

        # The lesson: a good edit of the copy is loaded, a broken one rejected while the last
        # good policy stays (and the console says why), the fix is a recovery; SIGHUP reloads.
        good = policy.read_text()
        assert good.count("tickSeconds: 30\n") == 1
        assert good.count("initInstances: 10                 # 1..maxInstances") == 1
        _save(policy, good.replace("tickSeconds: 30\n", "tickSeconds: 20\n"))
        loaded = _wait_for(out, r"policy loaded \(file changed\): sha256 (\w+)", 30, demo)
        sha = loaded.split()[-1]
        assert "tickSeconds 20" in out.read_text().split(loaded, 1)[1].splitlines()[0]
        _save(
            policy,
            good.replace("tickSeconds: 30\n", "tickSeconds: 20\n").replace(
                "initInstances: 10                 # 1..maxInstances",
                "initInstances: 0                  # 1..maxInstances",
            ),
        )
        rejected = _wait_for(out, r"policy REJECTED \(file changed\): .*", 30, demo)
        assert f"the last good policy (sha256 {sha}) stays in force" in rejected, rejected
        assert re.search(r"Why: .*initInstances.*out of range", rejected), rejected
        with urllib.request.urlopen(f"{url}/v1/status", timeout=5) as r:
            in_force = json.load(r)["policy"]
        assert in_force["sha256"].startswith(sha) and in_force["error"], in_force
        _save(policy, good)
        _wait_for(out, r"policy RECOVERED, the fixed edit is in force \(file changed\)", 30, demo)
        started = re.search(r"reconciler run started \(pid (\d+)\)", banner)
        assert started, banner
        assert f"kill -HUP {started.group(1)}" in banner
        os.kill(int(started.group(1)), signal.SIGHUP)
        _wait_for(out, r"policy unchanged \(SIGHUP\): sha256 \w+ is already in force", 30, demo)

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
