"""Pod expectations, as the ReplicaSet controller keeps them: the creates and deletes this daemon
made that the pod watch's cache may not show yet, so a pass woken between our write and the
watch's event neither creates a pod twice nor deletes one twice. Not thread-safe on its own:
`PodMemory` (pods.py) calls it under the state's lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.domain.model import Pod

# How long a create or delete we made may go unseen by the pod watch before we stop assuming
# it happened (ReplicaSet expectations expire after 5 minutes; a watch that lags this long
# is re-listed anyway).
EXPECTATION_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Expectation:
    created: bool  # True: we created incarnation `uid` ("": not known); False: we deleted it
    uid: str
    until: float  # monotonic deadline
    instance_id: int | None = None


@dataclass
class PodExpectations:
    _by_kind: dict[str, dict[str, _Expectation]] = field(default_factory=dict)

    def created(self, kind: str, name: str, instance_id: int, now: float, uid: str = "") -> None:
        exp = _Expectation(True, uid, now + EXPECTATION_SECONDS, instance_id)
        self._by_kind.setdefault(kind, {})[name] = exp

    def deleted(self, kind: str, name: str, uid: str, now: float) -> None:
        self._by_kind.setdefault(kind, {})[name] = _Expectation(
            False, uid, now + EXPECTATION_SECONDS
        )

    def view(
        self,
        kind: str,
        cached: Mapping[str, Pod],
        now: float,
        gone: Mapping[str, str] | None = None,
    ) -> dict[str, Pod]:
        """`cached` with what it has not shown yet: a pod we created is there (Pending), a pod
        we deleted is terminating. An expectation the cache fulfilled, or that expired, goes.

        `gone`: name -> uid of the last incarnation the watch saw deleted. A pod we created can
        be deleted by someone else before a pass looks at the cache, which then never shows
        it: its deletion fulfils the expectation too, or the placeholder would hide the
        missing pod until the expectation expires."""
        pods = dict(cached)
        gone = gone or {}
        expected = self._by_kind.get(kind, {})
        for name, exp in list(expected.items()):
            pod = pods.get(name)
            seen = (
                pod is not None or (bool(exp.uid) and gone.get(name) == exp.uid)
                if exp.created
                else pod is None or pod.terminating or pod.uid != exp.uid
            )
            if seen or now > exp.until:
                del expected[name]
            elif exp.created:
                pods[name] = Pod(name, exp.instance_id, "Pending")
            elif pod is not None:
                pods[name] = replace(pod, terminating=True)
        return pods

    def forget(self, kind: str) -> None:
        self._by_kind.pop(kind, None)
