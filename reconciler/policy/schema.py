"""The policy.yaml schema: what the operator wants, per resource kind.

Defaults and ranges come from docs/contracts.md "Sizing". A value out of range is an error that
names the field, the value and the allowed range: the old orchestrator silently replaced
such values with the maximum, which hid typos in production.

The file is parsed strictly (`reconciler/policy/safe_yaml.py`): size, alias, depth and node limits,
duplicate keys reported with both lines, and no type coercion (`"30"`, `true` or `30.0` where
an integer belongs are errors naming the field). Names that end up elsewhere are checked for
where they go: a kind is a ZooKeeper node name and a Kubernetes label value, a namespace a
DNS-1123 label, `<instanceName>-<instanceId>` a pod name that fits a DNS label, a table a
PostgreSQL identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_INSTANCES = 100  # the schema's upper bound of maxInstances: instance ids stay below it
DNS_LABEL_MAX = 63
# Kubernetes label value (the kind is the value of reconciler.iota/kind), which is also a
# ZooKeeper node name: no '/', never '.' or '..', no control or Unicode specials.
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_POSTGRES_IDENTIFIER_MAX = 63  # bytes: PostgreSQL silently truncates longer names


def _kind_name(name: str) -> str:
    """A kind is the znode `<root>/<kind>` (beside the daemon's own `_leader`), the label
    value `reconciler.iota/kind=<kind>`, a path segment of the REST API and a metrics label."""
    if not name:
        raise ValueError("a kind name must not be empty")
    if name.startswith("_"):
        raise ValueError(
            f"{name!r}: names starting with '_' are reserved for the daemon's own znodes "
            "(such as _leader)"
        )
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not allowed as a ZooKeeper node name")
    if "/" in name:
        raise ValueError(f"{name!r}: '/' would make the kind a ZooKeeper path, not a node name")
    if len(name) > DNS_LABEL_MAX:
        raise ValueError(
            f"{name[:20]!r}... is {len(name)} characters: at most {DNS_LABEL_MAX} "
            "(it is a Kubernetes label value)"
        )
    if not _LABEL_VALUE.fullmatch(name):
        raise ValueError(
            f"{name!r}: use letters, digits, '-', '_' or '.', beginning and ending with a "
            "letter or digit (a ZooKeeper node name and a Kubernetes label value)"
        )
    return name


def _dns_label(what: str, longest: int = DNS_LABEL_MAX, why: str = "") -> Any:
    """A DNS-1123 label of at most `longest` characters: `what` it is, `why` that length."""

    def check(value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a DNS-1123 label ({what}): lowercase letters, digits and "
                "'-', beginning and ending with a letter or digit"
            )
        if len(value) > longest:
            raise ValueError(
                f"{value[:20]!r}... is {len(value)} characters: at most {longest} ({why or what})"
            )
        return value

    return AfterValidator(check)


# Pods are `<instanceName>-<instanceId>` with ids below MAX_INSTANCES; a pod's name is its
# hostname, a DNS label of at most 63 characters.
INSTANCE_NAME_MAX = DNS_LABEL_MAX - len(f"-{MAX_INSTANCES - 1}")


def _table_name(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"{name!r} is not a table name")
    if len(name.encode("utf-8")) > _POSTGRES_IDENTIFIER_MAX:
        raise ValueError(
            f"{name[:20]!r}... is longer than {_POSTGRES_IDENTIFIER_MAX} bytes: PostgreSQL would "
            "silently read a table with the name cut short"
        )
    return name


KindName = Annotated[str, AfterValidator(_kind_name)]


class _Schema(BaseModel):
    # policy.yaml speaks the old orchestrator's camelCase (initInstances, maxInstances, ...);
    # unknown keys are errors so that a misspelt field is not silently ignored.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class HeartbeatPolicy(_Schema):
    enabled: bool = False
    timeout_seconds: Annotated[float, Field(ge=5, le=3600)] = 90.0
    # A new or recreated pod is not judged for silence before this much time has passed.
    grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 120.0


class RolloutPolicy(_Schema):
    """How outdated pods (a template edit, `reconciler restart`) are replaced."""

    # Pods of the kind that may be unavailable at once while outdated ones are replaced.
    max_unavailable: Annotated[int, Field(ge=1, le=MAX_INSTANCES)] = 1


class AutoscalePolicy(_Schema):
    """HPA-like scaling of the instance count by pod CPU and memory (percent of requests)."""

    cpu_target_percent: Annotated[float, Field(gt=0, le=1000)] | None = None
    memory_target_percent: Annotated[float, Field(gt=0, le=1000)] | None = None
    tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.1
    scale_up_window_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    scale_down_window_seconds: Annotated[float, Field(ge=0, le=3600)] = 300.0
    max_step: Annotated[int, Field(ge=1, le=100)] = 10  # instances added or removed per period
    period_seconds: Annotated[float, Field(ge=1, le=3600)] = 15.0
    metrics_max_age_seconds: Annotated[float, Field(ge=1, le=3600)] = 120.0

    @model_validator(mode="after")
    def _needs_a_target(self) -> AutoscalePolicy:
        if self.cpu_target_percent is None and self.memory_target_percent is None:
            raise ValueError("autoscale needs cpuTargetPercent and/or memoryTargetPercent")
        return self


class KindPolicy(_Schema):
    table: Annotated[str, AfterValidator(_table_name)]
    instance_name: Annotated[
        str,
        _dns_label(
            "pods are named <instanceName>-<instanceId>",
            INSTANCE_NAME_MAX,
            f"pods are <instanceName>-<instanceId> with ids up to {MAX_INSTANCES - 1}, and a pod "
            f"name must fit a {DNS_LABEL_MAX}-character DNS label",
        ),
    ]
    template: Annotated[str, Field(min_length=1)]
    namespace: Annotated[str, _dns_label("a Kubernetes namespace name")] = "iota"
    init_instances: Annotated[int, Field(ge=1, le=MAX_INSTANCES)] = 10
    max_instances: Annotated[int, Field(ge=3, le=MAX_INSTANCES)] = MAX_INSTANCES
    resource_per_instance: Annotated[int, Field(ge=1, le=5000)] = 5000
    heartbeat: HeartbeatPolicy = HeartbeatPolicy()
    autoscale: AutoscalePolicy | None = None
    rollout: RolloutPolicy = RolloutPolicy()

    @model_validator(mode="after")
    def _init_within_max(self) -> KindPolicy:
        if self.init_instances > self.max_instances:
            raise ValueError(
                f"initInstances ({self.init_instances}) must not exceed "
                f"maxInstances ({self.max_instances})"
            )
        return self


class Policy(_Schema):
    tick_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    kinds: dict[KindName, KindPolicy]

    @model_validator(mode="after")
    def _distinct_names(self) -> Policy:
        if not self.kinds:
            raise ValueError("kinds must name at least one resource kind")
        names = [k.instance_name for k in self.kinds.values()]
        if len(set(names)) != len(names):
            raise ValueError(f"instanceName must differ between kinds: {names}")
        return self


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    sha256: str  # of the file's bytes: shown in metrics so operators see which edit is live

    def template_path(self, kind: str) -> Path:
        """Template paths are relative to the policy file's folder."""
        p = Path(self.policy.kinds[kind].template)
        return p if p.is_absolute() else (self.path.parent / p).resolve()


def effective(policy: KindPolicy, overrides: dict[str, int] | None) -> KindPolicy:
    """The kind's policy with REST overrides (maxInstances, resourcePerInstance) applied."""
    if not overrides:
        return policy
    # by_alias: overrides use the policy's camelCase keys, and extra="forbid" would reject
    # the same field given twice (max_instances and maxInstances).
    return KindPolicy.model_validate({**policy.model_dump(by_alias=True), **overrides})
