"""Commands that act on one kind through the running daemon's REST API (POST
/v1/api/orchestrations/<kind>/<action>, `reconciler/api/operations.py` and
`reconciler/api/orchestrations.py`): operators' pins (`scale`, `stop`, `start`), `confirm` of
a plan the safety valve holds, and a rolling `restart`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from reconciler.cli.rest import DaemonAddress, post_kind, token_option, url_option


def kind_command(f: Callable[..., None]) -> click.Command:
    """A command on one KIND, through the daemon at --url with --token."""
    return click.command()(click.argument("kind")(url_option(token_option(f))))


def _was(data: dict[str, Any]) -> str:
    previous = data.get("previous")
    if previous is None:
        return "sized by the policy"
    return "stopped" if previous == 0 else f"pinned to {previous}"


@kind_command
@click.argument("instances", type=click.IntRange(0))
def scale(kind: str, instances: int, url: str | None, token: str | None) -> None:
    """Pin KIND at INSTANCES instances (0 stops it), whatever its rows and the autoscaler say,
    until `reconciler start KIND`. Kept in ZooKeeper: survives restarts and failovers."""
    data = post_kind(DaemonAddress.resolve(url, token), kind, "scale", {"instances": instances})
    click.echo(f"{kind}: pinned to {data['instances']} instances (was {_was(data)})")


@kind_command
def stop(kind: str, url: str | None, token: str | None) -> None:
    """Stop KIND: its instances and their pods are deleted, its ids unassigned, until
    `reconciler start KIND`."""
    data = post_kind(DaemonAddress.resolve(url, token), kind, "stop")
    click.echo(f"{kind}: stopped; its instances and pods are deleted (was {_was(data)})")


@kind_command
def start(kind: str, url: str | None, token: str | None) -> None:
    """Return KIND to its policy's sizing (after `scale` or `stop`)."""
    data = post_kind(DaemonAddress.resolve(url, token), kind, "start")
    click.echo(f"{kind}: sized by the policy again (was {_was(data)})")


@kind_command
def confirm(kind: str, url: str | None, token: str | None) -> None:
    """Let KIND's plan held by the safety valve go ahead (`status` shows what it would do)."""
    data = post_kind(DaemonAddress.resolve(url, token), kind, "confirm")
    click.echo(f"{kind}: confirmed; the held plan goes ahead now: {data.get('confirmed')}")


@kind_command
def restart(kind: str, url: str | None, token: str | None) -> None:
    """Rolling restart of KIND's pods: rollout.maxUnavailable at a time, each next one only
    once the new pod is Running (and heard from, when the kind has heartbeats)."""
    data = post_kind(DaemonAddress.resolve(url, token), kind, "restart")
    click.echo(
        f"{kind}: rolling restart started; its pods are replaced "
        f"{data.get('maxUnavailable')} at a time"
    )


COMMANDS = (scale, stop, start, confirm, restart)
