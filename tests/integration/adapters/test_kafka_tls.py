"""Kafka with SCRAM-SHA-512 over TLS and with TLS alone (issue 27, SECURITY.md "Kafka"): the
rig's broker with a SASL_SSL listener whose SCRAM credentials were stored at format time and
an SSL listener that requires a client certificate (`Kafka(scram_users=..., tls=True)`, PEM
stores from the rig's throw-away CA). The heartbeat monitor, built from the daemon's own
settings, reads heartbeats through each; a wrong password, a CA that did not sign the
broker's certificate, or no client certificate is refused, and the log line says which.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor
from reconciler.config.settings import Settings
from reconciler.wiring import kafka_security
from rig.pki import Pki
from rig.servers import Kafka
from tests.integration.adapters.test_kafka_sasl import Beating
from tests.support.polling import eventually, seconds_until
from tests.support.serving import serve

PASSWORD = f"scram-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrong-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def tls_kafka() -> Iterator[Kafka]:
    logging.getLogger("kafka").setLevel(logging.ERROR)  # as the daemon sets it (telemetry/logs)
    yield from serve(Kafka(scram_users={"reconciler": PASSWORD}, tls=True))


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="reconciler.adapters.heartbeats")
    return caplog


def pki_of(kafka: Kafka) -> Pki:
    assert kafka.pki is not None
    return kafka.pki


def monitor(bootstrap: str | None, topic: str, **settings: object) -> HeartbeatMonitor:
    """The monitor as `reconciler run` builds it from these settings."""
    assert bootstrap is not None
    s = Settings(_env_file=None, kafka_bootstrap=bootstrap, **settings)  # type: ignore[arg-type]
    return HeartbeatMonitor(
        bootstrap,
        ["Thing"],
        topic=topic,
        group=f"t-{uuid.uuid4().hex[:8]}",
        security=kafka_security(s),
    )


def scram(kafka: Kafka, password: str = PASSWORD, ca: Path | None = None) -> dict[str, object]:
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "reconciler",
        "kafka_sasl_password": password,
        "kafka_ca_file": str(ca or pki_of(kafka).ca),
    }


def tls(kafka: Kafka, ca: Path | None = None, client_cert: bool = True) -> dict[str, object]:
    pki = pki_of(kafka)
    certificate = {"kafka_cert_file": str(pki.client_cert), "kafka_key_file": str(pki.client_key)}
    return {
        "kafka_security_protocol": "SSL",
        "kafka_ca_file": str(ca or pki.ca),
        **(certificate if client_cert else {}),
    }


def reads_heartbeats(kafka: Kafka, bootstrap: str | None, **settings: object) -> float:
    """Seconds until the monitor with `settings` on `bootstrap` saw a heartbeat that a worker
    sent (on the plain listener); it then also says it is connected."""
    topic = f"HeartBeat-{uuid.uuid4().hex[:8]}"
    m = monitor(bootstrap, topic, **settings)
    beats = Beating(kafka, topic)
    m.start()
    try:
        took = seconds_until(
            lambda: 0 in m.snapshot("Thing").last_seen,
            timeout=60,
            interval=0.1,
            what=f"a heartbeat through {bootstrap}",
        )
        eventually(lambda: m.snapshot("Thing").connected, timeout=10, what="connected")
        return took
    finally:
        beats.close()
        m.stop()


def refusal_logged(
    caplog: pytest.LogCaptureFixture, bootstrap: str | None, expect: str, **settings: object
) -> str:
    """The monitor's "no bootstrap" line that says `expect`, with `settings`; it never reads
    anything. kafka-python's own record of the cause can come after the first attempt was
    logged (then without it): the monitor logs again when the cause it can name changes."""
    topic = f"HeartBeat-{uuid.uuid4().hex[:8]}"
    m = monitor(bootstrap, topic, **settings)
    m.start()
    try:

        def said() -> str:
            lines = [
                r.getMessage() for r in caplog.records if "no bootstrap from" in r.getMessage()
            ]
            saying = [line for line in lines if expect in line]
            assert saying, f"no refusal saying {expect!r} logged yet: {lines}"
            return saying[-1]

        line = eventually(said, timeout=30, what="the refusal logged")
        snap = m.snapshot("Thing")
        assert snap.last_seen == {} and not snap.connected
        return line
    finally:
        m.stop()


def test_the_daemon_reads_heartbeats_over_sasl_ssl_with_its_scram_sha_512_login(
    tls_kafka: Kafka,
) -> None:
    took = reads_heartbeats(tls_kafka, tls_kafka.scram_bootstrap, **scram(tls_kafka))
    print(f"first heartbeat over SASL_SSL/SCRAM-SHA-512 after {took:.1f} s")


def test_the_daemon_reads_heartbeats_over_tls_with_its_client_certificate(
    tls_kafka: Kafka,
) -> None:
    took = reads_heartbeats(tls_kafka, tls_kafka.tls_bootstrap, **tls(tls_kafka))
    print(f"first heartbeat over SSL with a client certificate after {took:.1f} s")


def test_a_wrong_scram_password_is_logged_as_authentication_failed(
    tls_kafka: Kafka, refusals: pytest.LogCaptureFixture
) -> None:
    line = refusal_logged(
        refusals,
        tls_kafka.scram_bootstrap,
        "authentication failed (",
        **scram(tls_kafka, password=WRONG_PASSWORD),
    )
    assert "authentication failed (" in line, line  # the broker's or the client's words follow
    assert "RECONCILER_KAFKA_SASL_PASSWORD" in line, line
    assert "no broker answers" not in line and "TLS" not in line, line
    assert WRONG_PASSWORD not in refusals.text and PASSWORD not in refusals.text


UNTRUSTED = "the broker's certificate is not trusted (certificate verify failed"


@pytest.mark.parametrize("listener", ["SASL_SSL", "SSL"])
def test_a_broker_certificate_from_a_ca_the_daemon_does_not_trust_is_logged_as_such(
    tls_kafka: Kafka, refusals: pytest.LogCaptureFixture, listener: str
) -> None:
    other = pki_of(tls_kafka).other_ca
    if listener == "SASL_SSL":
        line = refusal_logged(
            refusals, tls_kafka.scram_bootstrap, UNTRUSTED, **scram(tls_kafka, ca=other)
        )
    else:
        line = refusal_logged(
            refusals, tls_kafka.tls_bootstrap, UNTRUSTED, **tls(tls_kafka, ca=other)
        )
    assert "the broker's certificate is not trusted (certificate verify failed" in line, line
    assert "RECONCILER_KAFKA_CA_FILE" in line, line
    assert "authentication failed" not in line, line  # not blamed on the login


def test_no_client_certificate_where_the_broker_requires_one_is_logged_as_such(
    tls_kafka: Kafka, refusals: pytest.LogCaptureFixture
) -> None:
    line = refusal_logged(
        refusals,
        tls_kafka.tls_bootstrap,
        "the broker refused our client certificate",
        **tls(tls_kafka, client_cert=False),
    )
    assert "the broker refused our client certificate" in line, line
    assert "RECONCILER_KAFKA_CERT_FILE" in line, line
