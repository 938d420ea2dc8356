"""Who the daemon is to ZooKeeper, who may touch the nodes it keeps, and TLS: the settings
(RECONCILER_ZK_USERNAME, _PASSWORD, _READERS, _TLS_*) as KazooClient options and as the ACL
of each node of the layout. Pure; `check()` runs when the session is made, so a missing
file fails the start in one line instead of a TLS handshake failing forever.

Why these ACLs (SECURITY.md "ZooKeeper"):

- ZooKeeper checks permissions node by node, never by subtree, so every node needs its own
  ACL: the client's `default_acl` gives one to every node the daemon creates (the leader
  lock's too), and `acl_align` fixes the nodes that already exist.
- The daemon's digest identity gets ALL: it writes data (WRITE), creates and deletes
  instances (CREATE, DELETE on the parent) and fixes ACLs (ADMIN). Every daemon of a fleet
  logs in as the same identity, so a new leader owns what the old one created.
- Readers (`world:anyone`, or the workers' digest ids) get READ: workers read their instance
  and watch `_reload`. On `<kind>/<id>/tmp` they also get CREATE and DELETE: the layout lets
  a worker keep a status node there, an ephemeral one marking its session alive.
- A digest login never fails by itself: a wrong password is another identity, which gets
  NoAuth at its first write (the session reports it as unavailable, naming the setting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl

from reconciler.adapters.zookeeper.layout import is_worker_area

_WORLD = Id("world", "anyone")
_READ = Permissions.READ
_WORKER_AREA = Permissions.READ | Permissions.CREATE | Permissions.DELETE


@dataclass(frozen=True, slots=True)
class ZkAccess:
    """The daemon's ZooKeeper login, its readers and its TLS files; nothing set: an open,
    plain connection and OPEN_ACL_UNSAFE (SECURITY.md "ZooKeeper")."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    readers: tuple[str, ...] = ()  # digest ACL ids "digest:<user>:<hash>"; empty: anyone
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_hostname: bool = False

    @property
    def secured(self) -> bool:
        """The daemon logs in and its nodes carry its ACL (else OPEN_ACL_UNSAFE)."""
        return self.username is not None

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    def check(self) -> None:
        """ValueError naming the setting when the access cannot work as configured."""
        if (self.username is None) != (self.password is None):
            raise ValueError("RECONCILER_ZK_USERNAME and RECONCILER_ZK_PASSWORD go together")
        if self.username is not None and ":" in self.username:
            raise ValueError("RECONCILER_ZK_USERNAME cannot contain ':'")
        if self.readers and not self.secured:
            raise ValueError("RECONCILER_ZK_READERS needs RECONCILER_ZK_USERNAME")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "RECONCILER_ZK_TLS_CERT_FILE and RECONCILER_ZK_TLS_KEY_FILE go together"
            )
        for name, path in (
            ("CA_FILE", self.ca_file),
            ("CERT_FILE", self.cert_file),
            ("KEY_FILE", self.key_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"RECONCILER_ZK_TLS_{name}={str(path)!r}: no such file")

    # -- ACLs --------------------------------------------------------------------------------

    def acl(self) -> list[ACL]:
        """The ACL of every node the daemon keeps: ALL for it, READ for the readers."""
        if not self.secured:
            return list(OPEN_ACL_UNSAFE)
        return [self._owner(), *self._readers(_READ)]

    def worker_area_acl(self) -> list[ACL]:
        """The ACL of `<kind>/<id>/tmp`: the readers may also add and remove their nodes."""
        if not self.secured:
            return list(OPEN_ACL_UNSAFE)
        return [self._owner(), *self._readers(_WORKER_AREA)]

    def acl_for(self, parts: Sequence[str]) -> list[ACL]:
        """The ACL of the node at `parts` below the root (() is the root itself)."""
        return self.worker_area_acl() if is_worker_area(parts) else self.acl()

    def owner_id(self) -> Id | None:
        """The daemon's digest id, as its nodes' ACLs name it; None without a login."""
        return self._owner().id if self.secured else None

    def _owner(self) -> ACL:
        assert self.username is not None and self.password is not None
        return make_digest_acl(self.username, self.password, all=True)

    def _readers(self, perms: int) -> list[ACL]:
        if not self.readers:
            return [ACL(perms, _WORLD)]
        return [ACL(perms, Id("digest", reader.removeprefix("digest:"))) for reader in self.readers]

    # -- the client --------------------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """KazooClient keyword arguments: the digest login and the ACL of the nodes it
        creates, and TLS (chain and host name checked unless told otherwise)."""
        options: dict[str, Any] = {}
        if self.secured:
            options["auth_data"] = [("digest", f"{self.username}:{self.password}")]
            options["default_acl"] = self.acl()
        if self.tls:
            options.update(
                use_ssl=True,
                ca=str(self.ca_file),
                verify_certs=True,
                check_hostname=not self.insecure_hostname,
            )
            if self.cert_file is not None:
                options.update(certfile=str(self.cert_file), keyfile=str(self.key_file))
        return options


def same_acl(left: Sequence[ACL], right: Sequence[ACL]) -> bool:
    """Whether two ACLs grant the same, whatever the order of their entries."""

    def entries(acl: Sequence[ACL]) -> set[tuple[int, str, str]]:
        return {(a.perms, a.id.scheme, a.id.id) for a in acl}

    return entries(left) == entries(right)
