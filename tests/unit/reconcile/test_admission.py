"""The quota read as growth and the autoscaler use it (reconciler/reconcile/admission.py):
the kind's pods plus what fits, once per pass; a refused create blocks the room until the
quotas change. The quota source is a fake (FakeQuotaSource): the rig test
tests/integration/daemon/test_quota.py reads real ResourceQuotas."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.model import Instance, Moment, NodeCapacity, Pod, PodUsage
from reconciler.domain.podspec import PodTemplate
from reconciler.domain.quota import NO_QUOTA, QuotaRoom
from reconciler.policy.schema import AutoscalePolicy, KindPolicy
from reconciler.reconcile.admission import BLOCKED_SECONDS, Admission
from reconciler.reconcile.autoscale import Autoscaler

POLICY = KindPolicy(
    table="Rule",
    instance_name="iota-rules-engine",
    template="t.yml",
    namespace="iota",
    init_instances=3,
)
NOW = 1_700_000_000.0
TEMPLATE = PodTemplate(
    "Rule",
    "iota",
    "iota-rules-engine",
    {"spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}},
)


@dataclass
class FakeQuotaSource:
    """A fake quota read: `room` is what the next read answers; `reads` counts them."""

    room: QuotaRoom | Exception = NO_QUOTA
    reads: int = 0
    templates: dict[str, PodTemplate] = field(default_factory=lambda: {"Rule": TEMPLATE})

    def quota_room(self, namespace: str) -> QuotaRoom:
        self.reads += 1
        if isinstance(self.room, Exception):
            raise self.room
        return self.room


def pods(n: int, phase: str = "Running") -> dict[str, Pod]:
    return {f"iota-rules-engine-{i}": Pod(f"iota-rules-engine-{i}", i, phase) for i in range(n)}


def test_no_quota_means_no_limit() -> None:
    admission = Admission(FakeQuotaSource())
    admission.update("Rule", POLICY, pods(3), 1.0)
    assert admission.pod_limit("Rule") is None


def test_the_limit_is_the_pods_the_quota_counts_plus_those_of_the_kinds_size_that_fit() -> None:
    source = FakeQuotaSource(QuotaRoom(pods=10, cpu_m=1000))  # CPU: two more 500m pods
    admission = Admission(source)
    admission.update("Rule", POLICY, {**pods(3), **{"x": Pod("x", None, "Failed")}}, 1.0)
    assert admission.pod_limit("Rule") == 3 + 2  # the Failed pod is not counted
    assert "2 more admitted" in (admission.note("Rule") or "")


def test_the_quota_is_read_once_per_pass() -> None:
    source = FakeQuotaSource(QuotaRoom(pods=1))
    admission = Admission(source)
    admission.update("Rule", POLICY, pods(3), 1.0)
    admission.update("Rule", POLICY, pods(3), 1.0)
    assert admission.room("iota", 1.0) is not None
    assert source.reads == 1
    admission.update("Rule", POLICY, pods(3), 2.0)
    assert source.reads == 2


def test_blind_to_the_quota_or_the_pods_the_last_limit_stays() -> None:
    source = FakeQuotaSource(QuotaRoom(pods=0))
    admission = Admission(source)
    admission.update("Rule", POLICY, pods(3), 1.0)
    source.room = SourceUnavailable("apiserver down")
    admission.update("Rule", POLICY, pods(3), 2.0)
    admission.update("Rule", POLICY, None, 3.0)
    assert admission.pod_limit("Rule") == 3


def test_a_refused_create_blocks_the_room_until_the_quotas_change() -> None:
    """A scoped quota the read does not evaluate refused a create: the read still says
    "room", the limit says the pods there are, until a quota changes."""
    unscoped = QuotaRoom(fingerprint=("scoped@7",))
    source = FakeQuotaSource(replace(unscoped, refused=True))
    admission = Admission(source)
    admission.update("Rule", POLICY, pods(3), 1.0)
    assert admission.pod_limit("Rule") == 3
    source.room = unscoped  # later reads no longer carry the refusal: still blocked
    admission.update("Rule", POLICY, pods(3), 2.0)
    assert admission.pod_limit("Rule") == 3
    source.room = QuotaRoom(fingerprint=("scoped@8",))  # the quota was raised
    admission.update("Rule", POLICY, pods(3), 3.0)
    assert admission.pod_limit("Rule") is None


def test_a_block_ends_after_its_time_even_if_no_quota_changes() -> None:
    unscoped = QuotaRoom(fingerprint=("scoped@7",))
    source = FakeQuotaSource(replace(unscoped, refused=True))
    admission = Admission(source)
    admission.update("Rule", POLICY, pods(3), 1.0)
    source.room = unscoped
    admission.update("Rule", POLICY, pods(3), 1.0 + BLOCKED_SECONDS)
    assert admission.pod_limit("Rule") is None


def test_a_claim_in_the_pass_leaves_less_room_for_the_next_kind() -> None:
    admission = Admission(FakeQuotaSource(QuotaRoom(pods=5, cpu_m=2000)))
    room = admission.room("iota", 1.0)
    assert room is not None and room.pods == 5
    admission.claim("iota", 1.0, 2, 500, 0)
    after = admission.room("iota", 1.0)
    assert after is not None and (after.pods, after.cpu_m) == (3, 1000)


# --- the autoscaler's room: the nodes and the quota alike ---------------------------------


@dataclass
class FakeUsageAndQuota(FakeQuotaSource):
    """A fake of the kube adapter's reads: every pod at twice its CPU request, room on the
    nodes for 100 more pods, and the quota of `room`."""

    def pod_usage(self, kind: str) -> dict[str, PodUsage]:
        return {
            name: PodUsage(1000, 512 * 2**20, NOW, 30)
            for name in (f"iota-rules-engine-{i}" for i in range(5))
        }

    def node_capacity(self) -> list[NodeCapacity]:
        return [NodeCapacity("a", 100 * 500, 100 * 2**30, 0, 0, True)]


AUTOSCALED = POLICY.model_copy(
    update={"autoscale": AutoscalePolicy(cpu_target_percent=100, period_seconds=1)}
)


def decide_five(scaler: Autoscaler, kind: str = "Rule", mono: float = 1.0) -> int:
    assignment = {i: Instance(i, frozenset({f"r{i}"}), 10) for i in range(5)}
    targets: dict[str, int] = {}
    at = Moment(NOW, mono)
    scaler.update(kind, AUTOSCALED, frozenset({"a"}), assignment, pods(5), at, targets)
    return targets[kind]


def test_a_scale_up_stops_at_what_the_quota_admits() -> None:
    source = FakeUsageAndQuota(QuotaRoom(pods=2, used_of_hard=("pods 8/10 (quota q)",)))
    scaler = Autoscaler(source, admission=Admission(source))
    assert decide_five(scaler) == 5 + 2  # 2x the target wants 10
    d = scaler.decisions["Rule"]
    assert (d.factor, d.fit, d.shortfall) == ("capacity", 2, 3)
    assert "ResourceQuota" in (d.note or "") and "pods 8/10" in (d.note or "")


def test_two_kinds_in_one_pass_share_the_quota_room() -> None:
    source = FakeUsageAndQuota(QuotaRoom(pods=3))
    source.templates["Thing"] = replace(TEMPLATE, kind="Thing")
    scaler = Autoscaler(source, admission=Admission(source))
    assert decide_five(scaler, "Rule") == 5 + 3
    assert decide_five(scaler, "Thing") == 5  # the first took all three
