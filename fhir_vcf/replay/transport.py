"""Where `fhir-vcf replay` sends its requests: the app in-process (Flask's test client) or a running
service over HTTP, each call optionally signed with a CDS Hooks 2.0 client JWT (`Signer`).

PyJWT, cryptography, requests and the app load only when a transport or signer is made, so that
`fhir-vcf --help` stays fast (and `fhir-vcf serve` chooses prometheus_client's mode first).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_vcf.errors import FhirVcfError
from fhir_vcf.replay.output import short

JWT_LIFETIME = 300  # seconds: CDS Hooks 2.0 recommends a short-lived token (exp at most 5 minutes)
HTTP_TIMEOUT = (5.0, 60.0)


class ReplayInputError(FhirVcfError):
    """Replay cannot run as asked: an unusable key, expectations file or service (exit 2)."""


class Signer:
    """CDS Hooks 2.0 client JWTs: ES384 for an EC P-384 key, RS384 for RSA; `aud` = the URL called."""

    def __init__(self, pem: bytes, issuer: str, kid: str | None = None) -> None:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ReplayInputError(f"--jwt-key: not an unencrypted PEM private key ({exc})") from None
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = "RS384"
            public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
            self.algorithm = "ES384"
            public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        else:
            raise ReplayInputError("--jwt-key: use an RSA key (RS384) or an EC P-384 key (ES384)")
        self.key = key
        self.issuer = issuer
        self.kid = kid or jwk_thumbprint(public_jwk)
        self.public_jwk = {**public_jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def token(self, audience: str) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "exp": now + JWT_LIFETIME,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers={"kid": self.kid, "typ": "JWT"})


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (base64url SHA-256 of the required members): a stable default `kid`."""
    import base64
    import hashlib

    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[str(jwk["kty"])]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON, or None
    text: str


class Transport:
    """Where requests go: `discovery()` and `call(service_id, body)`."""

    base_url: str = ""

    def __init__(self, signer: Signer | None = None) -> None:
        self.signer = signer

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def headers(self, url: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.signer:
            headers["Authorization"] = f"Bearer {self.signer.token(url)}"
        return headers

    def get(self, path: str) -> Answer:
        raise NotImplementedError

    def post(self, path: str, body: Any) -> Answer:
        raise NotImplementedError

    def discovery(self) -> dict[str, Any]:
        answer = self.get("/cds-services")
        if answer.status != 200 or not isinstance(answer.body, Mapping):
            raise ReplayInputError(
                f"discovery {self.url('/cds-services')} answered {answer.status}: {outcome_text(answer)}"
            )
        services = answer.body.get("services")
        if not isinstance(services, list):
            raise ReplayInputError(f"discovery {self.url('/cds-services')}: no services array")
        return dict(answer.body)

    def call(self, service_id: str, body: Mapping[str, Any]) -> Answer:
        return self.post(f"/cds-services/{service_id}", body)

    @contextlib.contextmanager
    def evaluating_as_of(self, as_of: date | None) -> Iterator[None]:
        yield


class InProcess(Transport):
    """The app itself through Flask's test client (no server, no network)."""

    base_url = "http://localhost"

    def __init__(self, signer: Signer | None = None, app: Any = None) -> None:
        super().__init__(signer)
        if app is None:
            from fhir_vcf.app import create_app

            # In-process, the Host header is the test client's own: nothing to forge, so the JWT
            # audience may come from it (FHIR_VCF_TRUSTED_ISSUERS needs an audience source).
            app = create_app({"database_url": "sqlite://", "trust_host_header": True})
        self.app = app
        self.client = app.test_client()

    def _answer(self, response: Any) -> Answer:
        text = response.get_data(as_text=True)
        return Answer(response.status_code, _loads(text), text)

    def get(self, path: str) -> Answer:
        return self._answer(self.client.get(path, headers=self.headers(self.url(path))))

    def post(self, path: str, body: Any) -> Answer:
        return self._answer(self.client.post(path, data=json.dumps(body), headers=self.headers(self.url(path))))

    @contextlib.contextmanager
    def evaluating_as_of(self, as_of: date | None) -> Iterator[None]:
        """Evaluate as of `as_of` through the service's documented seam (`cds_hooks.evaluate_record`)."""
        if as_of is None:
            yield
            return
        from fhir_vcf.service import cds_hooks

        original = cds_hooks.evaluate_record

        def dated(record: Any, **options: Any) -> dict[str, Any]:
            return original(record, **{**options, "as_of": as_of})

        cds_hooks.evaluate_record = dated
        try:
            yield
        finally:
            cds_hooks.evaluate_record = original


class Remote(Transport):
    """A running service at `base_url` (`--against`), over HTTP with requests."""

    def __init__(self, base_url: str, signer: Signer | None = None) -> None:
        import requests

        super().__init__(signer)
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/cds-services"):
            self.base_url = self.base_url[: -len("/cds-services")]
        self.session = requests.Session()

    def _send(self, method: str, path: str, body: Any = None) -> Answer:
        import requests

        url = self.url(path)
        try:
            response = self.session.request(
                method, url, headers=self.headers(url), data=None if body is None else json.dumps(body),
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ReplayInputError(f"cannot reach {url} ({type(exc).__name__})") from None
        return Answer(response.status_code, _loads(response.text), response.text)

    def get(self, path: str) -> Answer:
        return self._send("GET", path)

    def post(self, path: str, body: Any) -> Answer:
        return self._send("POST", path, body)


def _loads(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def outcome_text(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, Mapping) and body.get("resourceType") == "OperationOutcome":
        texts = [i.get("diagnostics") for i in body.get("issue") or [] if isinstance(i, Mapping)]
        return short("; ".join(t for t in texts if isinstance(t, str)) or "OperationOutcome")
    return short(answer.text) or "(empty body)"
