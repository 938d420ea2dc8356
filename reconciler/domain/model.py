"""Value types shared by the planner, the loop and the adapters.

Everything here is immutable and free of client libraries: adapters translate ZooKeeper
nodes, Kubernetes pods, SQL rows and Kafka messages into these types, the planner turns
them into operations, and the adapters execute those operations.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import ClassVar

from reconciler.domain.ids import SortedIds
from reconciler.domain.outcomes import OutcomeResult, SkipReason, System

# Pod phases after which a pod never runs again: the daemon deletes and recreates it.
DEAD_PHASES = frozenset({"Succeeded", "Failed", "Unknown"})


@dataclass(frozen=True, slots=True)
class NodeVersions:
    """ZooKeeper's versions (`stat.version`) of an instance's data nodes as they were read
    (None: that node was missing). A write is a compare-and-set on them: it fails when
    another writer changed the instance since (never two owners:
    reconciler/rules/write_order.py)."""

    node: int | None
    resources: int | None
    reload: int | None
    tmp: bool = True  # `tmp` existed (it carries no data, so no version to match)


@dataclass(frozen=True, slots=True)
class Instance:
    """One worker instance as ZooKeeper holds it (docs/contracts.md "ZooKeeper layout":
    /iota/orchestration/<kind>/<id>)."""

    instance_id: int
    # Sorted, held compactly (ids.SortedIds: a fraction of a frozenset's memory); any set
    # or iterable of ids given is made one.
    ids: SortedIds
    count: int  # capacity: resources this instance may hold
    reload_times: int = 0  # _reload.times, bumped whenever ids change
    complete: bool = True  # False when a child node is missing or unreadable: rewrite it
    # True when a worker holds an EPHEMERAL node under `<id>/tmp` (e.g. `tmp/status`): its
    # ZooKeeper session is alive (Helix's live instance), so it is never silent. Read by
    # ZkStore.read; never written (the workers own `tmp`'s children).
    worker_session: bool = False
    # The versions it was read with (a write returns the new ones); None: not read from
    # ZooKeeper. Not part of equality: two reads of the same content are the same instance.
    versions: NodeVersions | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if type(self.ids) is not SortedIds:
            object.__setattr__(self, "ids", SortedIds(self.ids))

    @property
    def used(self) -> int:
        return len(self.ids)


# instance id -> Instance; what ZooKeeper holds for one resource kind.
Assignment = dict[int, Instance]


@dataclass(frozen=True, slots=True)
class Pod:
    """A managed pod as the apiserver reports it."""

    name: str
    instance_id: int | None  # from the instanceId label; None if missing or not an integer
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    terminating: bool = False  # deletionTimestamp set: gone soon, do not act on it again
    started_at: float | None = None  # status.startTime (else creationTimestamp), Unix seconds
    uid: str = ""
    # False for a pod found by its name alone (`<instanceName>-<id>`, e.g. one the old
    # orchestrator made): it is the instance's pod all the same, and gets our labels (adopted).
    labelled: bool = True
    # The template revision it was rendered from (annotation); "" for a pod made before
    # revisions were stamped, or by the old orchestrator: taken as current.
    revision: str = ""


@dataclass(frozen=True, slots=True)
class Heartbeats:
    """What the heartbeat source knows about one kind. Silence is never counted from before
    `connected_since` (the consumer's last (re)join) nor after `answered_at` (the broker's
    last proven answer: a link that hangs without an error is noticed seconds later), so
    workers are not blamed for Kafka's own outage."""

    connected: bool
    connected_since: float | None
    last_seen: dict[int, float] = field(default_factory=dict)  # instance id -> Unix seconds
    answered_at: float | None = None  # Unix seconds; None: not known (silence not capped)


@dataclass(frozen=True, slots=True)
class KindObserved:
    """Everything observed about one resource kind in one tick.

    A field is None when its source could not be read this tick ("blind"): the planner
    then makes no change that depends on it.
    """

    kind: str
    row_ids: AbstractSet[str] | None
    assignment: Assignment | None
    pods: dict[str, Pod] | None  # pod name -> Pod, only pods managed for this kind
    heartbeats: Heartbeats | None = None


@dataclass(frozen=True, slots=True)
class KindIntent:
    """What operators and the autoscaler want of one kind beyond policy.yaml.

    Kept apart from `KindObserved` (Helix's IdealState beside its ExternalView): what the
    daemon saw and what it is asked for never mix.
    """

    # Instance count asked for by autoscaling (reconciler/rules/scaling.py); None when it
    # has no opinion.
    scale_target: int | None = None
    # True when an operator asked for a rebalance (REST orchestrate).
    rebalance: bool = False
    # True when the kind's sizing policy (initInstances, maxInstances, resourcePerInstance,
    # REST overrides included) changed since the layout was last sized: re-size in full.
    # Otherwise the layout is held and grows by the seed's rule (reconciler/rules/growth.py).
    resize: bool = False
    # The revision of the kind's pod template now ("": do not roll), the pods a rolling
    # restart replaces (by uid: those that existed when it was asked for), and how many pods
    # may be unavailable at once while outdated ones are replaced.
    revision: str = ""
    restart_uids: frozenset[str] = frozenset()
    max_unavailable: int = 1
    # The instance count an operator pinned (`reconciler scale`/`stop`, reconciler/domain/pins.py):
    # it wins over the row-count sizing and `scale_target` until `start`. 0: stopped (no
    # instances, no pods). None: no pin.
    pinned: int | None = None
    # The most instances whose pod the namespace's ResourceQuota admits (the pods the kind
    # has plus the room left: reconciler/reconcile/admission.py); None: no quota limits it.
    pod_limit: int | None = None


NO_INTENT = KindIntent()


def pod_name(instance_name: str, instance_id: int) -> str:
    """The pod of an instance (docs/contracts.md "Pods"): `<instanceName>-<instanceId>`. The
    one place this rule is written."""
    return f"{instance_name}-{instance_id}"


@dataclass(frozen=True, slots=True)
class Moment:
    """One instant on both clocks: `wall` (Unix seconds) to compare with times other machines
    wrote (a metrics sample's timestamp) and to display; `mono` for every interval the daemon
    measures itself, which a wall-clock step (NTP, a VM resumed) must not stretch or freeze."""

    wall: float
    mono: float


@dataclass(frozen=True, slots=True)
class Observed:
    # Unix seconds: the planner never reads the clock itself. Wall time, because what it is
    # compared with was dated by the wall clock: pod start times (the apiserver's) and
    # heartbeats (dated by the adapter against the wall clock of the snapshot).
    now: float
    kinds: dict[str, KindObserved]
    # The same moment on the monotonic clock: for intervals the daemon measures itself
    # (the autoscaler's period and stabilisation windows), which a wall-clock step must not
    # stretch or freeze.
    mono: float

    @property
    def moment(self) -> Moment:
        return Moment(self.now, self.mono)


class Reason(StrEnum):
    NEW_INSTANCE = "new-instance"
    IDS_CHANGED = "ids-changed"
    COUNT_CHANGED = "count-changed"
    REPAIR = "repair"  # a node of the instance was missing or malformed
    SCALE_DOWN = "scale-down"
    POD_MISSING = "pod-missing"
    POD_DEAD = "pod-dead"
    HEARTBEAT_SILENT = "heartbeat-silent"
    ORPHAN = "orphan"
    UNLABELLED = "unlabelled"  # found by name only: adopt it
    OUTDATED = "outdated"  # rendered from an older template, or a rolling restart asked


@dataclass(frozen=True, slots=True)
class WriteInstance:
    """Write all nodes of one instance in one ZooKeeper transaction."""

    kind: str
    instance: Instance
    create: bool  # True: the instance's nodes do not exist yet
    reason: Reason
    # Write order (never two owners): `gives` are the ids this write takes off the
    # instance, `takes` the ids it adds that another instance holds now. The planner puts
    # every giving write before the taking ones; apply skips a write whose `takes` meet the
    # `gives` of a write that did not go through.
    gives: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    takes: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    system: ClassVar[System] = System.ZOOKEEPER

    @property
    def key(self) -> str:
        return f"zk:{self.kind}/{self.instance.instance_id}"


@dataclass(frozen=True, slots=True)
class DeleteInstance:
    """Delete an instance's nodes. Planned after the write that empties it (its ids are
    taken off, `_reload` bumped, before any other instance gains them), on the versions that
    write leaves (compare-and-set, like every write)."""

    kind: str
    instance_id: int
    reason: Reason = Reason.SCALE_DOWN
    versions: NodeVersions | None = field(default=None, compare=False)
    system: ClassVar[System] = System.ZOOKEEPER

    @property
    def key(self) -> str:
        return f"zk:{self.kind}/{self.instance_id}"


@dataclass(frozen=True, slots=True)
class CreatePod:
    kind: str
    instance_id: int
    reason: Reason = Reason.POD_MISSING
    system: ClassVar[System] = System.KUBERNETES

    @property
    def key(self) -> str:
        return f"pod:{self.kind}/{self.instance_id}"


@dataclass(frozen=True, slots=True)
class DeletePod:
    kind: str
    pod_name: str
    instance_id: int | None
    reason: Reason = Reason.ORPHAN
    uid: str = ""  # only this incarnation (a precondition)
    system: ClassVar[System] = System.KUBERNETES

    @property
    def key(self) -> str:
        return f"pod:{self.kind}/{self.pod_name}"


@dataclass(frozen=True, slots=True)
class RecreatePod:
    """Replace a dead or silent pod, level-triggered like a ReplicaSet: this pass deletes it
    (only the incarnation `uid`, a precondition); a later pass, woken by the pod watch, finds
    the instance without a pod and creates its successor (CreatePod)."""

    kind: str
    pod_name: str
    instance_id: int
    reason: Reason
    uid: str = ""
    system: ClassVar[System] = System.KUBERNETES

    @property
    def key(self) -> str:
        return f"pod:{self.kind}/{self.instance_id}"


@dataclass(frozen=True, slots=True)
class AdoptPod:
    """Give a pod found by its name alone our labels (only that incarnation, `uid`), so the
    watch follows it and it is healed and scaled like every pod the daemon created."""

    kind: str
    pod_name: str
    instance_id: int
    uid: str = ""
    reason: Reason = Reason.UNLABELLED
    system: ClassVar[System] = System.KUBERNETES

    @property
    def key(self) -> str:
        return f"adopt:{self.kind}/{self.pod_name}"


Op = WriteInstance | DeleteInstance | CreatePod | DeletePod | RecreatePod | AdoptPod


@dataclass(frozen=True, slots=True)
class KindReport:
    """What the planner decided for one kind, for logs, metrics and `status`."""

    kind: str
    rows: int | None
    instances: int  # instances after the plan
    capacity: int  # resources per instance after the plan
    unassigned: int  # rows that have no room (over maxInstances)
    moved: int  # ids that changed instance (not counting new or deleted rows)
    error: str | None = None  # e.g. "require instances more than the max: 120/100"
    blind: tuple[str, ...] = ()  # sources that could not be read: "rows", "zookeeper", "pods"
    heartbeat_note: str | None = None  # why silence is (not) being acted on


@dataclass(frozen=True, slots=True)
class Plan:
    ops: tuple[Op, ...]
    reports: dict[str, KindReport]

    def __bool__(self) -> bool:  # "is there anything to do"
        return bool(self.ops)


@dataclass(frozen=True, slots=True)
class PodUsage:
    """CPU and memory one pod used, from metrics.k8s.io PodMetrics (summed over containers)."""

    cpu_millicores: float
    memory_bytes: float
    timestamp: float  # Unix seconds: end of the sampling window (stale metrics are ignored)
    window: float  # seconds the usage was averaged over


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """One node's room for pods, as the scheduler counts it: by requests, not usage."""

    name: str
    allocatable_cpu_m: float
    allocatable_mem_bytes: float
    requested_cpu_m: float  # sum of requests of non-terminated pods bound to the node
    requested_mem_bytes: float
    schedulable: bool  # not cordoned, Ready, and no NoSchedule/NoExecute taint


def applied(assignment: Assignment, ops: tuple[Op, ...] | list[Op]) -> Assignment:
    """The assignment after `ops` succeeded: what ZooKeeper then holds. A write keeps the
    workers' `tmp` children, so an instance keeps the worker session it was read with."""
    out = dict(assignment)
    for op in ops:
        if isinstance(op, WriteInstance):
            old = out.get(op.instance.instance_id)
            session = old.worker_session if old is not None else op.instance.worker_session
            out[op.instance.instance_id] = replace(op.instance, worker_session=session)
        elif isinstance(op, DeleteInstance):
            out.pop(op.instance_id, None)
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one operation of a plan."""

    op: Op
    result: OutcomeResult
    error: str | None = None
    retry: bool = True  # False for a terminal refusal: "failed", and never retried
    skip: SkipReason | None = None  # why a "skipped" one was not tried


@dataclass(frozen=True, slots=True)
class PassResult:
    """One pass: why it ran, what it planned, what became of each operation."""

    trigger: str
    plan: Plan
    outcomes: tuple[Outcome, ...]
    seconds: float
    dry_run: bool = False
    standby: bool = False  # a standby's pass: observed and planned, nothing applied
    # it ran past RECONCILER_PASS_BUDGET_SECONDS (reconciler/reconcile/budget.py)
    over_budget: bool = False

    @property
    def applied(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result is OutcomeResult.OK]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result is OutcomeResult.FAILED]

    @property
    def left(self) -> list[Outcome]:
        """Operations the pass budget left untried, for the next pass."""
        return [o for o in self.outcomes if o.skip is SkipReason.OVER_BUDGET]

    def unfinished(self, kind: str) -> bool:
        """An operation of `kind` failed or was left for the next pass: its plan is not
        carried out yet (a rebalance still pending, a re-sizing not done)."""
        return any(o.op.kind == kind for o in (*self.failed, *self.left))
