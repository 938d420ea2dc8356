"""`reconciler scale KIND N`, `reconciler stop KIND`, `reconciler start KIND`: operators' pins,
through the running daemon's REST API (POST .../scale, .../stop, .../start; api_ops.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--token", default=None, help="Bearer token for the daemon (default: RECONCILER_API_TOKEN)."
    )(f)
    return click.option(
        "--url", default=None, help="The daemon's REST address (default from settings)."
    )(f)


def _post(kind: str, action: str, url: str | None, token: str | None, **body: Any) -> Any:
    from reconciler.cli.main import _post_kind  # cli imports this module

    return _post_kind(kind, action, url, token, body or None)


def _was(data: dict[str, Any]) -> str:
    previous = data.get("previous")
    if previous is None:
        return "sized by the policy"
    return "stopped" if previous == 0 else f"pinned to {previous}"


@click.command()
@click.argument("kind")
@click.argument("instances", type=click.IntRange(0))
@_options
def scale(kind: str, instances: int, url: str | None, token: str | None) -> None:
    """Pin KIND at INSTANCES instances (0 stops it), whatever its rows and the autoscaler say,
    until `reconciler start KIND`. Kept in ZooKeeper: survives restarts and failovers."""
    data = _post(kind, "scale", url, token, instances=instances)
    click.echo(f"{kind}: pinned to {data['instances']} instances (was {_was(data)})")


@click.command()
@click.argument("kind")
@_options
def stop(kind: str, url: str | None, token: str | None) -> None:
    """Stop KIND: its instances and their pods are deleted, its ids unassigned, until
    `reconciler start KIND`."""
    data = _post(kind, "stop", url, token)
    click.echo(f"{kind}: stopped; its instances and pods are deleted (was {_was(data)})")


@click.command()
@click.argument("kind")
@_options
def start(kind: str, url: str | None, token: str | None) -> None:
    """Return KIND to its policy's sizing (after `scale` or `stop`)."""
    data = _post(kind, "start", url, token)
    click.echo(f"{kind}: sized by the policy again (was {_was(data)})")
