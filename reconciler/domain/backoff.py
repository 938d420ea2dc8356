"""Capped exponential backoff: the daemon's one retry mechanism.

Used for a failed operation (retried on a later pass), for the loop's early re-pass after a
blind or failed pass, and for reconnecting a client at start. Time is passed in (monotonic
seconds), so the arithmetic is testable without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """`base`, 2·base, 4·base ... up to `cap` seconds after consecutive failures."""

    base: float = 1.0
    cap: float = 300.0
    failures: int = 0
    not_before: float = 0.0

    def failed(self, now: float) -> float:
        """Count a failure at `now`; returns the delay before the next attempt."""
        self.failures += 1
        delay = min(self.base * 2 ** (self.failures - 1), self.cap)
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    @property
    def delay(self) -> float:
        """The delay the last failure set (0 after a success)."""
        return 0.0 if self.failures == 0 else min(self.base * 2 ** (self.failures - 1), self.cap)
