"""The policy.yaml schema: what the operator wants, per resource kind.

Defaults and ranges come from SPEC.md ("Sizing"). A value out of range is an error that
names the field, the value and the allowed range: the old orchestrator silently replaced
such values with the maximum, which hid typos in production.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from reconciler.podspec import PodTemplate, load_pod_template


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
    table: str
    instance_name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=50)]
    template: str
    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = "iota"
    init_instances: Annotated[int, Field(ge=1, le=100)] = 10
    max_instances: Annotated[int, Field(ge=3, le=100)] = 100
    resource_per_instance: Annotated[int, Field(ge=1, le=5000)] = 5000
    heartbeat: HeartbeatPolicy = HeartbeatPolicy()
    autoscale: AutoscalePolicy | None = None

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
    kinds: dict[str, KindPolicy]

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


@dataclass(frozen=True)
class PolicyProblem:
    where: str  # dotted path into the YAML, e.g. "kinds.Thing.maxInstances"
    line: int | None  # 1-based line in the file, when known
    message: str

    def __str__(self) -> str:
        at = f"line {self.line}: " if self.line else ""
        return f"{at}{self.where}: {self.message}" if self.where else f"{at}{self.message}"


class PolicyError(Exception):
    def __init__(self, path: Path | str, problems: list[PolicyProblem]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems))


def load_policy(path: Path | str) -> LoadedPolicy:
    """Read and validate policy.yaml; raise PolicyError listing every problem with its line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PolicyError(path, [PolicyProblem("", None, f"cannot read: {e.strerror}")]) from e
    policy = parse_policy(raw, path)
    loaded = LoadedPolicy(policy, path.resolve(), hashlib.sha256(raw).hexdigest())
    missing = [
        PolicyProblem(f"kinds.{k}.template", None, f"no such file: {loaded.template_path(k)}")
        for k in policy.kinds
        if not loaded.template_path(k).is_file()
    ]
    if missing:
        raise PolicyError(path, missing)
    return loaded


def parse_policy(raw: bytes | str, path: Path | str = "<policy>") -> Policy:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(path, [PolicyProblem("", line, f"not valid YAML: {e}")]) from e
    if not isinstance(data, dict):
        raise PolicyError(path, [PolicyProblem("", 1, "the policy must be a YAML mapping")])
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(path, [_problem(err, node) for err in e.errors()]) from e


def _problem(err: Any, root: yaml.Node | None) -> PolicyProblem:
    loc = [str(p) for p in err["loc"]]
    message = err["msg"].removeprefix("Value error, ")
    bounds = _allowed_range(loc)
    if bounds and err["type"] in _RANGE_ERRORS:
        message = f"{err['input']!r} is out of range: allowed {bounds}"
    elif "input" in err and err["type"] not in ("missing", "model_type"):
        message = f"{message} (got {err['input']!r})"
    return PolicyProblem(".".join(loc), _line_of(root, loc), message)


_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _allowed_range(loc: list[str]) -> str | None:
    """'3..100' for kinds.Thing.maxInstances: the bounds declared on the schema field."""
    model: Any = Policy
    field = None
    for key in loc:
        if field is not None and model is None:
            return None
        if key in ("kinds",) and model is Policy:
            model, field = KindPolicy, None
            continue
        if model is KindPolicy and field is None and key not in _aliases(KindPolicy):
            continue  # the kind's name, e.g. "Thing"
        names = _aliases(model)
        if key not in names:
            return None
        field = model.model_fields[names[key]]
        sub = _model_of(field.annotation)
        model = sub
    if field is None:
        return None
    lo = hi = None
    for m in field.metadata:
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
        lo = f">{m.gt}" if getattr(m, "gt", None) is not None else lo
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
        hi = f"<{m.lt}" if getattr(m, "lt", None) is not None else hi
    if lo is None and hi is None:
        return None
    return f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"


def _aliases(model: Any) -> dict[str, str]:
    return {(f.alias or n): n for n, f in model.model_fields.items()}


def _model_of(annotation: Any) -> Any:
    for t in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _line_of(node: yaml.Node | None, loc: Iterable[str]) -> int | None:
    """The 1-based line of the deepest YAML node that `loc` reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == key:
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return line


def effective(policy: KindPolicy, overrides: dict[str, int] | None) -> KindPolicy:
    """The kind's policy with REST overrides (maxInstances, resourcePerInstance) applied."""
    if not overrides:
        return policy
    # by_alias: overrides use the policy's camelCase keys, and extra="forbid" would reject
    # the same field given twice (max_instances and maxInstances).
    return KindPolicy.model_validate({**policy.model_dump(by_alias=True), **overrides})


def load_policy_and_templates(path: Path | str) -> tuple[LoadedPolicy, dict[str, PodTemplate]]:
    """policy.yaml and every kind's pod template, validated together: the one way the daemon,
    `validate` and the tests load a policy. Raises PolicyError or TemplateError."""
    loaded = load_policy(path)
    templates = {
        kind: load_pod_template(kind, p.namespace, p.instance_name, loaded.template_path(kind))
        for kind, p in loaded.policy.kinds.items()
    }
    return loaded, templates
