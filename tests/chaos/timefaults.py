"""Time faults on the fleet's daemon: its wall clock stepped forward or back (clock.py:
libfaketime in the daemon's process alone), and a pass wedged past budget + grace (a failpoint,
reconciler/runtime/failpoints.py) with the world as the supervisor that restarts it.
`ALL_FAULTS` is netfaults.py's list and these: the chaos run's whole list, drawn by family
(`FAMILIES`) so that the many network faults do not crowd out the few of time.

A step is left in place (NTP's steps are for good; the next clock fault steps from there).
Its window is loose, with the heartbeat tail of `kafka_down`: scale-downs are fine, but no pod
may be deleted whose instance stays (a worker in its grace or a healthy one recreated as
silent because its start or its last heartbeat looked older or younger than it was).
"""

from __future__ import annotations

import random
import signal
import ssl
import time

import httpx

from tests.chaos.faults import FAULTS, Fault, Injected
from tests.chaos.netfaults import ALL_FAULTS as NET_AND_PROCESS
from tests.chaos.netfaults import NETWORK_FAULTS
from tests.chaos.world import HEARTBEAT_TIMEOUT, TICK_SECONDS, World

STEP_S = (300, 900)  # how far a step goes, either way
CLOCK_HOLD_S = 4 * TICK_SECONDS  # passes on the stepped clock before recovery is judged
CERT_MARGIN_S = 60  # a step back never takes the daemon before its apiserver certificate
WEDGE_S = 3600.0  # the wedged pass's sleep: far past budget + grace, ended by the SIGKILL
WEDGE_WAIT_S = 180.0  # for the hit, then for /healthz 503 (budget 30 s + grace 30 s)


def _cert_age(world: World) -> float:
    """Seconds since the rig apiserver's certificate became valid: the daemon checks it on
    its own (stepped) clock, so a step back past its notBefore would be a TLS failure of the
    rig's making (a real certificate is older than any step)."""
    decoded = ssl._ssl._test_decode_cert(str(world.s.kube.ca_file))  # type: ignore[attr-defined]
    return time.time() - ssl.cert_time_to_seconds(decoded["notBefore"])


def _clock_step(sign: int) -> Fault:
    way = "forward" if sign > 0 else "back"

    def fault(world: World, rng: random.Random) -> Injected:
        name = f"wall clock stepped {way}"
        if not world.clock.available:
            return Injected(name, time.time(), detail=f" skipped: {NO_LIBFAKETIME}")
        seconds = sign * rng.randint(*STEP_S)
        note = ""
        if sign < 0:
            floor = -int(_cert_age(world) - CERT_MARGIN_S)
            if world.clock.offset + seconds < floor:
                note = f" (of {seconds:+d}: the apiserver certificate is young)"
                seconds = min(0, floor - world.clock.offset)
        window = world.blind(
            name, ["Thing", "Rule"], strict=False, tail=2 * HEARTBEAT_TIMEOUT + TICK_SECONDS
        )
        offset = world.clock.step(seconds)
        try:
            time.sleep(CLOCK_HOLD_S)
        finally:
            window.end = time.time()
        return Injected(name, window.end, detail=f" step={seconds:+d}s{note} offset={offset:+d}s")

    return fault


def _healthz(world: World) -> tuple[int, str]:
    assert world.daemon is not None
    try:
        r = httpx.get(f"http://127.0.0.1:{world.daemon.port}/healthz", timeout=2)
    except httpx.HTTPError as exc:
        return 0, repr(exc)
    return r.status_code, r.text


def wedged_pass(world: World, rng: random.Random) -> Injected:
    """A pass sleeps on the loop thread (failpoint `pass`) until the world, polling /healthz
    as Kubernetes' liveness probe would, sees 503 "wedged", SIGKILLs the daemon and starts it
    again. From the hit to the kill the window is strict: a wedged daemon deletes nothing.
    The result names the seconds from the hit to the 503 (budget + grace) and to the kill.
    The rows hold still meanwhile: a minute of churn removes more ids than the safety valve's
    50, which the restarted daemon rightly holds for 3 passes (the valve's own test, not this).
    """
    daemon = world.daemon
    assert daemon is not None
    seen: list[str] = []
    world.churn.running.clear()
    armed = time.time()
    world.failpoints.write_text(f"pass=sleep({WEDGE_S:g})\n")
    try:
        hits: list[dict[str, object]] = []
        deadline = time.time() + WEDGE_WAIT_S
        while not hits and time.time() < deadline:
            time.sleep(0.1)
            hits = [e for e in daemon.events(after=armed) if e.get("event") == "failpoint hit"]
        wedged = time.time()  # the hit is logged just before the sleep; read within 0.1 s
        window = world.blind("wedged pass", ["Thing", "Rule"])
        code, text = _healthz(world)
        while not (code == 503 and "wedged" in text) and time.time() < deadline:
            time.sleep(0.25)
            code, text = _healthz(world)
        to_503 = time.time() - wedged
        if not hits:
            seen.append(f"no pass hit the failpoint in {WEDGE_WAIT_S:g}s")
        elif code != 503:
            seen.append(f"/healthz {code} {text[:80]!r}, not 503, {to_503:.0f}s into a wedge")
    finally:
        world.failpoints.write_text("")  # the restarted daemon must not wedge again
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    window.end = killed = time.time()
    world.stop_daemon()
    world.start_daemon()
    return Injected(
        "wedged pass",
        time.time(),
        violations=seen,
        detail=f" to_503_s={to_503:.1f} killed_s={killed - wedged:.1f}",
    )


NO_LIBFAKETIME = "libfaketime not found (Debian package libfaketime, `python -m rig provision`)"
TIME_FAULTS: dict[str, Fault] = {
    "clock_forward": _clock_step(+1),
    "clock_back": _clock_step(-1),
    "wedged_pass": wedged_pass,
}
NEEDS_LIBFAKETIME = {"clock_forward", "clock_back"}
ALL_FAULTS: dict[str, Fault] = {**NET_AND_PROCESS, **TIME_FAULTS}
# Kills are drawn apart (run.py's KILL_SHARE); the rest by family, then within the family.
FAMILIES: dict[str, list[str]] = {
    "process": sorted(set(FAULTS) - {"sigkill_mid_apply"}),
    "network": sorted(NETWORK_FAULTS),
    "time": sorted(TIME_FAULTS),
}


def unavailable(world: World) -> dict[str, str]:
    """Faults this machine cannot inject, and why."""
    return {} if world.clock.available else dict.fromkeys(NEEDS_LIBFAKETIME, NO_LIBFAKETIME)
