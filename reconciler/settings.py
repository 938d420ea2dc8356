"""Where the daemon's servers are and how to reach them: environment and .env, never policy.yaml.

Every variable has the prefix RECONCILER_ (e.g. RECONCILER_ZK_HOSTS), except the two the old
deployment already set: IOTA_MQTT_BROKERS and IOTA_AUTH_TOKEN, which are still honoured.
Secrets are SecretStr: they print as '**********'.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECONCILER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    policy_path: Path = Path("config/policy.yaml")

    # ZooKeeper connection string; a chroot suffix ("host:2181/prefix") is allowed.
    zk_hosts: str = "localhost:2181"
    # ZooKeeper session timeout, seconds: also the leader's lease (a crashed leader is
    # replaced within it plus one server tick). The server clamps it to 2..20 ticks.
    zk_session_timeout: float = Field(10.0, ge=2.0, le=60.0)
    # SQLAlchemy URL of the inventory: PostgreSQL in production
    # ("postgresql+psycopg://user@host/db"), SQLite as the embedded default.
    database_url: SecretStr = SecretStr("sqlite:///iota.db")

    # Empty disables the source: no row events (the tick still converges) / no heartbeat checks.
    mqtt_brokers: str = Field(
        "mqtt://localhost:1883",
        validation_alias=AliasChoices("RECONCILER_MQTT_BROKERS", "IOTA_MQTT_BROKERS"),
    )
    # MQTT client id; default "reconciler-<identity>": two daemons must never share one (the
    # broker kicks the older session off).
    mqtt_client_id: str | None = None
    mqtt_reconnect_seconds: float = 10.0
    kafka_bootstrap: str = "localhost:9092"
    # Kafka consumer group prefix for heartbeats ("<group>-<Resource>"); default
    # "reconciler-<identity>": never the old orchestrator's `iota-orchestrator-<Resource>`, and
    # each daemon (leader and standbys) reads every partition in a group of its own.
    kafka_group: str | None = None

    # Leader election on ZooKeeper (<root>/_leader): only the leader writes; the others are
    # warm standbys. Identity: this daemon's name in the election, logs and metrics.
    leader_election: bool = True
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    # Kubernetes: in-cluster service account (the old `runInPod`), else URL + token, else a
    # kubeconfig file (KUBECONFIG or ~/.kube/config when none is named).
    kube_in_cluster: bool = Field(
        False, validation_alias=AliasChoices("RECONCILER_KUBE_IN_CLUSTER", "RECONCILER_RUN_IN_POD")
    )
    kube_url: str | None = None
    kube_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RECONCILER_KUBE_TOKEN", "IOTA_AUTH_TOKEN")
    )
    kube_ca_file: str | None = None
    kube_verify_ssl: bool = True
    kubeconfig: str | None = Field(
        None, validation_alias=AliasChoices("RECONCILER_KUBECONFIG", "KUBECONFIG")
    )

    # The REST API, /metrics and the health probes.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # When set, POST endpoints require "Authorization: Bearer <token>".
    api_token: SecretStr | None = None

    log_format: Literal["auto", "json", "console"] = "auto"  # auto: console on a TTY, else JSON
    log_level: str = "info"

    @property
    def mqtt_client(self) -> str:
        return self.mqtt_client_id or f"reconciler-{self.identity}"

    @property
    def heartbeat_group(self) -> str:
        return self.kafka_group or f"reconciler-{self.identity}"

    def redacted(self) -> dict[str, object]:
        """The settings as an operator may see them: secrets masked."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = _mask_url(value.get_secret_value()) if name == "database_url" else "***"
            out[name] = str(value) if isinstance(value, Path) else value
        return out


def _mask_url(url: str) -> str:
    """Hide a password in a database URL but keep the host and database readable."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", url)
