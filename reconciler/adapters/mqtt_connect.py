"""Where and how to connect to MQTT: the broker list of `IOTA_MQTT_BROKERS`, and which
protocol version to speak (5, 3.1.1, or auto: 5 first, 3.1.1 once the broker refuses it).
Pure decisions; the listener (notify.py) owns the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from paho.mqtt.enums import MQTTProtocolVersion

log = logging.getLogger("reconciler.adapters.notify")

DEFAULT_PORT = 1883

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

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_broker_urls(urls: str) -> list[Broker]:
    """`IOTA_MQTT_BROKERS`: "mqtt://host:port", comma-separated; scheme and port optional.

    TLS (`mqtts://`) is refused rather than silently spoken in plain text.
    """
    brokers: list[Broker] = []
    for raw in urls.split(","):
        item = raw.strip()
        if not item:
            continue
        parts = urlsplit(item if "://" in item else f"mqtt://{item}")
        if parts.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported MQTT broker scheme {parts.scheme!r} in {item!r}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as e:  # port out of range or not a number
            raise ValueError(f"bad MQTT broker port in {item!r}: {e}") from None
        if not parts.hostname:
            raise ValueError(f"no host in MQTT broker URL {item!r}")
        brokers.append(Broker(parts.hostname, port))
    if not brokers:
        raise ValueError("no MQTT broker given")
    return brokers
