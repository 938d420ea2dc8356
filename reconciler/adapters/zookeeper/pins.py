"""Operators' pins in ZooKeeper (`reconciler scale`/`stop`/`start`, reconciler/domain/pins.py).

```
<root>/_scale                   no data
<root>/_scale/<Kind>            {"instances": <int>, "by": "<who>", "at": <Unix seconds>}
```

Beside the assignment, in a node no worker reads (workers read `<root>/<Kind>/...`; a kind's
name never starts with `_`). Written through the session's fenced transactions, with the
same fence as the assignment's writes, so a deposed leader cannot pin or unpin anything;
read by every daemon on its full passes, so a restarted daemon and a new leader keep the
pins in force.
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo.exceptions import NoNodeError

from reconciler.adapters.zookeeper.session import Fence, ZkSession
from reconciler.domain.pins import Pin, PinError, decode_pin

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.zk_pins")

PINS_NODE = "_scale"


class ZkPins:
    """The pins of every kind, on the daemon's ZooKeeper session. `fence`: the leader
    election's (session.py), the same the assignment's store is given; None: no election."""

    def __init__(self, session: ZkSession, *, fence: Fence | None = None) -> None:
        self._session = session
        self._fence = fence

    @property
    def path(self) -> str:
        return f"{self._session.root}/{PINS_NODE}"

    def _kind_path(self, kind: str) -> str:
        if not kind or "/" in kind or kind.startswith("_"):
            raise ValueError(f"invalid resource kind {kind!r}")
        return f"{self.path}/{kind}"

    def read(self) -> dict[str, Pin]:
        """Every kind's pin; a kind without one is absent. A node that holds no pin is
        logged and skipped (as if unpinned): the kind follows its policy."""
        s = self._session

        def read(deadline: float) -> dict[str, Pin]:
            try:
                names = s.wait(s.client.get_children_async(self.path), deadline)
            except NoNodeError:
                return {}
            pending = {n: s.client.get_async(f"{self.path}/{n}") for n in sorted(names)}
            pins: dict[str, Pin] = {}
            for name, result in pending.items():
                try:
                    data, _stat = s.wait(result, deadline)
                except NoNodeError:
                    continue  # removed meanwhile: unpinned
                try:
                    pins[name] = decode_pin(data)
                except PinError as e:
                    log.warning("ignoring %s/%s: %s", self.path, name, e)
            return pins

        return s.bounded("read pins", read)

    def write(self, kind: str, pin: Pin) -> None:
        """Set `kind`'s pin (creating `<root>/_scale` when missing), in one fenced transaction."""
        s = self._session
        path = self._kind_path(kind)

        def write(deadline: float) -> None:
            missing = []
            node = ""
            for part in path.strip("/").split("/")[:-1]:
                node += "/" + part
                if s.wait(s.client.exists_async(node), deadline) is None:
                    missing.append(node)
            exists = s.wait(s.client.exists_async(path), deadline) is not None

            def ops(tx: Any) -> list[str]:
                for p in missing:
                    tx.create(p, b"")
                if exists:
                    tx.set_data(path, pin.encode())
                else:
                    tx.create(path, pin.encode())
                return [*missing, path]

            s.commit(ops, deadline, f"pin {path}", fence=self._fence)

        s.bounded(f"pin {path}", write)

    def delete(self, kind: str) -> None:
        """Remove `kind`'s pin (fenced); a kind without one is already unpinned."""
        s = self._session
        path = self._kind_path(kind)

        def delete(deadline: float) -> None:
            if s.wait(s.client.exists_async(path), deadline) is None:
                return

            def ops(tx: Any) -> list[str]:
                tx.delete(path)
                return [path]

            s.commit(ops, deadline, f"unpin {path}", fence=self._fence)

        s.bounded(f"unpin {path}", delete)
