"""A `reconciler run` process under test, observed only from outside: its /metrics, its JSON
log and /proc. Never the daemon's own objects: the bench must not share its GIL or heap.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.world import Slot, World
from tests.support.processes import DaemonProcess

HISTOGRAM = "reconciler_reconcile_duration_seconds"
# "0 = every full pass re-reads everything from the database, ZooKeeper and the apiserver, as
# before caching": the baseline of the converged scenarios. A daemon that predates the
# setting ignores it (extra="ignore"), so ours and the baseline then measure the same code.
FULL_READ = "RECONCILER_FULL_READ_SECONDS"


@dataclass(frozen=True)
class Scrape:
    """One /metrics read: every sample by name and sorted labels."""

    at: float  # time.monotonic()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every label set that includes `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    @property
    def passes(self) -> float:
        return self.value(f"{HISTOGRAM}_count")

    @property
    def pass_seconds(self) -> float:
        return self.value(f"{HISTOGRAM}_sum")

    def ticks(self) -> float:
        return self.value("reconciler_reconciles_total", trigger="tick")

    @property
    def idle(self) -> bool:
        """No pass in flight: each pass counts its trigger when it starts and observes the
        histogram when it ends; "crashed" is counted besides (a pass's trigger, or none)."""
        started = self.total("reconciler_reconciles_total")
        started -= self.value("reconciler_reconciles_total", trigger="crashed")
        return started == self.passes

    def operations(self) -> float:
        return self.total("reconciler_operations_total")


def parse_metrics(text: str, at: float) -> Scrape:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return Scrape(at, samples)


def mean_pass_ms(before: Scrape, after: Scrape) -> float:
    """Mean pass duration between two scrapes: Δsum / Δcount of the histogram."""
    n = after.passes - before.passes
    if n <= 0:
        raise ValueError("no pass between the two scrapes")
    return (after.pass_seconds - before.pass_seconds) / n * 1000


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmHWM for pid {pid}")


class BenchDaemon:
    def __init__(self, proc: DaemonProcess) -> None:
        self.proc = proc
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{proc.port}", timeout=10)

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def scrape(self) -> Scrape:
        self._check_alive()
        r = self.http.get("/metrics")
        r.raise_for_status()
        return parse_metrics(r.text, time.monotonic())

    def try_scrape(self) -> Scrape | None:
        try:
            return self.scrape()
        except httpx.HTTPError:
            return None  # the API is not up yet

    def _check_alive(self) -> None:
        if not self.proc.alive:
            tail = "".join(self.proc.lines[-20:])
            raise RuntimeError(f"daemon {self.proc.identity} exited:\n{tail}")

    def wait_scrape(
        self, until: Callable[[Scrape], bool], timeout: float, what: str, every: float = 0.25
    ) -> Scrape:
        """Scrape every `every` s until `until(scrape)`; that scrape."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.try_scrape()
            if s is not None and until(s):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"daemon {self.proc.identity}: {what} within {timeout:g} s")
            time.sleep(every)

    def reconciled(self) -> list[dict[str, object]]:
        """The daemon's `reconciled` log events (one per pass that had operations, with the
        pass's own `seconds`)."""
        return [e for e in self.proc.events() if e.get("event") == "reconciled"]

    def errors(self) -> list[dict[str, object]]:
        return [e for e in self.proc.events() if e.get("level") in ("error", "critical")]

    def close(self) -> None:
        """SIGTERM, and wait for it (DaemonProcess.close)."""
        self.http.close()
        self.proc.close()


@contextmanager
def daemon(
    world: World,
    slot: Slot,
    db_url: str,
    policy: Path,
    *,
    mqtt: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[BenchDaemon]:
    settings = {
        "RECONCILER_MQTT_BROKERS": world.mq.url if mqtt else "",
        "RECONCILER_MQTT_CLIENT_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "RECONCILER_MQTT_RECONNECT_SECONDS": "1",
        "RECONCILER_KAFKA_BOOTSTRAP": "",
        **(env or {}),
    }
    slot.work.mkdir(parents=True, exist_ok=True)
    proc = DaemonProcess(
        slot.work,
        slot.zk_hosts,
        db_url,
        world.kube,
        policy,
        "bench",
        env=settings,
    )
    d = BenchDaemon(proc)
    try:
        yield d
    finally:
        d.close()
