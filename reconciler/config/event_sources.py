"""Settings of the event sources: MQTT (`cm/notify` row events) and Kafka (the workers'
heartbeats), with their credentials and TLS. One part of `reconciler.config.settings.Settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class EventSourceSettings(BaseSettings):
    model_config = SettingsConfigDict(use_attribute_docstrings=True, populate_by_name=True)

    mqtt_brokers: str = Field(
        "mqtt://localhost:1883",
        validation_alias=AliasChoices("RECONCILER_MQTT_BROKERS", "IOTA_MQTT_BROKERS"),
    )
    """MQTT brokers for the `cm/notify` row events, comma-separated. Empty: no row events (the
    tick still converges)."""
    mqtt_client_id: str | None = None
    """MQTT client id (persistent session); default `reconciler-<identity>`, which survives a
    restart or a pod replacement only when `RECONCILER_IDENTITY` is set (the chart's
    StatefulSet sets the pod name, `reconciler-0`); the default identity `<hostname>-<pid>`
    changes at every start. Two daemons must never share one: the broker kicks the older
    session off."""
    mqtt_session_expiry_seconds: int = Field(300, ge=0, le=86400)
    """Seconds (0..86400) the broker keeps the daemon's MQTT session, its subscription and the
    `cm/notify` messages queued for it, after a disconnect: enough to ride out a restart or a
    rollout, short enough that the session of a daemon removed, or restarted under another
    client id, goes. Missed messages are only hints: the tick converges from the database.
    MQTT 5's Session Expiry Interval. MQTT 3.1.1 has none: the broker keeps a session until
    its client id comes back (Mosquitto: or for `persistent_client_expiration`), so on 3.1.1 a
    client id that changes at every start (neither `RECONCILER_IDENTITY` nor
    `RECONCILER_MQTT_CLIENT_ID` set) gets a clean session."""
    mqtt_reconnect_seconds: float = 10.0
    """Seconds between attempts to reconnect to MQTT."""
    kafka_bootstrap: str = "localhost:9092"
    """Kafka bootstrap servers for the workers' heartbeats. Empty: no heartbeat checks."""
    kafka_group: str | None = None
    """Kafka consumer group prefix for heartbeats (`<group>-<Resource>`); default
    `reconciler-<identity>`: never the old orchestrator's `iota-orchestrator-<Resource>`, and
    each daemon (leader and standbys) reads every partition in a group of its own."""

    mqtt_protocol: Literal["auto", "5", "3.1.1"] = "auto"
    """MQTT version for `cm/notify`: `5`, `3.1.1`, or `auto`: MQTT 5, and 3.1.1 from then on
    once a broker refuses 5 (or, before 5 ever worked, ends the connection unanswered). Both
    keep a persistent session."""
    mqtt_max_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    """A `cm/notify` message larger than this is refused unread (counted in
    `reconciler_events_rejected_total{reason="too-large"}`)."""
    mqtt_max_ids: int = Field(50_000, gt=0)
    """A `bc`/`bd` naming more ids than this is refused (`reason="too-many-ids"`)."""
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
    mqtt_password_file: Path | None = None
    """File holding `RECONCILER_MQTT_PASSWORD`."""
    kafka_sasl_password_file: Path | None = None
    """File holding `RECONCILER_KAFKA_SASL_PASSWORD`."""

    @property
    def mqtt_client_stable(self) -> bool:
        """Whether the MQTT client id is the same after a restart: set, or derived from an
        identity that is set (the default `<hostname>-<pid>` is not)."""
        return bool({"mqtt_client_id", "identity"} & self.model_fields_set)
