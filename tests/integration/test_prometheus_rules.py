"""The chart's alerts and dashboards, checked by Prometheus' own promtool: the PrometheusRule as
the chart renders it passes `promtool check rules` and the unit tests of
tests/prometheus/rules_test.yaml (each alert fires on recorded series after its `for`, and not on
healthy neighbours); every dashboard query parses, and every query names only metrics that the
operator or the gateways export."""

from __future__ import annotations

import pathlib
import re
import subprocess
import urllib.request
from collections.abc import Iterator

import prometheus_client
import pytest
import yaml
from conftest import ROOT, Kubectl, render_chart, wait_for
from prometheus_client.parser import text_string_to_metric_families

from tiers.api import dashboards
from tiers.devenv import toolchain
from tiers.operator import metrics as operator_metrics
from tiers.operator import status_metrics
from tiers.runtime.gateway import metrics as gateway_metrics

RULES_TEST = ROOT / "tests" / "prometheus" / "rules_test.yaml"


@pytest.fixture(scope="module")
def promtool() -> pathlib.Path:
    return toolchain.ensure_built(toolchain.PROMTOOL) / "promtool"


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The rule groups of the PrometheusRule the chart renders, as a Prometheus rule file."""
    rendered = render_chart(
        "--set", "metrics.prometheusRule.enabled=true",
        "--show-only", "templates/prometheusrule.yaml",
    )  # fmt: skip
    rule = yaml.safe_load(rendered)
    assert rule["kind"] == "PrometheusRule"
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def promtool_run(promtool: pathlib.Path, *args: str) -> str:
    done = subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_charts_alerts_are_valid_and_fire_as_their_unit_tests_say(
    promtool: pathlib.Path, rules: pathlib.Path
) -> None:
    checked = promtool_run(promtool, "check", "rules", str(rules))
    assert "SUCCESS: 9 rules found" in checked
    unit_tests = rules.with_name("rules_test.yaml")
    unit_tests.write_text(RULES_TEST.read_text().replace("  - RULES", f"  - {rules}"))
    tested = promtool_run(promtool, "test", "rules", str(unit_tests))
    assert "SUCCESS" in tested


def test_every_alert_has_a_unit_test_and_a_severity(rules: pathlib.Path) -> None:
    alerts = {rule["alert"]: rule for group in _groups(rules) for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == set(alerts)
    assert {rule["labels"]["severity"] for rule in alerts.values()} <= {"warning", "critical"}


def test_every_dashboard_query_parses(promtool: pathlib.Path, tmp_path: pathlib.Path) -> None:
    recorded = [
        {"record": f"tiers:dashboard_query_{number}", "expr": query}
        for number, query in enumerate(_dashboard_queries())
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": recorded}]}))
    assert f"SUCCESS: {len(recorded)} rules found" in promtool_run(
        promtool, "check", "rules", str(path)
    )


def test_queries_and_alerts_name_only_metrics_that_are_exported(rules: pathlib.Path) -> None:
    exported = _exported_metric_names()
    expressions = [*_dashboard_queries(), *(
        rule["expr"] for group in _groups(rules) for rule in group["rules"]
    )]  # fmt: skip
    named = {name for expression in expressions for name in re.findall(r"\btiers_\w+", expression)}
    assert named, "no query names a metric"
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    written = {path.name for path in (ROOT / "charts/tiers/files/dashboards").glob("*.json")}
    assert written == {f"{d.uid.removeprefix('tiers-')}.json" for d in dashboards.DASHBOARDS}


def _groups(rules: pathlib.Path) -> list[dict[str, object]]:
    groups: list[dict[str, object]] = yaml.safe_load(rules.read_text())["groups"]
    return groups


def _dashboard_queries() -> Iterator[str]:
    for dashboard in dashboards.DASHBOARDS:
        yield from dashboards.queries(dashboard)


def _exported_metric_names() -> set[str]:
    """Every series name the operator and the gateways can expose."""
    names = set(status_metrics.METRICS)
    families = [
        *gateway_metrics.REGISTRY.collect(),
        *(
            metric
            for collector in (
                operator_metrics.RECONCILES,
                operator_metrics.RECONCILE_ERRORS,
                operator_metrics.RECONCILE_SECONDS,
            )
            for metric in collector.collect()
        ),
    ]
    for family in families:
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    assert isinstance(prometheus_client.REGISTRY, prometheus_client.CollectorRegistry)
    return names


def test_the_operator_exports_an_objects_status_and_forgets_it_once_deleted(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    """The gauges the alerts read come from the operator's watch: they appear with the object's
    status and disappear with the object."""
    job = yaml.safe_load((ROOT / "examples/03-batch/spark-batch-job.yaml").read_text())
    job["spec"]["suspend"] = True
    kubectl.apply(yaml.safe_dump(job), namespace=namespace)
    wanted = {"kind": "BatchJob", "namespace": namespace, "name": "ticket-triage"}

    def exported() -> list[dict[str, str]]:
        """The job's conditions among the operator's metrics, those whose series is 1."""
        with urllib.request.urlopen(operator, timeout=5) as response:
            text = response.read().decode()
        return [
            sample.labels
            for family in text_string_to_metric_families(text)
            if family.name == "tiers_resource_condition"
            for sample in family.samples
            if sample.value == 1 and wanted.items() <= sample.labels.items()
        ]

    found = wait_for(exported, timeout_s=60, what="the BatchJob's conditions among the metrics")
    assert "Succeeded" in {labels["condition"] for labels in found}
    kubectl.run("delete", "-n", namespace, "batchjob", "ticket-triage", "--wait=true")
    wait_for(lambda: not exported(), timeout_s=60, what="the deleted BatchJob's series to go")
