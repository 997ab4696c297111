"""API keys: hashed once when loaded, compared as hashes, never logged or kept in clear."""

from __future__ import annotations

import hashlib
import hmac
import pathlib


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The accepted keys of an endpoint, as SHA-256 digests. Empty means no auth."""

    def __init__(self, hashes: frozenset[str]) -> None:
        self._hashes = hashes

    @classmethod
    def from_dir(cls, directory: pathlib.Path | None) -> KeyRing:
        """Every regular file in a mounted Secret holds one key (a trailing newline is ignored)."""
        if directory is None:
            return cls(frozenset())
        hashes = {
            hash_key(path.read_text().strip())
            for path in directory.iterdir()
            if path.is_file() and not path.name.startswith(".")
        }
        return cls(frozenset(h for h in hashes if h != hash_key("")))

    @property
    def required(self) -> bool:
        return bool(self._hashes)

    def tenant(self, authorization: bytes | None) -> str | None:
        """The tenant id (a digest prefix) of a valid `Bearer` key, or None if not accepted."""
        if not self._hashes:
            return "anonymous"
        if authorization is None:
            return None
        scheme, _, key = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return None
        digest = hash_key(key.strip())
        # The set lookup is constant-time enough: the digest, not the key, is what is compared.
        if digest in self._hashes:
            return digest[:16]
        return None


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
