"""`make demo`: the whole system on this machine, until Ctrl-C.

1. Starts the rig's real servers (cached builds, see rig/): ZooKeeper, PostgreSQL, Mosquitto,
   Kafka, and etcd + kube-apiserver + kube-scheduler + kwok (two fake nodes; namespace iota).
2. Seeds PostgreSQL with a few thousand Things and Rules.
3. Copies config/policy.yaml and the pod templates it names to --policy-dir (.demo/ in the
   checkout, git-ignored; a fresh copy at every start), so that editing the copy is the
   lesson and the checkout stays as it is.
4. Grants the daemon's identity exactly deploy/kubernetes/rbac.yaml and starts
   `reconciler run` on that copy with it (the least-privilege RBAC, in use).
5. Starts demo/fleet_simulator.py: heartbeats for the Running pods kwok runs, new rows with
   MQTT `c` events now and then, and a failed pod now and then. Its apiserver token is in a
   file only we can read (0600), never on a command line.
6. Waits until every instance has a Running pod (and the Thing workers' heartbeats arrive),
   prints where to look (the fleet page, REST, /metrics, the CLI's environment, the policy
   to edit), then a one-line fleet summary every --summary-every seconds, with the daemon's
   operations, policy reloads, rejected edits and recoveries as they happen.

Ctrl-C (SIGINT) or SIGTERM stops everything it started, in reverse order, and removes the
temp dir (--keep keeps it, with every log). The policy copy stays for the next look.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAMESPACE = "iota"
POLICY = REPO / "config" / "policy.yaml"
POLICY_DIR = REPO / ".demo"  # git-ignored (.gitignore)


class Stop(Exception):
    """SIGINT/SIGTERM: unwind and stop everything."""


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} demo    | {msg}", flush=True)


def _on_signal(signum: int, _frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


# ---------------------------------------------------------------------- servers


def start_servers(base: Path, keep_alive: threading.Event) -> dict[str, Any]:
    """All servers at once (Kafka and the apiserver take the longest), each from a thread.

    Each starting thread stays alive until `keep_alive` is set: the rig starts its processes
    with PR_SET_PDEATHSIG, which fires when the *thread* that forked them ends, not the process.
    """
    from rig.kube import Kube
    from rig.servers import Kafka, Mosquitto, Postgres, ZooKeeper

    servers: dict[str, Any] = {
        "zookeeper": ZooKeeper(base),
        "postgres": Postgres(base),
        "mosquitto": Mosquitto(base),
        "kafka": Kafka(base),
        "kube": Kube(base),
    }
    errors: dict[str, BaseException] = {}
    took: dict[str, float] = {}
    done = threading.Semaphore(0)

    def start(name: str) -> None:
        t0 = time.monotonic()
        try:
            servers[name].start()
            took[name] = time.monotonic() - t0
        except BaseException as e:
            errors[name] = e
        finally:
            done.release()
        keep_alive.wait()

    for n in servers:
        threading.Thread(target=start, args=(n,), daemon=True, name=f"start-{n}").start()
    try:
        for _ in servers:
            while not done.acquire(timeout=0.2):
                pass
    except BaseException:
        stop_servers(servers)
        raise
    if errors:
        stop_servers(servers)
        name, err = next(iter(errors.items()))
        raise SystemExit(f"demo: {name} did not start:\n{err}")
    say("servers up: " + ", ".join(f"{n} {took[n]:.1f}s" for n in servers))
    return servers


def stop_servers(servers: dict[str, Any]) -> None:
    for name in reversed(list(servers)):
        server = servers[name]
        with contextlib.suppress(Exception):
            server.close(keep_dir=True)  # stops its processes; main() removes the dir


# ---------------------------------------------------------------------- seed, RBAC


def seed(pg: Any, things: int, rules: int) -> str:
    from reconciler.adapters.sql.inventory import create_tables, insert_ids

    url = pg.create_database("iota")
    create_tables(url)
    t0 = time.monotonic()
    insert_ids(url, "Thing", (str(uuid.uuid4()) for _ in range(things)))
    insert_ids(url, "Rule", (str(uuid.uuid4()) for _ in range(rules)))
    say(f"seeded database iota: {things} Things, {rules} Rules ({time.monotonic() - t0:.1f}s)")
    return url


def grant_rbac(kube: Any) -> None:
    """deploy/kubernetes/rbac.yaml, as is: the daemon runs with the identity it grants."""
    import yaml
    from kubernetes.dynamic import DynamicClient

    with kube.api_client() as api:
        dyn = DynamicClient(api)
        for doc in yaml.safe_load_all((REPO / "deploy/kubernetes/rbac.yaml").read_text()):
            if not doc:
                continue
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            resource.server_side_apply(
                body=doc,
                namespace=doc["metadata"].get("namespace"),
                field_manager="reconciler-demo",
                force_conflicts=True,
            )
    say(
        "applied deploy/kubernetes/rbac.yaml; the daemon runs as "
        "system:serviceaccount:iota:reconciler"
    )


def create_heartbeat_topic(kafka: Any) -> None:
    """The platform has its HeartBeat topic before any worker runs; so does the demo (a
    consumer subscribing to a missing topic only logs errors until a producer creates it)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id="reconciler-demo")
    try:
        admin.create_topics([NewTopic("HeartBeat", num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


# ---------------------------------------------------------------------- the policy copy


def copy_policy(dest: Path, source: Path = POLICY) -> Path:
    """`source` and the pod templates it names, copied under `dest` in the repository's
    layout, so the policy's relative template paths (../templates/...) resolve unchanged;
    returns the copy of the policy. A fresh copy: files of an earlier copy are replaced."""
    from reconciler.policy.loader import load_policy

    loaded = load_policy(source)
    files = [source.resolve(), *(loaded.template_path(k) for k in loaded.policy.kinds)]
    for path in dict.fromkeys(files):
        try:
            relative = path.relative_to(REPO)
        except ValueError:
            raise SystemExit(f"demo: {path} is outside {REPO}: cannot copy the policy") from None
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    copy = dest / source.resolve().relative_to(REPO)
    say(
        f"policy: a fresh copy of {source.relative_to(REPO)} and its templates in {dest}: "
        "edit it, the daemon reloads it; the checkout stays as it is"
    )
    return copy


def write_secret(path: Path, secret: str) -> Path:
    """`secret` in a file only we can read (created 0600, never wider for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return path


# ---------------------------------------------------------------------- daemon, simulator


def api_port(requested: int | None) -> int:
    from rig.process import free_port, port_open

    if requested:
        return requested
    return 8080 if not port_open(8080) else free_port()


def daemon_env(servers: dict[str, Any], db_url: str, port: int, policy: Path) -> dict[str, str]:
    kube = servers["kube"]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECONCILER_", "IOTA_", "KUBECONFIG", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(
        {
            "RECONCILER_POLICY_PATH": str(policy),
            "RECONCILER_ZK_HOSTS": servers["zookeeper"].hosts,
            "RECONCILER_DATABASE_URL": db_url,
            "IOTA_MQTT_BROKERS": servers["mosquitto"].url,
            "RECONCILER_KAFKA_BOOTSTRAP": servers["kafka"].bootstrap,
            "RECONCILER_KUBE_URL": kube.url,
            "IOTA_AUTH_TOKEN": kube.tokens["reconciler"],
            "RECONCILER_KUBE_CA_FILE": str(kube.ca_file),
            "RECONCILER_API_HOST": "127.0.0.1",
            "RECONCILER_API_PORT": str(port),
            "RECONCILER_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """The daemon's settings, for `reconciler status`/`plan` by hand (secrets included: it
    is a throw-away demo; the file is 0600)."""
    keys = sorted(k for k in env if k.startswith(("RECONCILER_", "IOTA_")))
    path.touch(mode=0o600)
    path.write_text("".join(f"export {k}='{env[k]}'\n" for k in keys))


def fetch_status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/v1/status", timeout=3) as r:
            data: dict[str, Any] = json.load(r)
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def fleet_ready(status: dict[str, Any] | None, heartbeats: set[str]) -> bool:
    """Every kind has instances, every instance a Running pod; heartbeat kinds are heard."""
    if not status:
        return False
    for kind, k in status["kinds"].items():
        insts = k["instanceList"]
        if not insts or any(i["phase"] != "Running" for i in insts):
            return False
        if kind in heartbeats and any(i.get("heartbeatAge") is None for i in insts):
            return False
    return True


def summary(status: dict[str, Any] | None) -> str:
    if not status:
        return "daemon not answering"
    parts = []
    for kind, k in status["kinds"].items():
        insts = k["instanceList"]
        running = sum(i["phase"] == "Running" for i in insts)
        ages = [i["heartbeatAge"] for i in insts if i.get("heartbeatAge") is not None]
        hb = f", heartbeat <= {max(ages):.0f}s" if ages else ""
        parts.append(
            f"{kind} rows={k['rows']} instances={len(insts)} running={running}"
            f" unassigned={k['unassigned']}{hb}"
        )
    last = status["lastPass"]
    down = status.get("sources") or {}
    tail = f" | sources down: {', '.join(down)}" if down else ""
    policy = status.get("policy") or {}
    if policy.get("error"):
        tail += f" | policy edit REJECTED, {str(policy.get('sha256'))[:12]} still in force"
    return "; ".join(parts) + f" | last pass {last['trigger']} ops={last['ops']}{tail}"


def heartbeat_kinds(policy: Path) -> set[str]:
    from reconciler.policy.loader import load_policy

    loaded = load_policy(policy)
    return {k for k, p in loaded.policy.kinds.items() if p.heartbeat.enabled}


# What the console shows of the daemon's log: every warning and error, each applied operation
# and pass, and the lesson's events (policy reloads, rejections, recoveries), told in words.
SHOWN = frozenset(
    {
        "policy loaded",
        "policy rejected",
        "policy unchanged",
        "pod templates changed: their pods roll",
        "reconciled",
        "source back",
        "over capacity resolved",
        "leadership acquired",
        "stopped",
    }
)
HIDDEN_FIELDS = ("event", "level", "timestamp", "logger")


class PolicyStory:
    """The policy events in words: a reload says why (start, file changed, SIGHUP); a
    rejection says that the last good policy stays and why the edit was refused; the first
    good load after a rejection is a recovery."""

    def __init__(self) -> None:
        self.rejected = False

    def tell(self, ev: dict[str, Any]) -> str | None:
        name, why = ev.get("event"), ev.get("why")
        if name == "policy loaded":
            head = (
                "policy RECOVERED, the fixed edit is in force" if self.rejected else "policy loaded"
            )
            self.rejected = False
            return (
                f"{head} ({why}): sha256 {ev.get('sha256')}, kinds "
                f"{', '.join(ev.get('kinds') or [])}, tickSeconds {ev.get('tick_seconds')}"
            )
        if name == "policy rejected":
            self.rejected = True
            keeping = ev.get("keeping")
            kept = (
                f"the last good policy (sha256 {keeping}) stays in force"
                if keeping
                else "no policy in force yet"
            )
            return f"policy REJECTED ({why}): {kept}. Why: {ev.get('error')}"
        if name == "policy unchanged":
            return f"policy unchanged ({why}): sha256 {ev.get('sha256')} is already in force"
        if name == "pod templates changed: their pods roll":
            kinds = ", ".join(ev.get("kinds") or [])
            return f"pod templates changed ({why}): the pods of {kinds} roll"
        return None


def follow(log: Path, stop: threading.Event) -> None:
    """Echo the daemon's notable log events (applied operations, policy, errors)."""
    story = PolicyStory()
    while not log.exists() and not stop.is_set():
        stop.wait(0.2)
    with open(log, "rb") as fh:
        while not stop.is_set():
            line = fh.readline()
            if not line:
                stop.wait(0.3)
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            level = ev.get("level", "")
            name = ev.get("event", "")
            told = story.tell(ev)
            if told is None and not (
                level in ("warning", "error", "critical") or name in SHOWN or "op" in ev
            ):
                continue
            if told is None:
                extra = {k: v for k, v in ev.items() if k not in HIDDEN_FIELDS}
                told = f"{name} {json.dumps(extra, default=str)[:220]}"
            print(f"{time.strftime('%H:%M:%S')} daemon  | {level:<7} {told}", flush=True)


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m demo.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--things", type=int, default=3000)
    p.add_argument("--rules", type=int, default=1200)
    p.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="the daemon's REST port (default 8080 if free, else any free port)",
    )
    p.add_argument(
        "--fail-every",
        type=float,
        default=60.0,
        help="seconds between pods the simulator fails (0: never)",
    )
    p.add_argument("--summary-every", type=float, default=15.0)
    p.add_argument("--ready-timeout", type=float, default=240.0)
    p.add_argument(
        "--quiet-daemon", action="store_true", help="do not echo the daemon's notable log events"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    p.add_argument(
        "--policy-dir",
        type=Path,
        default=POLICY_DIR,
        help="where the daemon's copy of config/policy.yaml and its templates goes, to edit "
        "(default: .demo/ in the checkout, git-ignored; a fresh copy at every start)",
    )
    args = p.parse_args(argv)

    from rig.process import Proc

    t_start = time.monotonic()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    base = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    base.chmod(0o711)  # PostgreSQL runs as user postgres (when we are root): let it through
    say(f"working dir {base} (logs of every server and process)")
    servers: dict[str, Any] = {}
    procs: list[Proc] = []
    stop_follow = threading.Event()
    keep_alive = threading.Event()
    code = 0
    try:
        servers = start_servers(base, keep_alive)
        db_url = seed(servers["postgres"], args.things, args.rules)
        grant_rbac(servers["kube"])
        create_heartbeat_topic(servers["kafka"])
        policy = copy_policy(args.policy_dir.absolute())
        port = api_port(args.api_port)
        url = f"http://127.0.0.1:{port}"
        env = daemon_env(servers, db_url, port, policy)
        write_env_file(base / "env", env)
        daemon_log = base / "reconciler.log"
        daemon = Proc(
            "reconciler",
            [BIN / "reconciler", "run"],
            daemon_log,
            env=env,
            cwd=REPO,
            stop_timeout=30,
        )
        daemon.start()
        procs.append(daemon)
        say(
            f"reconciler run started (pid {daemon.popen.pid if daemon.popen else '?'}), "
            f"REST on {url}, log {daemon_log}"
        )
        if not args.quiet_daemon:
            threading.Thread(
                target=follow, args=(daemon_log, stop_follow), daemon=True, name="follow"
            ).start()

        kube = servers["kube"]
        # Secrets go by a 0600 file and the environment, never on a command line (ps).
        token_file = write_secret(base / "fleet-simulator.token", kube.token)
        sim = Proc(
            "fleet-simulator",
            [
                sys.executable,
                "-m",
                "demo.fleet_simulator",
                "--kube-url",
                kube.url,
                "--kube-token-file",
                str(token_file),
                "--kube-ca",
                str(kube.ca_file),
                "--kafka",
                servers["kafka"].bootstrap,
                "--mqtt",
                servers["mosquitto"].url,
                "--namespace",
                NAMESPACE,
                "--fail-every",
                str(args.fail_every),
            ],
            base / "fleet-simulator.log",
            env={
                **os.environ,
                "FLEET_SIMULATOR_DATABASE_URL": db_url,
                "PYTHONUNBUFFERED": "1",
            },
            cwd=REPO,
            stop_timeout=15,
        )
        sim.start()
        procs.append(sim)
        threading.Thread(
            target=_echo,
            args=(base / "fleet-simulator.log", stop_follow),
            daemon=True,
            name="echo-sim",
        ).start()

        hb = heartbeat_kinds(policy)
        deadline = time.monotonic() + args.ready_timeout
        status = None
        while not fleet_ready(status := fetch_status(url), hb):
            daemon.check_running()
            sim.check_running()
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"demo: fleet not ready after {args.ready_timeout:.0f}s: "
                    f"{summary(status)}; see {daemon_log}"
                )
            time.sleep(0.5)
        ready_s = time.monotonic() - t_start
        pid = daemon.popen.pid if daemon.popen else None
        banner(url, base, servers, ready_s, status, policy=policy, port=port, pid=pid)
        while True:
            time.sleep(args.summary_every)
            daemon.check_running()
            sim.check_running()
            say(summary(fetch_status(url)))
    except Stop as s:
        say(f"{s}: stopping everything")
    except SystemExit as e:
        print(e, file=sys.stderr)
        code = 1
    except Exception as e:  # RigError from check_running, etc.
        print(f"demo: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    finally:
        # Ctrl-C again must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        t0 = time.monotonic()
        for proc in reversed(procs):
            proc.stop()
        stop_follow.set()
        stop_servers(servers)
        keep_alive.set()
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
        say(f"stopped everything in {time.monotonic() - t0:.1f}s")
    return code


def _echo(log: Path, stop: threading.Event) -> None:
    """The simulator's own lines (it prints them ready-formatted)."""
    while not log.exists() and not stop.is_set():
        stop.wait(0.2)
    with open(log, "rb") as fh:
        while not stop.is_set():
            line = fh.readline()
            if not line:
                stop.wait(0.3)
                continue
            text = line.decode(errors="replace").rstrip()
            if " fleet   | " in text:
                print(text, flush=True)


def banner(
    url: str,
    base: Path,
    servers: dict[str, Any],
    ready_s: float,
    status: dict[str, Any] | None,
    *,
    policy: Path,
    port: int,
    pid: int | None,
) -> None:
    kube = servers["kube"]
    cli = BIN / "reconciler"
    templates = policy.parent.parent / "templates"
    lines = [
        f"demo ready in {ready_s:.1f}s: {summary(status)}",
        "",
        "  Where to look:",
        f"    fleet page          {url}/",
        f"    REST (old UI)       {url}/v1/api/orchestrations/Thing",
        f"                        {url}/v1/api/orchestrations/Rule",
        f"                        {url}/v1/api/orchestrations/Thing/<thing id>/instances",
        f"                        {url}/v1/status",
        f"    OpenAPI             {url}/docs",
        f"    Prometheus metrics  {url}/metrics",
        f"    health              {url}/healthz  {url}/readyz",
        f"    daemon log          {base / 'reconciler.log'}",
        f"    simulator log       {base / 'fleet-simulator.log'}",
        f"    kubectl             KUBECONFIG={kube.kubeconfig} kubectl -n iota get pods",
        "",
        "  The CLI, from another terminal (these make `reconciler status` ask this daemon):",
        f"    export RECONCILER_API_HOST=127.0.0.1 RECONCILER_API_PORT={port} "
        f"RECONCILER_POLICY_PATH={policy}",
        f"    {cli} status",
        f"    source {base / 'env'}   # every setting, secrets too (0600): then `reconciler plan`",
        "",
        "  The policy: a copy for you to edit (the checkout's config/policy.yaml stays as it is):",
        f"    {policy}",
        f"    {templates}/   (the pod templates it names)",
        "    Save an edit and watch this console: a good one is `policy loaded (file changed)`;",
        "    a broken one (say initInstances: 0) is `policy REJECTED`, the last good policy",
        "    stays in force and the reason is printed; fix it and it is `policy RECOVERED`.",
        f"    Check an edit first:  {cli} validate {policy}",
        f"    Reload by signal:     kill -HUP {pid if pid else '<daemon pid>'}"
        "   (re-reads the policy and its templates)",
        "",
        "  Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
