"""The gateway's Kubernetes objects: ConfigMap, Deployment, Service, PodDisruptionBudget and HPA.

`manifests.realtime_children.desired_children()` calls these with the `GatewayConfig` it derived
from a RealtimeEndpoint's spec; each returns a plain dict ready for server-side apply. `name()` and
`url()` are how everything else (handlers, a StreamPipeline's endpointRef) names the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiers.api import realtime
from tiers.operator.manifests import backends, client_keys, labels, security, services, serving_tls
from tiers.runtime import providers
from tiers.runtime.gateway import config

PORT = 8080
COMPONENT = labels.Component(app="tiers-gateway", role="gateway", suffix="gateway", port=PORT)
CONTAINER = "gateway"
CONFIG_DIR = "/etc/tiers"
CONFIG_FILE = "gateway.json"
API_KEYS_DIR = "/var/run/tiers/api-keys"
REDIS_URL_ENV = "TIERS_REDIS_URL"
"""The variable the gateway reads its Redis URL from when its config file has none."""
REDIS_PASSWORD_ENV = "TIERS_REDIS_PASSWORD"
"""The variable that gives the gateway the managed Redis's password (its config names it)."""
TMP_SIZE_LIMIT = "64Mi"
MIB = 1024 * 1024
BATCH_STORAGE_DIR = "/var/lib/tiers/batch"
"""Where the Batch API's claim is mounted, in the gateway's pods and in each batch's run pods;
with a Unity Catalog volume (`spec.batch.storage.uri`), the gateway's scratch folder for uploads
on their way there."""
BATCH_DATABRICKS_TOKEN_ENV = "TIERS_BATCH_DATABRICKS_TOKEN"
"""The workspace token the gateway writes and reads a volume's batch files with (engine
databricks), from `spec.batch.databricks.tokenSecretRef`."""


def name(owner: labels.Named) -> str:
    """Name of every gateway object of `owner`: ConfigMap, Deployment, Service, PDB and HPA."""
    return COMPONENT.name(owner)


BASE_PATH = "/v1"
"""Where the gateway serves the OpenAI API: a client's base URL ends with it."""


def url(owner: labels.Named, *, tls: bool = False) -> str:
    """The in-cluster OpenAI base URL that clients of `owner` (a RealtimeEndpoint) call; https
    when the endpoint has `spec.tls`."""
    return COMPONENT.url(owner, scheme="https" if tls else "http", path=BASE_PATH)


def render_configmap(owner: labels.Owner, settings: config.GatewayConfig) -> dict[str, Any]:
    """The ConfigMap the gateway reads its `GatewayConfig` from; it holds no secret."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": COMPONENT.metadata(owner),
        "data": {CONFIG_FILE: settings.model_dump_json(indent=2)},
    }


def _replicas(spec: realtime.RealtimeEndpointSpec) -> int | None:
    """Zero when suspended; None (the field left to the HPA) when autoscaling."""
    if spec.suspend:
        return 0
    if spec.autoscaling is not None:
        return None
    return spec.replicas


def _env(
    spec: realtime.RealtimeEndpointSpec, redis_env: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    env = [
        security.secret_env(providers.backend_key_env(index), ref)
        for index, ref in enumerate(backends.secret_ref(backend) for backend in spec.backends)
        if ref is not None
    ]
    env.extend(redis_env)
    if _serves_batches(spec) and spec.batch is not None and spec.batch.databricks is not None:
        ref = spec.batch.databricks.token_secret_ref
        env.append(security.secret_env(BATCH_DATABRICKS_TOKEN_ENV, ref))
    return env


def _container(
    spec: realtime.RealtimeEndpointSpec, *, image: str, redis_env: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if spec.auth is not None:
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
    if _serves_batches(spec):
        mounts.append({"name": "batch", "mountPath": BATCH_STORAGE_DIR})
    command = ["python", "-m", "tiers.runtime.gateway", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"]
    command += ["--host", "0.0.0.0", "--port", str(PORT)]
    if spec.tls is not None:
        mounts.append(serving_tls.server_mount())
        command += serving_tls.server_flags()
    port = serving_tls.port_name(spec.tls)
    return {
        "name": CONTAINER,
        "image": image,
        "command": command,
        "ports": [{"name": port, "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(spec, redis_env),
        "readinessProbe": {
            **serving_tls.probe("/readyz", spec.tls),
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            **serving_tls.probe("/healthz", spec.tls),
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        # No CPU limit: a burst of requests is never throttled; the request sizes scheduling.
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": security.container_security_context(security.NONROOT_UID),
        "volumeMounts": mounts,
    }


def _volumes(owner: labels.Owner, spec: realtime.RealtimeEndpointSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": name(owner)}},
        # The root filesystem is read-only; Python and uvicorn may still want a scratch folder.
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    if spec.auth is not None:
        # The endpoint's keys, and the digests of the keys of the pipelines and batch jobs that
        # call it (`client_keys`), in one folder; the kubelet keeps both up to date.
        # With JWT callers only, the folder holds the callers' digests alone (or nothing).
        ref = spec.auth.api_keys_secret_ref
        callers = client_keys.ACCEPTED.name(owner)
        sources: list[dict[str, Any]] = [{"secret": {"name": ref.name}}] if ref else []
        sources.append({"secret": {"name": callers, "optional": True}})
        volumes.append({"name": "api-keys", "projected": {"sources": sources}})
    if spec.batch is not None and spec.batch.enabled:
        claim_name = spec.batch.storage.claim_name
        if claim_name is not None:
            volumes.append({"name": "batch", "persistentVolumeClaim": {"claimName": claim_name}})
        else:
            # A Unity Catalog volume: uploads are spooled here, each one sent whole; the
            # gateway takes no more uploads at once than fit.
            scratch = config.upload_scratch_bytes(spec.batch.max_file_mb * MIB)
            size = f"{-(-scratch // MIB)}Mi"
            volumes.append({"name": "batch", "emptyDir": {"sizeLimit": size}})
    if spec.tls is not None:
        volumes.append(serving_tls.server_volume(owner, COMPONENT, spec.tls))
    return volumes


def _serves_batches(spec: realtime.RealtimeEndpointSpec) -> bool:
    return spec.batch is not None and spec.batch.enabled


def _identity(owner: labels.Owner, spec: realtime.RealtimeEndpointSpec) -> dict[str, Any]:
    """The pods' ServiceAccount: with the Batch API their own, whose token creates BatchJobs
    (`gateway_access`); otherwise none is mounted, as the gateway calls no Kubernetes API."""
    if not _serves_batches(spec):
        return {"automountServiceAccountToken": False}
    return {"serviceAccountName": name(owner), "automountServiceAccountToken": True}


def render_deployment(
    owner: labels.Owner,
    spec: realtime.RealtimeEndpointSpec,
    *,
    image: str,
    config_hash: str,
    redis_env: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The gateway pods; `redis_env` are the env entries that carry the Redis URL and password."""
    deployment_spec: dict[str, Any] = {}
    replicas = _replicas(spec)
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    deployment_spec |= {
        "selector": {"matchLabels": COMPONENT.selector(owner)},
        # A rollout never lowers serving capacity: new pods are ready before old ones go.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        },
        "template": {
            "metadata": {
                "labels": COMPONENT.labels(owner),
                "annotations": {labels.CONFIG_HASH_ANNOTATION: config_hash},
            },
            "spec": {
                **_identity(owner, spec),
                "securityContext": security.pod_security_context(security.NONROOT_UID),
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": COMPONENT.selector(owner)},
                    }
                ],
                "containers": [_container(spec, image=image, redis_env=redis_env)],
                "volumes": _volumes(owner, spec),
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": COMPONENT.metadata(owner),
        "spec": deployment_spec,
    }


def render_service(owner: labels.Owner, spec: realtime.RealtimeEndpointSpec) -> dict[str, Any]:
    """The ClusterIP Service behind `url(owner)`."""
    return services.render_cluster_ip_service(
        owner, COMPONENT, port_name=serving_tls.port_name(spec.tls)
    )


def render_pod_disruption_budget(owner: labels.Owner) -> dict[str, Any]:
    """Voluntary evictions (node drains) take at most one gateway pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": COMPONENT.metadata(owner),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": COMPONENT.selector(owner)}},
    }


def render_horizontal_pod_autoscaler(
    owner: labels.Owner, autoscaling: realtime.Autoscaling
) -> dict[str, Any]:
    """Scales the gateway Deployment on CPU utilization between the spec's bounds."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": COMPONENT.metadata(owner),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name(owner)},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percent,
                        },
                    },
                }
            ],
        },
    }
