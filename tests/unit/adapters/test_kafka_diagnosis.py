"""Why a heartbeat consumer could not bootstrap (issue 13): "authentication failed" when
kafka-python logged the broker's refusal or a broker listens but refused the SASL login,
never the old, misleading "no broker answers" while a broker does answer."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from reconciler.adapters.kafka import diagnosis as kafka_diagnosis
from reconciler.adapters.kafka.config import KafkaSecurity
from reconciler.adapters.kafka.diagnosis import AuthFailures, bootstrap_failure

SASL = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "reconciler", "pw")
# What kafka-python 3 logs when the broker answers a bad login (kafka.net.connection).
REFUSED = (
    "<KafkaConnection node_id=bootstrap-0 broker_version=(4, 3) (disconnected)>: Connection "
    "lost: [Error 58] SaslAuthenticationFailedError: SaslAuthenticationFailedError: "
    "Authentication failed: Invalid username or password"
)


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthFailures]:
    handler = AuthFailures()
    monkeypatch.setattr(kafka_diagnosis, "AUTH_FAILURES", handler)
    yield handler


@pytest.fixture
def listening() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_nobody_listening_is_no_broker_answers() -> None:
    assert bootstrap_failure(closed_port(), SASL, timeout=0.5) == "no broker answers"
    assert bootstrap_failure("nohost.invalid:9092,:x", KafkaSecurity()) == "no broker answers"


def test_the_brokers_refusal_in_kafka_pythons_log_is_named(
    fresh: AuthFailures, listening: str
) -> None:
    record = logging.LogRecord("kafka.net.connection", logging.ERROR, "", 0, REFUSED, (), None)
    fresh.handle(record)
    assert bootstrap_failure(listening, SASL) == (
        "authentication failed (Authentication failed: Invalid username or password): check "
        "RECONCILER_KAFKA_SASL_USERNAME and RECONCILER_KAFKA_SASL_PASSWORD"
    )
    assert fresh.recent(seconds=0) is None  # only a recent refusal explains this failure


def test_a_listening_broker_that_did_not_let_us_in_is_not_no_broker(listening: str) -> None:
    why = bootstrap_failure(f"{closed_port()}, {listening}", SASL)
    assert why.startswith("a broker listens but did not accept the SASL login (PLAIN as ")
    assert "authentication failed?" in why
    plain = bootstrap_failure(listening, KafkaSecurity())
    assert "want SASL or TLS? check RECONCILER_KAFKA_SECURITY_PROTOCOL" in plain


def test_the_handler_is_attached_once_and_hears_kafka_pythons_records() -> None:
    kafka_diagnosis.watch_kafka_logs()
    kafka_diagnosis.watch_kafka_logs()
    kafka_log = logging.getLogger("kafka")
    try:
        assert kafka_log.handlers.count(kafka_diagnosis.AUTH_FAILURES) == 1
        logging.getLogger("kafka.net.connection").error(REFUSED)
        assert kafka_diagnosis.AUTH_FAILURES.recent() is not None
    finally:
        kafka_log.removeHandler(kafka_diagnosis.AUTH_FAILURES)
