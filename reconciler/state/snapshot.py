"""The read side's snapshot of the daemon's state (`DaemonState.view()`): taken under the
state's lock, so every part is seen at one instant, and held in read-only mappings of frozen
values, so a reader can neither race a pass nor change the state through it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from reconciler.domain.model import Instance, KindReport, PassResult, Pod
from reconciler.domain.pins import Pin
from reconciler.policy.schema import KindPolicy, LoadedPolicy

K = TypeVar("K")
V = TypeVar("V")


def read_only(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """A read-only view of `mapping`, which must be the snapshot's own copy."""
    return MappingProxyType(mapping)


@dataclass(frozen=True)
class StateView:
    """A consistent, read-only copy of the state for the read side (status, REST, metrics)."""

    loaded: LoadedPolicy | None
    policy_error: str | None
    policies: Mapping[str, KindPolicy]
    overrides: Mapping[str, Mapping[str, int]]
    assignments: Mapping[str, Mapping[int, Instance]]
    reports: Mapping[str, KindReport]
    observed_pods: Mapping[str, Mapping[str, Pod] | None]
    known_rows: Mapping[str, int]  # kind -> number of rows last known
    source_errors: Mapping[str, str]  # source -> "<Kind>: <error>; ..." for the kinds it fails
    last_pass: PassResult | None
    last_pass_at: float | None  # Unix seconds
    degraded: Mapping[str, Mapping[str, str]]  # kind -> source -> error (healthy: none)
    valves: Mapping[str, Mapping[str, object]]  # kind -> its safety valve's summary
    pins: Mapping[str, Pin] = field(default_factory=dict)  # operators' pinned instance counts


def errors_by_source(errors: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """(source, kind) -> error, as source -> "<Kind>: <error>; ..." (sorted)."""
    out: dict[str, list[str]] = {}
    for (source, kind), error in sorted(errors.items()):
        out.setdefault(source, []).append(f"{kind}: {error}")
    return {source: "; ".join(errs) for source, errs in out.items()}
