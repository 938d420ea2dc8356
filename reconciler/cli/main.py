"""reconciler run | plan | validate | status  (click: help, options and exit codes for free).

Settings come from the environment and .env; `run` also takes the common ones as options.
Every expected failure (settings, policy, an unreachable server, a busy port, a refused token)
is one line on stderr naming the fix, with exit status 2 (fix the configuration) or 3 (a server
did not answer): see reconciler/cli/preflight.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from reconciler.cli import pins as cli_ops
from reconciler.cli.preflight import Failure, Unreachable, load_settings

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Where to fix each source `plan` could not read.
SOURCE_FIX = {
    "zookeeper": "start it or fix RECONCILER_ZK_HOSTS",
    "database": "start it or fix RECONCILER_DATABASE_URL",
    "kubernetes": "start it or fix RECONCILER_KUBE_URL / KUBECONFIG / RECONCILER_KUBE_IN_CLUSTER",
}

# The click parameter is named after the Settings field it overrides (settings_doc lists it).
policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="policy.yaml to use (default: RECONCILER_POLICY_PATH or config/policy.yaml).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="reconciler", prog_name="reconciler", message="%(prog)s %(version)s"
)
def main() -> None:
    """Keep the IoT worker fleet sharded, sized and healthy, as config/policy.yaml says.

    Endpoints and credentials come from the environment (RECONCILER_*, IOTA_MQTT_BROKERS,
    IOTA_AUTH_TOKEN) or a .env file; see the README.
    """


@main.command()
@policy_option
@click.option(
    "--log-level",
    "log_level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Log level (default: RECONCILER_LOG_LEVEL or info).",
)
@click.option(
    "--api-host",
    "api_host",
    default=None,
    help="Address of REST, /metrics and probes (default: RECONCILER_API_HOST or 127.0.0.1).",
)
@click.option(
    "--api-port",
    "api_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of REST, /metrics and probes (default: RECONCILER_API_PORT or 8080; "
    "0: any free port).",
)
def run(
    policy_path: Path | None, log_level: str | None, api_host: str | None, api_port: int | None
) -> None:
    """Run the daemon: reconcile every tick and on every event, serve REST and /metrics.

    Before it connects to anything it checks the settings, binds the REST port and loads the
    policy and its templates; any of those failing is one line and exit status 2.
    """
    from reconciler.api.access import BrowserAccess
    from reconciler.api.app import create_app
    from reconciler.cli import preflight
    from reconciler.runtime import process as runtime
    from reconciler.telemetry import logs
    from reconciler.wiring import build

    settings = load_settings(
        policy_path=policy_path,
        log_level=log_level and log_level.lower(),
        api_host=api_host,
        api_port=api_port,
    )
    preflight.check_api_exposure(settings)
    tls = preflight.check_api_tls(settings)
    sock = preflight.bind_api(settings.api_host, settings.api_port)
    try:
        preflight.check_policy(settings.policy_path)
        preflight.check_kube_credentials(settings)
    except Failure:
        sock.close()
        raise
    logs.configure(settings.log_format, settings.log_level)
    logs.log.info("starting", settings=settings.redacted())
    try:
        app = build(settings)
    except (ValueError, SystemExit) as e:  # a configuration error: one line, no traceback
        sock.close()
        raise Failure(str(e)) from None
    token = settings.api_token.get_secret_value() if settings.api_token else None
    access = BrowserAccess.from_settings(settings)  # CORS origins, trusted proxy header
    rest = create_app(
        app.daemon,
        token,
        access,
        max_body_bytes=settings.api_max_body_bytes,
        max_concurrent=settings.api_max_concurrent,
    )
    server = preflight.prebound_server(rest, sock, tls)
    runtime.tune_for_daemon()
    runtime.freeze_long_lived()
    try:
        server.start()
        scheme = "https" if tls else "http"
        logs.log.info("serving", url=f"{scheme}://{settings.api_host}:{server.port}")
        app.daemon.watch_policy_file()
        app.daemon.run()
    finally:
        server.stop()
        sock.close()
        app.close()


@main.command()
@policy_option
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a ZooKeeper session.",
)
def plan(policy_path: Path | None, wait_seconds: float) -> None:
    """Print the operations the next tick would apply, applying nothing.

    Exit status 3 when a source could not be read (the plan is then partial, or empty
    without ZooKeeper); the last line says which and how to fix it.
    """
    from reconciler.cli import preflight
    from reconciler.reconcile.pipeline import run_pass
    from reconciler.telemetry import logs
    from reconciler.wiring import build

    settings = load_settings(policy_path=policy_path)
    preflight.check_policy(settings.policy_path)
    preflight.check_kube_credentials(settings)
    logs.configure(settings.log_format, "error")
    try:
        app = build(settings, events=False)
    except (ValueError, SystemExit) as e:
        raise Failure(str(e)) from None
    try:
        if not _wait_for_zookeeper(app, wait_seconds):
            raise Unreachable(
                f"no ZooKeeper session with {settings.zk_hosts} after {wait_seconds:g} s: "
                f"{SOURCE_FIX['zookeeper']}"
            )
        result = run_pass(app.daemon.ports, app.daemon.state, trigger="plan", dry_run=True)
        down = app.daemon.state.view().source_errors
    finally:
        app.close()
    for kind, report in result.plan.reports.items():
        blind = f"  BLIND: {', '.join(report.blind)}" if report.blind else ""
        click.echo(
            f"{kind}: rows={report.rows} instances={report.instances} "
            f"capacity={report.capacity} unassigned={report.unassigned} "
            f"moves={report.moved}{blind}"
        )
        if report.error:
            click.echo(f"  ERROR: {report.error}")
        if report.heartbeat_note:
            click.echo(f"  heartbeats: {report.heartbeat_note}")
    if not result.plan.ops:
        click.echo("nothing to do: the world matches the policy")
    for op in result.plan.ops:
        click.echo(f"  {_describe(op)}")
    if down:
        raise Unreachable(
            "the plan is partial: "
            + "; ".join(
                f"{source} unreadable ({' '.join(error.split())}): "
                f"{SOURCE_FIX.get(source, 'check it')}"
                for source, error in sorted(down.items())
            )
        )


def _wait_for_zookeeper(app: Any, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not app.zk.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(app.zk.connected)


def _describe(op: Any) -> str:
    from reconciler.domain.model import WriteInstance

    name = type(op).__name__
    if isinstance(op, WriteInstance):
        inst = op.instance
        verb = "create" if op.create else "write"
        return (
            f"{name} {op.kind}/{inst.instance_id} ({verb}, {op.reason}): "
            f"used={inst.used} count={inst.count} reload={inst.reload_times}"
        )
    target = getattr(op, "pod_name", None) or f"{op.kind}/{getattr(op, 'instance_id', '?')}"
    return f"{name} {target} ({op.reason})"


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
def validate(file: Path | None) -> None:
    """Check a policy file (default: the configured one): print OK or every error with its line."""
    from reconciler.policy.schema import PolicyError, load_policy_and_templates
    from reconciler.policy.templates import TemplateError

    path = file or load_settings().policy_path
    try:
        loaded, _ = load_policy_and_templates(path)
    except PolicyError as e:
        for problem in e.problems:
            click.echo(
                f"{path}:{problem.line or 1}: {problem.where or '-'}: {problem.message}", err=True
            )
        raise SystemExit(1) from None
    except TemplateError as e:
        click.echo(f"{path}: {e}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{path}: OK ({', '.join(loaded.policy.kinds)}; sha256 {loaded.sha256[:12]})")


@main.command()
@click.option("--url", default=None, help="The daemon's REST address (default from settings).")
@click.option(
    "--token", default=None, help="Bearer token for the daemon (default: RECONCILER_API_TOKEN)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status(url: str | None, token: str | None, as_json: bool) -> None:
    """Ask the running daemon: per kind instances, used/count, pod phase, unassigned ids."""
    if url is None or token is None:
        s = load_settings()
        url = url or f"http://{s.api_host}:{s.api_port}"
        token = token or (s.api_token.get_secret_value() if s.api_token else None)
    data = _get_status(url, token)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(_format_status(data))


def _post_kind(
    kind: str, action: str, url: str | None, token: str | None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST /v1/api/orchestrations/<kind>/<action> (with a JSON `body`), every expected
    failure as one line."""
    if url is None or token is None:
        s = load_settings()
        url = url or f"http://{s.api_host}:{s.api_port}"
        token = token or (s.api_token.get_secret_value() if s.api_token else None)
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/api/orchestrations/{kind}/{action}",
        method="POST",
        data=json.dumps(body).encode() if body is not None else b"",
    )
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as e:
        try:
            why = json.load(e).get("error", e.reason)
        except ValueError:
            why = e.reason
        raise Failure(f"the daemon at {url} refused {action} (HTTP {e.code}): {why}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable(
            f"cannot reach the daemon at {url} ({getattr(e, 'reason', e)}): point --url at it"
        ) from None


url_option = click.option(
    "--url", default=None, help="The daemon's REST address (default from settings)."
)
token_option = click.option(
    "--token", default=None, help="Bearer token for the daemon (default: RECONCILER_API_TOKEN)."
)


@main.command()
@click.argument("kind")
@url_option
@token_option
def confirm(kind: str, url: str | None, token: str | None) -> None:
    """Let KIND's plan held by the safety valve go ahead (`status` shows what it would do)."""
    data = _post_kind(kind, "confirm", url, token)
    click.echo(f"{kind}: confirmed; the held plan goes ahead now: {data.get('confirmed')}")


@main.command()
@click.argument("kind")
@url_option
@token_option
def restart(kind: str, url: str | None, token: str | None) -> None:
    """Rolling restart of KIND's pods: rollout.maxUnavailable at a time, each next one only
    once the new pod is Running (and heard from, when the kind has heartbeats)."""
    data = _post_kind(kind, "restart", url, token)
    click.echo(
        f"{kind}: rolling restart started; its pods are replaced "
        f"{data.get('maxUnavailable')} at a time"
    )


for _command in (cli_ops.scale, cli_ops.stop, cli_ops.start):
    main.add_command(_command)


def _get_status(url: str, token: str | None) -> dict[str, Any]:
    """GET /v1/status, every expected failure as one line naming the fix."""
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/status")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            given = "a token that" if token else "no token, and it"
            raise Failure(
                f"the daemon at {url} refused the request (HTTP {e.code}): we sent {given} "
                "does not match: pass the daemon's RECONCILER_API_TOKEN with --token or in "
                "the environment"
            ) from None
        raise Failure(
            f"the daemon at {url} answered HTTP {e.code} {e.reason}: see its log"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(
            f"cannot reach the daemon at {url} ({reason}): is `reconciler run` running there? "
            "Point --url (or RECONCILER_API_HOST/RECONCILER_API_PORT) at it"
        ) from None
    except ValueError:
        raise Failure(f"{url}/v1/status did not answer JSON: is --url a reconciler?") from None
    if not isinstance(data, dict) or "kinds" not in data:
        raise Failure(f"{url}/v1/status is not a reconciler's status: check --url")
    return data


def _format_status(data: dict[str, Any]) -> str:
    lines: list[str] = []
    pol = data["policy"]
    lines.append(
        f"policy {pol['path']} sha256 {str(pol['sha256'])[:12]}"
        + (f"  REJECTED EDIT: {pol['error']}" if pol.get("error") else "")
    )
    lead = data.get("leadership") or {}
    if lead.get("election"):
        lines.append(
            f"role: {lead['role']} (identity {lead['identity']}); leader: {lead['leader'] or '-'}"
        )
    last = data["lastPass"]
    lines.append(f"last pass: {last['trigger']} ops={last['ops']} failed={len(last['failed'])}")
    for source, error in data.get("sources", {}).items():
        lines.append(f"source down: {source}: {error}")
    for kind, k in data["kinds"].items():
        lines.append("")
        lines.append(
            f"{kind}: rows={k['rows']} instances={k['instances']} capacity={k['capacity']} "
            f"unassigned={k['unassigned']} (max {k['maxInstances']}, "
            f"per {k['resourcePerInstance']})"
        )
        if k.get("error"):
            lines.append(f"  ERROR: {k['error']}")
        if k.get("blind"):
            lines.append(f"  blind: {', '.join(k['blind'])}")
        for source, error in (k.get("degraded") or {}).items():
            lines.append(f"  DEGRADED: cannot read {source}: {error}")
        pin = k.get("pin")
        if pin:
            n = pin["instances"]
            what = "STOPPED" if n == 0 else f"PINNED to {n} instances"
            lines.append(f"  {what} by {pin['by']} (`reconciler start {kind}`: back to the policy)")
        valve = k.get("valve") or {}
        if valve.get("engaged"):
            lines.append(
                f"  SAFETY VALVE: held for {valve['passes']} pass(es): {valve['reason']} "
                f"(`reconciler confirm {kind}` lets it go ahead)"
            )
        if k.get("heartbeat"):
            lines.append(f"  heartbeats: {k['heartbeat']}")
        if k.get("autoscale"):
            auto = k["autoscale"]
            lines.append(f"  autoscale: {auto.get('text') if isinstance(auto, dict) else auto}")
        lines.append(f"  {'instance':>8}  {'used/count':>11}  {'reload':>6}  {'heartbeat':>9}  pod")
        for inst in k["instanceList"]:
            age = inst.get("heartbeatAge")
            heard = f"{age:.0f}s" if age is not None else "-"
            lines.append(
                f"  {inst['instanceId']:>8}  {inst['used']:>5}/{inst['count']:<5}  "
                f"{inst['reloadTimes']:>6}  {heard:>9}  "
                f"{inst['pod']} {inst['phase']}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
