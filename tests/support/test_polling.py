"""tests/support/polling.py: the waiting every integration test relies on."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.polling import GiveUp, eventually, seconds_until, ticking, wait_for_line


def test_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "done"])
    assert eventually(lambda: next(answers), timeout=5, interval=0) == "done"


def test_times_out_naming_what_and_the_timeout() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.2s waiting for the moon"):
        eventually(lambda: False, timeout=0.2, interval=0.01, what="the moon")


def test_the_last_exception_is_reraised_at_the_deadline() -> None:
    calls = iter(range(1_000_000))

    def check() -> bool:
        raise KeyError(next(calls))

    started = time.monotonic()
    with pytest.raises(KeyError) as caught:
        eventually(check, timeout=0.2, interval=0.01)
    assert time.monotonic() - started >= 0.2  # retried, not raised at the first attempt
    assert caught.value.args[0] > 0
    assert any("still failing after 0.2s" in note for note in caught.value.__notes__)


def test_give_up_ends_the_wait_at_once() -> None:
    def check() -> bool:
        raise GiveUp("gone")

    started = time.monotonic()
    with pytest.raises(GiveUp, match="gone"):
        eventually(check, timeout=10)
    assert time.monotonic() - started < 1


def test_seconds_until_returns_the_wait() -> None:
    ready_at = time.monotonic() + 0.1
    took = seconds_until(lambda: time.monotonic() >= ready_at, timeout=5, interval=0.01)
    assert 0.1 <= took < 1


def test_ticking_nudges_at_most_once_per_period() -> None:
    ticks: list[float] = []
    eventually(
        ticking(lambda: len(ticks) >= 3, lambda: ticks.append(time.monotonic()), every=0.05),
        timeout=5,
        interval=0.01,
    )
    assert len(ticks) == 3
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(ticks))


def test_wait_for_line_matches_and_gives_up_when_the_writer_exits(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("starting\nready in 1.5s\n")
    assert wait_for_line(log, r"ready in [\d.]+s", 1).group(0) == "ready in 1.5s"

    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(10)
    started = time.monotonic()
    with pytest.raises(GiveUp, match=r"exited with 3; log:\nstarting"):
        wait_for_line(log, "never", 30, proc=proc)
    assert time.monotonic() - started < 1
