"""Operators' pins: `reconciler scale KIND N` and `stop` fix a kind's instance count.

A pin overrides the row-count sizing and the autoscaler until `reconciler start KIND` removes
it (the kind then returns to its policy's sizing). `stop` is a pin at 0: every id of the kind
is unassigned, its instances and its pods deleted. Pins live in ZooKeeper beside the
assignment, in a node the workers never read (`<root>/_scale/<Kind>`, see
reconciler/adapters/zookeeper/pins.py and docs/contracts.md "Operators' pins"), so they
survive a restart of the daemon and a leader failover.

Pure: the value type, its JSON and the check of a requested count against the policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pin:
    """A kind's instance count fixed by an operator (0: stopped)."""

    instances: int
    by: str = ""  # who asked: "token", the user a trusted proxy named, or "anyone"
    at: float = 0.0  # Unix seconds

    def summary(self) -> dict[str, object]:
        """JSON-able, camelCase like the rest of `status`."""
        return {"instances": self.instances, "by": self.by, "at": self.at}

    def encode(self) -> bytes:
        return json.dumps(self.summary(), separators=(",", ":")).encode("utf-8")


class PinError(ValueError):
    """A pin node whose data is not a pin."""


def decode_pin(raw: bytes) -> Pin:
    """The pin in a node's data; PinError when it is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise PinError(f"not JSON: {raw[:80]!r}") from e
    instances = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 0:
        raise PinError(f"no instance count >= 0: {raw[:80]!r}")
    by, at = data.get("by", ""), data.get("at", 0.0)
    return Pin(
        instances,
        by if isinstance(by, str) else "",
        float(at) if isinstance(at, int | float) and not isinstance(at, bool) else 0.0,
    )
