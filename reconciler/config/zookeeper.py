"""ZooKeeper settings: where the ensemble is, who the daemon is to it, who may read what it
writes, and TLS (SECURITY.md). One part of `reconciler.config.settings.Settings`."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A ZooKeeper digest ACL id: `digest:<user>:<base64 of the SHA-1 of "user:password">`.
_DIGEST_ID = re.compile(r"digest:[^:,\s]+:[A-Za-z0-9+/]{27}=")


class ZooKeeperSettings(BaseSettings):
    model_config = SettingsConfigDict(use_attribute_docstrings=True, populate_by_name=True)

    zk_hosts: str = "localhost:2181"
    """ZooKeeper connection string; a chroot suffix (`host:2181/prefix`) is allowed."""
    zk_session_timeout: float = Field(10.0, ge=2.0, le=60.0)
    """ZooKeeper session timeout in seconds (2..60): also the leader's lease, so a crashed
    leader is replaced within it plus one server tick. The server clamps it to 2..20 ticks."""
    zk_username: str | None = Field(None, pattern=r"^[^:\s]+$")
    """Digest user the daemon logs in to ZooKeeper as. Set: every node it creates gets the
    ACL "ALL for this identity, READ for `RECONCILER_ZK_READERS`" (existing nodes keep theirs
    unless `RECONCILER_ZK_ALIGN_ACLS`), so a client without this login, such as the old
    orchestrator after a rollback, cannot write them until `reconciler zk-acl open`. Every
    daemon of a fleet uses the same identity. Unset: no login, nodes open to every client (a
    warning at start)."""
    zk_password: SecretStr | None = None
    """Password of `RECONCILER_ZK_USERNAME`. Secret."""
    zk_readers: str = Field("anyone", validate_default=True)
    """Who may read the assignment: `anyone`, or the workers' ZooKeeper identities,
    comma-separated, as digest ACL ids `digest:<user>:<base64 SHA-1 of user:password>` (what
    kazoo's `make_digest_acl_credential` or ZooKeeper's `DigestAuthenticationProvider`
    print). Readers may also create and delete nodes under each instance's `tmp` (a worker's
    status node). Needs `RECONCILER_ZK_USERNAME`; every daemon of a fleet sets the same."""
    zk_tls_ca_file: Path | None = None
    """CA bundle (PEM) that signed ZooKeeper's certificate. Set: the daemon speaks TLS to
    `RECONCILER_ZK_HOSTS`, which then names the servers' `secureClientPort`, and checks
    their host name against the certificate."""
    zk_tls_cert_file: Path | None = None
    """Client certificate (PEM) for ZooKeeper's TLS port, with `RECONCILER_ZK_TLS_KEY_FILE`:
    ZooKeeper asks for one unless the server sets `ssl.clientAuth=none`."""
    zk_tls_key_file: Path | None = None
    """Private key (PEM) of `RECONCILER_ZK_TLS_CERT_FILE`."""
    zk_tls_insecure_hostname: bool = False
    """Accept a ZooKeeper certificate issued for another host name (the chain is still
    verified against the CA). For test set-ups only."""
    zk_password_file: Path | None = None
    """File holding `RECONCILER_ZK_PASSWORD`."""
    zk_align_acls: bool = False
    """The leader also gives the daemon's ACL to the nodes that already exist under
    `/iota/orchestration` (the old orchestrator's, all open), once per leadership term, so
    that no client without the login can rewrite them. Needs `RECONCILER_ZK_USERNAME`. Off:
    existing nodes keep their ACLs. Either way, rolling back to the old orchestrator takes
    `reconciler zk-acl open` first (docs/migration.md "Rolling back")."""

    @model_validator(mode="after")
    def _align_needs_login(self) -> ZooKeeperSettings:
        if self.zk_align_acls and self.zk_username is None:
            raise ValueError(
                "RECONCILER_ZK_ALIGN_ACLS needs RECONCILER_ZK_USERNAME: without a login the "
                "daemon's nodes are open, there is no ACL to align them to"
            )
        return self

    @field_validator("zk_readers")
    @classmethod
    def _reader_ids(cls, value: str) -> str:
        items = [part.strip() for part in value.split(",") if part.strip()]
        if items == ["anyone"]:
            return "anyone"
        if not items:
            raise ValueError("is empty: `anyone`, or the workers' digest ids")
        for item in items:
            if not _DIGEST_ID.fullmatch(item):
                raise ValueError(
                    f"{item!r} is neither `anyone` nor a digest ACL id like "
                    "digest:worker:<base64 SHA-1, 28 characters>"
                )
        return ",".join(items)
