"""Why a heartbeat consumer could not bootstrap, in words an operator can act on.

kafka-python's consumer says "Unable to bootstrap" (KafkaTimeoutError) whatever the cause:
nobody listening, a broker that refused our SASL login, a listener that wants another
protocol. The broker's refusal ("Authentication failed: Invalid username or password")
reaches only kafka-python's own log records, and not on every attempt: when the broker
closes the connection right behind its answer, the client may see the close first. Two
clues, then:

- `AUTH_FAILURES`, a logging handler on the `kafka` logger that remembers the last SASL
  authentication failure kafka-python logged. It writes nothing itself: what is shown is
  still up to the daemon's own handler.
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
_CHECK_LOGIN = "check RECONCILER_KAFKA_SASL_USERNAME and RECONCILER_KAFKA_SASL_PASSWORD"


class AuthFailures(logging.Handler):
    """Remembers the last authentication failure in kafka-python's log records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock_last = threading.Lock()
        self._last: tuple[float, str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        match = _AUTH_FAILED.search(record.getMessage())
        if match is None:
            return
        # The broker's words, once: kafka-python nests the error's name in its own text.
        reason = match.group(1).split("AuthenticationFailedError: ")[-1].strip()[:200]
        with self._lock_last:
            self._last = (time.monotonic(), reason or "refused")

    def recent(self, seconds: float = RECENT_SECONDS) -> str | None:
        """The broker's reason, if an authentication failed within `seconds`."""
        with self._lock_last:
            last = self._last
        if last is None or time.monotonic() - last[0] > seconds:
            return None
        return last[1]


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


def _listens(address: str, timeout: float) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
