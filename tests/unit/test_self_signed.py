"""The operator's own CA for `tls: {}` (`manifests.self_signed`): what it issues, and when it
renews what, on a clock the tests set. What clients see is the CA bundle (`ca.crt`, the CA
ConfigMap): a served certificate must always verify against the bundle published before it."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509

from tiers.operator.manifests import self_signed

NAMES = ["chat-gateway", "chat-gateway.prod", "chat-gateway.prod.svc"]
T0 = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
MINUTE = datetime.timedelta(minutes=1)


def served(data: dict[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data["tls.crt"].encode())


def bundle(data: dict[str, str]) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data["ca.crt"].encode())


def verifies(data: dict[str, str], published: dict[str, str]) -> bool:
    """Whether the certificate of `data` verifies against the CAs `published` holds."""
    for ca in bundle(published):
        try:
            served(data).verify_directly_issued_by(ca)
        except Exception:
            continue
        return True
    return False


def test_a_new_pair_is_a_ninety_day_certificate_from_a_ten_year_ca_whose_key_is_kept() -> None:
    data = self_signed.issue(NAMES, now=T0)
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert served(data).not_valid_after_utc == T0 + 90 * DAY
    assert [ca.not_valid_after_utc for ca in bundle(data)] == [T0 + 3650 * DAY]
    assert verifies(data, data)
    assert "PRIVATE KEY" not in data["ca.crt"]


def test_nothing_is_renewed_before_two_thirds_of_the_certificates_life() -> None:
    data = self_signed.issue(NAMES, now=T0)
    assert self_signed.renewed(data, NAMES, now=T0 + 59 * DAY) is None
    assert (
        self_signed.renewal_time(served(data)) == T0 - 5 * MINUTE + (90 * DAY + 5 * MINUTE) * 2 / 3
    )


def test_a_due_certificate_is_renewed_by_the_same_ca_so_the_published_bundle_stays() -> None:
    data = self_signed.issue(NAMES, now=T0)
    now = T0 + 61 * DAY
    renewed = self_signed.renewed(data, NAMES, now=now)
    assert renewed is not None
    assert renewed["ca.crt"] == data["ca.crt"] and renewed["ca.key"] == data["ca.key"]
    assert renewed["tls.key"] != data["tls.key"], (
        "a new key, as cert-manager's rotationPolicy: Always"
    )
    assert served(renewed).not_valid_after_utc == now + 90 * DAY
    assert verifies(renewed, data), "clients holding the old ConfigMap verify the new certificate"
    assert self_signed.renewed(renewed, NAMES, now=now + MINUTE) is None


def test_an_expired_certificate_is_renewed_at_once() -> None:
    data = self_signed.issue(NAMES, now=T0)
    renewed = self_signed.renewed(data, NAMES, now=T0 + 200 * DAY)
    assert renewed is not None and verifies(renewed, data)


def test_the_ca_is_replaced_by_first_publishing_the_new_one_beside_the_old() -> None:
    issued = self_signed.issue(NAMES, now=T0)
    ca_due = self_signed.renewal_time(bundle(issued)[0])
    # The last certificate the old CA signs, ten days before the CA is due.
    last = self_signed.renewed(issued, NAMES, now=ca_due - 10 * DAY)
    assert last is not None and last["ca.crt"] == issued["ca.crt"]

    staged = self_signed.renewed(last, NAMES, now=ca_due + MINUTE)
    assert staged is not None
    assert staged["tls.crt"] == last["tls.crt"], "the served certificate stays while the CA spreads"
    assert len(bundle(staged)) == 2 and bundle(staged)[0] == bundle(last)[0]
    assert staged["ca.key"] != last["ca.key"]
    assert verifies(staged, staged)

    # The certificate's own renewal, signed by the new CA, which every client has had for weeks.
    renewed = self_signed.renewed(staged, NAMES, now=ca_due + 60 * DAY)
    assert renewed is not None
    assert bundle(renewed) == bundle(staged)[1:], "the old CA leaves with its last certificate"
    assert verifies(renewed, staged)


def test_a_secret_made_before_renewal_gets_a_new_ca_published_before_it_signs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As the operator made them before: ten years, and the CA's key not kept.
    monkeypatch.setattr(self_signed, "SERVING_LIFETIME", 3650 * DAY)
    legacy = self_signed.issue(NAMES, now=T0)
    monkeypatch.undo()
    del legacy["ca.key"]

    now = T0 + 30 * DAY
    staged = self_signed.renewed(legacy, NAMES, now=now)
    assert staged is not None and staged["tls.crt"] == legacy["tls.crt"]
    assert len(bundle(staged)) == 2 and "ca.key" in staged
    assert self_signed.renewed(staged, NAMES, now=now + MINUTE) is None, "not published long enough"

    later = now + self_signed.PUBLISHED_FOR + MINUTE
    renewed = self_signed.renewed(staged, NAMES, now=later)
    assert renewed is not None
    assert served(renewed).not_valid_after_utc == later + 90 * DAY
    assert verifies(renewed, staged)
    assert len(bundle(renewed)) == 1


@pytest.mark.parametrize(
    "damage",
    [
        {"tls.crt": "not a certificate"},
        {"ca.key": "not a key"},
        {"ca.crt": "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"},
        {"tls.crt": None},
        {"tls.key": None},
    ],
)
def test_a_secret_whose_pair_does_not_load_is_issued_anew_rather_than_failing_every_recheck(
    damage: dict[str, str | None],
) -> None:
    data = self_signed.issue(NAMES, now=T0)
    for key, value in damage.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    renewed = self_signed.renewed(data, NAMES, now=T0 + DAY)
    assert renewed is not None and verifies(renewed, renewed)
    assert sorted(renewed) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
