"""A ZooKeeper session stopped while its first connect is still under way stops cleanly (the
CLI closes `plan`'s session that way when ZooKeeper is slow or down). No server: the address
refuses connections."""

from __future__ import annotations

import threading
import time

from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.domain.errors import SourceUnavailable


def test_a_session_stopped_during_its_first_connect_stops_without_an_error() -> None:
    for delay in (0.0, 0.001, 0.005, 0.02):
        session = ZkSession("127.0.0.1:1", root="/iota/orchestration", timeout=2.0)
        outcome: list[BaseException | None] = []

        def connect(s: ZkSession = session, out: list[BaseException | None] = outcome) -> None:
            try:
                s.start()
                out.append(None)
            except (SourceUnavailable, Exception) as e:  # refused or stopped: both are fine
                out.append(e)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        time.sleep(delay)
        session.stop()  # raised AttributeError inside kazoo before the fix
        thread.join(10)
        assert not thread.is_alive()
        assert not session.connected
