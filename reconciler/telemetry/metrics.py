"""Every Prometheus metric the daemon exports, defined once.

Naming follows Prometheus conventions (base units, `_total` counters). Per-instance series
are labelled `instance_id`, not `instance`: Prometheus attaches its own `instance` label (the
scrape target) and would rename ours to `exported_instance`.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Collection, Mapping
from contextlib import suppress

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# No `*_created` gauge beside every counter and histogram: in the text format Prometheus
# stores them as separate series nobody graphs (twice the series per counter).
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

# --- the fleet, per resource kind and instance -------------------------------------------
ROWS = Gauge(
    "reconciler_rows",
    "Rows of the kind's table (resources to assign)",
    ["resource"],
    registry=REGISTRY,
)
INSTANCES = Gauge(
    "reconciler_instances",
    "Instances of the kind after the last plan",
    ["resource"],
    registry=REGISTRY,
)
INSTANCE_USED = Gauge(
    "reconciler_instance_used",
    "Resource ids assigned to the instance",
    ["resource", "instance_id"],
    registry=REGISTRY,
)
# The znode's "count" (capacity). Not named *_count: that suffix belongs to histograms and
# summaries (promtool check metrics rejects it).
INSTANCE_COUNT = Gauge(
    "reconciler_instance_capacity",
    "Capacity of the instance: ids it may hold (the znode's count)",
    ["resource", "instance_id"],
    registry=REGISTRY,
)
UNASSIGNED = Gauge(
    "reconciler_unassigned_ids",
    "Rows with no instance because the kind needs more than maxInstances",
    ["resource"],
    registry=REGISTRY,
)
OVER_CAPACITY = Gauge(
    "reconciler_over_capacity",
    "1 when the kind needs more instances than maxInstances allows",
    ["resource"],
    registry=REGISTRY,
)
IDS_MOVED = Counter(
    "reconciler_ids_moved_total",
    "Resource ids moved between instances",
    ["resource"],
    registry=REGISTRY,
)
POD_PHASE = Gauge(
    "reconciler_pod_phase",
    "1 for the pod's current phase",
    ["resource", "instance_id", "phase"],
    registry=REGISTRY,
)
POD_CPU = Gauge(
    "reconciler_pod_cpu_usage_cores",
    "Pod CPU usage from metrics.k8s.io",
    ["resource", "instance_id"],
    registry=REGISTRY,
)
POD_MEMORY = Gauge(
    "reconciler_pod_memory_usage_bytes",
    "Pod memory usage from metrics.k8s.io",
    ["resource", "instance_id"],
    registry=REGISTRY,
)
HEARTBEAT_AGE = Gauge(
    "reconciler_heartbeat_age_seconds",
    "Seconds since the instance's last Kafka heartbeat",
    ["resource", "instance_id"],
    registry=REGISTRY,
)

# --- the reconcile loop ------------------------------------------------------------------
TICKS = Counter(
    "reconciler_reconciles_total",
    "Reconciles run, by what started them",
    ["trigger"],
    registry=REGISTRY,
)
TICK_SECONDS = Histogram(
    "reconciler_reconcile_duration_seconds",
    "Wall time of one observe-plan-apply pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ZK_READ_BYTES = Counter(
    "reconciler_zookeeper_read_bytes",
    "Bytes of assignment node data read from ZooKeeper (a converged pass with the watch "
    "cache reads none; RECONCILER_FULL_READ_SECONDS sets the full re-reads)",
    registry=REGISTRY,
)
DB_ID_READS = Counter(
    "reconciler_database_id_reads",
    "Full reads of a table's ids (the table's fingerprint moved, or a periodic full read)",
    ["table"],
    registry=REGISTRY,
)
PASS_OVERRUNS = Counter(
    "reconciler_pass_overruns_total",
    "Passes that ran past RECONCILER_PASS_BUDGET_SECONDS; the operations they left untried go "
    "to the next pass",
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "reconciler_last_success_timestamp_seconds",
    "Unix time of the last reconcile that saw every source",
    registry=REGISTRY,
)
OPERATIONS = Counter(
    "reconciler_operations_total",
    "Operations applied, by type and result",
    ["resource", "op", "result"],
    registry=REGISTRY,
)
VALVE_ENGAGED = Gauge(
    "reconciler_safety_valve_engaged",
    "1 while the kind's plan is held: it would unassign a large share of its ids or delete "
    "many pods (confirm with `reconciler confirm <Kind>`)",
    ["resource"],
    registry=REGISTRY,
)
KIND_DEGRADED = Gauge(
    "reconciler_kind_degraded",
    "1 while a source cannot be read for this kind (its table, its namespace, ...): the other "
    "kinds go on",
    ["resource"],
    registry=REGISTRY,
)
SOURCE_UP = Gauge(
    "reconciler_source_up",
    "1 when the source answered at the last try",
    ["source"],
    registry=REGISTRY,
)
PENDING_OPERATIONS = Gauge(
    "reconciler_pending_operations",
    "Operations of this type the last pass over the kind planned and did not carry out: all "
    "it planned on an observe-only daemon or a standby (what a leader would apply now), those "
    "that failed or were left on the leader (GET /v1/plan lists them)",
    ["resource", "op"],
    registry=REGISTRY,
)

# --- inputs ------------------------------------------------------------------------------
EVENTS = Counter(
    "reconciler_events_received_total",
    "Messages received, by source",
    ["source"],
    registry=REGISTRY,
)
EVENTS_MALFORMED = Counter(
    "reconciler_events_malformed_total",
    "Messages that could not be parsed, by source",
    ["source"],
    registry=REGISTRY,
)
EVENTS_IGNORED = Counter(
    "reconciler_events_ignored_total",
    "Well-formed messages that change no assignment (updates, unknown ops, empty bulks)",
    ["source", "reason"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "reconciler_events_rejected_total",
    "Messages or ids refused, by source and reason: too-large, too-many-ids (the message), "
    "not-in-table (a create for an id the table lacks), still-in-table (a delete for an id "
    "it holds), unverified (the database could not be asked), overflow (more hints waiting "
    "than the daemon holds: dropped for a full re-read)",
    ["source", "reason"],
    registry=REGISTRY,
)
REJECT_REASONS = (
    "too-large",
    "too-many-ids",
    "not-in-table",
    "still-in-table",
    "unverified",
    "overflow",
)
POLICY_RELOADS = Counter(
    "reconciler_policy_reloads_total", "policy.yaml loads, by result", ["result"], registry=REGISTRY
)
POLICY_INFO = Gauge(
    "reconciler_policy_info",
    "1 for the policy in force (sha256 of the file)",
    ["sha256"],
    registry=REGISTRY,
)

# --- autoscaling -------------------------------------------------------------------------
SCALE_DESIRED = Gauge(
    "reconciler_autoscale_desired_instances",
    "Instances the CPU/memory recommendation asks for",
    ["resource"],
    registry=REGISTRY,
)
SCALE_LIMITED = Gauge(
    "reconciler_autoscale_limited",
    "1 for the factor that limited the last scaling decision",
    ["resource", "factor"],
    registry=REGISTRY,
)

# --- leader election ---------------------------------------------------------------------
LEADER = Gauge(
    "reconciler_leader",
    "1 on the daemon that leads (writes), 0 on a standby; labelled with the daemon's identity",
    ["identity"],
    registry=REGISTRY,
)
LEADER_TRANSITIONS = Counter(
    "reconciler_leader_transitions_total",
    "Times this daemon became leader or stopped being it",
    registry=REGISTRY,
)
# What became of a write a standby's REST API received (reconciler/api/forward.py): relayed
# from the leader, or refused with a 503/502/504 naming why.
FORWARD_RESULTS = (
    "relayed",  # sent to the leader; its answer, whatever the status, went back
    "no_leader",  # none elected yet, or ZooKeeper unreachable
    "no_address",  # the leader publishes no REST address (RECONCILER_API_ADVERTISE_URL)
    "loop",  # already forwarded once: never forwarded again
    "no_token",  # proxy-authorised, and no RECONCILER_API_TOKEN to vouch with
    "unreachable",  # no connection to the leader's address
    "rejected",  # the leader refused the forwarded credentials
    "failed",  # sent, then no answer in time or the connection broke: may have been applied
)
API_FORWARDED = Counter(
    "reconciler_api_forwarded_total",
    "REST writes this daemon, as a standby, forwarded to the leader or could not, by result",
    ["result"],
    registry=REGISTRY,
)
for _result in FORWARD_RESULTS:
    API_FORWARDED.labels(_result)
# Not `reconciler_leader` 0: an observe-only daemon takes no part in the election, and a 0
# there would count as a daemon without a leader (ReconcilerNoLeader) while the old
# orchestrator still runs the fleet.
OBSERVE_ONLY = Gauge(
    "reconciler_observe_only",
    "1 on a daemon that observes and plans but writes nothing (RECONCILER_OBSERVE_ONLY)",
    registry=REGISTRY,
)
OBSERVE_ONLY_WRITES_REFUSED = Counter(
    "reconciler_observe_only_writes_refused_total",
    "Writes an observe-only daemon attempted and refused, by system (a bug: it plans only)",
    ["system"],
    registry=REGISTRY,
)


# Operation types (reconciler.domain.model) and the results every kind reports from the start, so
# that rate() of failures reads 0 rather than "no data" before the first failure.
OP_TYPES = ("WriteInstance", "DeleteInstance", "CreatePod", "DeletePod", "RecreatePod", "AdoptPod")
OP_RESULTS = ("ok", "failed")


def init_kind(kind: str) -> None:
    """Create a kind's counter series at 0 (Prometheus advice: avoid missing metrics)."""
    for op in OP_TYPES:
        for result in OP_RESULTS:
            OPERATIONS.labels(kind, op, result)
    IDS_MOVED.labels(kind)


def init_source(source: str) -> None:
    """Create an event source's counters at 0 (mqtt, kafka) when the source is configured."""
    EVENTS.labels(source)
    EVENTS_MALFORMED.labels(source)
    if source == "mqtt":
        for reason in REJECT_REASONS:
            EVENTS_REJECTED.labels(source, reason)


POLICY_RELOADS.labels("ok")
POLICY_RELOADS.labels("failed")
# A crashed pass at 0 from the start: increase() of a series that first appears at 1 misses
# that first crash (ReconcilerPassesCrashing, the dashboard's crashed passes).
TICKS.labels("crashed")

_published: dict[tuple[str, str], dict[tuple[str, ...], float]] = {}


def publish(gauge: Gauge, resource: str, values: Mapping[tuple[str, ...], float]) -> None:
    """Set a kind's per-instance series and remove those no longer current.

    `values` maps the labels after `resource` (e.g. (instance_id,) or (instance_id, phase))
    to a value; series of deleted instances disappear instead of freezing at a stale value.
    Only the series whose value changed are touched (a row event changes one or two).
    """
    key = (gauge._name, resource)
    last = _published.get(key, {})
    for labels in last.keys() - values.keys():
        with suppress(KeyError):  # retain_kinds or a test may have removed it meanwhile
            gauge.remove(resource, *labels)
    for labels, value in values.items():
        if last.get(labels) != value or (resource, *labels) not in gauge._metrics:
            gauge.labels(resource, *labels).set(value)
    _published[key] = dict(values)


# Gauges of a kind (label `resource` first): a kind taken out of the policy must not leave
# them behind, frozen at their last value (a `reconciler_kind_degraded` or a valve series stuck
# at 1 would page for a kind that no longer exists).
KIND_GAUGES = (
    ROWS,
    INSTANCES,
    INSTANCE_USED,
    INSTANCE_COUNT,
    UNASSIGNED,
    OVER_CAPACITY,
    POD_PHASE,
    POD_CPU,
    POD_MEMORY,
    HEARTBEAT_AGE,
    VALVE_ENGAGED,
    KIND_DEGRADED,
    PENDING_OPERATIONS,
    SCALE_DESIRED,
    SCALE_LIMITED,
)


def retain_kinds(kinds: Collection[str]) -> None:
    """Remove every kind gauge's series of a kind not in `kinds` (the policy's kinds). Runs
    on every pass, so it reads the gauges' label sets, not their samples: a collect() of
    every per-instance series would cost each row event the fleet's size."""
    for gauge in KIND_GAUGES:
        at = gauge._labelnames.index("resource")
        gone = [labels for labels in list(gauge._metrics) if labels[at] not in kinds]
        for labels in gone:
            with suppress(KeyError):  # a scrape's refresh may have removed it meanwhile
                gauge.remove(*labels)
        for key in [k for k in _published if k[0] == gauge._name and k[1] not in kinds]:
            del _published[key]


# --- the process itself ------------------------------------------------------------------
# process_* (CPU seconds, resident memory, open fds, start time) and python_info, as every
# prometheus_client process exports them on the default registry; ours is a registry of its
# own, so they are registered here explicitly.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), or "unknown" from a bare tree."""
    try:
        return importlib.metadata.version("reconciler")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO = Gauge(
    "reconciler_build_info",
    "Always 1; the labels say which reconciler and Python run",
    ["version", "python"],
    registry=REGISTRY,
)
BUILD_INFO.labels(package_version(), platform.python_version()).set(1)
