"""Issue 28's scenarios end to end on the rig, at a size that takes seconds: the churn run sees
every change it published and leaves every row on exactly one instance; the failover run
times both signals (bench/churn.py, bench/ha.py)."""

from __future__ import annotations

import pytest

from bench.churn import churn_run
from bench.ha import SESSION, ha_run
from bench.world import uuids, world

pytestmark = pytest.mark.integration


def test_a_small_churn_sees_every_change_and_leaves_each_row_on_one_instance() -> None:
    with world() as w:
        db = w.database(uuids(2000), uuids(2000))
        try:
            run = churn_run(w, db, tag="t-churn", mqtt=True, seconds=3, rate=100, tick=5)
            rows = db.count("Thing") + db.count("Rule")
        finally:
            db.close()
    assert run.messages == 300
    assert run.unseen == 0
    assert len(run.c_ms) + len(run.d_ms) == 300
    assert min(run.c_ms + run.d_ms) > 0  # a change is read after its publish, never before
    assert rows <= 4000  # no kind grew past its rows: none left over capacity
    assert (run.missing, run.duplicated, run.extra) == (0, 0, 0)
    assert run.zk_writes_per_pass == 0
    assert run.cpu_pct > 0 and run.rss_mib > 0


def test_a_small_failover_times_the_kill_by_the_session_and_the_term_by_the_handoff() -> None:
    with world() as w:
        db = w.database(uuids(1000), uuids(1000))
        try:
            run = ha_run(w, db, tag="t-ha")
        finally:
            db.close()
    assert run.handoff_s < run.failover_s <= SESSION + 30
    assert run.standby_rss_mib > 0
