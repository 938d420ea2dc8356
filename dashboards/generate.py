"""The Grafana dashboard as code: writes dashboards/reconciler.json with grafanalib.

    .venv/bin/python -m dashboards.generate           # rewrite dashboards/reconciler.json
    .venv/bin/python -m dashboards.generate --check   # exit 1 if the committed file differs

Edit this file, not the JSON; tests/dashboards/test_dashboard_generated.py fails when the two
disagree, and tests/dashboards/test_dashboards.py runs every query against a real
Prometheus scraping a daemon. Panels are laid out line by line (`Layout`), so a panel is
added by adding it to a line, without computing grid positions.
"""

from __future__ import annotations

import argparse
import difflib
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attr
import grafanalib.core as G
from grafanalib._gen import write_dashboard

OUT = Path(__file__).resolve().parent / "reconciler.json"

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


def panels() -> list[G.Panel]:
    up_down = G.StatValueMappings(
        G.StatValueMappingItem("DOWN", "0", "red"), G.StatValueMappingItem("up", "1", "green")
    )
    ok_over = G.StatValueMappings(
        G.StatValueMappingItem("ok", "0", "green"), G.StatValueMappingItem("OVER", "1", "red")
    )
    per_instance = "{{resource}}/{{instance_id}}"
    grid = Layout()

    grid.row("Fleet overview (per resource kind)")
    grid.line(
        5,
        (stat("Instances", "Instances of the kind after the last plan.",
              f"reconciler_instances{{{RESOURCE}}}", "{{resource}}"), 6),
        (stat("Rows (resources to assign)",
              "Rows of the kind's table as last read from the database.",
              f"reconciler_rows{{{RESOURCE}}}", "{{resource}}"), 6),
        (stat("Unassigned ids",
              "Rows with no instance: the kind needs more than maxInstances. Should be 0.",
              f"reconciler_unassigned_ids{{{RESOURCE}}}", "{{resource}}",
              thresholds=RED_FROM_1), 6),
        (stat("Over capacity", "1 when the kind needs more instances than maxInstances allows.",
              f"reconciler_over_capacity{{{RESOURCE}}}", "{{resource}}",
              mappings=[ok_over], thresholds=RED_FROM_1), 6),
    )  # fmt: skip
    grid.line(
        5,
        (stat("Sources up",
              "1 when the source answered at the last try (zookeeper, database, kubernetes; "
              "mqtt and kafka when configured).",
              "reconciler_source_up", "{{source}}", mappings=[up_down]), 12),
        (stat("Since the last fully successful reconcile",
              "Seconds since a reconcile saw every source and every operation succeeded.",
              "time() - reconciler_last_success_timestamp_seconds", "age", "s"), 12),
    )  # fmt: skip

    grid.row("Instances")
    grid.line(
        7,
        (timeseries("Used per instance", "Resource ids assigned to each instance.",
                    [query(f"reconciler_instance_used{{{RESOURCE}}}", per_instance)],
                    "short"), 12),
        (fill_gauge("Fill (used / capacity)",
                    "Share of each instance's capacity (the znode's count) in use.",
                    f"reconciler_instance_used{{{RESOURCE}}} / on (resource, instance_id) "
                    f"reconciler_instance_capacity{{{RESOURCE}}}", per_instance), 12),
    )  # fmt: skip
    grid.line(
        7,
        (table("Used / capacity per instance",
               "The ZooKeeper layout's used and count, one row per instance.",
               [query(f"reconciler_instance_used{{{RESOURCE}}}", "used", "A", table=True),
                query(f"reconciler_instance_capacity{{{RESOURCE}}}", "capacity", "B",
                      table=True)],
               {"excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True},
                "renameByName": {"Value #A": "used", "Value #B": "capacity (count)"}}), 12),
        (timeseries("Pod phases",
                    "Managed pods per phase. Failed/Unknown/Succeeded pods are deleted and "
                    "recreated.",
                    [query(f"sum by (resource, phase) (reconciler_pod_phase{{{RESOURCE}}})",
                           "{{resource}} {{phase}}")], "short"), 12),
    )  # fmt: skip

    grid.row("Pods and workers")
    grid.line(
        7,
        (timeseries("Pod CPU", "From metrics.k8s.io, for kinds with an autoscale block.",
                    [query(f"reconciler_pod_cpu_usage_cores{{{RESOURCE}}}", per_instance)],
                    "cores"), 8),
        (timeseries("Pod memory", "From metrics.k8s.io, for kinds with an autoscale block.",
                    [query(f"reconciler_pod_memory_usage_bytes{{{RESOURCE}}}", per_instance)],
                    "bytes"), 8),
        (timeseries("Heartbeat age",
                    "Seconds since each instance's last Kafka heartbeat, as of the last "
                    "reconcile (kinds with heartbeat.enabled).",
                    [query(f"reconciler_heartbeat_age_seconds{{{RESOURCE}}}", per_instance)],
                    "s"), 8),
    )  # fmt: skip

    def quantile(q: str, ref: str) -> PromTarget:
        return query(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(reconciler_reconcile_duration_seconds_bucket[{RATE}])))",
            f"p{q[2:].ljust(2, '0')}",
            ref,
        )

    grid.row("Reconcile loop")
    grid.line(
        7,
        (timeseries("Reconcile latency",
                    "Wall time of one observe-plan-apply pass (histogram quantiles).",
                    [quantile("0.5", "A"), quantile("0.9", "B"), quantile("0.99", "C")],
                    "s"), 8),
        (timeseries("Reconciles by trigger",
                    "tick (timer, policy), event (row events), pod (pod died), orchestrate "
                    "(REST).",
                    [query(f"sum by (trigger) (rate(reconciler_reconciles_total[{RATE}]))",
                           "{{trigger}}")], "ops"), 8),
        (timeseries("Operations failed",
                    "Failed operations per second; each is retried on a later pass with "
                    "backoff.",
                    [query(f"sum by (resource, op) (rate(reconciler_operations_total"
                           f'{{{RESOURCE}, result="failed"}}[{RATE}]))',
                           "{{resource}} {{op}}")], "ops"), 8),
    )  # fmt: skip
    grid.line(
        7,
        (timeseries("Operations applied",
                    "Operations by type and result (ok, failed, pending, skipped).",
                    [query(f"sum by (resource, op, result) (rate(reconciler_operations_total"
                           f"{{{RESOURCE}}}[{RATE}]))", "{{resource}} {{op}} {{result}}")],
                    "ops"), 12),
        (timeseries("Ids moved",
                    "Resource ids moved between instances (rebalances, scale changes).",
                    [query(f"sum by (resource) (rate(reconciler_ids_moved_total"
                           f"{{{RESOURCE}}}[{RATE}]))", "{{resource}}")], "ops"), 12),
    )  # fmt: skip

    grid.row("Inputs")
    grid.line(
        7,
        (timeseries("Events received",
                    "cm/notify row events (mqtt) and heartbeats (kafka) per second.",
                    [query(f"sum by (source) (rate(reconciler_events_received_total[{RATE}]))",
                           "{{source}}")], "ops"), 8),
        (timeseries("Events malformed",
                    "Messages that could not be parsed (dropped, logged with a sample).",
                    [query(f"sum by (source) (rate(reconciler_events_malformed_total[{RATE}]))",
                           "{{source}}")], "ops"), 8),
        (timeseries("Policy reloads",
                    "policy.yaml loads; failed = an edit was rejected and the last good policy "
                    "kept.",
                    [query(f"sum by (result) (increase(reconciler_policy_reloads_total[{RATE}]))",
                           "{{result}}")], "short"), 8),
    )  # fmt: skip
    grid.line(
        4,
        (table("Policy in force", "sha256 of the policy.yaml in force.",
               [query("reconciler_policy_info", "{{sha256}}", table=True)],
               {"excludeByName": {"Time": True, "Value": True, "__name__": True}}), 24),
    )  # fmt: skip
    return grid.panels


def dashboard() -> G.Dashboard:
    variables = [
        G.Template(
            name="datasource",
            label="Data source",
            type="datasource",
            query="prometheus",
            refresh=1,
            regex="",
        ),
        QueryVariable(
            name="resource",
            label="Resource kind",
            type="query",
            dataSource=DATASOURCE,
            query={"query": "label_values(reconciler_instances, resource)", "refId": "resource"},
            definition="label_values(reconciler_instances, resource)",
            multi=True,
            includeAll=True,
            allValue=".*",
            default="$__all",
            refresh=2,
            sort=1,
            regex="",
        ),
    ]
    return G.Dashboard(
        uid="reconciler-fleet",
        title="reconciler: IoT worker fleet",
        description=(
            "Shards, sizes and health of the Thing/Rule worker fleet kept by the reconciler daemon."
        ),
        tags=["reconciler", "iota"],
        schemaVersion=39,
        version=1,
        editable=True,
        graphTooltip=1,
        refresh="30s",
        time=G.Time("now-1h", "now"),
        timezone="",
        templating=G.Templating(list=variables),
        panels=panels(),
    ).auto_panel_ids()


def render() -> str:
    out = io.StringIO()
    write_dashboard(dashboard(), out)
    return out.getvalue() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current == text:
            print(f"{args.out}: up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            str(args.out),
            "generated",
        )
        sys.stdout.writelines(list(diff)[:80])
        print(f"{args.out} is stale: run python -m dashboards.generate", file=sys.stderr)
        return 1
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
