"""Where and how to connect to MQTT: the broker list of `IOTA_MQTT_BROKERS`, which protocol
version to speak (5, 3.1.1, or auto: 5 first, 3.1.1 once the broker refuses it), and the
credentials and TLS to connect with (`MqttSecurity`). Pure decisions; the listener
(notify.py) owns the client.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from paho.mqtt.enums import MQTTProtocolVersion

from reconciler.domain.redaction import mask_userinfo

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.notify")

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
_PLAIN_SCHEMES = ("mqtt", "tcp")
_TLS_SCHEMES = ("mqtts", "ssl")

Protocol = Literal["auto", "5", "3.1.1"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
_PAHO = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
# CONNACK "Unsupported protocol version": MQTT 5's 0x84, and what paho makes of a 3.1.1
# broker's return code 1 ("unacceptable protocol level") to a v5 CONNECT.
UNSUPPORTED_PROTOCOL_VERSION = 132


class ProtocolChoice:
    """Which MQTT version to speak next, from the setting and what brokers answered.

    Pure (no client): the listener reports each CONNACK and each connection that ended before
    one; a True answer means "switch to `speaking` now" (see the module docstring)."""

    def __init__(self, mode: str) -> None:
        if mode not in PROTOCOLS:
            raise ValueError(f"MQTT protocol {mode!r}: expected one of {', '.join(PROTOCOLS)}")
        self.mode = mode
        self.speaking = "3.1.1" if mode == "3.1.1" else "5"
        self.v5_worked = False
        self.fallback_reason: str | None = None

    def connack(self, reason_code: int) -> bool:
        """A CONNACK arrived with this (MQTT 5) reason code; True: fall back to 3.1.1."""
        if reason_code == 0:
            self.v5_worked = self.v5_worked or self.speaking == "5"
            return False
        if reason_code == UNSUPPORTED_PROTOCOL_VERSION:
            return self._fall_back("the broker refused MQTT 5 (unsupported protocol version)")
        return False

    def ended_without_connack(self) -> bool:
        """A connection ended before any CONNACK; True: fall back to 3.1.1."""
        if self.v5_worked:
            return False  # MQTT 5 worked before: this is an outage, not the protocol
        return self._fall_back("the broker closed the MQTT 5 connection without a CONNACK")

    def _fall_back(self, why: str) -> bool:
        if self.mode != "auto" or self.speaking != "5":
            return False
        self.speaking = "3.1.1"
        self.fallback_reason = why
        return True


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    # From a `user:password@` in the URL (the old deployment's way); the password never prints.
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_broker_urls(urls: str) -> list[Broker]:
    """`IOTA_MQTT_BROKERS`: "mqtt://host:port", comma-separated; scheme and port optional.

    `mqtts://` (or `ssl://`) is TLS, port 8883 by default; every broker of the list must then
    use it (one client, one TLS set-up). `user:password@` in a URL is used to log in (unless
    RECONCILER_MQTT_USERNAME is set); errors and logs show it masked.
    """
    brokers: list[Broker] = []
    for raw in urls.split(","):
        item = raw.strip()
        if not item:
            continue
        shown = mask_userinfo(item if "://" in item else f"mqtt://{item}")
        parts = urlsplit(item if "://" in item else f"mqtt://{item}")
        if parts.scheme not in _PLAIN_SCHEMES + _TLS_SCHEMES:
            raise ValueError(f"unsupported MQTT broker scheme {parts.scheme!r} in {shown!r}")
        tls = parts.scheme in _TLS_SCHEMES
        try:
            port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
        except ValueError as e:  # port out of range or not a number
            raise ValueError(f"bad MQTT broker port in {shown!r}: {e}") from None
        if not parts.hostname:
            raise ValueError(f"no host in MQTT broker URL {shown!r}")
        brokers.append(Broker(parts.hostname, port, tls, parts.username, parts.password))
    if not brokers:
        raise ValueError("no MQTT broker given")
    if len({b.tls for b in brokers}) > 1:
        raise ValueError("MQTT brokers mix mqtt:// and mqtts://: use TLS for all or none")
    return brokers


@dataclass(frozen=True, slots=True)
class MqttSecurity:
    """Credentials and TLS for the brokers (RECONCILER_MQTT_USERNAME, _PASSWORD, _CA_FILE,
    _CERT_FILE, _KEY_FILE, _TLS_INSECURE_HOSTNAME). The password never prints."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_hostname: bool = False

    def check(self, brokers: list[Broker]) -> None:
        """ValueError for settings that would be silently ignored with these brokers."""
        tls_set = [
            n
            for n, v in (
                ("CA_FILE", self.ca_file),
                ("CERT_FILE", self.cert_file),
                ("KEY_FILE", self.key_file),
            )
            if v
        ]
        if self.insecure_hostname:
            tls_set.append("TLS_INSECURE_HOSTNAME")
        if tls_set and not brokers[0].tls:
            names = ", ".join(f"RECONCILER_MQTT_{n}" for n in tls_set)
            raise ValueError(f"{names} set but the MQTT brokers are not TLS: write mqtts://host")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("RECONCILER_MQTT_CERT_FILE and RECONCILER_MQTT_KEY_FILE go together")
        if self.password is not None and not self.username:
            raise ValueError("RECONCILER_MQTT_PASSWORD set without RECONCILER_MQTT_USERNAME")

    def login(self, broker: Broker) -> tuple[str, str | None] | None:
        """(username, password) to log in to `broker` with, or None (anonymous)."""
        if self.username:
            return self.username, self.password
        if broker.username:
            return broker.username, broker.password
        return None

    def tls_context(self) -> ssl.SSLContext:
        """Verify the broker's chain (the CA file, else the system's) and, unless told
        otherwise, its host name; present the client certificate when one is set."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as e:  # a missing or unreadable file, a bad PEM
            raise ValueError(f"MQTT TLS: cannot load the CA or client certificate: {e}") from None
        if self.insecure_hostname:
            context.check_hostname = False
        return context


# CONNACK "Bad user name or password" (0x86) and "Not authorized" (0x87; 3.1.1's codes 4 and 5
# arrive as these).
LOGIN_HINT = {
    0x86: ": check RECONCILER_MQTT_USERNAME and RECONCILER_MQTT_PASSWORD",
    0x87: ": check RECONCILER_MQTT_USERNAME and RECONCILER_MQTT_PASSWORD (and the broker's ACL)",
}

# MQTT 5 "Session taken over" (0x8E); a 3.1.1 broker just closes the socket, which paho
# reports as "Unspecified error" (0x80): both are what a second client with our id causes.
_TAKEN_OVER = {0x8E: "session taken over", 0x80: "the broker closed the connection"}


def disconnect_hint(code: int | None, client_id: str) -> str:
    """Spell out the likely cause of a disconnect an operator would otherwise puzzle over."""
    what = _TAKEN_OVER.get(code or -1)
    if what is None:
        return ""
    return (
        f": {what}; is another client using the id {client_id!r}? Each daemon needs its own "
        "(RECONCILER_MQTT_CLIENT_ID; the default derives it from RECONCILER_IDENTITY)"
    )
