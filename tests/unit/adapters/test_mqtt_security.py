"""MQTT credentials and TLS settings: which login goes to which broker, and settings that
would be silently ignored are refused (no broker needed)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from reconciler.adapters.mqtt.connect import Broker, MqttSecurity
from reconciler.adapters.mqtt.notify import NotifyListener
from reconciler.domain.redaction import mask_userinfo


def test_the_settings_login_wins_over_the_urls() -> None:
    broker = Broker("a", 1883, username="url-user", password="url-pw")
    assert MqttSecurity("daemon", "pw").login(broker) == ("daemon", "pw")
    assert MqttSecurity().login(broker) == ("url-user", "url-pw")
    assert MqttSecurity().login(Broker("a", 1883)) is None


def test_the_password_never_shows_in_repr() -> None:
    assert "hunter2" not in repr(MqttSecurity("daemon", "hunter2"))


@pytest.mark.parametrize(
    ("security", "names"),
    [
        (MqttSecurity(ca_file="/ca.pem"), "RECONCILER_MQTT_CA_FILE"),
        (MqttSecurity(insecure_hostname=True), "RECONCILER_MQTT_TLS_INSECURE_HOSTNAME"),
    ],
)
def test_tls_settings_with_a_plain_broker_are_refused(security: MqttSecurity, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        security.check([Broker("a", 1883)])


def test_a_password_without_a_user_and_a_cert_without_its_key_are_refused() -> None:
    with pytest.raises(ValueError, match="USERNAME"):
        MqttSecurity(password="pw").check([Broker("a", 1883)])
    with pytest.raises(ValueError, match="KEY_FILE"):
        MqttSecurity(cert_file="/c.pem").check([Broker("a", 8883, tls=True)])


def test_the_tls_context_verifies_chain_and_host_unless_told() -> None:
    strict = MqttSecurity().tls_context()
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    loose = MqttSecurity(insecure_hostname=True).tls_context()
    assert loose.verify_mode == ssl.CERT_REQUIRED and not loose.check_hostname


def test_a_missing_ca_file_fails_the_listener_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load"):
        NotifyListener(
            "mqtts://a",
            lambda e: None,
            client_id="x",
            security=MqttSecurity(ca_file=str(tmp_path / "missing.pem")),
        )


def test_mask_userinfo_masks_every_url_of_a_list() -> None:
    masked = mask_userinfo("mqtt://u:p1@a:1, mqtts://v:p2@b, mqtt://c")
    assert masked == "mqtt://u:***@a:1, mqtts://v:***@b, mqtt://c"
