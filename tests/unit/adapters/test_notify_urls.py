"""IOTA_MQTT_BROKERS parsing for the MQTT listener (no broker needed)."""

from __future__ import annotations

import pytest

from reconciler.adapters.mqtt.connect import Broker, parse_broker_urls
from reconciler.adapters.mqtt.notify import NotifyListener


def test_default_form() -> None:
    assert parse_broker_urls("mqtt://localhost:1883") == [Broker("localhost", 1883)]


def test_port_and_scheme_are_optional() -> None:
    assert parse_broker_urls("mqtt://broker") == [Broker("broker", 1883)]
    assert parse_broker_urls("broker:1999") == [Broker("broker", 1999)]
    assert parse_broker_urls("tcp://10.0.0.1:1884") == [Broker("10.0.0.1", 1884)]


def test_comma_separated_list_keeps_order() -> None:
    assert parse_broker_urls(" mqtt://a:1, mqtt://b:2 ,, mqtt://[::1]:3") == [
        Broker("a", 1),
        Broker("b", 2),
        Broker("::1", 3),
    ]


@pytest.mark.parametrize(
    "urls",
    ["", " , ", "mqtt://a,mqtts://b", "ws://a", "mqtt://a:99999", "mqtt://a:x", "mqtt://:1883"],
)
def test_bad_urls_are_refused(urls: str) -> None:
    with pytest.raises(ValueError):
        parse_broker_urls(urls)


def test_listener_needs_a_fixed_client_id() -> None:
    with pytest.raises(ValueError, match="client_id"):
        NotifyListener("mqtt://a", lambda e: None, client_id="")


def test_mqtts_is_tls_on_port_8883_by_default() -> None:
    assert parse_broker_urls("mqtts://a, ssl://b:9999") == [
        Broker("a", 8883, tls=True),
        Broker("b", 9999, tls=True),
    ]


def test_a_password_in_the_url_is_used_but_never_shown() -> None:
    (broker,) = parse_broker_urls("mqtt://iota:s3cret-pw@a:1883")
    assert (broker.username, broker.password) == ("iota", "s3cret-pw")
    assert "s3cret-pw" not in repr(broker) + str(broker)
    with pytest.raises(ValueError) as refused:
        parse_broker_urls("mqtt://iota:s3cret-pw@a:99999")
    assert "s3cret-pw" not in str(refused.value)
    assert "iota:***@a" in str(refused.value)
