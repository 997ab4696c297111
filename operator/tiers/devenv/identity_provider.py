"""A local stand-in for an OIDC provider's signing side (Entra ID, Keycloak...): a real HTTP
server on 127.0.0.1 that publishes a JWKS, and the private keys that sign tokens for it.

The tests of JWT callers (spec.auth.jwt) run the gateway against it; `rotate()` and `retire()`
are what a provider does when it rolls its keys. Keys are generated per instance, never stored.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
import uuid
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tiers.devenv import json_http

KeyType = Literal["RSA", "EC"]
ALGORITHMS: dict[KeyType, str] = {"RSA": "RS256", "EC": "ES256"}


@dataclasses.dataclass
class SigningKey:
    kid: str
    kind: KeyType
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def algorithm(self) -> str:
        return ALGORITHMS[self.kind]

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        else:
            entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
        return {**entry, "kid": self.kid, "use": "sig", "alg": self.algorithm}


def new_key(kind: KeyType = "RSA") -> SigningKey:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "RSA":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid=uuid.uuid4().hex[:12], kind=kind, private=private)


class IdentityProvider:
    """Serves `GET /keys` (the JWKS) and counts the fetches; `issuer` is its own URL."""

    def __init__(self, *kinds: KeyType) -> None:
        self.keys = [new_key(kind) for kind in kinds or ("RSA",)]
        self.fetches = 0
        provider = self

        class Handler(json_http.Handler):
            def do_GET(self) -> None:
                provider.fetches += 1
                if self.path == "/keys":
                    self.answer(200, {"keys": [key.jwk() for key in provider.keys]})
                else:
                    self.answer(404, {"error": f"no {self.path} here"})

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.url + "/v2.0"
        self.jwks_url = self.url + "/keys"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self, kind: KeyType = "RSA") -> SigningKey:
        """Publishes a new key beside the old ones (as providers do before signing with it)."""
        key = new_key(kind)
        self.keys.append(key)
        return key

    def retire(self, key: SigningKey) -> None:
        self.keys.remove(key)

    def token(
        self,
        audience: str,
        *,
        key: SigningKey | None = None,
        lifetime_s: float = 300,
        **claims: Any,
    ) -> str:
        """A token signed by `key` (the first by default); `claims` override or add claims."""
        signer = key or self.keys[0]
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime_s),
            "sub": "caller",
            **claims,
        }
        return jwt.encode(
            {k: v for k, v in payload.items() if v is not None},
            signer.private,
            algorithm=signer.algorithm,
            headers={"kid": signer.kid},
        )
