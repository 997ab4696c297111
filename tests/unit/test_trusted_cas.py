"""A long-running client of a TLS gateway (the model client of a stream job) across the
replacement of the gateway's CA (`tiers.runtime.tls.TrustedCAs`): real handshakes in memory,
the CA file swapped as the kubelet swaps a mounted ConfigMap, on a clock the test moves."""

from __future__ import annotations

import datetime
import os
import pathlib
import ssl

from cryptography import x509

from tiers.operator.manifests import self_signed
from tiers.runtime import tls

NAME = "chat-gateway.prod.svc"
T0 = datetime.datetime.now(datetime.UTC)


def handshake(server: dict[str, str], client: ssl.SSLContext, tmp_path: pathlib.Path) -> bool:
    """Whether `client` completes a TLS handshake with a server serving `server`'s pair."""
    (tmp_path / "tls.crt").write_text(server["tls.crt"])
    (tmp_path / "tls.key").write_text(server["tls.key"])
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    near = client.wrap_bio(pipes[0], pipes[1], server_hostname=NAME)
    far = serving.wrap_bio(pipes[2], pipes[3], server_side=True)
    for _ in range(10):
        for side in (near, far):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return False
        pipes[2].write(pipes[1].read())
        pipes[0].write(pipes[3].read())
    return near.version() is not None


def swap(path: pathlib.Path, text: str) -> None:
    path.with_suffix(".new").write_text(text)
    os.replace(path.with_suffix(".new"), path)


def test_a_client_started_before_the_ca_was_replaced_verifies_the_new_certificate(
    tmp_path: pathlib.Path,
) -> None:
    # Handshakes check validity against the real clock: the CA was made long enough ago to be
    # due for replacement 50 days ago, and each step happened at its time.
    day = datetime.timedelta(days=1)
    life = self_signed.CA_LIFETIME + self_signed.BACKDATE
    issued = self_signed.issue([NAME], now=T0 - life * self_signed.RENEW_AT - 50 * day)
    ca_due = self_signed.renewal_time(x509_ca(issued))
    served = self_signed.renewed(issued, [NAME], now=ca_due - 20 * day)
    assert served is not None and served["ca.crt"] == issued["ca.crt"]
    mounted = tmp_path / "ca.crt"
    swap(mounted, served["ca.crt"])
    now = [0.0]
    trust = tls.TrustedCAs(mounted, recheck_s=5, clock=lambda: now[0])
    assert handshake(served, trust.context, tmp_path)

    # The new CA published beside the old one, then the certificate it signs.
    staged = self_signed.renewed(served, [NAME], now=ca_due + day)
    assert staged is not None and staged["tls.crt"] == served["tls.crt"]
    renewed = self_signed.renewed(staged, [NAME], now=T0)
    assert renewed is not None and renewed["ca.crt"] != served["ca.crt"]
    assert not handshake(renewed, trust.context, tmp_path), "the old CA alone does not verify it"

    swap(mounted, staged["ca.crt"])
    assert not trust.refresh(), "looked at no sooner than recheck_s"
    now[0] = 6.0
    assert trust.refresh()
    assert handshake(renewed, trust.context, tmp_path)
    assert handshake(served, trust.context, tmp_path), "the old CA is kept"
    now[0] = 12.0
    assert not trust.refresh(), "an unchanged file is not read again"


def test_a_ca_file_that_does_not_load_keeps_the_cas_verified_with(tmp_path: pathlib.Path) -> None:
    issued = self_signed.issue([NAME], now=T0)
    mounted = tmp_path / "ca.crt"
    swap(mounted, issued["ca.crt"])
    now = [0.0]
    trust = tls.TrustedCAs(mounted, recheck_s=5, clock=lambda: now[0])
    swap(mounted, "-----BEGIN CERTIFICATE-----\nhalf\n")
    now[0] = 6.0
    assert not trust.refresh()
    assert handshake(issued, trust.context, tmp_path)


def x509_ca(data: dict[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data["ca.crt"].encode())
