"""The pieces dashboards/generate.py builds the dashboard from: Grafana panels as grafanalib
objects with this dashboard's defaults, a line-by-line layout, and the PromQL that reads the
fleet once when several daemons (a leader and standbys) are scraped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attr
import grafanalib.core as G

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RESOURCE = 'resource=~"$resource"'
RATE = "$__rate_interval"
LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}
RED_FROM_1 = [{"color": "green", "value": None}, {"color": "red", "value": 1}]


@attr.s
class PromTarget(G.Target):
    """A Prometheus query; `range=False` with `instant=True` for tables of current values."""

    range: bool = attr.ib(default=True)

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["range"] = self.range
        return data


@attr.s
class QueryVariable(G.Template):
    """A query variable with the `definition` Grafana shows in the variable editor."""

    definition: str = attr.ib(default="")

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["definition"] = self.definition
        return data


def query(expr: str, legend: str, ref: str = "A", *, table: bool = False) -> PromTarget:
    return PromTarget(
        expr=expr,
        legendFormat=legend,
        refId=ref,
        datasource=DATASOURCE,
        intervalFactor=1,
        instant=table,
        range=not table,
        format="table" if table else "time_series",
    )


def _common(title: str, description: str) -> dict[str, Any]:
    # maxDataPoints None: Grafana picks the resolution from the panel's width.
    return {
        "title": title,
        "description": description,
        "dataSource": DATASOURCE,
        "maxDataPoints": None,
    }


def stat(
    title: str,
    description: str,
    expr: str,
    legend: str,
    unit: str = "short",
    *,
    mappings: Sequence[G.StatValueMappings] = (),
    thresholds: Sequence[dict[str, Any]] | None = None,
) -> G.Stat:
    return G.Stat(
        **_common(title, description),
        targets=[query(expr, legend)],
        format=unit,
        mappings=list(mappings),
        thresholds=list(thresholds or [{"color": "green", "value": None}]),
        reduceCalc="lastNotNull",
        colorMode="value",
        graphMode="area",
        textMode="value_and_name",
        noValue="No data",
    )


def timeseries(title: str, description: str, targets: list[PromTarget], unit: str) -> G.TimeSeries:
    return G.TimeSeries(
        **_common(title, description),
        targets=targets,
        unit=unit,
        legendDisplayMode="list",
        legendPlacement="bottom",
        tooltipMode="multi",
    )


def fill_gauge(title: str, description: str, expr: str, legend: str) -> G.BarGauge:
    # grafanalib writes Grafana 6's `fieldOptions`; Grafana 7+ reads fieldConfig and
    # reduceOptions, given here as they are stored.
    return G.BarGauge(
        **_common(title, description),
        targets=[query(expr, legend)],
        orientation="horizontal",
        displayMode="gradient",
        format="percentunit",
        min=0,
        max=1,
        thresholds=[{"color": "green", "value": None}],
        extraJson={
            "fieldConfig": {
                "defaults": {"unit": "percentunit", "min": 0, "max": 1},
                "overrides": [],
            },
            "options": {"reduceOptions": LAST},
        },
    )


def table(
    title: str, description: str, targets: list[PromTarget], organize: dict[str, Any]
) -> G.Table:
    merge = [{"id": "merge", "options": {}}] if len(targets) > 1 else []
    return G.Table(
        **_common(title, description),
        targets=targets,
        unit="short",
        transformations=[*merge, {"id": "organize", "options": organize}],
    )


class Layout:
    """Rows and lines of panels, placed left to right, top to bottom, 24 columns wide."""

    def __init__(self) -> None:
        self.y = 0
        self.panels: list[G.Panel] = []

    def row(self, title: str) -> None:
        self.panels.append(
            G.RowPanel(title=title, collapsed=False, gridPos=G.GridPos(h=1, w=24, x=0, y=self.y))
        )
        self.y += 1

    def line(self, height: int, *panels: tuple[G.Panel, int]) -> None:
        x = 0
        for panel, width in panels:
            grid = G.GridPos(h=height, w=width, x=x, y=self.y)
            self.panels.append(attr.evolve(panel, gridPos=grid))
            x += width
        assert x <= 24, f"line at y={self.y} is {x} columns wide"
        self.y += height


# Every daemon, the leader and its standbys, exports the fleet's gauges (a standby observes
# and plans too), so a sum over daemons counts the fleet once per replica. The fleet is read
# from the daemon that writes: a standby (reconciler_leader 0 under every identity it
# exports) and an observe-only daemon are dropped. A daemon without leader election exports
# no reconciler_leader and is kept. dashboards/alerts.yaml reads the fleet the same way.
NOT_WRITING = (
    "unless on(job, instance) (max by (job, instance) (reconciler_leader) == 0) "
    "unless on(job, instance) (reconciler_observe_only == 1)"
)


def writer(expr: str, by: str) -> str:
    """`expr` as the writing daemon has it, by `by`'s labels only: the series stay the same
    through a failover (no job/instance in them), one per kind (or instance), never two."""
    return f"max by ({by}) ({expr} {NOT_WRITING})"


def fleet_wide(expr: str, by: str) -> str:
    """`expr` where every daemon's value is the same fact (the same messages, the same policy
    file): the largest of them, one series by `by`'s labels."""
    return f"max by ({by}) ({expr})"


# A daemon's own series (its sources, its passes, its memory), one per scraped replica.
PER_REPLICA = "{{instance}}"
