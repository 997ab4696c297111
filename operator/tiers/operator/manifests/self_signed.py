"""The operator's own CA for a gateway with `tls: {}` (neither secretName nor issuerRef): the
certificates it issues into the Secret it owns, and when it renews them. Pure: the time comes
in as `now`; keys are new at each issue.

One CA per gateway, whose key stays in the Secret (`ca.key`, never mounted by the pods) so that
a renewed serving certificate is signed by the CA clients already trust: the CA ConfigMap does
not change, and nothing that verifies the gateway has to reload anything. As cert-manager does
by default, a serving certificate lives 90 days and is renewed at 2/3 of its life; the CA lives
ten years and is renewed at 2/3 of its life too, in two steps so that no client is cut off:

1. the new CA is added to `ca.crt` beside the one that issued the served certificate (the CA
   ConfigMap publishes both), and signs from then on;
2. the next serving certificate is signed by it only once it has been published for
   `PUBLISHED_FOR` (the kubelet's refresh of the clients' mounted ConfigMap, which a running
   model client reads again: `tiers.runtime.tls.TrustedCAs`); the old CA leaves `ca.crt` with
   the certificate it issued.

A Secret made before renewal existed (a ten-year certificate, no `ca.key`) goes the same way:
its CA cannot sign, so a new one is published, and its long-lived certificate is replaced.
`serving_certificates.prepare` calls `renewed` on each re-check.
"""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import exceptions, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_KEY = "ca.crt"
CA_PRIVATE_KEY = "ca.key"
"""The CA's key in the Secret: the pods mount `tls.crt` and `tls.key` only."""
SERVING_LIFETIME = datetime.timedelta(days=90)
CA_LIFETIME = datetime.timedelta(days=3650)
RENEW_AT = 2 / 3
"""Renewed once this share of a certificate's life has passed (cert-manager's default)."""
PUBLISHED_FOR = datetime.timedelta(minutes=10)
"""How long a new CA is published before it signs the served certificate."""
BACKDATE = datetime.timedelta(minutes=5)
"""Valid from a little before now: clients whose clock is behind still accept it."""
_CA_USAGE = x509.KeyUsage(
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
_PEM = serialization.Encoding.PEM


@dataclasses.dataclass(frozen=True)
class _Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def renewal_time(certificate: x509.Certificate) -> datetime.datetime:
    """When `certificate` is renewed: at `RENEW_AT` of its life."""
    since, until = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    return since + (until - since) * RENEW_AT


def due(certificate: x509.Certificate, *, now: datetime.datetime) -> bool:
    return now >= renewal_time(certificate)


def issue(names: list[str], *, now: datetime.datetime) -> dict[str, str]:
    """A new CA and a serving certificate for `names` that it signed: the Secret's data."""
    authority = _new_authority(names[0], now=now)
    certificate, key = _serving(names, authority, now=now)
    return _data(certificate, key, [authority.certificate], authority)


def renewed(
    data: dict[str, str], names: list[str], *, now: datetime.datetime
) -> dict[str, str] | None:
    """The Secret's data renewed as of `now`, or None when nothing is due yet. Data that does
    not load as a pair (edited by hand, or keys missing) is issued anew: renewing it would fail
    at every re-check, and the pods cannot serve it."""
    try:
        served = x509.load_pem_x509_certificate(data[CERT_KEY].encode())
        serialization.load_pem_private_key(data[KEY_KEY].encode(), password=None)
        authorities = (
            x509.load_pem_x509_certificates(data[CA_KEY].encode()) if data.get(CA_KEY) else []
        )
        signer = _signer(authorities, data.get(CA_PRIVATE_KEY))
    except (KeyError, ValueError, TypeError, exceptions.UnsupportedAlgorithm):
        return issue(names, now=now)
    changed = False
    if signer is None or due(signer.certificate, now=now):
        signer, changed = _new_authority(names[0], now=now), True
    issuer = next((ca for ca in authorities if _issued(served, ca)), None)
    expired = now >= served.not_valid_after_utc
    if expired or (serving_due(served, now=now) and published(signer.certificate, now=now)):
        certificate, key = _serving(names, signer, now=now)
        return _data(certificate, key, [signer.certificate], signer)
    if not changed:
        return None
    trusted = [ca for ca in (issuer,) if ca is not None and now < ca.not_valid_after_utc]
    return _data(served, data[KEY_KEY], [*trusted, signer.certificate], signer)


def serving_due(certificate: x509.Certificate, *, now: datetime.datetime) -> bool:
    """A served certificate is renewed at `RENEW_AT` of its life, and at once when it lives
    longer than the operator issues them now (made before renewal existed)."""
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return due(certificate, now=now) or lifetime > SERVING_LIFETIME + BACKDATE


def published(authority: x509.Certificate, *, now: datetime.datetime) -> bool:
    """Whether a CA has been in `ca.crt` long enough for clients to trust it."""
    return now >= authority.not_valid_before_utc + BACKDATE + PUBLISHED_FOR


def _signer(authorities: list[x509.Certificate], key_pem: str | None) -> _Authority | None:
    """The CA of `ca.crt` whose key the Secret keeps."""
    if not key_pem:
        return None
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    public = key.public_key().public_numbers()
    for authority in authorities:
        found = authority.public_key()
        if isinstance(found, ec.EllipticCurvePublicKey) and found.public_numbers() == public:
            return _Authority(authority, key)
    return None


def _issued(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, exceptions.InvalidSignature):
        return False
    return True


def _new_authority(name: str, *, now: datetime.datetime) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(certificate, key)


def _serving(
    names: list[str], authority: _Authority, *, now: datetime.datetime
) -> tuple[x509.Certificate, str]:
    """A serving certificate for `names` signed by `authority` (never outliving it), with its
    new key as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    until = min(now + SERVING_LIFETIME, authority.certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), False
        )
        .sign(authority.key, hashes.SHA256())
    )
    return certificate, _key_pem(key)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _data(
    certificate: x509.Certificate,
    key_pem: str,
    trusted: list[x509.Certificate],
    signer: _Authority,
) -> dict[str, str]:
    return {
        CERT_KEY: certificate.public_bytes(_PEM).decode(),
        KEY_KEY: key_pem,
        CA_KEY: "".join(ca.public_bytes(_PEM).decode() for ca in trusted),
        CA_PRIVATE_KEY: _key_pem(signer.key),
    }
