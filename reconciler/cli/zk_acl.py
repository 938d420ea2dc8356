"""`reconciler zk-acl show | open`: the ZooKeeper ACLs under /iota/orchestration, and the way
back to open nodes for a rollback to the old orchestrator (docs/migration.md "Rolling back";
reconciler/adapters/zookeeper/acl_open.py says which nodes and why).

Both read the daemon's ZooKeeper settings (RECONCILER_ZK_HOSTS, _USERNAME, _PASSWORD, TLS)
from the environment, as `run` does: opening a node takes ADMIN on it, which only the
daemon's own digest identity has. Exit status: 0 done (or nothing to do), 1 some nodes could
not be opened (listed) or the prompt was declined, 2 settings to fix or a daemon still
running, 3 ZooKeeper did not answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from reconciler.cli.preflight import Failure, Unreachable, load_settings

if TYPE_CHECKING:
    from reconciler.adapters.zookeeper.session import ZkSession

T = TypeVar("T")

# Paths printed per list, at most: the counts carry the rest.
SHOWN = 50


class Incomplete(Failure):
    """Some nodes could not be opened: exit status 1."""

    exit_code = 1


wait_option = click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for ZooKeeper, for the connection and for each walk of the tree.",
)


@click.group("zk-acl")
def zk_acl() -> None:
    """ZooKeeper ACLs under /iota/orchestration: see them, or open them for a rollback."""


@zk_acl.command()
@wait_option
def show(wait_seconds: float) -> None:
    """How many nodes carry each ACL, and how many are not open (what `open` would change)."""
    from reconciler.adapters.zookeeper.acl_open import acl_counts, survey

    with _session(wait_seconds) as session:
        found = _call(session, survey)
    click.echo(f"{session.root}: {len(found.nodes)} nodes")
    for acl, count in acl_counts(found.nodes):
        click.echo(f"  {count:>6}  {acl}")
    click.echo(
        f"not open: {len(found.closed)}; left alone: {found.ephemeral} ephemeral nodes and the "
        "workers' nodes under each tmp"
    )
    _echo_paths("could not be read with this login", found.refused)


@zk_acl.command("open")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="List the nodes that would be opened; change none.")
@click.option(
    "--force",
    is_flag=True,
    help="Open the nodes even while a daemon holds an election node (it would keep creating "
    "nodes with its ACL, and a leader aligning ACLs would close them again).",
)
@wait_option
def open_(yes: bool, dry_run: bool, force: bool, wait_seconds: float) -> None:
    """Set every node the daemon made or aligned back to OPEN_ACL_UNSAFE, as the old
    orchestrator's nodes are, so that it can write them again after a rollback.

    Stop every daemon first. Logs in as the daemon (RECONCILER_ZK_USERNAME/_PASSWORD).
    """
    from reconciler.adapters.zookeeper.acl_open import (
        contenders,
        describe_acl,
        open_acls,
        survey,
    )

    with _session(wait_seconds) as session:
        running = _call(session, contenders)
        if running and not (force or dry_run):
            raise Failure(
                f"a reconciler is running (election nodes held by {', '.join(running)}): it "
                "would keep creating nodes with its ACL; stop every daemon first "
                '(docs/migration.md "Rolling back"), or pass --force'
            )
        if running:
            click.echo(f"warning: daemons still running: {', '.join(running)}", err=True)
        found = _call(session, survey)
        closed = found.closed
        verb = "would open" if dry_run else "to open"
        click.echo(
            f"{session.root}: {len(found.nodes)} nodes, {len(closed)} {verb} "
            f"(left alone: {found.ephemeral} ephemeral, the workers' nodes under each tmp)"
        )
        for node in closed if dry_run else closed[:SHOWN]:
            click.echo(f"  {node.path}  {describe_acl(node.acl)}")
        if len(closed) > SHOWN and not dry_run:
            click.echo(f"  ... and {len(closed) - SHOWN} more (--dry-run lists all)")
        if dry_run or not closed:
            _finish(found.refused, [], [])
            click.echo("nothing to do: every node is open" if not closed else "dry run: no change")
            return
        if not yes:
            click.confirm(
                f"Open these {len(closed)} nodes to every client (OPEN_ACL_UNSAFE)?", abort=True
            )
        report = _call(session, lambda s: open_acls(s, closed))
    click.echo(f"opened {len(report.changed)} nodes (OPEN_ACL_UNSAFE)")
    _finish(found.refused, report.refused, report.raced)


def _finish(unread: list[str], refused: list[str], raced: list[str]) -> None:
    _echo_paths("could not be read with this login", unread)
    _echo_paths("refused: this login has no ADMIN on them", refused)
    _echo_paths("changed by another client meanwhile", raced)
    left = len(unread) + len(refused) + len(raced)
    if left:
        raise Incomplete(
            f"{left} nodes are not open (listed above): log in as the daemon's identity "
            "(RECONCILER_ZK_USERNAME/_PASSWORD), or use ZooKeeper's super user for nodes "
            "another identity owns; then run it again"
        )


def _echo_paths(what: str, paths: list[str]) -> None:
    if not paths:
        return
    click.echo(f"{len(paths)} {what}:")
    for path in paths[:SHOWN]:
        click.echo(f"  {path}")
    if len(paths) > SHOWN:
        click.echo(f"  ... and {len(paths) - SHOWN} more")


@contextmanager
def _session(wait_seconds: float) -> Iterator[ZkSession]:
    """A session with the daemon's ZooKeeper settings and login; its calls wait at most
    `wait_seconds`."""
    from reconciler.adapters.zookeeper.session import ZkSession
    from reconciler.domain.errors import SourceUnavailable
    from reconciler.telemetry import logs
    from reconciler.wiring import zk_access

    settings = load_settings()
    logs.configure(settings.log_format, "error")
    try:
        session = ZkSession(
            settings.zk_hosts,
            timeout=wait_seconds,
            session_timeout=settings.zk_session_timeout,
            access=zk_access(settings),
        )
    except ValueError as e:
        raise Failure(str(e)) from None
    try:
        session.start()
    except SourceUnavailable as e:
        session.stop()
        raise Unreachable(f"{e}: start it or fix RECONCILER_ZK_HOSTS") from None
    try:
        yield session
    finally:
        session.stop()


def _call(session: ZkSession, call: Callable[[ZkSession], T]) -> T:
    """`call(session)`, with ZooKeeper not answering as exit status 3."""
    from reconciler.domain.errors import SourceUnavailable

    try:
        return call(session)
    except SourceUnavailable as e:
        raise Unreachable(str(e)) from None
