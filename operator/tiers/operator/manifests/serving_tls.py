"""HTTPS on a gateway's listener (`spec.tls`, `spec.push.tls`): where its certificate comes
from, how the pods mount it, and the CA that in-cluster clients verify it with.

Three sources (`tiers.api.certificates.TLS`), one Secret name the pods mount (`secret_name`):
- `secretName`: the user's kubernetes.io/tls Secret, read only;
- `issuerRef`: a cert-manager Certificate (`render_certificate`) owned by the resource, whose
  Secret cert-manager writes and renews;
- neither: a CA of its own and a serving certificate (`render_self_signed_secret`) that the
  operator generates into a Secret it owns (never one it does not own) and renews
  (`self_signed`).

Whichever it is, the Secret's `ca.crt` is published in a ConfigMap (`render_ca_configmap`, the
CA certificate only, never a key) that clients mount (`client_volume`): the stream and batch
jobs calling an endpoint verify its gateway with it. The resource's status publishes it too
(`status_address`, `Address.CACerts`), which only the operator can write: the console verifies
the gateway with that, reading no ConfigMap. The handlers call these; all pure.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tiers.api import certificates, common
from tiers.operator import verdicts
from tiers.operator.manifests import labels, security, self_signed

CERT_KEY = self_signed.CERT_KEY
KEY_KEY = self_signed.KEY_KEY
CA_KEY = self_signed.CA_KEY
SECRET_TYPE = "kubernetes.io/tls"
CERTIFICATE_API_VERSION = "cert-manager.io/v1"
CERTIFICATE_KIND = "Certificate"
SERVING_DIR = "/var/run/tiers/tls"
"""Where a server's pods mount the certificate Secret."""
CA_DIR = "/var/run/tiers/server-ca"
"""Where a client's pods mount the CA ConfigMap of the server they call."""
HTTPS = "https"
CERT_MANAGER_MISSING = "CertManagerMissing"


def _certificate_component(component: labels.Component) -> labels.Component:
    """The certificate Secret and Certificate of `component`: `<owner>-<suffix>-tls`."""
    return labels.Component(
        app=component.app, role=component.role, suffix=f"{component.suffix}-tls"
    )


def _ca_component(component: labels.Component) -> labels.Component:
    """The CA ConfigMap of `component`: `<owner>-<suffix>-ca`."""
    return labels.Component(app=component.app, role=component.role, suffix=f"{component.suffix}-ca")


def secret_name(owner: labels.Named, component: labels.Component, tls: certificates.TLS) -> str:
    """The kubernetes.io/tls Secret the server's pods mount."""
    if tls.secret_name is not None:
        return tls.secret_name
    return _certificate_component(component).name(owner)


def ca_name(owner: labels.Named, component: labels.Component) -> str:
    """The ConfigMap that holds the CA (`ca.crt`) clients of `component` verify it with."""
    return _ca_component(component).name(owner)


def certificate_name(owner: labels.Named, component: labels.Component) -> str:
    return _certificate_component(component).name(owner)


def dns_names(owner: labels.Named, component: labels.Component) -> list[str]:
    """The names in-cluster clients reach the component's Service by."""
    service = component.name(owner)
    namespaced = f"{service}.{owner.namespace}"
    return [service, namespaced, f"{namespaced}.svc", f"{namespaced}.svc.cluster.local"]


def scheme(tls: certificates.TLS | None) -> str:
    return "http" if tls is None else HTTPS


def port_name(tls: certificates.TLS | None) -> str:
    """The name of the server's port: https when it serves TLS (service meshes and Gateway API
    implementations read the protocol from it)."""
    return scheme(tls)


def render_certificate(
    owner: labels.Owner, component: labels.Component, tls: certificates.TLS
) -> dict[str, Any]:
    """The cert-manager Certificate that has `tls.issuerRef` issue and renew the server's
    certificate into `secret_name()`; owned by the resource (deleted with it)."""
    assert tls.issuer_ref is not None, "only for spec.tls.issuerRef"
    issuer = tls.issuer_ref
    return {
        "apiVersion": CERTIFICATE_API_VERSION,
        "kind": CERTIFICATE_KIND,
        "metadata": _certificate_component(component).metadata(owner),
        "spec": {
            "secretName": secret_name(owner, component, tls),
            "commonName": dns_names(owner, component)[2],
            "dnsNames": dns_names(owner, component),
            "usages": ["server auth", "digital signature", "key encipherment"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
        },
    }


def render_self_signed_secret(owner: labels.Owner, component: labels.Component) -> dict[str, Any]:
    """The kubernetes.io/tls Secret of a self-signed pair, its data to come from
    `self_signed_data`: created once by `kube.generated_secret` (never adopted), which makes
    the pair only then, and renews it with `renewed_data`."""
    secret = security.render_secret(owner, _certificate_component(component), {})
    secret["type"] = SECRET_TYPE
    return secret


def self_signed_data(
    owner: labels.Named, component: labels.Component, *, now: datetime.datetime
) -> dict[str, str]:
    """A new CA and serving certificate for the component's Service: the Secret's data."""
    return self_signed.issue(dns_names(owner, component), now=now)


def renewed_data(
    owner: labels.Named,
    component: labels.Component,
    data: dict[str, str],
    *,
    now: datetime.datetime,
) -> dict[str, str] | None:
    """The self-signed Secret's data renewed as of `now`; None while nothing is due."""
    return self_signed.renewed(data, dns_names(owner, component), now=now)


def render_ca_configmap(
    owner: labels.Owner, component: labels.Component, ca_pem: str
) -> dict[str, Any]:
    """The CA certificate clients verify the server with; a certificate only, never a key."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _ca_component(component).metadata(owner),
        "data": {CA_KEY: ca_pem},
    }


def status_address(url: str, tls: certificates.TLS | None, ca_pem: str | None) -> dict[str, Any]:
    """A server's `Address` in status: its in-cluster `url`, and with `tls` the CA certificates
    of `ca_pem` (the certificate Secret's `ca.crt`) as `CACerts`: its certificates only, never
    anything else a user's `ca.crt` may hold, and none past `common.CA_CERTS_MAX_LENGTH`
    characters (a longer bundle is not what status is for: clients mount the ConfigMap)."""
    address: dict[str, Any] = {"url": url}
    if tls is None or not ca_pem:
        return address
    try:
        found = x509.load_pem_x509_certificates(ca_pem.encode())
    except ValueError:
        return address
    certs = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in found)
    if len(certs) <= common.CA_CERTS_MAX_LENGTH:
        address["CACerts"] = certs
    return address


def server_flags() -> list[str]:
    """The server's command-line flags that serve the mounted pair (`tiers.runtime.tls`)."""
    return [
        "--tls-cert-file",
        f"{SERVING_DIR}/{CERT_KEY}",
        "--tls-key-file",
        f"{SERVING_DIR}/{KEY_KEY}",
    ]


def server_volume(
    owner: labels.Named, component: labels.Component, tls: certificates.TLS
) -> dict[str, Any]:
    """The certificate and key only (the kubelet swaps them when the Secret is renewed)."""
    items = [{"key": CERT_KEY, "path": CERT_KEY}, {"key": KEY_KEY, "path": KEY_KEY}]
    source = {"secretName": secret_name(owner, component, tls), "items": items}
    return {"name": "tls", "secret": source}


def server_mount() -> dict[str, Any]:
    return {"name": "tls", "mountPath": SERVING_DIR, "readOnly": True}


def client_volume(server: labels.Named, component: labels.Component) -> dict[str, Any]:
    """The CA ConfigMap of the server a client calls; optional: a certificate from a public CA
    publishes none, and the client then trusts the system's CAs."""
    source = {"name": ca_name(server, component), "optional": True}
    return {"name": "server-ca", "configMap": source}


def client_mount() -> dict[str, Any]:
    return {"name": "server-ca", "mountPath": CA_DIR, "readOnly": True}


def client_ca_file() -> pathlib.Path:
    """Where a client finds the CA it verifies the server with."""
    return pathlib.Path(CA_DIR) / CA_KEY


def probe(path: str, tls: certificates.TLS | None) -> dict[str, Any]:
    """An httpGet probe on the server's port, in the scheme it serves (the kubelet does not
    verify certificates)."""
    get: dict[str, Any] = {"path": path, "port": port_name(tls)}
    if tls is not None:
        get["scheme"] = "HTTPS"
    return {"httpGet": get}


def render_children(
    owner: labels.Owner,
    component: labels.Component,
    tls: certificates.TLS,
    ca_pem: str | None,
) -> list[dict[str, Any]]:
    """What `owner` owns for its server's TLS, in apply order: the Certificate (with issuerRef)
    and the CA's ConfigMap (once the certificate Secret has a `ca.crt`)."""
    owned = []
    if tls.issuer_ref is not None:
        owned.append(render_certificate(owner, component, tls))
    if ca_pem is not None:
        owned.append(render_ca_configmap(owner, component, ca_pem))
    return owned


def optional_children(
    owner: labels.Named, component: labels.Component
) -> list[tuple[str, str, str]]:
    """The children some specs have and others not: (apiVersion, kind, name). The CA's
    ConfigMap is not one: the operator never deletes a ConfigMap (garbage collection does,
    with its owner), so one left by a `tls` since removed stays until then, unused."""
    return [(CERTIFICATE_API_VERSION, CERTIFICATE_KIND, certificate_name(owner, component))]


def cert_manager_missing(field: str) -> verdicts.Verdict:
    """The condition of an issuerRef on a cluster that serves no cert-manager Certificate."""
    return verdicts.Verdict(
        "False",
        CERT_MANAGER_MISSING,
        f"{field} needs cert-manager's Certificate ({CERTIFICATE_API_VERSION}), which this"
        " cluster does not serve: install cert-manager, or give tls.secretName, or leave both"
        " out for a self-signed certificate",
    )
