"""A StreamPipeline's children with `engine: deployment`, and the model client's config that every
job renders from a spec's `model` block: pure, no cluster. The SparkApplication engine has its own
tests (`test_manifests_spark_application.py`)."""

from __future__ import annotations

import base64
import hashlib
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tiers import api
from tiers.operator.manifests import (
    client_keys,
    labels,
    model_client,
    stats_store,
    stream_children,
    telemetry,
)
from tiers.runtime import apikeys, modelcall, providers
from tiers.runtime.stats import address
from tiers.runtime.stream import config

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "02-stream" / "stream-pipeline.yaml"
OWNER = labels.Owner(
    api_version=api.API_VERSION,
    kind=api.STREAM_PIPELINE.kind,
    name="reviews",
    namespace="shop",
    uid="3c9e1f6a-2b4d-4e8f-9a0b-1c2d3e4f5a6b",
)
IMAGE = "tiers:0.1.0"
BACKEND = {
    "name": "openai",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "apiKeySecretRef": {"name": "keys", "key": "openai"},
}


def example_spec(**changes: Any) -> api.StreamPipelineSpec:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    return api.StreamPipelineSpec.model_validate({**spec, **changes})


def backend_spec(**changes: Any) -> api.StreamPipelineSpec:
    """The example, calling a backend directly instead of a RealtimeEndpoint."""
    model = {"backend": BACKEND, "prompt": "Summarize: {text}", "route": "chat"}
    return example_spec(model=model, **changes)


def render(
    spec: api.StreamPipelineSpec, *, endpoint_model: str | None = "gpt-4o"
) -> list[dict[str, Any]]:
    return stream_children.desired_children(
        OWNER, spec, image=IMAGE,
        stats_redis_url="redis://chat-redis.shop.svc:6379/0", endpoint_model=endpoint_model,
    )  # fmt: skip


def find(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    return found


def container(children: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = find(children, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return found


def job_config(children: list[dict[str, Any]]) -> config.StreamJobConfig:
    data = find(children, "ConfigMap", "reviews-stream")["data"]
    return config.StreamJobConfig.model_validate_json(data[stream_children.CONFIG_FILE])


def config_hash(children: list[dict[str, Any]], name: str) -> str:
    template = find(children, "Deployment", name)["spec"]["template"]
    value: str = template["metadata"]["annotations"][labels.CONFIG_HASH_ANNOTATION]
    return value


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value


def test_the_example_renders_its_children_in_apply_order() -> None:
    assert [(c["kind"], c["metadata"]["name"]) for c in render(example_spec())] == [
        ("ConfigMap", "reviews-stream"),
        ("PersistentVolumeClaim", "reviews-stream"),
        ("Deployment", "reviews-stream"),
        ("Deployment", "reviews-push"),
        ("Service", "reviews-push"),
        ("Deployment", "reviews-stream-stats"),
        ("Service", "reviews-stream-stats"),
    ]


def test_every_child_is_controlled_by_the_pipeline_in_its_namespace() -> None:
    for child in render(example_spec()):
        assert child["metadata"]["namespace"] == "shop"
        assert child["metadata"]["ownerReferences"] == [labels.owner_reference(OWNER)]


def test_without_a_checkpoint_volume_there_is_no_claim_and_nothing_mounted_for_it() -> None:
    children = render(example_spec(checkpoint={"uri": "s3a://bucket/ckpt"}))
    assert "PersistentVolumeClaim" not in [c["kind"] for c in children]
    mounts = [m["name"] for m in container(children, "reviews-stream")["volumeMounts"]]
    assert mounts == ["config", "tmp"]
    assert job_config(children).checkpoint == "s3a://bucket/ckpt"


def test_the_job_runs_one_pod_at_a_time_so_two_never_share_a_checkpoint() -> None:
    job = find(render(example_spec()), "Deployment", "reviews-stream")["spec"]
    assert job["replicas"] == 1 and job["strategy"] == {"type": "Recreate"}


def test_the_job_runs_the_stream_module_on_its_mounted_config() -> None:
    job = container(render(example_spec()), "reviews-stream")
    assert job["command"] == [
        "python", "-m", "tiers.runtime.stream", "job", "--config", "/etc/tiers/stream.json",
    ]  # fmt: skip
    mounts = {m["name"]: m["mountPath"] for m in job["volumeMounts"]}
    assert mounts == {"config": "/etc/tiers", "tmp": "/tmp",
                      "checkpoint": "/var/lib/tiers/checkpoint"}  # fmt: skip


def test_the_job_asks_for_the_cores_and_memory_of_spec_spark() -> None:
    job = container(render(example_spec(spark={"cores": 4, "memory": "3Gi"})), "reviews-stream")
    assert job["resources"] == {
        "requests": {"cpu": "4", "memory": "3Gi"},
        "limits": {"memory": "3Gi"},
    }
    assert job_config(render(example_spec(spark={"cores": 4}))).master == "local[4]"


def test_the_config_carries_the_topics_trigger_and_stats_of_the_pipeline() -> None:
    settings = job_config(render(example_spec()))
    assert settings.pipeline == "shop/reviews"
    assert (settings.input_topic, settings.output_topic, settings.dead_letter_topic) == (
        "reviews", "review-summaries", "reviews-dlq",
    )  # fmt: skip
    assert (settings.trigger_interval_ms, settings.max_offsets_per_trigger) == (500, 50000)
    assert settings.checkpoint == "file:///var/lib/tiers/checkpoint"
    assert settings.stats_redis_url == "redis://chat-redis.shop.svc:6379/0"
    assert settings.jars == stream_children.JARS


def test_an_endpoint_ref_calls_the_endpoints_gateway_service_with_the_model_it_serves() -> None:
    model = job_config(render(example_spec(), endpoint_model="gpt-4o")).model
    assert model.target == modelcall.EndpointTarget(
        url="http://chat-gateway.shop.svc:8080/v1", api_key_env=model_client.KEY_ENV
    )
    assert (model.model, model.prompt) == (
        "gpt-4o",
        "Summarize this review in one sentence: {text}",
    )
    assert (model.max_tokens, model.max_in_flight) == (64, 128)


def test_an_endpoint_that_does_not_exist_renders_no_job() -> None:
    with pytest.raises(ValueError, match="RealtimeEndpoint chat not found"):
        render(example_spec(), endpoint_model=None)


def test_a_backend_is_called_directly_with_its_key_from_its_secret() -> None:
    children = render(backend_spec())
    target = job_config(children).model.target
    assert isinstance(target, providers.BackendConfig)
    assert (target.provider, target.model, target.api_key_env) == (
        "openai", "gpt-4o-mini", model_client.KEY_ENV,
    )  # fmt: skip
    key = {"name": model_client.KEY_ENV,
           "valueFrom": {"secretKeyRef": {"name": "keys", "key": "openai"}}}  # fmt: skip
    stats = {
        "name": "TIERS_STATS_REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "reviews-stream-stats", "key": "password"}},
    }
    assert container(children, "reviews-stream")["env"] == [key, stats]
    assert "env" not in container(children, "reviews-push"), "the push gateway calls no model"


def test_bootstrap_servers_in_a_secret_reach_the_pods_from_it_and_are_never_rendered() -> None:
    kafka = {"bootstrapSecretRef": {"name": "kafka", "key": "brokers"}}
    children = render(backend_spec(kafka=kafka))
    settings = job_config(children)
    assert (settings.bootstrap, settings.bootstrap_env) == (None, stream_children.BOOTSTRAP_ENV)
    brokers = {"name": stream_children.BOOTSTRAP_ENV,
               "valueFrom": {"secretKeyRef": {"name": "kafka", "key": "brokers"}}}  # fmt: skip
    assert brokers in container(children, "reviews-stream")["env"]
    assert container(children, "reviews-push")["env"] == [brokers]
    in_spec = job_config(render(backend_spec()))
    assert (in_spec.bootstrap, in_spec.bootstrap_env) == ("kafka.default.svc:9092", None)


def test_the_job_reads_its_brokers_from_the_variable_its_config_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = job_config(
        render(backend_spec(kafka={"bootstrapSecretRef": {"name": "k", "key": "b"}}))
    )
    monkeypatch.delenv(stream_children.BOOTSTRAP_ENV, raising=False)
    with pytest.raises(RuntimeError, match=stream_children.BOOTSTRAP_ENV):
        settings.bootstrap_servers()
    monkeypatch.setenv(stream_children.BOOTSTRAP_ENV, "b1:9092,b2:9092\n")
    assert settings.bootstrap_servers() == "b1:9092,b2:9092"


@pytest.mark.parametrize("spec", [example_spec(), backend_spec()], ids=["endpoint", "backend"])
def test_a_pipeline_keeps_its_stats_in_a_redis_of_its_own_whatever_it_calls(
    spec: api.StreamPipelineSpec,
) -> None:
    children = render(spec)
    redis = find(children, "Deployment", "reviews-stream-stats")
    assert redis["metadata"]["labels"]["app.kubernetes.io/component"] == "stats"
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    assert server["args"][server["args"].index("--maxmemory") + 1] == "16mb"
    password = {"secretKeyRef": {"name": "reviews-stream-stats", "key": "password"}}
    assert server["env"] == [{"name": "REDIS_PASSWORD", "valueFrom": password}]
    assert find(children, "Service", "reviews-stream-stats")["spec"]["ports"][0]["port"] == 6379
    settings = job_config(children)
    assert settings.stats_redis_password_env == "TIERS_STATS_REDIS_PASSWORD"
    env = {e["name"]: e for e in container(children, "reviews-stream")["env"]}
    assert env["TIERS_STATS_REDIS_PASSWORD"]["valueFrom"] == password
    assert stats_store.managed(OWNER, stream_children.STATS).url == (
        "redis://reviews-stream-stats.shop.svc:6379/0"
    )


def test_a_remade_stats_password_rolls_the_stats_redis_and_the_job_together() -> None:
    children = stream_children.desired_children(
        OWNER, backend_spec(), image=IMAGE, stats_redis_url=None, endpoint_model=None,
        stats_password="pw-1",
    )  # fmt: skip
    hashes = {
        find(children, "Deployment", name)["spec"]["template"]["metadata"]["annotations"][
            "tiers.dev/secret-hash"
        ]
        for name in ("reviews-stream-stats", "reviews-stream")
    }
    assert len(hashes) == 1 and "pw-1" not in str(children)


def test_a_job_finds_its_stats_password_in_the_variable_its_config_names() -> None:
    environ = {"PW": "s3cret\n"}
    assert address.resolve("redis://r:6379/0", password_env="PW", environ=environ) == (
        "redis://r:6379/0", "s3cret",
    )  # fmt: skip
    assert address.resolve("redis://r:6379/0", password_env="UNSET", environ=environ) == (
        "redis://r:6379/0", None,
    )  # fmt: skip
    assert address.resolve(None, password_env="PW", environ=environ) is None


def test_both_jobs_stats_client_logs_in_from_the_variable_and_gives_up_after_two_seconds() -> None:
    client = address.connect_blocking("redis://r:6379/0", password_env="PW", environ={"PW": "pw"})
    assert client is not None
    given = client.connection_pool.connection_kwargs
    assert (given["host"], given["password"]) == ("r", "pw")
    assert given["socket_timeout"] == given["socket_connect_timeout"] == address.TIMEOUT_S == 2
    assert address.connect_blocking(None, password_env="PW", environ={"PW": "pw"}) is None


def test_an_endpoint_ref_calls_with_the_pipelines_own_key_from_its_own_secret() -> None:
    env = {e["name"]: e for e in container(render(example_spec()), "reviews-stream")["env"]}
    assert env[model_client.KEY_ENV]["valueFrom"] == {
        "secretKeyRef": {"name": "reviews-stream-key", "key": "key"}
    }


def test_an_endpoint_accepts_its_callers_by_digest_only() -> None:
    endpoint = labels.Owner(api.API_VERSION, api.REALTIME_ENDPOINT.kind, "chat", "shop", "u-1")
    key = client_keys.new_key()
    secret = client_keys.render_key_secret(OWNER, key)
    assert (secret["metadata"]["name"], secret["metadata"]["ownerReferences"][0]["uid"]) == (
        "reviews-stream-key", OWNER.uid,
    )  # fmt: skip
    entry = client_keys.entry_name("StreamPipeline", "reviews")
    accepted = client_keys.render_accepted(endpoint, {entry: client_keys.digest(key)})
    assert accepted["metadata"]["name"] == "chat-client-keys"
    (value,) = accepted["data"].values()
    written = base64.b64decode(value).decode()
    assert written == "sha256:" + hashlib.sha256(key.encode()).hexdigest() and key not in written
    # The gateway reads such an entry as the digest of the key it stands for.
    assert apikeys.digest_of(written) == apikeys.hash_key(key)
    assert apikeys.digest_of("sha256:not-hex") == apikeys.hash_key("sha256:not-hex")


def test_many_events_per_request_reach_the_model_client() -> None:
    model = {"backend": BACKEND, "prompt": "Classify: {text}", "route": "completions",
             "rowsPerRequest": 64}  # fmt: skip
    settings = job_config(render(example_spec(model=model))).model
    assert (settings.route, settings.rows_per_request) == ("completions", 64)


def test_the_push_gateway_serves_its_port_behind_a_service_at_its_url() -> None:
    children = render(example_spec())
    push = container(children, "reviews-push")
    assert push["ports"] == [{"name": "http", "containerPort": 8086, "protocol": "TCP"}]
    assert push["command"][-4:] == ["--host", "0.0.0.0", "--port", "8086"]
    service = find(children, "Service", "reviews-push")["spec"]
    assert service["ports"] == [{"name": "http", "port": 8086, "targetPort": "http",
                                 "protocol": "TCP"}]  # fmt: skip
    assert service["selector"] == stream_children.PUSH.selector(OWNER)
    assert stream_children.push_url(OWNER) == "http://reviews-push.shop.svc:8086/events"


def test_a_suspended_pipeline_scales_the_job_and_the_push_gateway_to_zero() -> None:
    children = render(example_spec(suspend=True))
    for name in ("reviews-stream", "reviews-push"):
        assert find(children, "Deployment", name)["spec"]["replicas"] == 0


def test_a_config_change_rolls_both_deployments_and_nothing_else_does() -> None:
    before = render(example_spec())
    changed = render(example_spec(trigger={"intervalMs": 1000}))
    resized = render(example_spec(spark={"cores": 2, "memory": "4Gi"}))
    for name in ("reviews-stream", "reviews-push"):
        assert config_hash(changed, name) != config_hash(before, name)
        assert config_hash(resized, name) == config_hash(before, name)
    data = find(before, "ConfigMap", "reviews-stream")["data"]
    assert config_hash(before, "reviews-stream") == labels.config_hash(data)


def test_rendering_twice_gives_the_same_manifests() -> None:
    assert render(example_spec()) == render(example_spec())


def test_every_container_runs_restricted() -> None:
    children = render(backend_spec())
    for name in ("reviews-stream", "reviews-push"):
        pod = find(children, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        context = container(children, name)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False


def test_secrets_reach_pods_by_reference_only() -> None:
    assert not [text for text in strings_in(render(backend_spec())) if "sk-" in text]


def test_children_are_named_and_reached_through_their_components() -> None:
    ref = labels.Ref("chat", "shop")
    assert model_client.endpoint_url("shop", "chat") == "http://chat-gateway.shop.svc:8080/v1"
    assert stream_children.JOB.name(OWNER) == "reviews-stream"
    with pytest.raises(ValueError, match="stream-job has no Service"):
        stream_children.JOB.url(ref)


def test_push_auth_mounts_the_key_secret_and_allowed_origins_reach_the_config() -> None:
    push = {"auth": {"apiKeysSecretRef": {"name": "push-keys"}},
            "allowedOrigins": ["https://console.example"]}  # fmt: skip
    children = render(backend_spec(push=push))
    settings = job_config(children).push
    assert settings.api_keys_dir == pathlib.Path(stream_children.PUSH_KEYS_DIR)
    assert settings.allowed_origins == ("https://console.example",)
    pod = find(children, "Deployment", "reviews-push")["spec"]["template"]["spec"]
    assert {"name": "push-keys", "secret": {"secretName": "push-keys"}} in pod["volumes"]
    mount = {"name": "push-keys", "mountPath": stream_children.PUSH_KEYS_DIR, "readOnly": True}
    assert mount in container(children, "reviews-push")["volumeMounts"]
    assert "push-keys" not in str(container(children, "reviews-stream")), "the job needs no keys"
    open_push = job_config(render(backend_spec())).push
    assert (open_push.api_keys_dir, open_push.allowed_origins) == (None, ())


@pytest.mark.parametrize(
    "origin",
    ["https://a.example/", "a.example", "javascript:alert(1)", "https://a.example/path", "*"],
)
def test_an_allowed_origin_is_a_scheme_and_host_only(origin: str) -> None:
    with pytest.raises(ValueError, match=r"allowed_?[oO]rigins"):
        backend_spec(push={"allowedOrigins": [origin]})


def test_a_pipelines_telemetry_or_the_charts_reaches_its_jobs_config() -> None:
    own = example_spec(
        telemetry={"otlpEndpoint": "http://team:4318", "samplingRatio": "0.25", "maxQueueSpans": 64}
    )
    tracing = job_config(render(own)).tracing
    assert tracing is not None
    assert (tracing.traces_url, tracing.sample_ratio) == ("http://team:4318/v1/traces", 0.25)
    assert tracing.max_queue_spans == 64
    assert tracing.service_name == "tiers-stream"
    chart = telemetry.default_from({"TIERS_OTLP_ENDPOINT": "http://otel:4318"})
    settings = stream_children.job_config(
        OWNER, example_spec(), stats_redis_url=None, endpoint_model="gpt-4o",
        default_telemetry=chart,
    )  # fmt: skip
    assert settings.tracing is not None and settings.tracing.otlp_endpoint == "http://otel:4318"
    assert job_config(render(example_spec())).tracing is None
