"""Certificates and credentials of the local control plane, made with openssl."""

from __future__ import annotations

import dataclasses
import pathlib
import secrets
import shutil
import subprocess


@dataclasses.dataclass(frozen=True)
class Credentials:
    ca_cert: pathlib.Path
    ca_key: pathlib.Path
    serving_cert: pathlib.Path
    serving_key: pathlib.Path
    service_account_key: pathlib.Path
    service_account_pub: pathlib.Path
    token_file: pathlib.Path
    admin_token: str


def create(directory: pathlib.Path) -> Credentials:
    """A CA, an apiserver serving certificate for 127.0.0.1, a service-account key pair and an
    admin bearer token (group system:masters)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is not on PATH (Debian package: openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    d = directory

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
            "-subj", "/CN=tiers-dev-ca", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
            "-keyout", "apiserver.key", "-out", "apiserver.csr")  # fmt: skip
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes.default.svc\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "365", "-extfile", "san.ext",
            "-out", "apiserver.crt")  # fmt: skip
    openssl("genrsa", "-out", "sa.key", "2048")
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    token = secrets.token_hex(24)
    (d / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    for secret in ("ca.key", "apiserver.key", "sa.key", "tokens.csv"):
        (d / secret).chmod(0o600)
    return existing(d)


def existing(directory: pathlib.Path) -> Credentials:
    """The credentials `create()` made in `directory` (a control plane started again)."""
    d = directory
    token = (d / "tokens.csv").read_text().split(",", 1)[0]
    return Credentials(
        ca_cert=d / "ca.crt",
        ca_key=d / "ca.key",
        serving_cert=d / "apiserver.crt",
        serving_key=d / "apiserver.key",
        service_account_key=d / "sa.key",
        service_account_pub=d / "sa.pub",
        token_file=d / "tokens.csv",
        admin_token=token,
    )


def kubeconfig(*, server: str, ca_cert: pathlib.Path, token: str) -> str:
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: tiers-dev\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {ca_cert}\n"
        "users:\n"
        f"- name: admin\n  user:\n    token: {token}\n"
        "contexts:\n"
        "- name: tiers-dev\n  context:\n    cluster: tiers-dev\n    user: admin\n"
        "current-context: tiers-dev\n"
    )
