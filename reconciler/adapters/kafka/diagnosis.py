"""Why a heartbeat consumer could not bootstrap, in words an operator can act on.

kafka-python's consumer says "Unable to bootstrap" (KafkaTimeoutError) whatever the cause:
nobody listening, a broker that refused our SASL login, a TLS handshake that failed (a
broker certificate we do not trust, a client certificate the broker does not take), a
listener that wants another protocol. The broker's refusal ("Authentication failed: Invalid
username or password") and the handshake's error ("[SSL: CERTIFICATE_VERIFY_FAILED]")
reach only kafka-python's own log records, and not on every attempt: when the broker
closes the connection right behind its answer, the client may see the close first. Two
clues, then:

- `AUTH_FAILURES`, a logging handler on the `kafka` logger that remembers the last SASL
  authentication failure and the last TLS handshake failure kafka-python logged; the more
  recent of the two explains the failed bootstrap. It writes nothing itself: what is shown
  is still up to the daemon's own handler.
- A plain TCP connection to the bootstrap servers, which tells "nobody listens" from "a
  broker listens but would not let us in".
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time

from reconciler.adapters.kafka.config import KafkaSecurity

# An authentication failure kafka-python logged this recently explains a failed bootstrap.
RECENT_SECONDS = 30.0
_AUTH_FAILED = re.compile(r"(?:Sasl)?AuthenticationFailedError: (.*)$")
# Python's ssl errors, as kafka-python logs them: "[SSL: CERTIFICATE_VERIFY_FAILED]
# certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)".
_TLS_FAILED = re.compile(r"\[SSL: ([A-Z0-9_]+)\] ([^(]*)")
_CHECK_LOGIN = "check RECONCILER_KAFKA_SASL_USERNAME and RECONCILER_KAFKA_SASL_PASSWORD"
_CHECK_CA = (
    "check RECONCILER_KAFKA_CA_FILE (the CA that signed the broker's certificate) "
    "and the host name in RECONCILER_KAFKA_BOOTSTRAP"
)
_CHECK_CERT = "check RECONCILER_KAFKA_CERT_FILE and RECONCILER_KAFKA_KEY_FILE"


class AuthFailures(logging.Handler):
    """Remembers the last SASL authentication failure and the last TLS handshake failure
    in kafka-python's log records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock_last = threading.Lock()
        self._last: tuple[float, str] | None = None
        self._last_tls: tuple[float, str, str] | None = None  # (when, ssl code, text)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = _AUTH_FAILED.search(message)
        if match is not None:
            # The broker's words, once: kafka-python nests the error's name in its own text.
            reason = match.group(1).split("AuthenticationFailedError: ")[-1].strip()[:200]
            with self._lock_last:
                self._last = (time.monotonic(), reason or "refused")
            return
        tls = _TLS_FAILED.search(message)
        if tls is not None:
            with self._lock_last:
                self._last_tls = (time.monotonic(), tls.group(1), tls.group(2).strip(" .")[:200])

    def recent(self, seconds: float = RECENT_SECONDS) -> str | None:
        """The broker's reason, if an authentication failed within `seconds`."""
        with self._lock_last:
            last = self._last
        if last is None or time.monotonic() - last[0] > seconds:
            return None
        return last[1]

    def recent_tls(self, seconds: float = RECENT_SECONDS) -> tuple[str, str] | None:
        """(ssl error code, its text), if a TLS handshake failed within `seconds` and no
        SASL authentication failed after it (a handshake comes before any login)."""
        with self._lock_last:
            tls, sasl = self._last_tls, self._last
        if tls is None or time.monotonic() - tls[0] > seconds:
            return None
        if sasl is not None and sasl[0] > tls[0]:
            return None
        return tls[1], tls[2]


AUTH_FAILURES = AuthFailures()
_install_lock = threading.Lock()


def watch_kafka_logs() -> None:
    """Attach `AUTH_FAILURES` to the `kafka` logger (once per process)."""
    kafka_log = logging.getLogger("kafka")
    with _install_lock:
        if AUTH_FAILURES not in kafka_log.handlers:
            kafka_log.addHandler(AUTH_FAILURES)


def bootstrap_failure(bootstrap: str, security: KafkaSecurity, timeout: float = 1.0) -> str:
    """Why bootstrapping from `bootstrap` failed, naming the settings to check."""
    tls = AUTH_FAILURES.recent_tls() if security.tls else None
    if tls is not None:
        return _tls_failure(*tls)
    reason = AUTH_FAILURES.recent()
    if reason is not None and security.sasl:
        return f"authentication failed ({reason}): {_CHECK_LOGIN}"
    if not any(_listens(address, timeout) for address in bootstrap.split(",") if address.strip()):
        return "no broker answers"
    if security.sasl:
        return (
            f"a broker listens but did not accept the SASL login ({security.mechanism} as "
            f"{security.username}): authentication failed? {_CHECK_LOGIN}"
        )
    return (
        "a broker listens but the bootstrap failed: does its listener want SASL or TLS? "
        "check RECONCILER_KAFKA_SECURITY_PROTOCOL"
        + (" and RECONCILER_KAFKA_CA_FILE" if security.tls else "")
    )


def _tls_failure(code: str, text: str) -> str:
    """The handshake's error, and which side's certificate to look at."""
    if code == "CERTIFICATE_VERIFY_FAILED":
        return (
            f"TLS handshake failed, the broker's certificate is not trusted ({text}): {_CHECK_CA}"
        )
    if "CERTIFICATE" in code:  # the broker's alert: bad, unknown, required, expired...
        return (
            f"TLS handshake failed, the broker refused our client certificate ({text}): "
            f"{_CHECK_CERT}"
        )
    return (
        f"TLS handshake failed ({text}): check RECONCILER_KAFKA_SECURITY_PROTOCOL and {_CHECK_CA}"
    )


def _listens(address: str, timeout: float) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
