"""spec.tls against the real apiserver, with the session's operator (as the chart's
ServiceAccount): the self-signed Secret it generates and owns (never one it does not own), the
CA it publishes for in-cluster clients, the cert-manager Certificate it makes for an issuerRef,
the renewal of its own certificate near its end, and the conditions when cert-manager is not
installed or has not issued the certificate yet.

No cert-manager controller runs here (`tiers.devenv.cert_manager` says why): cert-manager's own
Certificate CRD (fetched from the Go module proxy) has the apiserver validate the Certificate the
operator makes with cert-manager's schema; the test then writes the Secret that cert-manager
would, from a CA of its own."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Kubectl, wait_for
from cryptography import x509

from tiers.devenv import cert_manager, samples
from tiers.operator.manifests import gateway, labels, self_signed, serving_tls


def endpoint(tls: dict[str, Any] | None, *, replicas: int = 1) -> str:
    spec = {} if tls is None else {"tls": tls}
    return json.dumps(
        samples.realtime_endpoint(cache={"enabled": False}, replicas=replicas, **spec)
    )


def ready(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    obj = kubectl.get("rte", "chat", "-n", namespace)
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def tls_secret(name: str) -> str:
    """A kubernetes.io/tls Secret, as cert-manager writes one (with its CA's ca.crt)."""
    names = [f"{name}.example"]
    data = self_signed.issue(names, now=datetime.datetime.now(datetime.UTC))
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                       "metadata": {"name": name}, "data": encoded})  # fmt: skip


@pytest.fixture
def certificate_crd(kubectl: Kubectl) -> Iterator[None]:
    """cert-manager's own Certificate CRD (cluster-wide), removed after the test."""
    kubectl.run("apply", "--server-side", "--field-manager=tiers-tests",
                "-f", str(cert_manager.certificate_crd()))  # fmt: skip
    try:
        kubectl.run("wait", "--for=condition=Established", f"crd/{cert_manager.CRD_NAME}",
                    "--timeout=30s")  # fmt: skip
        yield
    finally:
        kubectl.run("delete", "crd", cert_manager.CRD_NAME, "--ignore-not-found", "--wait",
                    "--timeout=60s")  # fmt: skip


def published_in_status(kubectl: Kubectl, namespace: str) -> str:
    """The endpoint's status.address.CACerts, once there."""
    found: str = wait_for(
        lambda: (kubectl.get("rte", "chat", "-n", namespace).get("status", {})
                 .get("address") or {}).get("CACerts"),
        timeout_s=30, what="status.address.CACerts",
    )  # fmt: skip
    return found


def test_a_self_signed_endpoint_owns_its_certificate_and_publishes_only_its_ca(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(endpoint({}), namespace=namespace)
    secret = wait_for(lambda: kubectl.find("secret", "chat-gateway-tls", namespace),
                      timeout_s=30, what="the self-signed certificate Secret")  # fmt: skip
    uid = kubectl.get("rte", "chat", "-n", namespace)["metadata"]["uid"]
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid
    pair = decoded(secret)
    serving = x509.load_pem_x509_certificate(pair["tls.crt"].encode())
    serving.verify_directly_issued_by(x509.load_pem_x509_certificate(pair["ca.crt"].encode()))
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"chat-gateway.{namespace}.svc" in san.get_values_for_type(x509.DNSName)

    ca = wait_for(lambda: kubectl.find("configmap", "chat-gateway-ca", namespace),
                  timeout_s=30, what="the CA's ConfigMap")  # fmt: skip
    assert ca["data"] == {"ca.crt": pair["ca.crt"]}
    pod = kubectl.get("deployment", "chat-gateway", "-n", namespace)["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "chat-gateway-tls", "defaultMode": 420,
            "items": [{"key": "tls.crt", "path": "tls.crt"},
                      {"key": "tls.key", "path": "tls.key"}]}} in pod["volumes"]  # fmt: skip
    service = kubectl.get("service", "chat-gateway", "-n", namespace)
    assert service["spec"]["ports"][0]["appProtocol"] == "https"
    wait_for(lambda: kubectl.get("rte", "chat", "-n", namespace).get("status", {}).get("url")
             == f"https://chat-gateway.{namespace}.svc:8080/v1",
             timeout_s=30, what="status.url in https")  # fmt: skip
    # Status publishes the same CA, where only the operator writes (the console reads it there).
    assert published_in_status(kubectl, namespace) == pair["ca.crt"]

    # Reconciled again (a spec change), the pair is the same: generated once, never rewritten.
    kubectl.apply(endpoint({}, replicas=2), namespace=namespace)
    wait_for(lambda: kubectl.get("deployment", "chat-gateway", "-n", namespace)["spec"]
             ["replicas"] == 2, timeout_s=30, what="the endpoint reconciled again")  # fmt: skip
    assert decoded(kubectl.get("secret", "chat-gateway-tls", "-n", namespace)) == pair


def test_a_self_signed_certificate_near_its_end_is_renewed_by_the_same_ca(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(endpoint(None), namespace=namespace)
    uid = kubectl.get("rte", "chat", "-n", namespace)["metadata"]["uid"]
    # The endpoint's own Secret, issued 70 days ago: past 2/3 of its 90 days.
    names = serving_tls.dns_names(labels.Ref("chat", namespace), gateway.COMPONENT)
    now = datetime.datetime.now(datetime.UTC)
    old = self_signed.issue(names, now=now - datetime.timedelta(days=70))
    owner = {"apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint", "name": "chat",
             "uid": uid, "controller": True}  # fmt: skip
    kubectl.apply(json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "chat-gateway-tls", "ownerReferences": [owner]},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in old.items()},
    }), namespace=namespace)  # fmt: skip

    kubectl.apply(endpoint({}), namespace=namespace)
    renewed = wait_for(
        lambda: (d := decoded(kubectl.get("secret", "chat-gateway-tls", "-n", namespace)))
        ["tls.crt"] != old["tls.crt"] and d,
        timeout_s=30, what="the certificate renewed",
    )  # fmt: skip
    serving = x509.load_pem_x509_certificate(renewed["tls.crt"].encode())
    assert serving.not_valid_after_utc > now + datetime.timedelta(days=89)
    assert renewed["tls.key"] != old["tls.key"]
    # The same CA: what clients trust already verifies it, and is what stays published.
    assert renewed["ca.crt"] == old["ca.crt"]
    serving.verify_directly_issued_by(x509.load_pem_x509_certificate(old["ca.crt"].encode()))
    ca = wait_for(lambda: kubectl.find("configmap", "chat-gateway-ca", namespace),
                  timeout_s=30, what="the CA's ConfigMap")  # fmt: skip
    assert ca["data"] == {"ca.crt": old["ca.crt"]}
    wait_for(
        lambda: any(
            event["reason"] == "ChildUpdated" and "Secret chat-gateway-tls" in event["message"]
            for event in kubectl.get(
                "events", "-n", namespace, "--field-selector", "involvedObject.name=chat"
            )["items"]
        ),
        timeout_s=30, what="an Event saying the Secret was renewed",
    )  # fmt: skip


def test_a_secret_of_that_name_not_made_by_the_endpoint_is_never_adopted(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(tls_secret("chat-gateway-tls"), namespace=namespace)
    before = kubectl.get("secret", "chat-gateway-tls", "-n", namespace)
    kubectl.apply(endpoint({}), namespace=namespace)
    condition = wait_for(
        lambda: (c := ready(kubectl, namespace)).get("reason") == "ChildConflict" and c,
        timeout_s=30,
        what="Ready=False ChildConflict",
    )
    assert "chat-gateway-tls" in condition["message"]
    after = kubectl.get("secret", "chat-gateway-tls", "-n", namespace)
    assert after["metadata"].get("ownerReferences") is None
    assert after["data"] == before["data"]
    address = kubectl.get("rte", "chat", "-n", namespace)["status"].get("address") or {}
    assert "CACerts" not in address, "the CA of a Secret not the endpoint's is never published"


def test_an_issuer_ref_without_cert_manager_is_a_condition_naming_the_ways_out(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(endpoint({"issuerRef": {"name": "internal-ca"}}), namespace=namespace)
    condition = wait_for(
        lambda: (c := ready(kubectl, namespace)).get("reason") == "CertManagerMissing" and c,
        timeout_s=30,
        what="Ready=False CertManagerMissing",
    )
    assert "spec.tls.issuerRef" in condition["message"]
    assert "tls.secretName" in condition["message"]


def test_an_issuer_ref_makes_a_certificate_whose_secret_serves_and_publishes_its_ca(
    kubectl: Kubectl, operator: str, namespace: str, certificate_crd: None
) -> None:
    issuer = {"name": "internal-ca", "kind": "ClusterIssuer"}
    kubectl.apply(endpoint({"issuerRef": issuer}), namespace=namespace)
    certificate = wait_for(lambda: kubectl.find("certificate", "chat-gateway-tls", namespace),
                           timeout_s=30, what="the endpoint's Certificate")  # fmt: skip
    uid = kubectl.get("rte", "chat", "-n", namespace)["metadata"]["uid"]
    assert certificate["metadata"]["ownerReferences"][0]["uid"] == uid
    assert certificate["spec"]["secretName"] == "chat-gateway-tls"
    assert certificate["spec"]["issuerRef"] == {**issuer, "group": "cert-manager.io"}
    assert f"chat-gateway.{namespace}.svc" in certificate["spec"]["dnsNames"]
    # Not issued yet: the endpoint says which Secret it waits for.
    condition = wait_for(
        lambda: (c := ready(kubectl, namespace)).get("reason") == "SecretNotFound" and c,
        timeout_s=30,
        what="Ready=False SecretNotFound for the certificate",
    )
    assert "spec.tls.issuerRef" in condition["message"]

    # What cert-manager would write: the operator publishes its CA, and waits no more.
    kubectl.apply(tls_secret("chat-gateway-tls"), namespace=namespace)
    issued = decoded(kubectl.get("secret", "chat-gateway-tls", "-n", namespace))
    ca = wait_for(lambda: kubectl.find("configmap", "chat-gateway-ca", namespace),
                  timeout_s=60, what="the issued certificate's CA published")  # fmt: skip
    assert ca["data"] == {"ca.crt": issued["ca.crt"]}
    wait_for(lambda: ready(kubectl, namespace).get("reason") != "SecretNotFound",
             timeout_s=60, what="the endpoint past the missing certificate")  # fmt: skip
    assert published_in_status(kubectl, namespace) == issued["ca.crt"]


def test_secret_name_and_issuer_ref_together_are_refused_naming_the_field(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    tls = {"secretName": "mine", "issuerRef": {"name": "internal-ca"}}
    refused = kubectl.apply(endpoint(tls), namespace=namespace, check=False)
    assert refused.returncode != 0
    assert "tls takes secretName" in refused.stderr
    assert "spec.tls" in refused.stderr
