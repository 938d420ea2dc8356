"""How the heartbeat consumers authenticate to Kafka and protect the connection: the
settings (RECONCILER_KAFKA_SECURITY_PROTOCOL, _SASL_*, _CA_FILE, _CERT_FILE, _KEY_FILE,
_TLS_INSECURE_HOSTNAME) as kafka-python's KafkaConsumer options. Pure; checked when the
daemon starts, so a credential that would be ignored (a SASL user with PLAINTEXT) or a
missing one fails the start with one line instead of being silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "PLAIN"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_hostname: bool = False

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def check(self) -> None:
        """ValueError naming the settings when they are inconsistent."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"RECONCILER_KAFKA_SECURITY_PROTOCOL={self.protocol!r}: expected "
                f"one of {', '.join(PROTOCOLS)}"
            )
        if self.mechanism not in MECHANISMS:
            raise ValueError(
                f"RECONCILER_KAFKA_SASL_MECHANISM={self.mechanism!r}: expected "
                f"one of {', '.join(MECHANISMS)}"
            )
        if self.sasl and not (self.username and self.password):
            raise ValueError(
                f"RECONCILER_KAFKA_SECURITY_PROTOCOL={self.protocol} needs "
                "RECONCILER_KAFKA_SASL_USERNAME and RECONCILER_KAFKA_SASL_PASSWORD"
            )
        if not self.sasl and (self.username or self.password):
            raise ValueError(
                "RECONCILER_KAFKA_SASL_USERNAME/PASSWORD set but "
                f"RECONCILER_KAFKA_SECURITY_PROTOCOL={self.protocol} would not send "
                "them: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls_set = [
            n
            for n, v in (
                ("CA_FILE", self.ca_file),
                ("CERT_FILE", self.cert_file),
                ("KEY_FILE", self.key_file),
                ("TLS_INSECURE_HOSTNAME", self.insecure_hostname),
            )
            if v
        ]
        if tls_set and not self.tls:
            names = ", ".join(f"RECONCILER_KAFKA_{n}" for n in tls_set)
            raise ValueError(
                f"{names} set but RECONCILER_KAFKA_SECURITY_PROTOCOL="
                f"{self.protocol} is not TLS: use SSL or SASL_SSL"
            )
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("RECONCILER_KAFKA_CERT_FILE and RECONCILER_KAFKA_KEY_FILE go together")
        for name, path in (
            ("CA_FILE", self.ca_file),
            ("CERT_FILE", self.cert_file),
            ("KEY_FILE", self.key_file),
        ):
            if path and not Path(path).is_file():
                raise ValueError(f"RECONCILER_KAFKA_{name}={path!r}: no such file")

    def consumer_options(self) -> dict[str, object]:
        """KafkaConsumer keyword arguments (after `check()`)."""
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.sasl:
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.tls:
            options["ssl_check_hostname"] = not self.insecure_hostname
            if self.ca_file:
                options["ssl_cafile"] = self.ca_file
            if self.cert_file:
                options.update(ssl_certfile=self.cert_file, ssl_keyfile=self.key_file)
        return options
