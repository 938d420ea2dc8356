"""Existing nodes' ACLs brought in line with the daemon's (access.py), by the leader.

The old orchestrator created every node with OPEN_ACL_UNSAFE, and so does a daemon without
a login: `default_acl` only covers the nodes created from now on, and a layout that
already matches the policy is never written again. So, when told to
(RECONCILER_ZK_ALIGN_ACLS: off by default, since the old orchestrator cannot write what is
aligned; `reconciler zk-acl open` undoes it, acl_open.py), the leader walks the tree under its
root once per leadership term (with no election: once, after the first connection) and sets
the ACL of every node whose ACL differs, counting and logging what it changed. The walk
(`scan`) and the compare-and-set (`set_acls`) serve acl_open.py too.

- Left alone: the workers' nodes under each instance's `tmp` (their own, with the ACL their
  worker chose) and ephemeral nodes (a session's own: election lock nodes, workers'
  status), which go with their session anyway.
- Each set is a compare-and-set on the ACL version read, so a concurrent change by another
  hand is not overwritten; it is looked at again next term. A node the daemon may not
  administer (an ACL set by someone else without ADMIN for it) is logged by path, not fixed.
- Only the leader aligns (standbys never write), on a thread of its own: the walk is many
  round trips that must run neither on kazoo's event thread (where the election reports)
  nor on the loop thread; it needs no fence, since every daemon sets the same ACL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import BadVersionError, NoAuthError, NoNodeError
from kazoo.interfaces import IAsyncResult
from kazoo.security import ACL

from reconciler.adapters.zookeeper.access import same_acl
from reconciler.adapters.zookeeper.layout import is_worker_area
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.domain.backoff import Backoff
from reconciler.domain.errors import SourceUnavailable
from reconciler.telemetry.logs import log

# Paths named in a log line, at most: the counts carry the rest.
_SHOWN = 5


@dataclass
class AclReport:
    """What one walk found: nodes looked at, changed, and refused (no ADMIN for us)."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    raced: list[str] = field(default_factory=list)  # changed by another hand meanwhile


def align_acls(session: ZkSession) -> AclReport:
    """Set the daemon's ACL on every node under `session.root` whose ACL differs (see the
    module's docstring for what is left alone). A missing root is nothing to align.
    `SourceUnavailable` when ZooKeeper cannot be reached within the session's timeout."""
    if not session.access.secured:
        return AclReport()
    return session.bounded("align ACLs", lambda deadline: _walk(session, deadline))


@dataclass(frozen=True, slots=True)
class NodeAcl:
    """One node as a walk found it: its ACL, the ACL's version, and whether it is ephemeral."""

    path: str
    parts: tuple[str, ...]  # below the root; () is the root itself
    acl: list[ACL]
    aversion: int
    ephemeral: bool


def scan(session: ZkSession, deadline: float) -> tuple[list[NodeAcl], list[str]]:
    """The root and every node below it except the workers' own under each `tmp`, and the
    paths whose ACL or children this login may not read. One round trip per level of the
    tree: every request of a level is sent first. A node deleted meanwhile is skipped."""
    client = session.client
    found: list[NodeAcl] = []
    refused: list[str] = []
    level: list[tuple[str, tuple[str, ...]]] = [(session.root, ())]
    while level:
        asked = [
            (path, parts, client.get_acls_async(path), client.get_children_async(path))
            for path, parts in level
        ]
        level = []
        for path, parts, acls_result, children_result in asked:
            try:
                acls, stat = session.wait(acls_result, deadline)
                children = session.wait(children_result, deadline)
            except NoNodeError:
                continue  # deleted while we walked
            except NoAuthError:
                refused.append(path)
                continue
            found.append(NodeAcl(path, parts, list(acls), stat.aversion, bool(stat.ephemeralOwner)))
            if not is_worker_area(parts):
                level += [(f"{path}/{child}", (*parts, child)) for child in sorted(children)]
    return found, refused


def set_acls(
    session: ZkSession, changes: list[tuple[NodeAcl, list[ACL]]], deadline: float
) -> AclReport:
    """Give each node its new ACL: a compare-and-set on the ACL version the walk read, all
    sent before the first answer is awaited. What happened to each goes into the report."""
    report = AclReport(checked=len(changes))
    sent = [
        (node.path, session.client.set_acls_async(node.path, acl, version=node.aversion))
        for node, acl in changes
    ]
    for path, result in sent:
        _note_set(session, path, result, deadline, report)
    return report


def _walk(session: ZkSession, deadline: float) -> AclReport:
    nodes, refused = scan(session, deadline)
    persistent = [node for node in nodes if not node.ephemeral]  # ephemerals: a session's own
    changes = [
        (node, wanted)
        for node in persistent
        if not same_acl(node.acl, wanted := session.access.acl_for(node.parts))
    ]
    report = set_acls(session, changes, deadline)
    report.checked = len(persistent)
    report.refused = refused + report.refused
    return report


def _note_set(
    session: ZkSession, path: str, result: IAsyncResult, deadline: float, report: AclReport
) -> None:
    try:
        session.wait(result, deadline)
    except NoNodeError:
        return
    except NoAuthError:
        report.refused.append(path)
    except BadVersionError:
        report.raced.append(path)
    else:
        report.changed.append(path)


def log_report(report: AclReport, root: str) -> None:
    fields: dict[str, Any] = {"root": root, "checked": report.checked}
    fields["changed"] = len(report.changed)
    if report.changed:
        fields["changed_paths"] = report.changed[:_SHOWN]
    if report.raced:
        fields["raced"] = len(report.raced)
    if report.refused:
        fields["refused"] = len(report.refused)
        fields["refused_paths"] = report.refused[:_SHOWN]
        log.warning("zookeeper ACLs: some nodes refuse the daemon's identity", **fields)
    else:
        log.info("zookeeper ACLs in line", **fields)


class AclKeeper:
    """Runs `align_acls` once per leadership term, on its own thread, retrying with backoff
    while ZooKeeper cannot be reached. `wake()` (from any thread) after a leadership or
    connection change; `leading()` and `term()` say whether and for which term."""

    def __init__(
        self,
        session: ZkSession,
        leading: Callable[[], bool] = lambda: True,
        term: Callable[[], int] = lambda: 0,
        *,
        retry_base: float = 1.0,
    ) -> None:
        self._session = session
        self._retry_base = retry_base
        self._leading = leading
        self._term = term
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: AclReport | None = None  # the last walk's report (status, tests)
        self.aligned_term: int | None = None

    def start(self) -> None:
        self._wake.set()  # look once at start: with no election, this daemon leads now
        self._thread = threading.Thread(target=self._run, name="zk-acl", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backoff = Backoff(base=self._retry_base, cap=30.0)
        wait: float | None = None
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            wait = None
            if self._stop.is_set():
                return
            term = self._term()
            if not self._leading() or term == self.aligned_term:
                continue
            try:
                report = align_acls(self._session)
            except SourceUnavailable as e:
                wait = backoff.failed(time.monotonic())
                log.info("zookeeper ACLs not aligned yet", error=str(e), retry_in=wait)
                continue
            backoff.succeeded()
            self.last, self.aligned_term = report, term
            log_report(report, self._session.root)
