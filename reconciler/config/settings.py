"""Where the daemon's servers are and how to reach them: environment and .env, never policy.yaml.

Every variable has the prefix RECONCILER_ (e.g. RECONCILER_ZK_HOSTS), except the two the old
deployment already set: IOTA_MQTT_BROKERS and IOTA_AUTH_TOKEN, which are still honoured.
Secrets are SecretStr: they print as '**********'.

Each field's docstring is its description: the settings table of docs/configuration.md is
generated from them (`make docs`, reconciler/cli/settings_doc.py), and a test fails when one is
missing or stale.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from reconciler.config.secret_files import SECRET_FILES, read_secret, variable
from reconciler.domain.redaction import mask_userinfo

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# A ZooKeeper digest ACL id: `digest:<user>:<base64 of the SHA-1 of "user:password">`.
_DIGEST_ID = re.compile(r"digest:[^:,\s]+:[A-Za-z0-9+/]{27}=")


class Settings(BaseSettings):
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

    zk_hosts: str = "localhost:2181"
    """ZooKeeper connection string; a chroot suffix (`host:2181/prefix`) is allowed."""
    zk_session_timeout: float = Field(10.0, ge=2.0, le=60.0)
    """ZooKeeper session timeout in seconds (2..60): also the leader's lease, so a crashed
    leader is replaced within it plus one server tick. The server clamps it to 2..20 ticks."""
    # Who the daemon is to ZooKeeper, who may read what it writes, and TLS (SECURITY.md).
    zk_username: str | None = Field(None, pattern=r"^[^:\s]+$")
    """Digest user the daemon logs in to ZooKeeper as. Set: every node it creates gets the
    ACL "ALL for this identity, READ for `RECONCILER_ZK_READERS`", and the leader brings the
    ACLs of existing nodes under `/iota/orchestration` in line. Every daemon of a fleet uses
    the same identity. Unset: no login, nodes open to every client (a warning at start)."""
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
    budget`). Keep it well under systemd's `WatchdogSec` (60 s): `/healthz` and the watchdog
    ping stop when a pass runs longer than the budget plus a grace (docs/failures.md
    "Liveness and the pass budget")."""

    mqtt_brokers: str = Field(
        "mqtt://localhost:1883",
        validation_alias=AliasChoices("RECONCILER_MQTT_BROKERS", "IOTA_MQTT_BROKERS"),
    )
    """MQTT brokers for the `cm/notify` row events, comma-separated. Empty: no row events (the
    tick still converges)."""
    mqtt_client_id: str | None = None
    """MQTT client id (persistent session); default `reconciler-<identity>`. Two daemons must
    never share one: the broker kicks the older session off."""
    mqtt_reconnect_seconds: float = 10.0
    """Seconds between attempts to reconnect to MQTT."""
    kafka_bootstrap: str = "localhost:9092"
    """Kafka bootstrap servers for the workers' heartbeats. Empty: no heartbeat checks."""
    kafka_group: str | None = None
    """Kafka consumer group prefix for heartbeats (`<group>-<Resource>`); default
    `reconciler-<identity>`: never the old orchestrator's `iota-orchestrator-<Resource>`, and
    each daemon (leader and standbys) reads every partition in a group of its own."""

    leader_election: bool = True
    """Leader election on ZooKeeper (`<root>/_leader`): only the leader writes, the others are
    warm standbys. `false`: this daemon always acts (run exactly one)."""
    election_group: str = Field("", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$|^$", max_length=40)
    """Daemons of one group elect one leader among them (`<root>/_leader-<group>`); groups whose
    policies name different kinds lead side by side. Empty: the one group."""
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """This daemon's name in the election, the logs and the metrics; default
    `<hostname>-<pid>`."""

    kube_in_cluster: bool = Field(
        False, validation_alias=AliasChoices("RECONCILER_KUBE_IN_CLUSTER", "RECONCILER_RUN_IN_POD")
    )
    """Reach the apiserver with the pod's service account (the old `runInPod`). Else URL +
    token, else a kubeconfig file."""
    kube_url: str | None = None
    """The apiserver's URL, used with the bearer token below."""
    kube_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RECONCILER_KUBE_TOKEN", "IOTA_AUTH_TOKEN")
    )
    """Bearer token for the apiserver URL. Secret."""
    kube_ca_file: str | None = None
    """CA bundle that signed the apiserver URL's certificate."""
    kube_verify_ssl: bool = True
    """Verify the apiserver URL's TLS certificate."""
    kubeconfig: str | None = Field(
        None, validation_alias=AliasChoices("RECONCILER_KUBECONFIG", "KUBECONFIG")
    )
    """kubeconfig file, used when neither of the above is set; default `~/.kube/config`."""

    api_host: str = "127.0.0.1"
    """Address of the REST API, `/metrics` and the health probes."""
    api_port: int = Field(8080, ge=0, le=65535)
    """Port of the REST API, `/metrics` and the health probes; 0: any free port."""
    api_token: SecretStr | None = None
    """When set, POST endpoints require `Authorization: Bearer <token>`. Secret. Required when
    `RECONCILER_API_HOST` is not a loopback address (unless a trusted proxy header is set);
    an empty token is refused, never taken as "off"."""
    api_max_body_bytes: int = Field(64 * 1024, gt=0)
    """A request body larger than this is refused with 413 before it is read."""
    api_max_concurrent: int = Field(16, gt=0)
    """Requests served at once; one more gets 503 + Retry-After at once. `/healthz`, `/readyz`
    and `/metrics` are never counted or refused."""
    api_tls_cert_file: Path | None = None
    """PEM certificate (chain) for HTTPS on the REST API; with `RECONCILER_API_TLS_KEY_FILE`."""
    api_tls_key_file: Path | None = None
    """PEM private key of that certificate."""
    # Browsers and authenticating proxies in front of the REST API; the MQTT version.
    api_cors_origins: str = Field("", validate_default=True)
    """Web origins (exact `scheme://host[:port]`, comma-separated) whose pages may call the REST
    API with credentials, as the old admin UI does (`credentials: 'include'`): CORS preflights
    are answered for them, with `Access-Control-Allow-Credentials: true`. `*` is refused. Empty:
    no CORS headers, same-origin calls only."""
    api_trusted_header: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    """Header an authenticating reverse proxy sets to the signed-in user (`X-Forwarded-User`,
    oauth2-proxy's `X-Auth-Request-User`): a POST that carries it from one of
    `RECONCILER_API_TRUSTED_PROXIES` is authorised without the bearer token. When set, POST
    needs the header or the token even if `RECONCILER_API_TOKEN` is unset."""
    api_trusted_proxies: str = Field("", validate_default=True)
    """Addresses or networks of those proxies, comma-separated (`10.0.0.5,10.1.0.0/16`): the
    header is believed only on a connection from one of them (its TCP peer; `X-Forwarded-For`
    is never read), and ignored from anyone else. Required with the header."""
    mqtt_protocol: Literal["auto", "5", "3.1.1"] = "auto"
    """MQTT version for `cm/notify`: `5`, `3.1.1`, or `auto`: MQTT 5, and 3.1.1 from then on
    once a broker refuses 5 (or, before 5 ever worked, ends the connection unanswered). Both
    keep a persistent session."""
    mqtt_max_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    """A `cm/notify` message larger than this is refused unread (counted in
    `reconciler_events_rejected_total{reason="too-large"}`)."""
    mqtt_max_ids: int = Field(50_000, gt=0)
    """A `bc`/`bd` naming more ids than this is refused (`reason="too-many-ids"`)."""
    # Credentials and TLS of MQTT and Kafka, secrets from files (SECURITY.md).
    mqtt_username: str | None = None
    """User name the daemon logs in to the MQTT brokers with (Mosquitto's `password_file`);
    wins over a `user:password@` in `RECONCILER_MQTT_BROKERS` (also used, and masked in logs).
    Unset: the URL's, else anonymous."""
    mqtt_password: SecretStr | None = None
    """Password of `RECONCILER_MQTT_USERNAME`. Secret."""
    mqtt_ca_file: str | None = None
    """CA bundle (PEM) that signed the brokers' certificates, for `mqtts://` brokers (TLS, port
    8883 by default; all brokers of the list then use TLS). Unset: the system's CAs."""
    mqtt_cert_file: str | None = None
    """Client certificate (PEM) for `mqtts://` brokers that ask for one
    (`require_certificate true`), with `RECONCILER_MQTT_KEY_FILE`."""
    mqtt_key_file: str | None = None
    """Private key (PEM) of `RECONCILER_MQTT_CERT_FILE`."""
    mqtt_tls_insecure_hostname: bool = False
    """Accept a broker certificate issued for another host name (the chain is still verified
    against the CA). For test set-ups only."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How the heartbeat consumers reach Kafka: `PLAINTEXT`, `SSL` (TLS), `SASL_PLAINTEXT` (a
    login without TLS: trusted networks only) or `SASL_SSL` (a login over TLS)."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    """SASL mechanism of the `SASL_*` protocols: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`."""
    kafka_sasl_username: str | None = None
    """SASL user name; required by, and only allowed with, the `SASL_*` protocols."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password of `RECONCILER_KAFKA_SASL_USERNAME`. Secret."""
    kafka_ca_file: str | None = None
    """CA bundle (PEM) that signed the Kafka brokers' certificates (`SSL`, `SASL_SSL`). Unset:
    the system's CAs."""
    kafka_cert_file: str | None = None
    """Client certificate (PEM) for brokers that require one (`ssl.client.auth=required`),
    with `RECONCILER_KAFKA_KEY_FILE`."""
    kafka_key_file: str | None = None
    """Private key (PEM) of `RECONCILER_KAFKA_CERT_FILE`."""
    kafka_tls_insecure_hostname: bool = False
    """Accept a Kafka broker certificate issued for another host name (the chain is still
    verified). For test set-ups only."""
    database_url_file: Path | None = None
    """File holding `RECONCILER_DATABASE_URL` (a mounted Kubernetes Secret, a systemd
    credential): read once at start, one trailing newline stripped. Setting both is an error;
    so it is for every `_FILE` below."""
    kube_token_file: Path | None = None
    """File holding `RECONCILER_KUBE_TOKEN`."""
    api_token_file: Path | None = None
    """File holding `RECONCILER_API_TOKEN`."""
    mqtt_password_file: Path | None = None
    """File holding `RECONCILER_MQTT_PASSWORD`."""
    kafka_sasl_password_file: Path | None = None
    """File holding `RECONCILER_KAFKA_SASL_PASSWORD`."""
    zk_password_file: Path | None = None
    """File holding `RECONCILER_ZK_PASSWORD`."""

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

    @field_validator("api_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty: set a token, or unset the variable (open only on loopback)")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.api_tls_cert_file is None) != (self.api_tls_key_file is None):
            raise ValueError(
                "RECONCILER_API_TLS_CERT_FILE and RECONCILER_API_TLS_KEY_FILE go together"
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

    @field_validator("api_cors_origins")
    @classmethod
    def _exact_origins(cls, value: str) -> str:
        origins = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            if item == "*" or item == "null":
                raise ValueError(f"{item!r} is not allowed with credentials: list each origin")
            origin = item.rstrip("/").lower()
            if not re.fullmatch(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?", origin):
                raise ValueError(f"{item!r} is not an origin like https://admin.example.com:8443")
            origins.append(origin)
        return ",".join(origins)

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str, info: ValidationInfo) -> str:
        networks = [part.strip() for part in value.split(",") if part.strip()]
        for item in networks:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        if info.data.get("api_trusted_header") and not networks:
            raise ValueError("RECONCILER_API_TRUSTED_HEADER needs the proxies that may set it")
        return ",".join(networks)

    @property
    def cors_origins(self) -> list[str]:
        return [o for o in self.api_cors_origins.split(",") if o]

    @property
    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        items = (p for p in self.api_trusted_proxies.split(",") if p)
        return [ipaddress.ip_network(p, strict=False) for p in items]

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
