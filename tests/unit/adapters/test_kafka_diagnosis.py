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


# What kafka-python 3 logs when the TLS handshake fails (seen against the rig's broker):
# a broker certificate from a CA we do not trust, and the broker's alert when it wants a
# client certificate we did not show.
UNTRUSTED = (
    "Connection failed: KafkaConnectionError: Handshake failed: [SSL: "
    "CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
    "certificate (_ssl.c:1006)"
)
NO_CLIENT_CERT = (
    "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: [SSL: "
    "SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580) (backoff 6.17 secs)"
)
SASL_SSL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "reconciler", "pw")


def _logged(handler: AuthFailures, message: str) -> None:
    handler.handle(logging.LogRecord("kafka.net.manager", logging.ERROR, "", 0, message, (), None))


def test_an_untrusted_broker_certificate_is_named_not_taken_for_a_refused_login(
    fresh: AuthFailures, listening: str
) -> None:
    _logged(fresh, UNTRUSTED)
    why = bootstrap_failure(listening, SASL_SSL)
    assert why == (
        "TLS handshake failed, the broker's certificate is not trusted (certificate verify "
        "failed: unable to get local issuer certificate): check RECONCILER_KAFKA_CA_FILE (the "
        "CA that signed the broker's certificate) and the host name in RECONCILER_KAFKA_BOOTSTRAP"
    )
    assert "authentication failed" not in why
    assert bootstrap_failure(listening, KafkaSecurity("SSL")) == why


def test_a_client_certificate_the_broker_refuses_names_the_cert_settings(
    fresh: AuthFailures, listening: str
) -> None:
    _logged(fresh, NO_CLIENT_CERT)
    assert bootstrap_failure(listening, KafkaSecurity("SSL")) == (
        "TLS handshake failed, the broker refused our client certificate (sslv3 alert bad "
        "certificate): check RECONCILER_KAFKA_CERT_FILE and RECONCILER_KAFKA_KEY_FILE"
    )


def test_the_later_of_a_tls_and_a_sasl_failure_explains_the_bootstrap(
    fresh: AuthFailures, listening: str
) -> None:
    _logged(fresh, UNTRUSTED)
    _logged(fresh, REFUSED)  # a handshake that worked since, then a refused login
    assert bootstrap_failure(listening, SASL_SSL).startswith("authentication failed (")
    _logged(fresh, UNTRUSTED)
    assert bootstrap_failure(listening, SASL_SSL).startswith("TLS handshake failed, the broker's")
    # Without TLS in the settings a handshake error cannot be ours.
    assert bootstrap_failure(listening, SASL).startswith("authentication failed (")
    assert fresh.recent_tls(seconds=0) is None  # only a recent failure explains this one
