"""SMART Backend Services: an access token from a client-credentials grant with a signed JWT.

The provider is a callable, so `FhirClient(base_url, token=provider)` asks it for a token on every
call; it answers from its cache until shortly before the token expires, then fetches a new one.
One provider serves every request thread of an app: a lock makes sure that concurrent requests
with an expired token trigger one token request, not one each.

Spec: SMART App Launch 2.x, "Backend Services" (client_credentials, private_key_jwt with
RS384 or ES384; the assertion's `exp` no more than five minutes ahead; a fresh `jti` each time).
Neither the assertion nor the access token is ever logged or put into an error message.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import requests

from fhir_vcf.config import SMART_ALGORITHMS
from fhir_vcf.errors import ConfigError, UpstreamError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; the spec caps `exp` at five minutes ahead
REFRESH_MARGIN = 60  # seconds before expiry at which a cached token counts as expired
DEFAULT_EXPIRES_IN = 300  # when the server omits expires_in (it SHOULD send it), assume five minutes


class SmartBackendAuth:
    """A thread-safe, caching token source for `FhirClient(token=...)`."""

    def __init__(
        self,
        *,
        client_id: str,
        token_url: str,
        private_key: str | bytes,
        scope: str,
        algorithm: str = "RS384",
        key_id: str | None = None,
        timeout: tuple[float, float] = (1.0, 2.0),
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in SMART_ALGORITHMS:
            raise ConfigError(
                f"SMART backend: algorithm {algorithm!r} not allowed; use one of {', '.join(SMART_ALGORITHMS)}"
            )
        self.client_id = client_id
        self.token_url = token_url
        self.scope = scope
        self.algorithm = algorithm
        self.key_id = key_id
        self.timeout = timeout
        self._key = private_key
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    @classmethod
    def from_settings(cls, settings: Any) -> SmartBackendAuth:
        """Build from `Settings` (smart_client_id, smart_token_url, smart_private_key path, ...)."""
        try:
            key = Path(settings.smart_private_key).read_bytes()
        except OSError as exc:
            raise ConfigError(f"FHIR_VCF_SMART_PRIVATE_KEY: cannot read the key file ({exc.strerror})") from None
        return cls(
            client_id=settings.smart_client_id,
            token_url=settings.smart_token_url,
            private_key=key,
            scope=settings.smart_scope,
            algorithm=settings.smart_algorithm,
            key_id=settings.smart_key_id,
            timeout=(settings.fhir_connect_timeout, settings.fhir_read_timeout),
        )

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._token, self._expires_at = self._fetch()
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after the FHIR server answered 401 to it)."""
        with self._lock:
            self._token = None
            self._expires_at = 0.0

    def client_assertion(self) -> str:
        """The signed JWT that authenticates this client at the token endpoint."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"typ": "JWT"}
        if self.key_id:
            headers["kid"] = self.key_id
        try:
            return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(f"SMART backend: cannot sign the client assertion ({type(exc).__name__})") from None

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        started = self._clock()
        try:
            response = self._session.post(
                self.token_url, data=form, headers={"Accept": "application/json"}, timeout=self.timeout
            )
        except requests.Timeout:
            raise UpstreamError("SMART token endpoint timed out", timeout=True) from None
        except requests.RequestException as exc:
            raise UpstreamError(f"SMART token endpoint unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise UpstreamError(
                f"SMART token endpoint answered {response.status_code}", upstream_status=response.status_code
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError("SMART token endpoint sent no access_token", upstream_status=response.status_code)
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = DEFAULT_EXPIRES_IN
        # Refresh a margin before expiry (but never cache a token for less than half its life).
        margin = min(REFRESH_MARGIN, expires_in / 2)
        return token, started + expires_in - margin
