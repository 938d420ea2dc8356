"""reconciler run | plan | validate | status  (click: help, options and exit codes for free)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from reconciler.settings import Settings


def _settings(policy: Path | None) -> Settings:
    settings = Settings()
    if policy is not None:
        settings = settings.model_copy(update={"policy_path": policy})
    return settings


policy_option = click.option(
    "--policy",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="policy.yaml to use (default: RECONCILER_POLICY_PATH or config/policy.yaml).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep the IoT worker fleet sharded, sized and healthy, as config/policy.yaml says.

    Endpoints and credentials come from the environment (RECONCILER_*, IOTA_MQTT_BROKERS,
    IOTA_AUTH_TOKEN) or a .env file; see the README.
    """


@main.command()
@policy_option
def run(policy: Path | None) -> None:
    """Run the daemon: reconcile every tick and on every event, serve REST and /metrics."""
    from reconciler import logs
    from reconciler.api import ApiServer, create_app
    from reconciler.app import build

    settings = _settings(policy)
    logs.configure(settings.log_format, settings.log_level)
    logs.log.info("starting", settings=settings.redacted())
    try:
        app = build(settings)
    except ValueError as e:  # a configuration error: say it in one line, no traceback
        logs.log.error("cannot start", error=str(e))
        raise SystemExit(2) from e
    token = settings.api_token.get_secret_value() if settings.api_token else None
    server = ApiServer(create_app(app.daemon, token), settings.api_host, settings.api_port)
    try:
        server.start()
        logs.log.info("serving", url=f"http://{settings.api_host}:{server.port}")
        app.daemon.watch_policy_file()
        app.daemon.run()
    finally:
        server.stop()
        app.close()


@main.command()
@policy_option
def plan(policy: Path | None) -> None:
    """Print the operations the next tick would apply, applying nothing."""
    from reconciler import logs
    from reconciler.app import build
    from reconciler.pipeline import run_pass

    settings = _settings(policy)
    logs.configure(settings.log_format, "warning")
    app = build(settings, events=False)
    try:
        _wait_for_zookeeper(app)
        result = run_pass(app.daemon.ports, app.daemon.state, trigger="plan", dry_run=True)
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


def _wait_for_zookeeper(app: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not app.zk.connected and time.monotonic() < deadline:
        time.sleep(0.05)


def _describe(op: Any) -> str:
    from reconciler.model import WriteInstance

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
    from reconciler.podspec import TemplateError
    from reconciler.policy import PolicyError, load_policy_and_templates

    path = file or Settings().policy_path
    try:
        loaded, _ = load_policy_and_templates(path)
    except PolicyError as e:
        for problem in e.problems:
            click.echo(
                f"{path}:{problem.line or 1}: {problem.where or '-'}: {problem.message}", err=True
            )
        sys.exit(1)
    except TemplateError as e:
        click.echo(f"{path}: {e}", err=True)
        sys.exit(1)
    click.echo(f"{path}: OK ({', '.join(loaded.policy.kinds)}; sha256 {loaded.sha256[:12]})")


@main.command()
@click.option("--url", default=None, help="The daemon's REST address (default from settings).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status(url: str | None, as_json: bool) -> None:
    """Ask the running daemon: per kind instances, used/count, pod phase, unassigned ids."""
    if url is None:
        s = Settings()
        url = f"http://{s.api_host}:{s.api_port}"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/v1/status", timeout=5) as resp:
            data = json.load(resp)
    except (urllib.error.URLError, OSError) as e:
        click.echo(f"cannot reach the daemon at {url}: {e}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(_format_status(data))


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
