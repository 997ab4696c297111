"""spec.expose and spec.push.expose against the real apiserver: the operator (as the chart's
ServiceAccount) makes the Ingress, or the HTTPRoute validated by the Gateway API's own published
CRDs (fetched from the Go module proxy), corrects drift in it, deletes it when expose goes or
switches kind, and says so in a condition when the cluster does not serve HTTPRoutes; an
HTTPRoute to a gateway with tls comes with the BackendTLSPolicy (the Gateway API's own CRD) that
has the Gateway verify it with the CA the endpoint publishes."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Kubectl, wait_for

from tiers.devenv import gateway_api, samples

INGRESS = {"host": "chat.example.com", "ingress": {"tls": {"secretName": "chat-tls"}}}
ROUTE = {"host": "chat.example.com", "path": "/v1",
         "httpRoute": {"parentRefs": [{"name": "public", "sectionName": "https"}]}}  # fmt: skip


def endpoint(expose: dict[str, Any] | None, *, tls: dict[str, Any] | None = None) -> str:
    spec = {key: value for key, value in (("expose", expose), ("tls", tls)) if value is not None}
    return json.dumps(samples.realtime_endpoint(cache={"enabled": False}, **spec))


def ready(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    obj = kubectl.get("rte", "chat", "-n", namespace)
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def installed(kubectl: Kubectl, crds: list[pathlib.Path]) -> Iterator[None]:
    """The Gateway API's CRDs of these files (cluster-wide), removed after the test."""
    for crd in crds:
        kubectl.run("apply", "--server-side", "--field-manager=tiers-tests", "-f", str(crd))
    try:
        for name in gateway_api.CRD_NAMES:
            kubectl.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
        yield
    finally:
        kubectl.run("delete", "crd", *gateway_api.CRD_NAMES, "--ignore-not-found", "--wait",
                    "--timeout=60s")  # fmt: skip


@pytest.fixture
def gateway_api_crds(kubectl: Kubectl) -> Iterator[None]:
    """The Gateway API's standard CRDs (BackendTLSPolicy at v1), removed after the test."""
    yield from installed(kubectl, gateway_api.standard_crds())


@pytest.fixture
def gateway_api_v1alpha3_policies(kubectl: Kubectl) -> Iterator[None]:
    """The standard HTTPRoute and the BackendTLSPolicy of Gateway API 1.3 (v1alpha3 only)."""
    standard = gateway_api.standard_crds(("gatewayclasses", "gateways", "httproutes"))
    yield from installed(kubectl, [*standard, gateway_api.v1alpha3_backend_tls_policy_crd()])


def test_an_ingress_is_made_corrected_and_deleted_with_expose(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(endpoint(INGRESS), namespace=namespace)
    ingress = wait_for(lambda: kubectl.find("ingress", "chat-gateway", namespace),
                       timeout_s=30, what="the endpoint's Ingress")  # fmt: skip
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "chat.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "chat-gateway"
    assert ingress["spec"]["tls"] == [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}]
    # status.url is where clients outside call it; the in-cluster one stays in address.url.
    status = wait_for(lambda: kubectl.get("rte", "chat", "-n", namespace).get("status", {}).get(
        "address") and kubectl.get("rte", "chat", "-n", namespace)["status"],
        timeout_s=30, what="status.address")  # fmt: skip
    assert status["url"] == "https://chat.example.com/v1"
    assert status["address"]["url"] == f"http://chat-gateway.{namespace}.svc:8080/v1"

    kubectl.run("patch", "ingress", "chat-gateway", "-n", namespace, "--type=json", "-p",
                '[{"op": "replace", "path": "/spec/rules/0/host", "value": "evil.example.com"}]')  # fmt: skip
    wait_for(
        lambda: (
            (kubectl.find("ingress", "chat-gateway", namespace) or {})["spec"]["rules"][0]["host"]
            == "chat.example.com"
        ),
        timeout_s=30,
        what="the Ingress's host to be put back",
    )

    kubectl.apply(endpoint(None), namespace=namespace)
    wait_for(lambda: kubectl.find("ingress", "chat-gateway", namespace) is None,
             timeout_s=30, what="the Ingress to be deleted with spec.expose")  # fmt: skip
    wait_for(lambda: kubectl.get("rte", "chat", "-n", namespace)["status"]["url"]
             == status["address"]["url"], timeout_s=30, what="status.url in the cluster again")  # fmt: skip


def test_an_http_route_without_the_gateway_api_is_a_condition_naming_the_way_out(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(endpoint(INGRESS), namespace=namespace)
    wait_for(lambda: kubectl.find("ingress", "chat-gateway", namespace),
             timeout_s=30, what="the endpoint's Ingress")  # fmt: skip
    # Switched to an HTTPRoute the cluster cannot make: the Ingress the spec no longer asks for
    # goes all the same.
    kubectl.apply(endpoint(ROUTE), namespace=namespace)
    condition = wait_for(
        lambda: (c := ready(kubectl, namespace)).get("reason") == "GatewayAPIMissing" and c,
        timeout_s=30,
        what="Ready=False GatewayAPIMissing",
    )
    assert condition["status"] == "False"
    assert "spec.expose.httpRoute" in condition["message"]
    assert "spec.expose.ingress" in condition["message"]
    # The rest of the endpoint is made all the same.
    assert kubectl.find("deployment", "chat-gateway", namespace) is not None
    wait_for(lambda: kubectl.find("ingress", "chat-gateway", namespace) is None,
             timeout_s=30, what="the Ingress the spec no longer asks for to go")  # fmt: skip


def test_an_http_route_is_validated_by_the_gateway_api_and_switches_to_an_ingress(
    kubectl: Kubectl, operator: str, namespace: str, gateway_api_crds: None
) -> None:
    kubectl.apply(endpoint(ROUTE), namespace=namespace)
    route = wait_for(lambda: kubectl.find("httproute", "chat-gateway", namespace),
                     timeout_s=30, what="the endpoint's HTTPRoute")  # fmt: skip
    assert route["spec"]["hostnames"] == ["chat.example.com"]
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert (backend["name"], backend["kind"]) == ("chat-gateway", "Service")  # kind defaulted
    wait_for(lambda: ready(kubectl, namespace).get("reason") != "GatewayAPIMissing",
             timeout_s=30, what="a Ready condition past the HTTPRoute")  # fmt: skip

    kubectl.apply(endpoint(INGRESS), namespace=namespace)
    wait_for(
        lambda: (
            kubectl.find("httproute", "chat-gateway", namespace) is None
            and kubectl.find("ingress", "chat-gateway", namespace) is not None
        ),
        timeout_s=30,
        what="the HTTPRoute replaced by an Ingress",
    )


def test_an_http_route_to_a_tls_gateway_has_the_gateway_verify_it_with_the_published_ca(
    kubectl: Kubectl, operator: str, namespace: str, gateway_api_crds: None
) -> None:
    kubectl.apply(endpoint(ROUTE, tls={}), namespace=namespace)
    # The operator asks discovery again within 30 s of finding the kind not served.
    policy = wait_for(lambda: kubectl.find("backendtlspolicy", "chat-gateway", namespace),
                      timeout_s=60, what="the endpoint's BackendTLSPolicy")  # fmt: skip
    uid = kubectl.get("rte", "chat", "-n", namespace)["metadata"]["uid"]
    assert policy["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == uid
    assert policy["spec"]["targetRefs"] == [
        {"group": "", "kind": "Service", "name": "chat-gateway", "sectionName": "https"}
    ]
    assert policy["spec"]["validation"] == {
        "hostname": f"chat-gateway.{namespace}.svc",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "chat-gateway-ca"}],
    }
    ca = kubectl.find("configmap", "chat-gateway-ca", namespace)
    assert ca is not None and "BEGIN CERTIFICATE" in ca["data"]["ca.crt"]
    assert kubectl.find("httproute", "chat-gateway", namespace) is not None
    service = kubectl.get("service", "chat-gateway", "-n", namespace)
    assert service["spec"]["ports"][0]["name"] == "https"

    # Plain http again: the policy goes, the route stays.
    kubectl.apply(endpoint(ROUTE), namespace=namespace)
    wait_for(lambda: kubectl.find("backendtlspolicy", "chat-gateway", namespace) is None,
             timeout_s=30, what="the BackendTLSPolicy to go with spec.tls")  # fmt: skip
    assert kubectl.find("httproute", "chat-gateway", namespace) is not None


def test_where_the_gateway_api_serves_backend_tls_policy_at_v1alpha3_the_policy_is_made_so(
    kubectl: Kubectl, operator: str, namespace: str, gateway_api_v1alpha3_policies: None
) -> None:
    kubectl.apply(endpoint(ROUTE, tls={}), namespace=namespace)
    # Found served at v1 by an earlier test, the apply there fails and discovery is asked again
    # (kube.forget_served).
    # Named with its version: kubectl's discovery cache may still have v1 from that test.
    policy = wait_for(
        lambda: kubectl.find("backendtlspolicies.v1alpha3.gateway.networking.k8s.io",
                             "chat-gateway", namespace),
        timeout_s=60, what="the endpoint's BackendTLSPolicy at v1alpha3",
    )  # fmt: skip
    assert policy["apiVersion"] == "gateway.networking.k8s.io/v1alpha3"
    assert policy["spec"]["validation"]["caCertificateRefs"][0]["name"] == "chat-gateway-ca"
    assert policy["spec"]["targetRefs"][0]["sectionName"] == "https"


def test_the_push_gateway_of_a_pipeline_is_exposed_in_front_of_its_service(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    pipeline = samples.stream_pipeline(
        "reviews", bootstrap="127.0.0.1:9", topics=samples.topic_names(), partitions=None,
        push={"expose": {"host": "events.example.com", "ingress": {"className": "nginx"}}},
    )  # fmt: skip
    kubectl.apply(json.dumps(pipeline), namespace=namespace)
    ingress = wait_for(lambda: kubectl.find("ingress", "reviews-push", namespace),
                       timeout_s=60, what="the push gateway's Ingress")  # fmt: skip
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "reviews-push"
    assert kubectl.find("service", "reviews-push", namespace) is not None
