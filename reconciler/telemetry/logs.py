"""structlog set-up: JSON lines in production, readable console output on a terminal."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import structlog


def configure(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Client libraries (kazoo, kafka, kubernetes, urllib3) log through stdlib logging: send
    # their warnings through the same renderer so an operator reads one format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    # Our own adapters log through stdlib too; they follow the chosen level. kafka-python
    # logs several warnings a second while a broker is down (the daemon reports that
    # itself, once), and kazoo/urllib3 repeat every reconnect attempt.
    logging.getLogger("reconciler").setLevel(numeric)
    for noisy in ("kafka", "kazoo", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


log = structlog.get_logger("reconciler")


class ThrottledLog:
    """A log line that a flood must not turn into a flood of lines: the first is written at
    once, then at most one per `every_seconds` per event name, carrying `suppressed=<n>`, the
    lines dropped since the last one. (Counting is the metrics' job; this keeps the log
    readable and its volume bounded when anyone can send us garbage.)"""

    def __init__(
        self,
        logger: Any,
        every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, event: str, **fields: Any) -> bool:
        """Log `event` unless one was logged less than `every_seconds` ago; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(event)
            if last is not None and now - last < self._every:
                self._suppressed[event] = self._suppressed.get(event, 0) + 1
                return False
            self._last[event] = now
            suppressed = self._suppressed.pop(event, 0)
        if suppressed:
            fields["suppressed"] = suppressed
        self._log.warning(event, **fields)
        return True
