"""What happens to one `cm/notify` message: parsed (reconciler/domain/events.py), then handed
to exactly one callback: a row event, a message that changes nothing, one refused for its
size, or a malformed one.

Runs on paho's network thread. Nothing raised by parsing or by a callback may leave `handle`:
an exception in a paho callback ends the network thread, silently stopping all notifications.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from reconciler.domain.events import (
    MAX_IDS,
    MAX_MESSAGE_BYTES,
    MalformedMessage,
    OversizedMessage,
    RowEvent,
    ignored_reason,
    parse_notification,
)

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.notify")


class NotificationHandler:
    def __init__(
        self,
        topic: str,
        on_event: Callable[[RowEvent], None],
        *,
        on_malformed: Callable[[bytes, str], None] | None = None,
        on_ignored: Callable[[str], None] | None = None,
        on_rejected: Callable[[str, str], None] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_ids: int = MAX_IDS,
    ) -> None:
        self.topic = topic
        self._on_event = on_event
        self._on_malformed = on_malformed
        # Called with events.ignored_reason() for well-formed messages that change nothing.
        self._on_ignored = on_ignored
        # Called with (OversizedMessage.label, reason) for messages refused for their size.
        self._on_rejected = on_rejected
        self._limits = {"max_bytes": max_message_bytes, "max_ids": max_ids}

    def handle(self, payload: bytes) -> None:
        """One message's payload: parsed, then handed to exactly one callback."""
        try:
            event = parse_notification(payload, **self._limits)
        except OversizedMessage as e:
            self.report_rejected(e.label, e.reason)
            return
        except MalformedMessage as e:
            self.report_malformed(payload, e.reason)
            return
        except Exception as e:  # a parser bug must not end the network thread either
            log.exception("mqtt: parser failed on a message")
            self.report_malformed(payload, f"parser error: {e!r}")
            return
        if event is None:
            if self._on_ignored is not None:
                try:
                    self._on_ignored(ignored_reason(payload))
                except Exception:
                    log.exception("mqtt: on_ignored failed")
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception(
                "mqtt: on_event failed for %s (+%d -%d)",
                event.table,
                len(event.added),
                len(event.removed),
            )

    def report_rejected(self, label: str, reason: str) -> None:
        if self._on_rejected is None:
            log.warning("mqtt: message on %s rejected (%s): %s", self.topic, label, reason)
            return
        try:
            self._on_rejected(label, reason)
        except Exception:
            log.exception("mqtt: on_rejected failed")

    def report_malformed(self, payload: bytes, reason: str) -> None:
        if self._on_malformed is None:
            log.warning(
                "mqtt: malformed message on %s: %s; sample %r", self.topic, reason, payload[:200]
            )
            return
        try:
            self._on_malformed(payload, reason)
        except Exception:
            log.exception("mqtt: on_malformed failed")
