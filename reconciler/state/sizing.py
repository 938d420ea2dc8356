"""What each kind is sized by between passes: the autoscaler's target (written by intend) and
the sizing its layout was last planned with (written by record once a pass carried it out).
A different sizing re-sizes the kind in full; nothing noted yet (a daemon that just started)
means: hold the layout."""

from __future__ import annotations

import threading

from reconciler.domain.pins import Pin
from reconciler.policy.schema import AutoscalePolicy, KindPolicy
from reconciler.state.part import MemoryPart

# (initInstances, maxInstances, resourcePerInstance, the pinned instance count or None, the
# autoscale block or None)
Sizing = tuple[int, int, int, int | None, AutoscalePolicy | None]


def sizing_of(policy: KindPolicy, pin: Pin | None) -> Sizing:
    """What a kind is sized by. The autoscale block is part of it: a layout the autoscaler
    grew is held only while the block that grew it is in force, so removing or changing it
    re-sizes the kind to what the policy now gives."""
    pinned = pin.instances if pin is not None else None
    return (
        policy.init_instances,
        policy.max_instances,
        policy.resource_per_instance,
        pinned,
        policy.autoscale,
    )


class SizingMemory(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._targets: dict[str, int] = {}  # the autoscaler's instance counts
        self._sized_with: dict[str, Sizing] = {}

    def set_target(self, kind: str, target: int | None) -> None:
        """The autoscaler's instance count for `kind` (None: no opinion, or pinned)."""
        with self._lock:
            if target is None:
                self._targets.pop(kind, None)
            else:
                self._targets[kind] = target

    def target(self, kind: str) -> int | None:
        with self._lock:
            return self._targets.get(kind)

    def note(self, kind: str, policy: KindPolicy, pin: Pin | None) -> None:
        """The layout of `kind` now follows `policy`'s sizing and its pin."""
        with self._lock:
            self._sized_with[kind] = sizing_of(policy, pin)

    def resize_due(self, kind: str, policy: KindPolicy, pin: Pin | None) -> bool:
        """The kind's sizing changed since its layout was sized."""
        with self._lock:
            was = self._sized_with.get(kind)
            return was is not None and was != sizing_of(policy, pin)
