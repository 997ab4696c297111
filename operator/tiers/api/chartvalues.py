"""The values of the Helm chart `charts/tiers/` as a typed model, and the generator of its schema.

`python -m tiers.api.chartvalues charts/tiers/values.schema.json` writes the JSON Schema that Helm
checks every install and upgrade against (`make crds` runs it; `make verify` fails on drift). The
hand-written, commented `values.yaml` must validate against `Values`, and each of its comments must
say what the field's description here says: `tests/unit/test_chart.py` checks both.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from tiers.api import common

JSON = dict[str, Any]

# A Kubernetes quantity as values files write it: "100m", "128Mi", or a bare number of cores.
Quantity = str | int


def _quantities(**quantities: Quantity) -> dict[str, Quantity]:
    return quantities


# The models share the CRD models' conventions: camelCase keys, and an unknown key is an error
# (a misspelt value would otherwise be ignored without a word).
class Crds(common.Model):
    enabled: bool = pydantic.Field(
        default=True,
        description=(
            "Install and upgrade the CustomResourceDefinitions with the release. Turn it off when"
            " they are managed elsewhere (e.g. applied from crds/ with kubectl)."
        ),
    )
    keep: bool = pydantic.Field(
        default=True,
        description=(
            "Keep the CRDs when the release is uninstalled: deleting a CRD deletes every"
            " RealtimeEndpoint, StreamPipeline and BatchJob in the cluster."
        ),
    )


class Image(common.Model):
    repository: str = pydantic.Field(
        default="tiers",
        min_length=1,
        description=(
            "Image of the operator, built from the Dockerfile at the repository's root (no image"
            " is published: push it to your registry, or `kind load docker-image tiers:0.1.0`)."
        ),
    )
    tag: str = pydantic.Field(
        default="", description="Image tag; empty means the chart's appVersion."
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = pydantic.Field(
        default="IfNotPresent", description="When the kubelet pulls the image."
    )


class LocalObjectReference(common.Model):
    name: str = pydantic.Field(
        min_length=1, description="Name of a Secret in the release namespace."
    )


class ServiceAccount(common.Model):
    create: bool = pydantic.Field(
        default=True, description="Create the ServiceAccount the operator runs as."
    )
    name: str = pydantic.Field(
        default="",
        description=(
            "Name of the ServiceAccount; empty means the release's full name. Set it to use an"
            " existing one when create is false."
        ),
    )
    annotations: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="Annotations of the ServiceAccount (e.g. for a cloud workload identity).",
    )


GUID_OR_EMPTY = r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})?$"


class AzureWorkloadIdentity(common.Model):
    client_id: str = pydantic.Field(
        default="",
        pattern=GUID_OR_EMPTY,
        description=(
            "The application (client) ID the operator's ServiceAccount is federated to. Set, the"
            " chart annotates the ServiceAccount azure.workload.identity/client-id and labels the"
            ' operator\'s pod azure.workload.identity/use: "true", so that Azure Workload'
            " Identity's webhook gives it a token (AZURE_FEDERATED_TOKEN_FILE). Empty: none."
        ),
    )
    tenant_id: str = pydantic.Field(
        default="",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9.-]*)?$",
        description=(
            "The application's tenant (azure.workload.identity/tenant-id); empty: the webhook's"
            " default, the cluster's tenant."
        ),
    )


class Azure(common.Model):
    workload_identity: AzureWorkloadIdentity = pydantic.Field(
        default_factory=AzureWorkloadIdentity,
        description=(
            "Microsoft Entra Workload ID for the operator: how it reads Azure Databricks"
            " workspaces by resource ID (spec.databricks.workspaceResourceId without azure)."
        ),
    )


class Rbac(common.Model):
    create: bool = pydantic.Field(
        default=True,
        description=(
            "Create the ClusterRole and ClusterRoleBinding the operator needs (a Role and"
            " RoleBinding per namespace with watchNamespaces): exactly the verbs it uses on the"
            " three kinds and on the objects it makes of them."
        ),
    )


class Spark(common.Model):
    allowed_images: list[str] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description=(
            "Images a StreamPipeline's or BatchJob's spec.spark.image may name, besides the"
            " operator's own: exact references, or prefixes ending in * (registry.example/spark/*)."
            " Any other image is refused with the condition reason ImageNotAllowed."
        ),
    )


class Notifications(common.Model):
    allowed_networks: list[str] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description=(
            "Networks (CIDRs) besides public addresses that a BatchJob's completion webhook may"
            " be posted to, or its spec.databricks.host be in, e.g. an in-cluster relay's Service"
            " range. Loopback, link-local (the cloud metadata service) and private addresses are"
            " refused otherwise (condition reason HostNotAllowed for a Databricks host)."
        ),
    )


class NetworkPolicy(common.Model):
    enabled: bool = pydantic.Field(
        default=True,
        description=(
            "Render NetworkPolicies: a RealtimeEndpoint's managed Redis admits its gateways and"
            " the operator only, a StreamPipeline's stats Redis its job and the operator only,"
            " its push gateway its own namespace only. Needs a network plugin that enforces them."
        ),
    )
    push_gateway_from_namespaces: list[str] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description=(
            "Namespaces whose pods may also reach every push gateway (e.g. an ingress"
            " controller's, in front of browsers)."
        ),
    )


class Telemetry(common.Model):
    otlp_endpoint: str = pydantic.Field(
        default="",
        max_length=2048,
        pattern=r"^$|" + common.HTTP_URL_PATTERN,
        description=(
            "A collector's OTLP/HTTP base URL that every RealtimeEndpoint, StreamPipeline and"
            " BatchJob without spec.telemetry sends its traces to; empty: none unless the spec"
            " names one."
        ),
    )
    sampling_ratio: str = pydantic.Field(
        default="1",
        max_length=8,
        pattern=common.RATIO_PATTERN,
        description='The share of new traces recorded with otlpEndpoint, "0" to "1".',
    )
    max_queue_spans: int = pydantic.Field(
        default=common.MAX_QUEUE_SPANS,
        ge=16,
        le=100_000,
        description="Spans each gateway replica or stream worker holds for export with"
        " otlpEndpoint, 16 to 100000; past it new ones are dropped and counted.",
    )


class Resources(common.Model):
    requests: dict[str, Quantity] = pydantic.Field(
        default_factory=lambda: _quantities(cpu="100m", memory="128Mi"),
        description="What the scheduler reserves for the operator.",
    )
    limits: dict[str, Quantity] = pydantic.Field(
        default_factory=lambda: _quantities(cpu="1", memory="512Mi"),
        description=(
            "The most the operator may use; it stays under 250 MB of memory with 1,000 objects."
        ),
    )


class Toleration(common.Model):
    key: str = pydantic.Field(default="", description="Taint key; empty matches every key.")
    operator: Literal["Exists", "Equal"] = pydantic.Field(
        default="Equal", description="How the value is compared."
    )
    value: str = pydantic.Field(default="", description="Taint value, for operator Equal.")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = pydantic.Field(
        default="", description="Taint effect; empty matches every effect."
    )
    toleration_seconds: int | None = pydantic.Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated."
    )


class Affinity(common.Model):
    """Kubernetes' own Affinity: its three parts pass through to the pod as they are written."""

    node_affinity: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="Nodes the pod prefers or requires."
    )
    pod_affinity: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="Pods the pod is scheduled near."
    )
    pod_anti_affinity: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="Pods the pod is scheduled away from."
    )


class MetricsService(common.Model):
    enabled: bool = pydantic.Field(
        default=True, description="Create a ClusterIP Service in front of the metrics port."
    )
    port: int = pydantic.Field(
        default=9090, ge=1, le=65535, description="Port of the metrics Service."
    )


class ServiceMonitor(common.Model):
    enabled: bool = pydantic.Field(
        default=False,
        description=(
            "Create a Prometheus Operator ServiceMonitor (needs its CRDs and metrics.service)."
        ),
    )
    interval: str = pydantic.Field(
        default="30s", pattern=r"^[0-9]+(ms|s|m|h)$", description="How often Prometheus scrapes."
    )
    labels: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="Extra labels of the ServiceMonitor, for the Prometheus that selects it.",
    )


class PrometheusRule(common.Model):
    enabled: bool = pydantic.Field(
        default=False,
        description=(
            "Create a Prometheus Operator PrometheusRule with the alerts of"
            " files/prometheus-rules.yaml: latency over objective, errors, budget burn, stream"
            " lag, failed or over-estimate batch runs, reconcile errors (needs its CRDs)."
        ),
    )
    labels: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="Extra labels of the PrometheusRule, for the Prometheus that selects it.",
    )
    rule_labels: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="Labels added to every alert, e.g. a team for Alertmanager's routes.",
    )


class GrafanaDashboards(common.Model):
    enabled: bool = pydantic.Field(
        default=False,
        description=(
            "Create a ConfigMap per dashboard of files/dashboards/ (overview, realtime, stream,"
            " batch) for Grafana's dashboard sidecar to load."
        ),
    )
    labels: dict[str, str] = pydantic.Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="Labels the sidecar selects the ConfigMaps by.",
    )


class Metrics(common.Model):
    service: MetricsService = pydantic.Field(
        default_factory=MetricsService,
        description="The operator serves Prometheus metrics on /metrics, port 9090.",
    )
    service_monitor: ServiceMonitor = pydantic.Field(
        default_factory=ServiceMonitor,
        description="Scraping by the Prometheus Operator.",
    )
    prometheus_rule: PrometheusRule = pydantic.Field(
        default_factory=PrometheusRule, description="Alerts for the Prometheus Operator."
    )
    grafana_dashboards: GrafanaDashboards = pydantic.Field(
        default_factory=GrafanaDashboards, description="Dashboards for Grafana."
    )


class ConsoleService(common.Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = pydantic.Field(
        default="ClusterIP", description="Type of the console's Service."
    )
    port: int = pydantic.Field(
        default=8088, ge=1, le=65535, description="Port of the console's Service."
    )


class ConsoleServiceAccount(common.Model):
    create: bool = pydantic.Field(
        default=True,
        description=(
            "Create the ServiceAccount the console runs as (its own: it may only read the three"
            " kinds, and their Events with allowAnonymousRead)."
        ),
    )
    name: str = pydantic.Field(
        default="",
        description="Name of the ServiceAccount; empty means the release's full name + -console.",
    )
    annotations: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Annotations of the console's ServiceAccount."
    )


class ConsoleResources(common.Model):
    requests: dict[str, Quantity] = pydantic.Field(
        default_factory=lambda: _quantities(cpu="50m", memory="128Mi"),
        description="What the scheduler reserves for the console.",
    )
    limits: dict[str, Quantity] = pydantic.Field(
        default_factory=lambda: _quantities(cpu="1", memory="512Mi"),
        description="The most the console may use.",
    )


class Console(common.Model):
    enabled: bool = pydantic.Field(
        default=False,
        description=(
            "Run the web console (a Deployment and a Service on port 8088): every"
            " RealtimeEndpoint, StreamPipeline and BatchJob live, read with each user's own"
            " Kubernetes bearer token."
        ),
    )
    allow_anonymous_read: bool = pydantic.Field(
        default=False,
        description=(
            "Show users without a token what the console's own ServiceAccount reads (the three"
            " kinds and their Events, read-only). Off: every user signs in with their token."
        ),
    )
    service: ConsoleService = pydantic.Field(
        default_factory=ConsoleService, description="The console's Service."
    )
    service_account: ConsoleServiceAccount = pydantic.Field(
        default_factory=ConsoleServiceAccount, description="The identity the console runs as."
    )
    batch_claim_name: str = pydantic.Field(
        default="",
        max_length=253,
        description=(
            "A PersistentVolumeClaim the BatchJobs' pods also mount, at /data/batch: the console"
            " uploads inputs to and downloads results from the file:// URIs under it. Empty:"
            " no uploads."
        ),
    )
    max_upload_mb: int = pydantic.Field(
        default=512, ge=1, le=102400, description="The largest BatchJob input upload, in MiB."
    )
    resources: ConsoleResources = pydantic.Field(
        default_factory=ConsoleResources, description="CPU and memory of the console's container."
    )


class Values(common.Model):
    """Values of the Tiers Helm chart."""

    crds: Crds = pydantic.Field(
        default_factory=Crds,
        description=(
            "The CustomResourceDefinitions of RealtimeEndpoint, StreamPipeline and BatchJob."
        ),
    )
    name_override: str = pydantic.Field(
        default="", description="Replaces the chart's name in the names of the objects."
    )
    fullname_override: str = pydantic.Field(
        default="", description="Replaces the whole name of the objects (release and chart name)."
    )
    replica_count: int = pydantic.Field(
        default=1,
        ge=0,
        le=2,
        description=(
            "Operator pods: 1 runs it, 2 keeps a standby that takes over within 15 s when the"
            " leader dies (one holds the Lease and reconciles, the other waits), 0 pauses it."
        ),
    )
    image: Image = pydantic.Field(default_factory=Image, description="The operator's image.")
    image_pull_secrets: list[LocalObjectReference] = pydantic.Field(
        default_factory=list, description="Secrets with credentials for the image's registry."
    )
    service_account: ServiceAccount = pydantic.Field(
        default_factory=ServiceAccount, description="The identity the operator runs as."
    )
    rbac: Rbac = pydantic.Field(default_factory=Rbac, description="The operator's permissions.")
    azure: Azure = pydantic.Field(
        default_factory=Azure, description="The operator's Azure identity."
    )
    watch_namespaces: list[common.ResourceName] = pydantic.Field(
        default_factory=list,
        max_length=256,
        description=(
            "Namespaces the operator watches; empty means every namespace. When set, the operator"
            " runs with --namespace for each, and Roles in those namespaces replace the"
            " ClusterRole: it can read and write nothing elsewhere."
        ),
    )
    spark: Spark = pydantic.Field(
        default_factory=Spark, description="What the Spark jobs of the custom resources may run."
    )
    notifications: Notifications = pydantic.Field(
        default_factory=Notifications,
        description="Where the operator may post BatchJob completion notices.",
    )
    network_policy: NetworkPolicy = pydantic.Field(
        default_factory=NetworkPolicy,
        description="Who may reach what the operator runs for the custom resources.",
    )
    telemetry: Telemetry = pydantic.Field(
        default_factory=Telemetry,
        description="OpenTelemetry traces of the data plane, where a resource names none.",
    )
    resources: Resources = pydantic.Field(
        default_factory=Resources, description="CPU and memory of the operator's container."
    )
    pod_annotations: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Annotations of the operator's pod."
    )
    pod_labels: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Extra labels of the operator's pod."
    )
    node_selector: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Node labels the operator's pod must be scheduled on."
    )
    tolerations: list[Toleration] = pydantic.Field(
        default_factory=list, description="Taints the operator's pod tolerates."
    )
    affinity: Affinity = pydantic.Field(
        default_factory=Affinity,
        description="Node and pod affinity of the operator's pod, as Kubernetes spells it.",
    )
    metrics: Metrics = pydantic.Field(
        default_factory=Metrics, description="Prometheus metrics of the operator."
    )
    console: Console = pydantic.Field(
        default_factory=Console, description="The web console (issue 12), off by default."
    )


SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
GENERATED = "GENERATED by `python -m tiers.api.chartvalues` from tiers.api; do not edit by hand."


def render_schema() -> JSON:
    """The values schema: references inlined, titles dropped; a closed object at every level."""
    schema = Values.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, JSON] = schema.pop("$defs", {})
    return {"$schema": SCHEMA_DIALECT, "$comment": GENERATED, **_inline(schema, definitions)}


def _inline(node: Any, definitions: Mapping[str, JSON]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        # Keys beside the reference (the field's own description and default) win over the model's.
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: JSON = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _inline(sub, definitions) for name, sub in value.items()}
        elif key == "default":
            out[key] = value
        elif key != "title":
            out[key] = _inline(value, definitions)
    return out


def render_file() -> str:
    return json.dumps(render_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "path",
        type=pathlib.Path,
        nargs="?",
        default=pathlib.Path("charts/tiers/values.schema.json"),
    )
    args = parser.parse_args(argv)
    args.path.write_text(render_file())
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
