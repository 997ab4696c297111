"""API keys: hashed once when loaded, compared as hashes, never logged or kept in clear; the
realtime gateway and the push gateway each hold one `KeyRing`.

The keys come from a mounted Secret (one key per file). The kubelet rewrites the files when the
Secret changes, so the gateway re-reads them every `RELOAD_INTERVAL_S`: a revoked key stops
working within seconds, without a restart. Auth fails closed: once a folder is configured, a
folder that is missing, unreadable or holds only blank files accepts no key at all.

A file may hold a key's digest instead of the key, as `sha256:<64 hex digits>`: that is how the
operator lets the StreamPipelines and BatchJobs that call an endpoint in (each has a key of its
own; the endpoint's gateway sees only its digest).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import pathlib
import re

log = logging.getLogger(__name__)

RELOAD_INTERVAL_S = 2.0
MAX_KEY_FILE_BYTES = 64 * 1024
"""A key is far shorter; a larger file is not a key and is skipped."""
_BLANK = hashlib.sha256(b"").hexdigest()
DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def read_hashes(directory: pathlib.Path) -> frozenset[str]:
    """The digests of the non-blank keys in `directory`; OSError when it cannot be read."""
    hashes = set()
    for path in directory.iterdir():
        # `..data` and friends are the kubelet's own bookkeeping of the mounted Secret.
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            continue
        hashes.add(digest_of(path.read_text(errors="replace").strip()))
    return frozenset(hashes - {_BLANK})


def digest_of(entry: str) -> str:
    """The digest an entry stands for: its own when written `sha256:<hex>`, else the key's."""
    written = _DIGEST.fullmatch(entry)
    return written.group(1) if written else hash_key(entry)


class KeyRing:
    """The accepted keys of an endpoint, as SHA-256 digests.

    Without a folder (and `required` false) every caller is `anonymous`; with one, only a caller
    whose key is in the folder now is served, and an empty folder serves no one.
    """

    def __init__(
        self,
        hashes: frozenset[str],
        *,
        directory: pathlib.Path | None = None,
        required: bool = False,
    ) -> None:
        self._hashes = hashes
        self._directory = directory
        self._required = required
        self._problem: str | None = None

    @classmethod
    def from_dir(cls, directory: pathlib.Path | None, *, required: bool = False) -> KeyRing:
        """`required`: refuse keyless callers even without a folder (another auth serves)."""
        ring = cls(frozenset(), directory=directory, required=required)
        ring.reload()
        return ring

    @property
    def required(self) -> bool:
        return self._required or self._directory is not None or bool(self._hashes)

    def reload(self) -> None:
        """Re-reads the folder; what cannot be read accepts no key (never `anonymous`)."""
        if self._directory is None:
            return
        problem: str | None = None
        try:
            hashes = read_hashes(self._directory)
        except OSError as error:
            hashes, problem = frozenset(), f"cannot read {self._directory}: {error.strerror}"
        if not hashes and problem is None:
            problem = f"{self._directory} holds no non-blank key"
        if problem != self._problem:
            if problem is not None:
                log.warning("API keys: %s; every call gets 401 until keys appear", problem)
            elif self._problem is not None:
                log.info("API keys: %d loaded from %s", len(hashes), self._directory)
            self._problem = problem
        self._hashes = hashes

    async def watch(self, interval_s: float = RELOAD_INTERVAL_S) -> None:
        """Re-reads the folder every `interval_s` until cancelled (a few small files: cheap)."""
        while True:
            await asyncio.sleep(interval_s)
            self.reload()

    def tenant(self, authorization: bytes | None) -> str | None:
        """The tenant id (a digest prefix) of a valid `Bearer` key, or None if not accepted."""
        if not self.required:
            return "anonymous"
        if authorization is None or not self._hashes:
            return None
        scheme, _, key = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        digest = hash_key(key.strip())
        # The set lookup is constant-time enough: the digest, not the key, is what is compared.
        if digest in self._hashes:
            return digest[:16]
        return None


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
