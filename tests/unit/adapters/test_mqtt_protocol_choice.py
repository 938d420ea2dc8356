"""When the MQTT listener falls back from MQTT 5 to 3.1.1 (notify.ProtocolChoice), fed with
the reason codes paho itself decodes from the CONNACK bytes brokers send."""

from __future__ import annotations

import re

import pytest
from paho.mqtt._packet import decode_connack
from paho.mqtt.enums import MQTTProtocolVersion

from reconciler.adapters.mqtt.connect import ProtocolChoice

CONNACK = 0x20  # fixed header byte of a CONNACK


def reason_for_v5_client(variable_header: bytes) -> int:
    """The reason code paho hands our on_connect for these CONNACK bytes, as an MQTT 5
    client (the bytes after the fixed header and its length)."""
    packet = decode_connack(CONNACK, variable_header, MQTTProtocolVersion.MQTTv5)
    return int(packet.reason.value)


# A 3.1.1 broker answers a v5 CONNECT with the 3.1.1 form, return code 1 ("unacceptable
# protocol level", MQTT-3.1.2-2); an MQTT 5 broker that will not speak 5 answers 0x84.
REFUSED_3_1_1 = b"\x00\x01"
REFUSED_5 = b"\x00\x84\x00"
ACCEPTED_5 = b"\x00\x00\x00"
NOT_AUTHORIZED_5 = b"\x00\x87\x00"
CLIENT_ID_INVALID_5 = b"\x00\x85\x00"


@pytest.mark.parametrize("connack", [REFUSED_3_1_1, REFUSED_5])
def test_auto_falls_back_when_the_broker_refuses_the_protocol_version(connack: bytes) -> None:
    choice = ProtocolChoice("auto")
    assert choice.speaking == "5"
    assert choice.connack(reason_for_v5_client(connack)) is True
    assert choice.speaking == "3.1.1"
    assert "unsupported protocol version" in (choice.fallback_reason or "")
    # Once on 3.1.1, nothing turns it back or falls further.
    assert choice.connack(reason_for_v5_client(connack)) is False
    assert choice.ended_without_connack() is False
    assert choice.speaking == "3.1.1"


@pytest.mark.parametrize("connack", [NOT_AUTHORIZED_5, CLIENT_ID_INVALID_5])
def test_other_refusals_are_not_about_the_protocol(connack: bytes) -> None:
    choice = ProtocolChoice("auto")
    assert choice.connack(reason_for_v5_client(connack)) is False
    assert choice.speaking == "5"


def test_forced_5_never_falls_back() -> None:
    choice = ProtocolChoice("5")
    assert choice.connack(reason_for_v5_client(REFUSED_3_1_1)) is False
    assert choice.ended_without_connack() is False
    assert choice.speaking == "5"


def test_forced_3_1_1_speaks_3_1_1_from_the_start() -> None:
    choice = ProtocolChoice("3.1.1")
    assert choice.speaking == "3.1.1"
    assert choice.ended_without_connack() is False


def test_a_connection_ended_unanswered_falls_back_only_before_5_ever_worked() -> None:
    fresh = ProtocolChoice("auto")
    assert fresh.ended_without_connack() is True  # a broker that cannot parse a v5 CONNECT
    assert fresh.speaking == "3.1.1"

    proven = ProtocolChoice("auto")
    assert proven.connack(reason_for_v5_client(ACCEPTED_5)) is False
    assert proven.ended_without_connack() is False  # an outage, not the protocol
    assert proven.speaking == "5"


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("auto, 5, 3.1.1")):
        ProtocolChoice("4")


def test_a_disconnect_by_a_client_id_clash_is_spelled_out() -> None:
    from reconciler.adapters.mqtt.connect import disconnect_hint as _disconnect_hint

    assert "another client using the id 'reconciler-a'" in _disconnect_hint(0x8E, "reconciler-a")
    assert "RECONCILER_MQTT_CLIENT_ID" in _disconnect_hint(0x80, "reconciler-a")
    assert _disconnect_hint(0x8B, "reconciler-a") == ""  # server shutting down: says itself
    assert _disconnect_hint(None, "reconciler-a") == ""
