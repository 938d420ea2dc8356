"""Which instances of a kind the namespace's ResourceQuota admits a pod for: its `pod_limit`.

An instance without a pod holds ids no worker serves, so the planner opens an instance only
when its pod can be admitted (`KindIntent.pod_limit`, applied by reconciler/rules/growth.py
and reconciler/rules/capacity.py `admit_sizing`). The limit is the kind's pods that the
quota counts now plus the pods of its size that still fit (`capacity.fit_in_quota`): pods
made later in the pass and on event passes are already inside it, so it holds until the
next full pass reads the quota again (the intend stage, once per namespace per pass; the
autoscaler's room reads the same answer through `room`).

A create refused anyway ("exceeded quota": a quota filled by someone else, or one whose scope
the read does not evaluate) blocks the namespace's room at 0 from the next read on, until the
quotas change (their resourceVersions) or `BLOCKED_SECONDS` pass; the instances beyond the
pods that exist are then dropped and their ids go back. An unreadable quota (no RBAC, the
apiserver down) keeps the last limit, or none when there never was one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler.domain.model import DEAD_PHASES, Pod
from reconciler.domain.podspec import PodTemplate, pod_requests
from reconciler.domain.quota import QuotaRoom
from reconciler.policy.schema import KindPolicy
from reconciler.rules.capacity import fit_in_quota
from reconciler.telemetry.logs import log

# How long a refused create holds the room at 0 while the quotas' objects do not change.
BLOCKED_SECONDS = 300.0


class QuotaSource(Protocol):
    """The quota read (adapters.kube.KubePods provides it) and the kinds' pod templates."""

    templates: dict[str, PodTemplate]

    def quota_room(self, namespace: str) -> QuotaRoom: ...


@dataclass
class Admission:
    source: QuotaSource
    # namespace -> the pass (monotonic time) it was read in, and the room (None: unreadable).
    _rooms: dict[str, tuple[float, QuotaRoom | None]] = field(default_factory=dict)
    # namespace -> (the quotas' fingerprint, monotonic time) when a refused create was seen.
    _blocked: dict[str, tuple[tuple[str, ...], float]] = field(default_factory=dict)
    _limits: dict[str, int | None] = field(default_factory=dict)
    _notes: dict[str, str] = field(default_factory=dict)

    def update(
        self, kind: str, policy: KindPolicy, pods: Mapping[str, Pod] | None, mono: float
    ) -> None:
        """The kind's limit from this pass's quota read and its pods (blind to either: the
        last limit stays)."""
        room = self.room(policy.namespace, mono)
        if room is None or pods is None:
            return
        cpu_m, mem_b = pod_requests(self.source.templates[kind])
        fit = fit_in_quota(room, cpu_m, mem_b)
        limit = None
        note = ""
        if fit is not None:
            # What the quota counts: every pod not Succeeded/Failed, terminating ones too.
            counted = sum(1 for p in pods.values() if p.phase not in DEAD_PHASES)
            limit = counted + fit
            note = f"{counted} pods and {fit} more admitted: {room.describe()}"
        if self._notes.get(kind, "") != note:
            if note:
                log.info("pod quota", resource=kind, pod_limit=limit, note=note)
            else:
                log.info("pod quota lifted", resource=kind)
        self._notes[kind] = note
        self._limits[kind] = limit

    def pod_limit(self, kind: str) -> int | None:
        return self._limits.get(kind)

    def note(self, kind: str) -> str | None:
        return self._notes.get(kind) or None

    def room(self, namespace: str, mono: float) -> QuotaRoom | None:
        """The namespace's quota room, read once per pass (`mono` names the pass); None when
        it cannot be read."""
        cached = self._rooms.get(namespace)
        if cached is not None and cached[0] == mono:
            return cached[1]
        try:
            room: QuotaRoom | None = self._blocking(
                namespace, self.source.quota_room(namespace), mono
            )
        except Exception as e:  # any failure: the quota is unknown this pass
            if cached is None or cached[1] is not None:
                log.warning("pod quota unreadable", namespace=namespace, error=str(e))
            room = None
        self._rooms[namespace] = (mono, room)
        return room

    def claim(self, namespace: str, mono: float, pods: int, cpu_m: float, mem_b: float) -> None:
        """`pods` more pods of this size are asked for in this pass (an autoscaler decision):
        a second kind deciding in the same pass sees the room they leave."""
        cached = self._rooms.get(namespace)
        if cached is None or cached[0] != mono or cached[1] is None or pods <= 0:
            return
        r = cached[1]
        self._rooms[namespace] = (
            mono,
            replace(
                r,
                pods=None if r.pods is None else max(0, r.pods - pods),
                cpu_m=None if r.cpu_m is None else max(0.0, r.cpu_m - pods * cpu_m),
                mem_bytes=None if r.mem_bytes is None else max(0.0, r.mem_bytes - pods * mem_b),
            ),
        )

    def _blocking(self, namespace: str, room: QuotaRoom, mono: float) -> QuotaRoom:
        """`room`, with no pod admitted while a refused create says it is fuller than read."""
        if room.refused:
            self._blocked[namespace] = (room.fingerprint, mono)
        blocked = self._blocked.get(namespace)
        if blocked is None:
            return room
        if blocked[0] != room.fingerprint or mono - blocked[1] >= BLOCKED_SECONDS:
            del self._blocked[namespace]
            return room
        said = (*room.used_of_hard, "a pod create was refused: exceeded quota")
        return replace(room, pods=0, used_of_hard=said)
