"""The read side's copy of the daemon's state (`DaemonState.view()`, reconciler/state/daemon.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.domain.model import Assignment, KindReport, PassResult, Pod
from reconciler.domain.pins import Pin
from reconciler.policy.schema import KindPolicy, LoadedPolicy


@dataclass(frozen=True)
class StateView:
    """A consistent copy of the state for the read side (status, REST, metrics)."""

    loaded: LoadedPolicy | None
    policy_error: str | None
    policies: dict[str, KindPolicy]
    overrides: dict[str, dict[str, int]]
    assignments: dict[str, Assignment]
    reports: dict[str, KindReport]
    observed_pods: dict[str, dict[str, Pod] | None]
    known_rows: dict[str, int]  # kind -> number of rows last known
    source_errors: dict[str, str]  # source -> "<Kind>: <error>; ..." for the kinds it fails
    last_pass: PassResult | None
    last_pass_at: float | None  # Unix seconds
    pins: dict[str, Pin] = field(default_factory=dict)  # operators' pinned instance counts


def errors_by_source(errors: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """(source, kind) -> error, as source -> "<Kind>: <error>; ..." (sorted)."""
    out: dict[str, list[str]] = {}
    for (source, kind), error in sorted(errors.items()):
        out.setdefault(source, []).append(f"{kind}: {error}")
    return {source: "; ".join(errs) for source, errs in out.items()}
