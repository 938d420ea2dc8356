"""The Grafana dashboard as code: writes dashboards/reconciler.json with grafanalib.

    .venv/bin/python -m dashboards.generate           # rewrite dashboards/reconciler.json
    .venv/bin/python -m dashboards.generate --check   # exit 1 if the committed file differs

Edit this file (and dashboards/widgets.py), not the JSON;
tests/dashboards/test_dashboard_generated.py fails when the two disagree, and
tests/dashboards/test_dashboards.py runs every query against a real Prometheus scraping a
leader and its standby. Panels are laid out line by line (`Layout`), so a panel is added by
adding it to a line, without computing grid positions. Fleet panels read the writing
daemon's series (`writer`) or one value for all (`fleet_wide`); only a daemon's own health
is shown per replica (`PER_REPLICA`): docs/monitoring.md "Dashboards".
"""

from __future__ import annotations

import argparse
import difflib
import io
import sys
from pathlib import Path

import grafanalib.core as G
from grafanalib._gen import write_dashboard

from dashboards.widgets import (
    DATASOURCE,
    PER_REPLICA,
    RATE,
    RED_FROM_1,
    Layout,
    PromTarget,
    QueryVariable,
    fill_gauge,
    fleet_wide,
    query,
    stat,
    table,
    timeseries,
    writer,
)

OUT = Path(__file__).resolve().parent / "reconciler.json"
RESOURCE = 'resource=~"$resource"'


def _mapping(*items: tuple[str, str, str]) -> G.StatValueMappings:
    """Value -> (text, colour) for a stat panel: (text, value, colour) each."""
    return G.StatValueMappings(*(G.StatValueMappingItem(*item) for item in items))


def panels() -> list[G.Panel]:
    up_down = _mapping(("DOWN", "0", "red"), ("up", "1", "green"))
    ok_over = _mapping(("ok", "0", "green"), ("OVER", "1", "red"))
    ok_held = _mapping(("ok", "0", "green"), ("HELD", "1", "red"))
    ok_degraded = _mapping(("ok", "0", "green"), ("DEGRADED", "1", "orange"))
    leader_standby = _mapping(("standby", "0", "blue"), ("leader", "1", "green"))
    per_instance = "{{resource}}/{{instance_id}}"
    kind, one = "resource", "resource, instance_id"
    grid = Layout()

    grid.row("Daemons (one series per replica: leader and standbys)")
    grid.line(
        5,
        (stat("Leader",
              "Each daemon's role: one leader writes; the standbys observe and plan and take "
              "over when it goes (leader election).",
              "reconciler_leader", "{{identity}}", mappings=[leader_standby]), 6),
        (timeseries("Leader transitions",
                    "Times a daemon became leader or stopped being it. Rising on every "
                    "daemon: leadership is won and lost over and over.",
                    [query(f"sum by (instance) (increase("
                           f"reconciler_leader_transitions_total[{RATE}]))", PER_REPLICA)],
                    "short"), 6),
        (stat("Sources up",
              "1 when the source answered the daemon at its last try (zookeeper, database, "
              "kubernetes; mqtt and kafka when configured). A standby that cannot read a "
              "source could not take over.",
              "reconciler_source_up", "{{instance}} {{source}}", mappings=[up_down]), 12),
    )  # fmt: skip
    grid.line(
        6,
        (stat("Since the last clean pass",
              "Seconds since a pass saw every source and every operation succeeded, per "
              "daemon (a standby's passes apply nothing, and count too).",
              "time() - reconciler_last_success_timestamp_seconds", PER_REPLICA, "s"), 8),
        (timeseries("Passes over budget and crashed",
                    "Passes cut short by RECONCILER_PASS_BUDGET_SECONDS (their operations "
                    "go to the next pass) and passes that raised (a bug: see the log event "
                    "`reconcile pass crashed`).",
                    [query(f"sum by (instance) (increase("
                           f"reconciler_pass_overruns_total[{RATE}]))",
                           "{{instance}} over budget", "A"),
                     query(f"sum by (instance) (increase(reconciler_reconciles_total"
                           f'{{trigger="crashed"}}[{RATE}]))', "{{instance}} crashed", "B")],
                    "short"), 8),
        (timeseries("Memory (RSS)", "Resident memory of each daemon's process.",
                    [query("process_resident_memory_bytes "
                           "and on(job, instance) reconciler_build_info", PER_REPLICA)],
                    "bytes"), 8),
    )  # fmt: skip

    grid.row("Fleet overview (per resource kind, as the leader sees it)")
    grid.line(
        5,
        (stat("Instances", "Instances of the kind after the last plan.",
              writer(f"reconciler_instances{{{RESOURCE}}}", kind), "{{resource}}"), 6),
        (stat("Rows (resources to assign)",
              "Rows of the kind's table as last read from the database.",
              writer(f"reconciler_rows{{{RESOURCE}}}", kind), "{{resource}}"), 6),
        (stat("Unassigned ids",
              "Rows with no instance: the kind needs more than maxInstances. Should be 0.",
              writer(f"reconciler_unassigned_ids{{{RESOURCE}}}", kind), "{{resource}}",
              thresholds=RED_FROM_1), 6),
        (stat("Over capacity", "1 when the kind needs more instances than maxInstances allows.",
              writer(f"reconciler_over_capacity{{{RESOURCE}}}", kind), "{{resource}}",
              mappings=[ok_over], thresholds=RED_FROM_1), 6),
    )  # fmt: skip
    grid.line(
        5,
        (stat("Safety valve",
              "HELD while the kind's plan is held: it would unassign most of its ids or "
              "delete many pods (`reconciler status` says what; `reconciler confirm <Kind>` "
              "lets it go).",
              writer(f"reconciler_safety_valve_engaged{{{RESOURCE}}}", kind), "{{resource}}",
              mappings=[ok_held], thresholds=RED_FROM_1), 8),
        (stat("Degraded kinds",
              "DEGRADED while a daemon cannot read one of the kind's sources (its table, "
              "its namespace); the other kinds go on.",
              fleet_wide(f"reconciler_kind_degraded{{{RESOURCE}}}", kind), "{{resource}}",
              mappings=[ok_degraded], thresholds=RED_FROM_1), 8),
        (stat("Policy edits rejected",
              "policy.yaml loads the daemons refused in the time range (the last good "
              "policy stays in force; the log event `policy rejected` says why).",
              "max(increase(reconciler_policy_reloads_total"
              '{result="failed"}[$__range]))', "rejected", thresholds=RED_FROM_1), 8),
    )  # fmt: skip

    grid.row("Instances")
    used = writer(f"reconciler_instance_used{{{RESOURCE}}}", one)
    capacity = writer(f"reconciler_instance_capacity{{{RESOURCE}}}", one)
    grid.line(
        7,
        (timeseries("Used per instance", "Resource ids assigned to each instance.",
                    [query(used, per_instance)], "short"), 12),
        (fill_gauge("Fill (used / capacity)",
                    "Share of each instance's capacity (the znode's count) in use.",
                    f"{used} / on (resource, instance_id) {capacity}", per_instance), 12),
    )  # fmt: skip
    grid.line(
        7,
        (table("Used / capacity per instance",
               "The ZooKeeper layout's used and count, one row per instance.",
               [query(used, "used", "A", table=True),
                query(capacity, "capacity", "B", table=True)],
               {"excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True},
                "renameByName": {"Value #A": "used", "Value #B": "capacity (count)"}}), 12),
        (timeseries("Pod phases",
                    "Managed pods per phase. Failed/Unknown/Succeeded pods are deleted and "
                    "recreated.",
                    [query("sum by (resource, phase) ("
                           + writer(f"reconciler_pod_phase{{{RESOURCE}}}",
                                    "resource, instance_id, phase") + ")",
                           "{{resource}} {{phase}}")], "short"), 12),
    )  # fmt: skip

    grid.row("Pods and workers")
    grid.line(
        7,
        (timeseries("Pod CPU", "From metrics.k8s.io, for kinds with an autoscale block.",
                    [query(writer(f"reconciler_pod_cpu_usage_cores{{{RESOURCE}}}", one),
                           per_instance)], "cores"), 8),
        (timeseries("Pod memory", "From metrics.k8s.io, for kinds with an autoscale block.",
                    [query(writer(f"reconciler_pod_memory_usage_bytes{{{RESOURCE}}}", one),
                           per_instance)], "bytes"), 8),
        (timeseries("Heartbeat age",
                    "Seconds since each instance's last Kafka heartbeat, as of the last "
                    "reconcile (kinds with heartbeat.enabled).",
                    [query(writer(f"reconciler_heartbeat_age_seconds{{{RESOURCE}}}", one),
                           per_instance)], "s"), 8),
    )  # fmt: skip

    def quantile(q: str, ref: str) -> PromTarget:
        return query(
            f"histogram_quantile({q}, sum by (instance, le) "
            f"(rate(reconciler_reconcile_duration_seconds_bucket[{RATE}])))",
            f"{{{{instance}}}} p{q[2:].ljust(2, '0')}",
            ref,
        )

    grid.row("Reconcile loop")
    grid.line(
        7,
        (timeseries("Reconcile latency",
                    "Wall time of one observe-plan-apply pass (histogram quantiles), per "
                    "daemon: a standby's passes observe and plan without applying.",
                    [quantile("0.5", "A"), quantile("0.9", "B"), quantile("0.99", "C")],
                    "s"), 8),
        (timeseries("Reconciles by trigger",
                    "Passes per daemon by what started them: tick (timer, policy), leader "
                    "(won the election), event (row events), pod (pod died), orchestrate "
                    "(REST), heartbeat; crashed counts passes that raised.",
                    [query(f"sum by (instance, trigger) "
                           f"(rate(reconciler_reconciles_total[{RATE}]))",
                           "{{instance}} {{trigger}}")], "ops"), 8),
        (timeseries("Operations failed",
                    "Failed operations per second; each is retried on a later pass with "
                    "backoff. Only the leader applies operations.",
                    [query(f"sum by (resource, op) (rate(reconciler_operations_total"
                           f'{{{RESOURCE}, result="failed"}}[{RATE}]))',
                           "{{resource}} {{op}}")], "ops"), 8),
    )  # fmt: skip
    grid.line(
        7,
        (timeseries("Operations applied",
                    "Operations by type and result (ok, failed, pending, skipped); only the "
                    "leader applies them, so the sum over daemons is the fleet's.",
                    [query(f"sum by (resource, op, result) (rate(reconciler_operations_total"
                           f"{{{RESOURCE}}}[{RATE}]))", "{{resource}} {{op}} {{result}}")],
                    "ops"), 12),
        (timeseries("Ids moved",
                    "Resource ids moved between instances (rebalances, scale changes), "
                    "counted by the leader that moved them.",
                    [query(f"sum by (resource) (rate(reconciler_ids_moved_total"
                           f"{{{RESOURCE}}}[{RATE}]))", "{{resource}}")], "ops"), 12),
    )  # fmt: skip

    grid.row("Inputs (every daemon hears the same messages: the largest count, once)")
    grid.line(
        7,
        (timeseries("Events received",
                    "cm/notify row events (mqtt) and heartbeats (kafka) per second.",
                    [query(fleet_wide(f"rate(reconciler_events_received_total[{RATE}])",
                                      "source"), "{{source}}")], "ops"), 6),
        (timeseries("Events malformed",
                    "Messages that could not be parsed (dropped, logged with a sample).",
                    [query(fleet_wide(f"rate(reconciler_events_malformed_total[{RATE}])",
                                      "source"), "{{source}}")], "ops"), 6),
        (timeseries("Events rejected",
                    "Messages or ids refused, by reason: too-large, too-many-ids, "
                    "not-in-table (a create for an id the table lacks), still-in-table, "
                    "unverified (the database could not be asked), overflow.",
                    [query(fleet_wide(f"rate(reconciler_events_rejected_total[{RATE}])",
                                      "source, reason"), "{{source}} {{reason}}")],
                    "ops"), 6),
        (timeseries("Policy reloads",
                    "policy.yaml loads; failed = an edit was rejected and the last good policy "
                    "kept.",
                    [query(fleet_wide(f"increase(reconciler_policy_reloads_total[{RATE}])",
                                      "result"), "{{result}}")], "short"), 6),
    )  # fmt: skip
    grid.line(
        4,
        (table("Policy in force",
               "sha256 of the policy.yaml in force on each daemon: the replicas should agree.",
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
