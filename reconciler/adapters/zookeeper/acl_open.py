"""The way back from the daemon's ACLs (`reconciler zk-acl show` and `reconciler zk-acl open`):
the old orchestrator logs in as nobody and created every node OPEN_ACL_UNSAFE, so after a
rollback it can write only nodes that are open again.

What is opened: the root and every persistent node below it, and those ancestors of the root
whose ACL names the daemon's identity (it created them when they were missing), i.e. every
node a daemon with a login made or aligned. Left alone, as the alignment leaves them
(acl_align.py): the workers' nodes under each instance's `tmp` and ephemeral nodes (a
session's own). Each set is a compare-and-set on the ACL version read; a node changed by
another hand meanwhile is reported, not overwritten. Setting an ACL needs ADMIN on the node,
which only the daemon's own digest identity has: the caller logs in as the daemon does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Permissions

from reconciler.adapters.zookeeper.access import same_acl
from reconciler.adapters.zookeeper.acl_align import AclReport, NodeAcl, scan, set_acls
from reconciler.adapters.zookeeper.election import LEADER_NODE, parse_candidacy
from reconciler.adapters.zookeeper.session import ZkSession

# zkCli's letters for the permissions of an ACL entry.
_LETTERS = (
    (Permissions.CREATE, "c"),
    (Permissions.DELETE, "d"),
    (Permissions.READ, "r"),
    (Permissions.WRITE, "w"),
    (Permissions.ADMIN, "a"),
)


@dataclass
class AclSurvey:
    """The nodes `open` would look at (see the module's docstring), with their ACLs."""

    nodes: list[NodeAcl] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # this login may not read them
    ephemeral: int = 0  # left alone: they go with their session

    @property
    def closed(self) -> list[NodeAcl]:
        """The nodes whose ACL is not OPEN_ACL_UNSAFE: what `open` changes."""
        return [node for node in self.nodes if not is_open(node.acl)]


def is_open(acl: Sequence[ACL]) -> bool:
    return same_acl(acl, OPEN_ACL_UNSAFE)


def describe_acl(acl: Sequence[ACL]) -> str:
    """An ACL as zkCli spells its entries: `world:anyone:cdrwa`, `digest:<user>:<hash>:r`."""
    entries = sorted(
        f"{entry.id.scheme}:{entry.id.id}:"
        + "".join(letter for bit, letter in _LETTERS if entry.perms & bit)
        for entry in acl
    )
    return ", ".join(entries) or "(empty)"


def survey(session: ZkSession) -> AclSurvey:
    """Read the ACL of every node `open` would look at. `SourceUnavailable` when ZooKeeper
    cannot be reached within the session's timeout."""

    def walk(deadline: float) -> AclSurvey:
        nodes, refused = scan(session, deadline)
        result = AclSurvey(refused=refused)
        result.nodes = _own_ancestors(session, deadline, refused=result.refused)
        result.nodes += [node for node in nodes if not node.ephemeral]
        result.ephemeral = sum(node.ephemeral for node in nodes)
        return result

    return session.bounded("read ACLs", walk)


def _own_ancestors(session: ZkSession, deadline: float, *, refused: list[str]) -> list[NodeAcl]:
    """The ancestors of the root whose ACL names the daemon's identity (none without a login:
    nothing tells which open ancestors a daemon made, and open ones need no change)."""
    owner = session.access.owner_id()
    if owner is None:
        return []
    names = session.root.strip("/").split("/")[:-1]
    paths = ["/" + "/".join(names[: i + 1]) for i in range(len(names))]
    asked = [(path, session.client.get_acls_async(path)) for path in paths]
    found = []
    for path, result in asked:
        try:
            acls, stat = session.wait(result, deadline)
        except NoNodeError:
            continue
        except NoAuthError:
            refused.append(path)
            continue
        if any(entry.id == owner for entry in acls):
            found.append(NodeAcl(path, (), list(acls), stat.aversion, False))
    return found


def open_acls(session: ZkSession, nodes: Sequence[NodeAcl]) -> AclReport:
    """Set OPEN_ACL_UNSAFE on each of `nodes` (as `survey` read them): `changed`, `refused`
    (this login has no ADMIN on the node) and `raced` (its ACL changed since it was read)."""
    changes = [(node, list(OPEN_ACL_UNSAFE)) for node in nodes]
    return session.bounded("open ACLs", lambda deadline: set_acls(session, changes, deadline))


def contenders(session: ZkSession) -> list[str]:
    """The identities holding a node in an election under the root (`_leader`,
    `_leader-<group>`): daemons running now, leaders and standbys. Daemons run without an
    election (RECONCILER_LEADER_ELECTION=false) hold none and are not seen here."""

    def read(deadline: float) -> list[str]:
        client = session.client
        groups = [
            f"{session.root}/{name}"
            for name in session.wait(client.get_children_async(session.root), deadline)
            if name == LEADER_NODE or name.startswith(f"{LEADER_NODE}-")
        ]
        found = []
        for group in groups:
            for lock in session.wait(client.get_children_async(group), deadline):
                try:
                    data, _ = session.wait(client.get_async(f"{group}/{lock}"), deadline)
                except NoNodeError:
                    continue  # released meanwhile
                candidacy = parse_candidacy(data)
                found.append(candidacy.identity if candidacy else f"{group}/{lock}")
        return found

    try:
        return session.bounded("read the election", read)
    except NoNodeError:
        return []  # no root: no layout, no daemon


def acl_counts(nodes: Sequence[NodeAcl]) -> list[tuple[str, int]]:
    """How many nodes carry each ACL, the most common first."""
    counts = Counter(describe_acl(node.acl) for node in nodes)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
