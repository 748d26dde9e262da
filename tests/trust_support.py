"""Shared helpers for the JWT trust tests: generated keys, JWK Sets, tokens, trusted-issuer files."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://ehr.example.org/"
BASE = "http://localhost"


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        data = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            data["alg"] = self.alg
        return data


def ec_key(kid: str = "ec-1") -> Key:
    return Key(kid, "ES384", ec.generate_private_key(ec.SECP384R1()))


def rsa_key(kid: str = "rsa-1") -> Key:
    return Key(kid, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def claims(
    aud: str | list[str],
    *,
    iss: str = ISSUER,
    exp_in: int = 300,
    iat_in: int = 0,
    jti: str | None = None,
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    now = int(time.time())
    body = {"iss": iss, "aud": aud, "exp": now + exp_in, "iat": now + iat_in, "jti": jti or str(uuid.uuid4())}
    body.update(extra)
    for name in drop:
        body.pop(name, None)
    return body


def mint(key: Key, aud: str | list[str], *, headers: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """A signed token as an EHR would send it (typ JWT, kid, alg of the key)."""
    return jwt.encode(
        claims(aud, **kwargs), key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT", **(headers or {})}
    )


def issuers_file(tmp_path: Path, data: dict[str, Any], name: str = "issuers.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
