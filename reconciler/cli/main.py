"""reconciler run | plan | validate | status  (click: help, options and exit codes for free).

Settings come from the environment and .env; `run` also takes the common ones as options.
Every expected failure (settings, policy, an unreachable server, a busy port, a refused token)
is one line on stderr naming the fix, with exit status 2 (fix the configuration) or 3 (a server
did not answer): see reconciler/cli/preflight.py. `plan` exits as terraform's detailed exit
code (2 there means changes pending): 0, 2, 1 for any error it would otherwise exit 2 with, 3.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from reconciler.cli import kind_commands, zk_acl
from reconciler.cli.preflight import Failure, Unreachable, load_settings
from reconciler.cli.rest import DaemonAddress, get_status, token_option, url_option
from reconciler.cli.status_text import format_status
from reconciler.rules.silence import HEARTBEATS_DISABLED

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
    IOTA_AUTH_TOKEN) or a .env file; see docs/configuration.md.
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
@click.option(
    "--observe-only",
    "observe_only",
    is_flag=True,
    default=None,
    help="Plan every pass and write nothing: no election, no ZooKeeper or pod write; "
    "GET /v1/plan lists what a leader would apply (default: RECONCILER_OBSERVE_ONLY).",
)
def run(
    policy_path: Path | None,
    log_level: str | None,
    api_host: str | None,
    api_port: int | None,
    observe_only: bool | None,
) -> None:
    """Run the daemon: reconcile every tick and on every event, serve REST and /metrics.

    Before it connects to anything it checks the settings, binds the REST port and loads the
    policy and its templates; any of those failing is one line and exit status 2.
    """
    from reconciler.api.access import BrowserAccess
    from reconciler.api.app import create_app
    from reconciler.cli import preflight
    from reconciler.runtime import process as runtime
    from reconciler.runtime.control import Control
    from reconciler.telemetry import logs
    from reconciler.wiring import build

    settings = load_settings(
        policy_path=policy_path,
        log_level=log_level and log_level.lower(),
        api_host=api_host,
        api_port=api_port,
        observe_only=observe_only,
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
    # Published with the candidacy: a standby forwards writes to the leader's address.
    api_url = settings.advertised_api_url(sock.getsockname()[1])
    if api_url is None and settings.leader_election and not settings.observe_only:
        logs.log.warning(
            "no REST address to publish: standbys will refuse writes rather than forward them "
            "here (the API listens on a wildcard address): set RECONCILER_API_ADVERTISE_URL"
        )
    try:
        app = build(settings, api_url=api_url)
    except (ValueError, SystemExit) as e:  # a configuration error: one line, no traceback
        sock.close()
        raise Failure(str(e)) from None
    token = settings.api_token.get_secret_value() if settings.api_token else None
    access = BrowserAccess.from_settings(settings)  # CORS origins, trusted proxy header
    rest = create_app(
        Control(app.daemon),
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
        url = f"{scheme}://{settings.api_host}:{server.port}"
        logs.log.info("serving", url=url, advertised=api_url)
        app.daemon.watch_policy_file()
        app.daemon.run()
    finally:
        server.stop()
        sock.close()
        app.close()


class DetailedExitCode(click.Command):
    """terraform's detailed exit code: 2 means changes are pending and nothing else, so a usage
    error exits 1 here rather than click's 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            e.exit_code = 1
            raise


@main.command(cls=DetailedExitCode)
@policy_option
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a ZooKeeper session.",
)
@click.option(
    "--output",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="json: the document GET /v1/plan serves, and nothing else on stdout.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Accepted for terraform's users: the exit status is always the detailed one.",
)
def plan(
    policy_path: Path | None, wait_seconds: float, output: str, detailed_exitcode: bool
) -> None:
    """Print the operations the next tick would apply, applying nothing.

    Exit status (terraform's detailed exit code): 0 nothing to do, 2 changes pending, 1 an
    error (settings, policy, usage), 3 a source could not be read (the plan is then partial,
    or empty without ZooKeeper; the last line on stderr says which and how to fix it).
    """
    try:
        result, down, kafka = _dry_run(policy_path, wait_seconds)
    except Unreachable:
        raise
    except Failure as e:
        e.exit_code = 1
        raise
    if output == "json":
        from reconciler.runtime.pending import kind_plans, plan_document

        plans = kind_plans(result, time.time())
        click.echo(json.dumps(plan_document(plans, role="dry-run", sources=down), indent=2))
    else:
        _print_plan(result, kafka)
    if down:
        raise Unreachable(
            "the plan is partial: "
            + "; ".join(
                f"{source} unreadable ({' '.join(error.split())}): "
                f"{SOURCE_FIX.get(source, 'check it')}"
                for source, error in sorted(down.items())
            )
        )
    if result.plan.ops:
        raise SystemExit(PLAN_CHANGES_PENDING)


# `plan`'s exit status when it lists operations (terraform plan -detailed-exitcode).
PLAN_CHANGES_PENDING = 2


def _dry_run(policy_path: Path | None, wait_seconds: float) -> tuple[Any, dict[str, str], str]:
    """One dry pass on a daemon built observe-only (its adapters refuse every write): the
    pass's result, the sources it could not read, and the Kafka bootstrap the daemon reads
    heartbeats from (empty: none)."""
    from reconciler.cli import preflight
    from reconciler.reconcile.pipeline import run_pass
    from reconciler.telemetry import logs
    from reconciler.wiring import build

    settings = load_settings(policy_path=policy_path, observe_only=True)
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
        return result, dict(app.daemon.state.view().source_errors), settings.kafka_bootstrap.strip()
    finally:
        app.close()


def _print_plan(result: Any, kafka: str) -> None:
    """The plan as text. `plan` listens to no Kafka (a dry run builds no heartbeat consumer):
    with a bootstrap set, its heartbeat note says so instead of "disabled"."""
    for kind, report in result.plan.reports.items():
        blind = f"  BLIND: {', '.join(report.blind)}" if report.blind else ""
        click.echo(
            f"{kind}: rows={report.rows} instances={report.instances} "
            f"capacity={report.capacity} unassigned={report.unassigned} "
            f"moves={report.moved}{blind}"
        )
        if report.error:
            click.echo(f"  ERROR: {report.error}")
        note = report.heartbeat_note
        if note and kafka and note.startswith(HEARTBEATS_DISABLED):
            note = f"read by the running daemon from Kafka {kafka}, not by `plan`: not judged here"
        if note:
            click.echo(f"  heartbeats: {note}")
    if not result.plan.ops:
        click.echo("nothing to do: the world matches the policy")
    for op in result.plan.ops:
        click.echo(f"  {_describe(op)}")


def _wait_for_zookeeper(app: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not app.zk.session.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(app.zk.session.connected)


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
    from reconciler.policy.loader import load_policy_and_templates
    from reconciler.policy.problems import PolicyError
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
@url_option
@token_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status(url: str | None, token: str | None, as_json: bool) -> None:
    """Ask the running daemon: per kind instances, used/count, pod phase, unassigned ids."""
    data = get_status(DaemonAddress.resolve(url, token))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(format_status(data))


for _command in kind_commands.COMMANDS:
    main.add_command(_command)
main.add_command(zk_acl.zk_acl)


if __name__ == "__main__":
    main()
