"""HTTPS on a gateway (`spec.tls`): the objects and pod settings rendered for each source of its
certificate, and the self-signed pair the operator generates, without a cluster."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import socket
import ssl
from typing import Any

import lightkube
import pydantic
import pytest
import yaml
from cryptography import x509
from lightkube.config import models as kubeconfig_models

from tiers import api
from tiers.api import certificates, common
from tiers.api import exposure as exposure_api
from tiers.operator import kube, manifests, serving_certificates
from tiers.operator.manifests import (
    batch_children,
    exposure,
    gateway,
    self_signed,
    serving_tls,
    stream_children,
)
from tiers.runtime.modelcall import config as modelcall_config
from tiers.runtime.stream import config as stream_config

OWNER = manifests.Owner(
    api_version=api.API_VERSION,
    kind=api.REALTIME_ENDPOINT.kind,
    name="chat",
    namespace="prod",
    uid="0f4c2a1e-7d3b-4c55-9a1e-2b6f3c8d9e10",
)
NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def spec(**fields: Any) -> api.RealtimeEndpointSpec:
    backends = [{"name": "a", "provider": "openai", "model": "gpt-4o-mini"}]
    return api.RealtimeEndpointSpec.model_validate(
        {"model": "gpt-4o-mini", "backends": backends, **fields}
    )


def render(endpoint: api.RealtimeEndpointSpec, *, ca: str | None = None) -> list[dict[str, Any]]:
    return manifests.desired_children(OWNER, endpoint, image="tiers:0", serving_ca=ca)


def find(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    return found


def container(children: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(children, "Deployment", "chat-gateway")
    first: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return first


def test_a_gateway_with_tls_serves_https_from_the_mounted_secret() -> None:
    children = render(spec(tls={"secretName": "chat-cert"}))
    pod = find(children, "Deployment", "chat-gateway")["spec"]["template"]["spec"]
    gateway_container = container(children)
    assert {"name": "tls", "mountPath": "/var/run/tiers/tls", "readOnly": True} in (
        gateway_container["volumeMounts"]
    )
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "chat-cert"
    assert [item["key"] for item in volume["secret"]["items"]] == ["tls.crt", "tls.key"]
    command = gateway_container["command"]
    assert command[command.index("--tls-cert-file") + 1] == "/var/run/tiers/tls/tls.crt"
    assert command[command.index("--tls-key-file") + 1] == "/var/run/tiers/tls/tls.key"


def test_probes_and_ports_speak_https_when_the_gateway_serves_tls() -> None:
    children = render(spec(tls={}))
    gateway_container = container(children)
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway_container[probe]["httpGet"]["scheme"] == "HTTPS"
        assert gateway_container[probe]["httpGet"]["port"] == "https"
    assert gateway_container["ports"][0]["name"] == "https"
    (port,) = find(children, "Service", "chat-gateway")["spec"]["ports"]
    assert port == {
        "name": "https",
        "port": 8080,
        "targetPort": "https",
        "protocol": "TCP",
        "appProtocol": "https",
    }
    assert manifests.gateway_url(OWNER, spec(tls={})) == "https://chat-gateway.prod.svc:8080/v1"


def test_without_tls_nothing_about_certificates_is_rendered() -> None:
    children = render(spec())
    assert "--tls-cert-file" not in container(children)["command"]
    assert "scheme" not in container(children)["readinessProbe"]["httpGet"]
    assert not [c for c in children if c["metadata"]["name"].startswith("chat-gateway-")]


def test_an_issuer_ref_makes_a_cert_manager_certificate_for_the_service_names() -> None:
    issuer = {"name": "internal-ca", "kind": "ClusterIssuer"}
    children = render(spec(tls={"issuerRef": issuer}))
    certificate = find(children, "Certificate", "chat-gateway-tls")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert certificate["spec"]["secretName"] == "chat-gateway-tls"
    assert certificate["spec"]["issuerRef"] == {
        "name": "internal-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert certificate["spec"]["dnsNames"] == [
        "chat-gateway",
        "chat-gateway.prod",
        "chat-gateway.prod.svc",
        "chat-gateway.prod.svc.cluster.local",
    ]
    assert "server auth" in certificate["spec"]["usages"]
    pod = find(children, "Deployment", "chat-gateway")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "chat-gateway-tls"
    # The Certificate is applied before the pods that mount its Secret.
    kinds = [c["kind"] for c in children]
    assert kinds.index("Certificate") < kinds.index("Deployment")


def test_the_ca_is_published_in_a_configmap_with_no_key() -> None:
    children = render(spec(tls={}), ca=CA_PEM)
    configmap = find(children, "ConfigMap", "chat-gateway-ca")
    assert configmap["data"] == {"ca.crt": CA_PEM}
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert not [c for c in render(spec(tls={})) if c["metadata"]["name"] == "chat-gateway-ca"]


def test_an_issuer_is_an_issuer_or_a_cluster_issuer() -> None:
    with pytest.raises(pydantic.ValidationError, match="'Issuer' or 'ClusterIssuer'"):
        spec(tls={"issuerRef": {"name": "b", "kind": "Vault"}})


def test_the_self_signed_secret_holds_a_certificate_its_ca_verifies_for_the_service(
    tmp_path: pathlib.Path,
) -> None:
    secret = serving_tls.render_self_signed_secret(OWNER, gateway.COMPONENT)
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["name"] == "chat-gateway-tls"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    data = serving_tls.self_signed_data(OWNER, gateway.COMPONENT, now=NOW)
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert "PRIVATE KEY" not in data["ca.crt"]
    serving = x509.load_pem_x509_certificate(data["tls.crt"].encode())
    ca = x509.load_pem_x509_certificate(data["ca.crt"].encode())
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "chat-gateway.prod.svc" in names.get_values_for_type(x509.DNSName)
    assert serving.not_valid_after_utc == NOW + datetime.timedelta(days=90)
    # The key is the certificate's: the pair loads as a server's.
    (tmp_path / "tls.crt").write_text(data["tls.crt"])
    (tmp_path / "tls.key").write_text(data["tls.key"])
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
        tmp_path / "tls.crt", tmp_path / "tls.key"
    )


def test_optional_children_name_the_certificate_never_a_configmap_the_operator_may_not_delete() -> (
    None
):
    assert serving_tls.optional_children(OWNER, gateway.COMPONENT) == [
        ("cert-manager.io/v1", "Certificate", "chat-gateway-tls"),
    ]


STREAM_EXAMPLE = (
    pathlib.Path(__file__).parents[2] / "examples" / "02-stream" / "stream-pipeline.yaml"
)
PIPELINE = manifests.Owner(
    api_version=api.API_VERSION,
    kind=api.STREAM_PIPELINE.kind,
    name="reviews",
    namespace="shop",
    uid="3c9e1f6a-2b4d-4e8f-9a0b-1c2d3e4f5a6b",
)


def pipeline(**push: Any) -> api.StreamPipelineSpec:
    """The stream example (its model an endpointRef to chat) with these push settings."""
    spec = yaml.safe_load(STREAM_EXAMPLE.read_text())["spec"]
    return api.StreamPipelineSpec.model_validate({**spec, "push": push})


def render_pipeline(
    spec: api.StreamPipelineSpec, *, endpoint_tls: bool = False
) -> list[dict[str, Any]]:
    return stream_children.desired_children(
        PIPELINE,
        spec,
        image="tiers:0",
        stats_redis_url=None,
        endpoint_model="gpt-4o",
        endpoint_tls=endpoint_tls,
        push_ca=CA_PEM,
    )


def test_the_push_gateway_serves_https_from_its_certificate() -> None:
    children = render_pipeline(pipeline(tls={"issuerRef": {"name": "internal-ca"}}))
    deployment = find(children, "Deployment", "reviews-push")["spec"]["template"]["spec"]
    (push,) = deployment["containers"]
    assert "--tls-cert-file" in push["command"]
    assert push["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volume = next(v for v in deployment["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "reviews-push-tls"
    certificate = find(children, "Certificate", "reviews-push-tls")
    assert "reviews-push.shop.svc" in certificate["spec"]["dnsNames"]
    assert find(children, "ConfigMap", "reviews-push-ca")["data"] == {"ca.crt": CA_PEM}
    (port,) = find(children, "Service", "reviews-push")["spec"]["ports"]
    assert port["name"] == port["appProtocol"] == "https"
    assert (
        stream_children.push_url(PIPELINE, tls=True) == "https://reviews-push.shop.svc:8086/events"
    )


def test_a_job_calling_an_endpoint_over_tls_verifies_it_with_the_endpoints_ca() -> None:
    children = render_pipeline(pipeline(), endpoint_tls=True)
    data = find(children, "ConfigMap", "reviews-stream")["data"][stream_children.CONFIG_FILE]
    target = stream_config.StreamJobConfig.model_validate_json(data).model.target
    assert isinstance(target, modelcall_config.EndpointTarget)
    assert target.url == "https://chat-gateway.shop.svc:8080/v1"
    assert str(target.ca_file) == "/var/run/tiers/server-ca/ca.crt"
    job = find(children, "Deployment", "reviews-stream")["spec"]["template"]["spec"]
    volume = next(v for v in job["volumes"] if v["name"] == "server-ca")
    assert volume["configMap"] == {"name": "chat-gateway-ca", "optional": True}
    assert {"name": "server-ca", "mountPath": "/var/run/tiers/server-ca", "readOnly": True} in (
        job["containers"][0]["volumeMounts"]
    )


def test_a_job_calling_a_plain_http_endpoint_mounts_no_ca() -> None:
    children = render_pipeline(pipeline())
    job = find(children, "Deployment", "reviews-stream")["spec"]["template"]["spec"]
    assert not [v for v in job["volumes"] if v["name"] == "server-ca"]


def test_a_batch_job_calling_an_endpoint_over_tls_verifies_it_with_the_endpoints_ca() -> None:
    owner = manifests.Owner(
        api_version=api.API_VERSION, kind="BatchJob", name="triage", namespace="ops", uid="u-1"
    )
    job_spec = api.BatchJobSpec.model_validate(
        {
            "engine": "spark",
            "input": {"uri": "s3a://b/tickets/", "format": "jsonl"},
            "output": {"uri": "s3a://b/triage/", "format": "parquet"},
            "model": {"endpointRef": {"name": "chat"}, "prompt": "Classify: {body}"},
        }
    )
    settings = batch_children.job_config(
        owner, job_spec, stats_redis_url=None, endpoint_model="gpt-4o", endpoint_tls=True
    )
    target = settings.model.target
    assert isinstance(target, modelcall_config.EndpointTarget)
    assert target.url == "https://chat-gateway.ops.svc:8080/v1"
    assert str(target.ca_file) == "/var/run/tiers/server-ca/ca.crt"
    configmap = batch_children.render_config_map(owner, job_spec, settings)
    job = batch_children.render_run_job(owner, job_spec, configmap, run="triage-1", image="t:1")
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "server-ca")
    assert volume["configMap"] == {"name": "chat-gateway-ca", "optional": True}


def test_an_ingress_in_front_of_a_tls_gateway_speaks_https_to_it() -> None:
    expose = {"host": "chat.example.com", "ingress": {"className": "nginx"}}
    ingress = find(render(spec(tls={}, expose=expose)), "Ingress", "chat-gateway")
    annotations = ingress["metadata"]["annotations"]
    assert annotations == {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}
    plain = find(render(spec(expose=expose)), "Ingress", "chat-gateway")
    assert "annotations" not in plain["metadata"]


def test_a_backend_tls_policy_found_unserved_after_all_has_discovery_asked_again() -> None:
    key = ("gateway.networking.k8s.io", "backendtlspolicies")
    kube._served[key] = ("v1", float("inf"))
    route = kube.TypeNotServed("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert not serving_certificates.backend_tls_policy_unserved(route)
    assert key in kube._served
    policy = kube.TypeNotServed("gateway.networking.k8s.io/v1", "BackendTLSPolicy")
    assert serving_certificates.backend_tls_policy_unserved(policy)
    assert key not in kube._served


def test_status_publishes_the_ca_certificates_both_while_one_rotates_and_never_a_key() -> None:
    issued = serving_tls.self_signed_data(OWNER, gateway.COMPONENT, now=NOW)
    url = "https://chat-gateway.prod.svc:8080/v1"
    tls = certificates.TLS()
    assert serving_tls.status_address(url, tls, issued["ca.crt"]) == {
        "url": url, "CACerts": issued["ca.crt"]
    }  # fmt: skip
    # During a rotation ca.crt holds both CAs: both are published.
    due = self_signed.renewal_time(x509.load_pem_x509_certificate(issued["ca.crt"].encode()))
    last = serving_tls.renewed_data(
        OWNER, gateway.COMPONENT, issued, now=due - datetime.timedelta(days=10)
    )
    assert last is not None, "the last certificate the old CA signs"
    later = due + datetime.timedelta(minutes=1)
    staged = serving_tls.renewed_data(OWNER, gateway.COMPONENT, last, now=later)
    assert staged is not None
    both = serving_tls.status_address(url, tls, staged["ca.crt"])["CACerts"]
    assert len(x509.load_pem_x509_certificates(both.encode())) == 2
    # A user's ca.crt holding a key by mistake: its certificates only.
    mixed = issued["tls.key"] + issued["ca.crt"] + "a comment\n"
    assert serving_tls.status_address(url, tls, mixed)["CACerts"] == issued["ca.crt"]
    assert "PRIVATE KEY" not in str(serving_tls.status_address(url, tls, issued["tls.key"]))
    # Bounded: a bundle longer than status takes is not published (clients mount the
    # ConfigMap); neither is anything without tls, or without a ca.crt.
    many = issued["ca.crt"] * (common.CA_CERTS_MAX_LENGTH // len(issued["ca.crt"]) + 1)
    assert serving_tls.status_address(url, tls, many) == {"url": url}
    assert serving_tls.status_address(url, None, issued["ca.crt"]) == {"url": url}
    assert serving_tls.status_address(url, tls, None) == {"url": url}
    status = {"address": serving_tls.status_address(url, tls, staged["ca.crt"])}
    api.RealtimeEndpointStatus.model_validate(status)
    assert serving_certificates.published({"status": status}, "address", tls) == both
    assert serving_certificates.published({"status": status}, "address", None) is None
    assert serving_certificates.published({}, "address", tls) is None


def test_a_failed_discovery_fails_only_the_owners_that_want_a_backend_tls_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An apiserver whose discovery cannot be read (here: nothing listens) is not a kind not
    served: an owner without an HTTPRoute to tls goes on without asking; one with it gets a
    condition that says what failed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    cluster = kubeconfig_models.Cluster(server=f"http://127.0.0.1:{port}")
    config = lightkube.KubeConfig.from_one(cluster=cluster, user=kubeconfig_models.User())
    unreachable = lightkube.AsyncClient(config=config)
    monkeypatch.setattr(kube, "_client", unreachable)
    monkeypatch.setattr(kube, "_served", {})
    route = exposure_api.Expose.model_validate(
        {"host": "chat.example.com", "httpRoute": {"parentRefs": [{"name": "gw"}]}}
    )
    assert exposure.wants_backend_tls_policy(route, backend_tls=True)
    assert not exposure.wants_backend_tls_policy(route, backend_tls=False)
    assert not exposure.wants_backend_tls_policy(None, backend_tls=True)

    assert asyncio.run(serving_certificates.backend_tls_policy_version(wanted=False)) is None
    with pytest.raises(kube.DiscoveryFailed) as failed:
        asyncio.run(serving_certificates.backend_tls_policy_version(wanted=True))
    assert "/apis/gateway.networking.k8s.io/v1" in str(failed.value)
    assert kube._served == {}, "a failure is not remembered: the next reconcile asks again"
    verdict = serving_certificates.discovery_failed("spec.expose", failed.value)
    assert (verdict.status, verdict.reason) == ("False", "DiscoveryFailed")
    assert verdict.message.startswith("spec.expose.httpRoute to a gateway with tls needs")
