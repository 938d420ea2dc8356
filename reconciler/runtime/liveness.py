"""Liveness: is the loop making progress? `/healthz` and the systemd watchdog ask this.

A process that serves HTTP and pings systemd is not necessarily a daemon that works: a pass
stuck in a call without a deadline, or a loop thread that died, leaves both answering "ok"
forever while the fleet drifts. So both follow the loop's progress instead. The loop says
when it starts working on a batch of wake-ups (`working`) and, when it goes back to waiting,
when its next pass is due (`waiting`). The loop is *wedged* when

- a pass (with what precedes it on the loop thread: policy reload, row hints checked against
  the database) has been running longer than the pass budget plus a grace, or
- no pass has started for that long after one was due (the loop thread died or never got back
  to its queue).

The grace covers the call in flight when the budget ran out (reconciler/reconcile/budget.py:
observe shares the budget among the kinds and bounds each read by what is left, and a pass
stops starting operations at its budget, but the write in flight ends on its own deadline),
so it is at least the longest single call's deadline. While wedged, `/healthz`
answers 503 with the reason and the watchdog ping is withheld, so Kubernetes' liveness probe
or systemd (`WatchdogSec`) restarts the daemon; both come back by themselves if the loop
does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reconciler.runtime import systemd
from reconciler.telemetry.logs import log

# The least grace past the pass budget before the loop counts as wedged: longer than any one
# call's deadline at the settings' defaults (the apiserver's, the database's with its
# client-side grace and connect limit, a ZooKeeper session's).
GRACE_SECONDS = 30.0


def grace_for(call_deadlines: Iterable[float]) -> float:
    """The grace: GRACE_SECONDS, or the longest single call's deadline if that is longer (a
    database timeout raised far above its default must not make a slow read look like a
    hang)."""
    return max(GRACE_SECONDS, *call_deadlines)


@dataclass
class Liveness:
    budget: float  # RECONCILER_PASS_BUDGET_SECONDS
    grace: float = GRACE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _busy_since: float | None = None  # the loop is working on a batch since then
    _due: float | None = None  # the loop next owes a pass then (None: not running passes)
    _stopped: bool = False

    @property
    def limit(self) -> float:
        return self.budget + self.grace

    def working(self) -> None:
        """The loop took a batch of wake-ups and works on it (maybe a pass)."""
        with self._lock:
            self._busy_since = self.clock()

    def waiting(self, due: float) -> None:
        """The loop is back at its queue; its next pass is due at `due` (its clock)."""
        with self._lock:
            self._busy_since, self._due = None, due

    def stopped(self) -> None:
        """The loop has ended (SIGTERM): it owes nothing, and it does not work either."""
        with self._lock:
            self._busy_since, self._due, self._stopped = None, None, True

    def problem(self) -> str | None:
        """Why the loop is not making progress, or None while it is (the decision)."""
        now = self.clock()
        with self._lock:
            if self._stopped:
                return "the reconcile loop has stopped"
            if self._busy_since is not None:
                running = now - self._busy_since
                if running > self.limit:
                    return (
                        f"a pass has been running for {running:.0f} s, past its budget of "
                        f"{self.budget:g} s plus {self.grace:g} s of grace: the loop is wedged"
                    )
            elif self._due is not None and now - self._due > self.limit:
                return (
                    f"no pass for {now - self._due:.0f} s after one was due (budget "
                    f"{self.budget:g} s plus {self.grace:g} s of grace): the loop is not running"
                )
        return None


class WatchdogPinger:
    """Pings systemd's watchdog every `interval` seconds while the loop makes progress, and
    withholds the ping (said once in the log and in the unit's STATUS) while it does not.
    Its own thread: a long but healthy pass must not starve the ping either."""

    def __init__(
        self,
        liveness: Liveness,
        interval: float,
        status: str = "reconciling",
        notify: Callable[..., bool] = systemd.notify,
    ) -> None:
        self.liveness, self.interval, self.status, self.notify = liveness, interval, status, notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._withheld = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def beat(self) -> bool:
        """One round: ping, or withhold it. True if pinged."""
        problem = self.liveness.problem()
        if problem is None:
            if self._withheld:
                self._withheld = False
                log.info("watchdog ping resumed")
                self.notify(f"STATUS={self.status}")
            self.notify("WATCHDOG=1")
            return True
        if not self._withheld:
            self._withheld = True
            log.error("watchdog ping withheld", reason=problem)
            self.notify(f"STATUS=wedged: {problem}")
        return False

    def _run(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self.interval):
                return
