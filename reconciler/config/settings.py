"""Where the daemon's servers are and how to reach them: environment and .env, never policy.yaml.

Every variable has the prefix RECONCILER_ (e.g. RECONCILER_ZK_HOSTS), except the two the old
deployment already set: IOTA_MQTT_BROKERS and IOTA_AUTH_TOKEN, which are still honoured.
Secrets are SecretStr: they print as '**********'.

`Settings` is one flat set of variables assembled from parts by concern (ZooKeeper, the event
sources, the apiserver, the REST API, each in its own module of reconciler/config/) and the
daemon's own fields here. Checks that span parts, and those that need the secrets read from
their files first, are here too.

Each field's docstring is its description: the settings table of docs/configuration.md is
generated from them (`make docs`, reconciler/cli/settings_doc.py), and a test fails when one is
missing or stale.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from reconciler.config.api import ApiSettings
from reconciler.config.event_sources import EventSourceSettings
from reconciler.config.kube import KubeSettings
from reconciler.config.secret_files import SECRET_FILES, read_secret, variable
from reconciler.config.zookeeper import ZooKeeperSettings
from reconciler.domain.redaction import mask_userinfo

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class Settings(ApiSettings, KubeSettings, EventSourceSettings, ZooKeeperSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECONCILER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    policy_path: Path = Path("config/policy.yaml")
    """policy.yaml to follow; its template paths are relative to it."""
    database_url: SecretStr = SecretStr("sqlite:///iota.db")
    """SQLAlchemy URL of the inventory: `postgresql+psycopg://user:pw@host/db` in production,
    SQLite as the embedded default. Secret: the password is masked in logs."""
    database_timeout: float = Field(10.0, ge=1.0, le=600.0)
    """Seconds a database read may take (1..600): PostgreSQL cancels a slower statement
    (`statement_timeout`, a lock wait included), and a server that does not answer at all
    (frozen, a black-holed network) is dropped 1 s later; the pass then goes on blind to rows
    instead of hanging. Connecting has its own 3 s limit."""
    full_read_seconds: float = Field(300.0, ge=0.0, le=86400.0)
    """Seconds between full re-reads (0..86400). In between, a pass trusts its caches: the
    assignment as ZooKeeper watches keep it, the rows while the table's fingerprint (count
    and hash, computed in PostgreSQL) is unchanged, and the pod watch. 0: every tick reads
    everything again, at a cost in proportion to the ids on every pass."""
    pass_budget_seconds: float = Field(30.0, gt=0, allow_inf_nan=False)
    """Seconds one pass may spend (> 0): past them it applies no further operation and
    leaves the rest for the next pass (`reconciler_pass_overruns_total`, log `pass over
    budget`). The kinds share it: every read is bounded by what is left, and a kind not
    reached is blind for that pass and goes first in the next. Keep it well under systemd's
    `WatchdogSec` (60 s): `/healthz` and the watchdog ping stop when a pass runs longer than
    the budget plus a grace (docs/failures.md "Liveness and the pass budget")."""
    database_url_file: Path | None = None
    """File holding `RECONCILER_DATABASE_URL` (a mounted Kubernetes Secret, a systemd
    credential): read once at start, one trailing newline stripped. Setting both is an error;
    so it is for every `_FILE` setting."""

    leader_election: bool = True
    """Leader election on ZooKeeper (`<root>/_leader`): only the leader writes, the others are
    warm standbys. `false`: this daemon always acts (run exactly one)."""
    election_group: str = Field("", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$|^$", max_length=40)
    """Daemons of one group elect one leader among them (`<root>/_leader-<group>`); groups whose
    policies name different kinds lead side by side. Empty: the one group."""
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """This daemon's name in the election, the logs and the metrics; default
    `<hostname>-<pid>`."""
    observe_only: bool = False
    """Observe only: read everything as a leader would, plan every pass, and write nothing (no
    ZooKeeper node, not even an election node; no pod; no Kubernetes Event; no ACL change).
    What a leader would apply now is on `GET /v1/plan` and in
    `reconciler_pending_operations`. For the first step of a cutover, beside the old
    orchestrator or a leader (docs/migration.md); `reconciler run --observe-only` sets it."""

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        for field, file_field in SECRET_FILES.items():
            path = getattr(self, file_field)
            if path is None:
                continue
            if field in self.model_fields_set:
                raise ValueError(
                    f"{variable(field)} and {variable(file_field)} are both set: keep one"
                )
            setattr(self, field, read_secret(path, file_field))
        return self

    @model_validator(mode="after")
    def _zk_access(self) -> Settings:
        """Runs after `_secrets_from_files`, so a password from its file counts."""
        if (self.zk_username is None) != (self.zk_password is None):
            raise ValueError("RECONCILER_ZK_USERNAME and RECONCILER_ZK_PASSWORD go together")
        if self.zk_password is not None and not self.zk_password.get_secret_value():
            raise ValueError("RECONCILER_ZK_PASSWORD is empty")
        if self.zk_readers != "anyone" and self.zk_username is None:
            raise ValueError(
                "RECONCILER_ZK_READERS needs RECONCILER_ZK_USERNAME: the daemon's identity "
                "owns the nodes the readers may read"
            )
        if (self.zk_tls_cert_file is None) != (self.zk_tls_key_file is None):
            raise ValueError(
                "RECONCILER_ZK_TLS_CERT_FILE and RECONCILER_ZK_TLS_KEY_FILE go together"
            )
        tls_only = [
            name
            for name, value in (
                ("RECONCILER_ZK_TLS_CERT_FILE", self.zk_tls_cert_file),
                ("RECONCILER_ZK_TLS_INSECURE_HOSTNAME", self.zk_tls_insecure_hostname),
            )
            if value
        ]
        if tls_only and self.zk_tls_ca_file is None:
            raise ValueError(
                f"{', '.join(tls_only)} set without RECONCILER_ZK_TLS_CA_FILE, which turns "
                "TLS to ZooKeeper on"
            )
        return self

    log_format: Literal["auto", "json", "console"] = "auto"
    """`json`, `console`, or `auto`: console on a terminal, else JSON."""
    log_level: str = "info"
    """`debug`, `info`, `warning`, `error` or `critical`."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @property
    def mqtt_client(self) -> str:
        return self.mqtt_client_id or f"reconciler-{self.identity}"

    @property
    def heartbeat_group(self) -> str:
        return self.kafka_group or f"reconciler-{self.identity}"

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        """repr() and str(): SecretStr masks itself; a broker URL's password is masked too."""
        for name, value in super().__repr_args__():
            yield name, mask_userinfo(value) if name == "mqtt_brokers" else value

    def redacted(self) -> dict[str, object]:
        """The settings as an operator may see them: secrets masked."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = _mask_url(value.get_secret_value()) if name == "database_url" else "***"
            elif name == "mqtt_brokers":
                value = mask_userinfo(value)
            out[name] = str(value) if isinstance(value, Path) else value
        return out


def _mask_url(url: str) -> str:
    """Hide a password in a database URL but keep the host and database readable."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", url)
