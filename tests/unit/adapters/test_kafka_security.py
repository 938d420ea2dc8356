"""Kafka SASL and TLS settings as KafkaConsumer options (adapters/kafka_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.kafka.config import KafkaSecurity
from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor


def test_plaintext_adds_nothing_but_the_protocol() -> None:
    assert KafkaSecurity().consumer_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_passes_login_and_tls_files(mechanism: str, tmp_path: Path) -> None:
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    security = KafkaSecurity(
        "SASL_SSL",
        mechanism,
        "daemon",
        "pw",
        str(tmp_path / "ca.pem"),
        str(tmp_path / "c.pem"),
        str(tmp_path / "k.pem"),
    )
    security.check()
    assert security.consumer_options() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "daemon",
        "sasl_plain_password": "pw",
        "ssl_check_hostname": True,
        "ssl_cafile": str(tmp_path / "ca.pem"),
        "ssl_certfile": str(tmp_path / "c.pem"),
        "ssl_keyfile": str(tmp_path / "k.pem"),
    }
    assert "pw" not in repr(security).replace("SASL", "")


def test_insecure_hostname_turns_only_the_name_check_off() -> None:
    options = KafkaSecurity("SSL", insecure_hostname=True).consumer_options()
    assert options == {"security_protocol": "SSL", "ssl_check_hostname": False}


@pytest.mark.parametrize(
    ("security", "message"),
    [
        (KafkaSecurity("SASL_PLAINTEXT", username="u"), "needs"),
        (KafkaSecurity("PLAINTEXT", username="u", password="p"), "would not send"),
        (KafkaSecurity("SASL_PLAINTEXT", username="u", password="p", ca_file="/ca"), "not TLS"),
        (KafkaSecurity("SSL", ca_file="/nonexistent/ca.pem"), "no such file"),
        (KafkaSecurity("SSL", cert_file="/c.pem"), "go together"),
        (KafkaSecurity("SASL_SSL", "GSSAPI", "u", "p"), "SASL_MECHANISM"),
    ],
)
def test_settings_that_would_be_ignored_or_cannot_work_are_refused(
    security: KafkaSecurity, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        security.check()


def test_the_monitor_refuses_inconsistent_settings_before_connecting() -> None:
    with pytest.raises(ValueError, match="would not send"):
        HeartbeatMonitor(
            "127.0.0.1:1", ["Thing"], security=KafkaSecurity(username="u", password="p")
        )
