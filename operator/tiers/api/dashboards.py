"""The Grafana dashboards of the Helm chart, generated from this one source.

`python -m tiers.api.dashboards charts/tiers/files/dashboards` writes one JSON file per
dashboard (`make crds` runs it; `make verify` fails on drift); the chart ships them as ConfigMaps
for Grafana's dashboard sidecar (metrics.grafanaDashboards). Every query reads the operator's
status gauges (tiers.operator.status_metrics), its reconcile metrics or the gateways' metrics;
a test parses each with promtool and checks that it names only metrics that exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
from typing import Any

JSON = dict[str, Any]

OBJECT = 'namespace=~"$namespace", name=~"$name"'


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]
    """(PromQL, legend) pairs."""
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    kind: str | None = None
    """The custom resource kind the namespace/name variables list; None for all kinds."""


def _of(kind: str) -> str:
    return f'kind="{kind}", {OBJECT}'


REALTIME = "RealtimeEndpoint"
STREAM = "StreamPipeline"
BATCH = "BatchJob"

DASHBOARDS = (
    Dashboard(
        uid="tiers-overview",
        title="Tiers / Overview",
        description="Every RealtimeEndpoint, StreamPipeline and BatchJob: readiness, cost, errors.",
        panels=(
            Panel(
                "Objects not Ready",
                (
                    (
                        'sum by (kind) (tiers_resource_condition{condition="Ready",'
                        f' status!="True", {OBJECT}}})',
                        "{{kind}}",
                    ),
                ),
                kind="stat",
            ),
            Panel(
                "Batch runs failed",
                ((f'sum(tiers_batch_last_run_state{{state="Failed", {OBJECT}}})', "failed"),),
                kind="stat",
            ),
            Panel(
                "Spend in each object's window",
                ((f"sum by (kind) (tiers_cost_usd{{{OBJECT}}})", "{{kind}}"),),
                unit="currencyUSD",
            ),
            Panel(
                "p95 latency",
                (
                    (
                        f'tiers_latency_seconds{{quantile="0.95", {OBJECT}}}',
                        "{{kind}} {{namespace}}/{{name}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Reconcile errors",
                (("sum by (kind) (rate(tiers_reconcile_errors_total[5m]))", "{{kind}}"),),
                unit="ops",
            ),
        ),
    ),
    Dashboard(
        uid="tiers-realtime",
        title="Tiers / Realtime",
        description="RealtimeEndpoints: latency against objective, traffic, errors, budget.",
        kind=REALTIME,
        panels=(
            Panel(
                "Latency percentiles",
                (
                    (f"tiers_latency_seconds{{{_of(REALTIME)}}}", "{{name}} p{{quantile}}"),
                    (
                        f"tiers_realtime_latency_objective_seconds{{{OBJECT}}}",
                        "{{name}} objective",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Requests per second",
                ((f"tiers_realtime_requests_per_second{{{OBJECT}}}", "{{name}}"),),
                unit="reqps",
            ),
            Panel(
                "Error ratio",
                ((f"tiers_realtime_error_ratio{{{OBJECT}}}", "{{name}}"),),
                unit="percentunit",
            ),
            Panel(
                "Budget: spent this month and limit",
                (
                    (f"tiers_realtime_budget_spent_usd{{{OBJECT}}}", "{{name}} spent"),
                    (f"tiers_realtime_budget_limit_usd{{{OBJECT}}}", "{{name}} limit"),
                ),
                unit="currencyUSD",
            ),
            Panel(
                "Gateway answers by cache outcome (all gateway pods)",
                (
                    (
                        "sum by (cache) (rate(tiers_gateway_requests_total[5m]))",
                        "{{cache}}",
                    ),
                ),
                unit="reqps",
            ),
        ),
    ),
    Dashboard(
        uid="tiers-stream",
        title="Tiers / Stream",
        description="StreamPipelines: lag, throughput, dead letters, end-to-end latency, cost.",
        kind=STREAM,
        panels=(
            Panel(
                "Lag (input events not yet read)",
                ((f"tiers_stream_lag_records{{{OBJECT}}}", "{{name}}"),),
            ),
            Panel(
                "Events per second",
                ((f"tiers_stream_events_per_second{{{OBJECT}}}", "{{name}}"),),
                unit="ops",
            ),
            Panel(
                "Dead-lettered events in the window",
                ((f"tiers_stream_dead_lettered{{{OBJECT}}}", "{{name}}"),),
            ),
            Panel(
                "End-to-end latency percentiles",
                ((f"tiers_latency_seconds{{{_of(STREAM)}}}", "{{name}} p{{quantile}}"),),
                unit="s",
            ),
            Panel(
                "Spend in the window",
                ((f"tiers_cost_usd{{{_of(STREAM)}}}", "{{name}}"),),
                unit="currencyUSD",
            ),
        ),
    ),
    Dashboard(
        uid="tiers-batch",
        title="Tiers / Batch",
        description="BatchJobs: progress, cost against estimate, the latest run's state.",
        kind=BATCH,
        panels=(
            Panel(
                "Progress",
                ((f"tiers_batch_progress_ratio{{{OBJECT}}}", "{{name}}"),),
                unit="percentunit",
            ),
            Panel(
                "Records scored",
                ((f"tiers_batch_records_done{{{OBJECT}}}", "{{name}}"),),
            ),
            Panel(
                "Cost against the estimate",
                (
                    (f"tiers_cost_usd{{{_of(BATCH)}}}", "{{name}} cost"),
                    (f"tiers_batch_estimate_usd{{{OBJECT}}}", "{{name}} estimate"),
                ),
                unit="currencyUSD",
            ),
            Panel(
                "Latest run",
                ((f"tiers_batch_last_run_state{{{OBJECT}}} == 1", "{{name}}: {{state}}"),),
                kind="table",
            ),
        ),
    ),
)


def queries(dashboard: Dashboard) -> list[str]:
    return [query for panel in dashboard.panels for query, _ in panel.queries]


def render(dashboard: Dashboard) -> JSON:
    """Grafana's dashboard JSON model: a datasource, namespace and name variables, a grid of
    panels two to a row."""
    kind = f'kind="{dashboard.kind}"' if dashboard.kind else ""
    panels = [
        _panel(panel, index, position=(12 * (index % 2), 8 * (index // 2)))
        for index, panel in enumerate(dashboard.panels)
    ]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["tiers"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Data source",
                },
                _variable(
                    "namespace", f"label_values(tiers_resource_condition{{{kind}}}, namespace)"
                ),
                _variable(
                    "name",
                    "label_values(tiers_resource_condition"
                    f'{{{kind + ", " if kind else ""}namespace=~"$namespace"}}, name)',
                ),
            ]
        },
        "panels": panels,
    }


def _variable(name: str, query: str) -> JSON:
    return {
        "name": name,
        "label": name.capitalize(),
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def _panel(panel: Panel, index: int, *, position: tuple[int, int]) -> JSON:
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": position[0], "y": position[1], "w": 12, "h": 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + number),
                "expr": query,
                "legendFormat": legend,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
            }
            for number, (query, legend) in enumerate(panel.queries)
        ],
    }


def write(directory: pathlib.Path) -> list[pathlib.Path]:
    """Writes every dashboard as `<uid without tiers->.json`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in DASHBOARDS:
        path = directory / f"{dashboard.uid.removeprefix('tiers-')}.json"
        path.write_text(json.dumps(render(dashboard), indent=2) + "\n")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=pathlib.Path)
    for path in write(parser.parse_args().directory):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
