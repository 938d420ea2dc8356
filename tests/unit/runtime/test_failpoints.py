"""Failpoints (reconciler/runtime/failpoints.py): a file names what a point does; the loop's
`pass` point wedges a pass, which liveness then reports; off when no file is named."""

from __future__ import annotations

import threading
from pathlib import Path

from reconciler.runtime.failpoints import ENV, Failpoints, from_env, parse
from reconciler.runtime.loop import Wake, WakeReason
from tests.support.fakes import FakeClock
from tests.support.polling import eventually
from tests.unit.runtime.test_loop import make_daemon, running


def test_a_file_arms_disarms_and_names_the_lines_it_cannot_read() -> None:
    armed, bad = parse("# chaos\npass=sleep(60)\nother = sleep( 1.5 )\nother=off\npass=wedge\n")
    assert armed == {"pass": 60.0}
    assert bad == ["pass=wedge"]


def test_failpoints_are_off_unless_the_environment_names_a_file(tmp_path: Path) -> None:
    assert from_env({}) is None
    points = from_env({ENV: str(tmp_path / "failpoints")})
    assert points is not None and points.path == tmp_path / "failpoints"


def test_a_point_is_read_again_when_its_file_changes(tmp_path: Path) -> None:
    slept: list[float] = []
    path = tmp_path / "failpoints"
    points = Failpoints(path, sleep=slept.append)
    points.hit("pass")  # no file: nothing armed
    path.write_text("pass=sleep(2)\n")
    points.hit("pass")
    points.hit("other")
    path.write_text("pass=off\n")
    points.hit("pass")
    path.unlink()
    points.hit("pass")
    assert slept == [2.0]


def test_a_pass_wedged_by_its_failpoint_makes_the_loop_look_wedged(tmp_path: Path) -> None:
    clock = FakeClock()
    daemon, _, _ = make_daemon(tmp_path, clock)
    inside, release, slept = threading.Event(), threading.Event(), []

    def wedge(seconds: float) -> None:
        slept.append(seconds)
        inside.set()
        release.wait(10)

    path = tmp_path / "failpoints"
    daemon.failpoints = Failpoints(path, sleep=wedge)
    with running(daemon):
        path.write_text("pass=sleep(600)\n")
        passes = daemon.passes
        daemon.wake(Wake(WakeReason.TICK))
        assert inside.wait(10)
        assert daemon.liveness.problem() is None  # within budget + grace
        clock.advance(daemon.liveness.limit + 1)
        assert "wedged" in (daemon.liveness.problem() or "")
        path.write_text("pass=off\n")
        release.set()
        eventually(lambda: daemon.passes > passes, timeout=10, what="the pass after the wedge")
        eventually(lambda: daemon.liveness.problem() is None, timeout=10, what="liveness back")
    assert slept == [600.0]
