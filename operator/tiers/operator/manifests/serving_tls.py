"""HTTPS on a gateway's listener (`spec.tls`, `spec.push.tls`): where its certificate comes
from, how the pods mount it, and the CA that in-cluster clients verify it with.

Three sources (`tiers.api.certificates.TLS`), one Secret name the pods mount (`secret_name`):
- `secretName`: the user's kubernetes.io/tls Secret, read only;
- `issuerRef`: a cert-manager Certificate (`render_certificate`) owned by the resource, whose
  Secret cert-manager writes and renews;
- neither: a self-signed CA and serving certificate (`render_self_signed_secret`) that the
  operator generates once into a Secret it owns (never one it does not own).

Whichever it is, the Secret's `ca.crt` is published in a ConfigMap (`render_ca_configmap`, the
CA certificate only, never a key) that clients mount (`client_volume`): the stream and batch
jobs calling an endpoint verify its gateway with it. The handlers call these; all pure.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tiers.api import certificates
from tiers.operator import verdicts
from tiers.operator.manifests import labels, security

CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_KEY = "ca.crt"
SECRET_TYPE = "kubernetes.io/tls"
CERTIFICATE_API_VERSION = "cert-manager.io/v1"
CERTIFICATE_KIND = "Certificate"
SERVING_DIR = "/var/run/tiers/tls"
"""Where a server's pods mount the certificate Secret."""
CA_DIR = "/var/run/tiers/server-ca"
"""Where a client's pods mount the CA ConfigMap of the server they call."""
SELF_SIGNED_DAYS = 3650
"""Validity of the operator's self-signed CA and certificate: nothing renews them (cert-manager
is the way to rotated certificates); the Secret's deletion has the operator make new ones."""
HTTPS = "https"
CERT_MANAGER_MISSING = "CertManagerMissing"
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


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


def self_signed(names: list[str], *, now: datetime.datetime) -> dict[str, str]:
    """A new CA and a serving certificate for `names` that it signed, as PEM: the Secret's data
    (`tls.crt`, `tls.key`, `ca.crt`). The CA's key is not kept: nothing else is signed with it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{names[0]} CA")])
    until = now + datetime.timedelta(days=SELF_SIGNED_DAYS)
    since = now - datetime.timedelta(minutes=5)  # clocks a little behind still accept it
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(since)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(since)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        CERT_KEY: serving.public_bytes(pem).decode(),
        KEY_KEY: key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        CA_KEY: ca.public_bytes(pem).decode(),
    }


def render_self_signed_secret(owner: labels.Owner, component: labels.Component) -> dict[str, Any]:
    """The kubernetes.io/tls Secret of a self-signed pair, its data to come from
    `self_signed_data`: created once by `kube.generated_secret` (never rewritten, never
    adopted), which makes the pair only then."""
    secret = security.render_secret(owner, _certificate_component(component), {})
    secret["type"] = SECRET_TYPE
    return secret


def self_signed_data(
    owner: labels.Named, component: labels.Component, *, now: datetime.datetime
) -> dict[str, str]:
    """A new self-signed pair for the component's Service: the Secret's data."""
    return self_signed(dns_names(owner, component), now=now)


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
    """The children some specs have and others not: (apiVersion, kind, name)."""
    return [
        (CERTIFICATE_API_VERSION, CERTIFICATE_KIND, certificate_name(owner, component)),
        ("v1", "ConfigMap", ca_name(owner, component)),
    ]


def cert_manager_missing(field: str) -> verdicts.Verdict:
    """The condition of an issuerRef on a cluster that serves no cert-manager Certificate."""
    return verdicts.Verdict(
        "False",
        CERT_MANAGER_MISSING,
        f"{field} needs cert-manager's Certificate ({CERTIFICATE_API_VERSION}), which this"
        " cluster does not serve: install cert-manager, or give tls.secretName, or leave both"
        " out for a self-signed certificate",
    )
