"""TLS for the data plane's listeners and for the clients that call them inside the cluster.

The gateway and the push gateway serve HTTPS from a certificate and key mounted from a
`kubernetes.io/tls` Secret (`server_context`); the kubelet swaps the files when the Secret changes
(cert-manager renewing it), and the next handshakes use the new pair without a restart. Clients
of the gateway (the model client of a stream or batch job with an endpointRef) verify it against
the CA the operator publishes (`client_context`). TLS 1.2 is the oldest version either side
accepts.
"""

from __future__ import annotations

import logging
import os
import pathlib
import ssl
import time
from collections.abc import Callable
from typing import Any

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
RECHECK_S = 5.0
"""How often (at most, on a handshake) the served files are looked at for a change."""

_log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


def _stamp(files: tuple[pathlib.Path, ...]) -> Stamp:
    """What changes when a file is replaced: the kubelet swaps a symlinked folder, so the inode
    of the file that a path resolves to changes, with its size and mtime."""
    stats = [os.stat(path) for path in files]
    return tuple((stat.st_ino, stat.st_size, stat.st_mtime_ns) for stat in stats)


def _serving(cert_file: pathlib.Path, key_file: pathlib.Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(cert_file, key_file)
    return context


class ServingCertificate:
    """A listener's TLS context that follows its certificate files.

    `context` is what the server listens with. On a ClientHello (at most every `recheck_s`) it
    looks whether the files changed; when they did, it loads them into a new context, and each
    handshake from then on switches to it. A half-written pair keeps the previous one."""

    def __init__(
        self,
        cert_file: pathlib.Path,
        key_file: pathlib.Path,
        *,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._files = (cert_file, key_file)
        self._recheck_s = recheck_s
        self._clock = clock
        self._stamp = _stamp(self._files)
        self.context = _serving(cert_file, key_file)
        self.context.sni_callback = self._on_hello
        self._current = self.context
        self._next_check = clock() + recheck_s

    def _on_hello(self, connection: Any, server_name: str | None, _: ssl.SSLContext) -> None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._recheck_s
            self.reload_if_changed()
        if self._current is not self.context:
            connection.context = self._current

    def reload_if_changed(self) -> bool:
        """Loads the files again when they changed; whether a new pair is served from now on."""
        try:
            stamp = _stamp(self._files)
            if stamp == self._stamp:
                return False
            fresh = _serving(*self._files)
        except (OSError, ssl.SSLError) as error:
            _log.warning("keeping the served certificate: reading the new one failed: %s", error)
            return False
        self._stamp, self._current = stamp, fresh
        _log.info("serving the renewed certificate from %s", self._files[0])
        return True


def client_context(ca_file: pathlib.Path | None) -> ssl.SSLContext:
    """Verifies a server against `ca_file` (the CA the operator published) when it exists, and
    otherwise against the system's trust store (a certificate from a public CA); hostnames
    are checked either way."""
    cafile = ca_file if ca_file is not None and ca_file.is_file() else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = MINIMUM_VERSION
    return context


class TrustedCAs:
    """A client's TLS context (`client_context`) that follows its CA file: when the file
    changes (the kubelet swapping the mounted CA ConfigMap), the CAs in it are added to the
    same context, which the next handshakes verify with. A CA being replaced is published
    beside the old one before it signs anything (`tiers.operator.manifests.self_signed`), so a
    long-running client keeps verifying the server through the change. CAs are only added,
    never dropped: one that leaves the file no longer signs anything. `refresh` looks at the
    file at most every `recheck_s`."""

    def __init__(
        self,
        ca_file: pathlib.Path | None,
        *,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._file = ca_file
        self._recheck_s = recheck_s
        self._clock = clock
        self._stamp = self._current_stamp()
        self.context = client_context(ca_file)
        self._next_check = clock() + recheck_s

    def _current_stamp(self) -> Stamp | None:
        if self._file is None:
            return None
        try:
            return _stamp((self._file,))
        except OSError:
            return None

    def refresh(self) -> bool:
        """Adds the file's CAs when it changed since last read; whether it did."""
        now = self._clock()
        if self._file is None or now < self._next_check:
            return False
        self._next_check = now + self._recheck_s
        stamp = self._current_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        try:
            self.context.load_verify_locations(cafile=self._file)
        except (OSError, ssl.SSLError) as error:
            _log.warning("keeping the CAs verified with: reading %s failed: %s", self._file, error)
            return False
        self._stamp = stamp
        _log.info("verifying with the CAs now in %s", self._file)
        return True


def verifying_context(ca_pem: str | None) -> ssl.SSLContext:
    """As `client_context`, with the CA certificates (PEM, one or a bundle) given as text: the
    console reads them from the ConfigMap the operator publishes rather than from a mount."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    context.minimum_version = MINIMUM_VERSION
    return context


def uvicorn_ssl_context(config: Any, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`: its `ssl_certfile` and `ssl_keyfile`, served by a
    `ServingCertificate` (TLS 1.2 or later, renewed files picked up) in each worker process."""
    return ServingCertificate(
        pathlib.Path(config.ssl_certfile), pathlib.Path(config.ssl_keyfile)
    ).context


def uvicorn_settings(
    cert_file: pathlib.Path | None, key_file: pathlib.Path | None
) -> dict[str, Any]:
    """The `uvicorn.run` keywords that serve HTTPS from these files; none for plain HTTP."""
    if cert_file is None and key_file is None:
        return {}
    if cert_file is None or key_file is None:
        raise SystemExit("give both --tls-cert-file and --tls-key-file, or neither")
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_context_factory": uvicorn_ssl_context,
    }


def add_flags(parser: Any) -> None:
    """`--tls-cert-file` and `--tls-key-file` on a server's argparse parser."""
    parser.add_argument(
        "--tls-cert-file", type=pathlib.Path, help="serve HTTPS with this PEM chain (tls.crt)"
    )
    parser.add_argument("--tls-key-file", type=pathlib.Path, help="its PEM key (tls.key)")
