"""spec.expose (a RealtimeEndpoint's gateway) and spec.push.expose (a StreamPipeline's push
gateway): the Ingress or HTTPRoute rendered in front of the Service, without a cluster."""

from __future__ import annotations

import pathlib
from typing import Any

import pydantic
import pytest
import yaml

from tiers import api
from tiers.api import exposure as exposure_api
from tiers.operator import realtime_handlers
from tiers.operator.manifests import exposure, gateway, labels, realtime_children, stream_children

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENDPOINT = labels.Owner(api.API_VERSION, api.REALTIME_ENDPOINT.kind, "chat", "prod", "uid-1")
PIPELINE = labels.Owner(api.API_VERSION, api.STREAM_PIPELINE.kind, "reviews", "shop", "uid-2")
INGRESS = {
    "host": "chat.example.com",
    "ingress": {"className": "nginx", "tls": {"secretName": "chat-tls"}},
}
ROUTE = {
    "host": "chat.example.com",
    "path": "/v1",
    "httpRoute": {
        "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    },
}


def endpoint_children(
    expose: dict[str, Any] | None, *, tls: dict[str, Any] | None = None,
    ca: str | None = None, policy: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    spec = yaml.safe_load((ROOT / "examples/01-realtime/realtime-endpoint.yaml").read_text())[
        "spec"
    ]
    parsed = api.RealtimeEndpointSpec.model_validate({**spec, "expose": expose, "tls": tls})
    return realtime_children.desired_children(
        ENDPOINT, parsed, image="tiers:0.1.0", serving_ca=ca, backend_tls_policy=policy
    )


def pipeline_children(expose: dict[str, Any] | None) -> list[dict[str, Any]]:
    spec = yaml.safe_load((ROOT / "examples/02-stream/stream-pipeline.yaml").read_text())["spec"]
    parsed = api.StreamPipelineSpec.model_validate({**spec, "push": {"expose": expose}})
    return stream_children.desired_children(
        PIPELINE, parsed, image="tiers:0.1.0", stats_redis_url=None, endpoint_model="gpt-4o"
    )


def test_an_ingress_routes_the_host_to_the_gateway_service_with_tls_from_the_secret() -> None:
    ingress = endpoint_children(INGRESS)[-1]
    assert (ingress["apiVersion"], ingress["kind"]) == ("networking.k8s.io/v1", "Ingress")
    assert ingress["metadata"]["name"] == gateway.name(ENDPOINT) == "chat-gateway"
    assert ingress["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}],
        "rules": [{"host": "chat.example.com", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "chat-gateway", "port": {"number": gateway.COMPONENT.port}}},
        }]}}],
    }  # fmt: skip


def test_an_ingress_without_a_class_or_tls_leaves_both_to_the_cluster() -> None:
    ingress = endpoint_children({"host": "chat.example.com", "ingress": {}})[-1]
    assert "ingressClassName" not in ingress["spec"] and "tls" not in ingress["spec"]


def test_an_http_route_attaches_to_the_named_gateways_and_routes_the_path_prefix() -> None:
    route = endpoint_children(ROUTE)[-1]
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert route["metadata"]["name"] == "chat-gateway"
    assert route["spec"] == {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public",
                        "namespace": "gateways", "sectionName": "https"}],
        "hostnames": ["chat.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                   "backendRefs": [{"name": "chat-gateway", "port": gateway.COMPONENT.port}]}],
    }  # fmt: skip


def test_the_push_gateway_is_exposed_last_in_front_of_its_own_service() -> None:
    children = pipeline_children(INGRESS)
    ingress = children[-1]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "reviews-push", "port": {"number": stream_children.PUSH_PORT}}
    assert any(c["kind"] == "Service" and c["metadata"]["name"] == "reviews-push" for c in children)


def test_without_expose_nothing_is_rendered_and_both_kinds_are_candidates_for_deletion() -> None:
    assert not any(c["kind"] in ("Ingress", "HTTPRoute") for c in endpoint_children(None))
    assert not any(c["kind"] in ("Ingress", "HTTPRoute") for c in pipeline_children(None))
    optional = realtime_handlers.optional_children(ENDPOINT)
    assert ("networking.k8s.io/v1", "Ingress", "chat-gateway") in optional
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute", "chat-gateway") in optional


def test_a_missing_gateway_api_names_the_field_and_the_way_out() -> None:
    verdict = exposure.gateway_api_missing("spec.expose")
    assert (verdict.status, verdict.reason) == ("False", "GatewayAPIMissing")
    assert "spec.expose.httpRoute" in verdict.message and "spec.expose.ingress" in verdict.message


@pytest.mark.parametrize(
    ("expose", "field"),
    [
        ({"host": "Chat.Example.com", "ingress": {}}, "host"),
        ({"host": "chat.example.com", "path": "v1", "ingress": {}}, "path"),
        ({"host": "chat.example.com", "httpRoute": {"parentRefs": []}}, "parentRefs"),
        (
            {"host": "chat.example.com", "ingress": {"tls": {"secretName": "Bad_Name"}}},
            "secretName",
        ),
    ],
)
def test_a_bad_expose_is_refused_naming_the_field(expose: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        exposure_api.Expose.model_validate(expose)
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("expose", "url"),
    [
        (INGRESS, "https://chat.example.com/v1"),
        ({"host": "chat.example.com", "ingress": {}}, "http://chat.example.com/v1"),
        (ROUTE, "https://chat.example.com/v1"),
        ({**INGRESS, "host": "*.example.com"}, None),
        (None, None),
    ],
)
def test_the_url_outside_the_cluster_is_the_exposed_host_in_https_with_tls(
    expose: dict[str, Any] | None, url: str | None
) -> None:
    spec = yaml.safe_load((ROOT / "examples/01-realtime/realtime-endpoint.yaml").read_text())
    parsed = api.RealtimeEndpointSpec.model_validate({**spec["spec"], "expose": expose})
    assert realtime_children.external_gateway_url(parsed) == url


CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("version", ["v1", "v1alpha3"])
def test_an_http_route_to_a_tls_gateway_has_the_gateway_verify_it_with_the_published_ca(
    version: str,
) -> None:
    *_, route, policy = endpoint_children(ROUTE, tls={}, ca=CA, policy=version)
    assert route["kind"] == "HTTPRoute"
    assert (policy["apiVersion"], policy["kind"]) == (
        f"gateway.networking.k8s.io/{version}",
        "BackendTLSPolicy",
    )
    assert policy["metadata"]["name"] == "chat-gateway"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert policy["spec"] == {
        "targetRefs": [{"group": "", "kind": "Service", "name": "chat-gateway", "sectionName": "https"}],
        "validation": {"hostname": "chat-gateway.prod.svc",
                       "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "chat-gateway-ca"}]},
    }  # fmt: skip
    assert ("v1", "ConfigMap", "chat-gateway-ca") in {
        (c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in endpoint_children(ROUTE, tls={}, ca=CA)
    }  # fmt: skip


def test_a_gateway_whose_certificate_publishes_no_ca_is_verified_with_the_systems() -> None:
    policy = endpoint_children(ROUTE, tls={"secretName": "public"}, policy="v1")[-1]
    assert policy["spec"]["validation"] == {
        "hostname": "chat-gateway.prod.svc", "wellKnownCACertificates": "System"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("expose", "tls", "policy"),
    [(ROUTE, None, "v1"), (INGRESS, {}, "v1"), (ROUTE, {}, None)],
    ids=["plain-http-gateway", "ingress", "kind-not-served"],
)
def test_no_backend_tls_policy_without_a_route_to_tls_where_the_kind_is_served(
    expose: dict[str, Any], tls: dict[str, Any] | None, policy: str | None
) -> None:
    children = endpoint_children(expose, tls=tls, ca=CA, policy=policy)
    assert "BackendTLSPolicy" not in {c["kind"] for c in children}


def test_the_push_gateways_route_has_its_policy_too() -> None:
    spec = yaml.safe_load((ROOT / "examples/02-stream/stream-pipeline.yaml").read_text())["spec"]
    parsed = api.StreamPipelineSpec.model_validate({**spec, "push": {"expose": ROUTE, "tls": {}}})
    policy = stream_children.desired_children(
        PIPELINE, parsed, image="tiers:0.1.0", stats_redis_url=None, endpoint_model="gpt-4o",
        push_ca=CA, backend_tls_policy="v1",
    )[-1]  # fmt: skip
    assert policy["kind"] == "BackendTLSPolicy"
    assert policy["spec"]["targetRefs"][0]["name"] == "reviews-push"
    assert policy["spec"]["validation"]["hostname"] == "reviews-push.shop.svc"
    assert policy["spec"]["validation"]["caCertificateRefs"][0]["name"] == "reviews-push-ca"


def test_only_the_served_versions_policy_is_a_candidate_for_deletion() -> None:
    assert exposure.backend_tls_policy_candidates(ENDPOINT, gateway.COMPONENT, None) == []
    assert exposure.backend_tls_policy_candidates(ENDPOINT, gateway.COMPONENT, "v1alpha3") == [
        ("gateway.networking.k8s.io/v1alpha3", "BackendTLSPolicy", "chat-gateway")
    ]
