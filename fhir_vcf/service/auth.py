"""JWT trust for CDS Hooks 2.0 callers, and CORS for browser-based EHRs.

CDS Hooks 2.0 "Trusting CDS Clients": every discovery, service and feedback call carries
`Authorization: Bearer <JWT>` signed by the EHR with an asymmetric key (`alg` + `kid`, `typ: JWT`,
optional `jku`), with claims `iss`, `aud` (the exact URL called), `exp`, `iat`, `jti`, optional
`tenant`. This module checks all of it with PyJWT (no hand-rolled crypto):

- the algorithm is on an asymmetric allowlist, checked *before* any key lookup (`none` and HMAC
  are refused outright: with HS256 a public key could be misused as the shared secret);
- `iss` is one of the trusted issuers in `Settings.trusted_issuers` (a JSON file:
  issuer → `{"jwks_url": ...}` or `{"jwks": {...}}`, optional `"jku": [allowed URLs]`);
- keys: the issuer's inline set (`jwks`, `PyJWKSet`) is searched for the `kid` first, also when
  the token carries a `jku` (an offline deployment can trust a client that sends one); then a
  `jku` header is followed only when that exact URL is on the issuer's `jku` list (a `jku` off the
  list with no inline key is refused: fetching keys from a URL the caller chose would let anyone
  sign); then the issuer's `jwks_url`. URLs are fetched through `PyJWKClient` (cached for
  `JWKS_CACHE_SECONDS`, refetched once on an unknown `kid` so key rotation works, with a
  cool-down so random `kid`s cannot make us hammer the EHR);
- the key must fit the algorithm (RSA for RS*/PS*, the matching EC curve for ES*) and, when the
  JWK declares an `alg`, be that one: a mismatch is a 401, never a 500;
- `aud` must equal the URL called: `Settings.public_base_url` + the request path; the request's
  own URL (its Host header) only when `Settings.trust_host_header` says a proxy sets Host, or in
  demo mode. Without either, `init_app` refuses to start, since a forged Host would make a token
  minted for another service acceptable here. A trailing slash, scheme/host case and a default
  port do not matter;
- `exp`, `iat` and `jti` are required; `exp` and `iat` must be JSON numbers (not strings), `iat`
  may not be in the future and `exp` at most `MAX_TOKEN_LIFETIME_SECONDS` (5 minutes) ahead; both
  with `Settings.jwt_leeway_seconds` of clock skew;
- a `jti` already seen from the same issuer is refused until the token expires (plus leeway).
  `Settings.jti_cache` says where the seen pairs live: `memory` (`ReplayCache`: bounded,
  thread-safe, this process only) or `database` (`DatabaseReplayCache`: the store's `jwt_replay`
  table, one atomic insert-or-fail per token, shared by every worker and every instance on the
  database). A per-process cache cannot catch a replay that lands on another gunicorn worker, so
  `fhir-vcf serve` with more than one worker uses `database` unless `memory` is set explicitly.
  When the database cannot answer, the call is answered 503 with Retry-After (`Unavailable`):
  the token is not accepted unchecked (fail closed), and not called bad either (a 401 would tell
  the EHR its credentials are wrong). The jti is recorded last, after every other check, and
  only for a request routed to a real view: a trailing-slash redirect, a 404 or a 405 never uses
  up the token the EHR will send again to the right URL.

Any failure answers a bare `401` with `WWW-Authenticate: Bearer` and an empty body: the reason
is logged at INFO for the operator, never returned to the caller and never with the token.

How it is wired: `init_app(app, settings)` installs one app-wide `before_request` hook that
protects every request under `/cds-services` (and any view of the `cds_hooks` and `feedback`
blueprints), except CORS preflight `OPTIONS`. The CDS Hooks views need no code of their own; the
verified claims are on `flask.g.jwt_claims` (None when trust is off). `require_jwt` is a
decorator for any other view that should demand the same token. Without
`Settings.trusted_issuers` the hook lets everything through and a warning is logged at start-up.
"""

from __future__ import annotations

import functools
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import jwt
import requests
from flask import Response, current_app, g, request
from jwt import PyJWK, PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWTError

from fhir_vcf.config import read_trusted_issuers
from fhir_vcf.errors import ConfigError, Unavailable
from fhir_vcf.logs import REQUEST_ID_HEADER
from fhir_vcf.sources.prefetch import normalise_base

if TYPE_CHECKING:
    from flask import Flask

    from fhir_vcf.config import Settings
    from fhir_vcf.store import Store

log = logging.getLogger(__name__)

EXTENSION = "fhir_vcf_auth"

# Asymmetric JWS algorithms only (RFC 7518). CDS Hooks 2.0 recommends ES384 and RS384 and forbids
# `none` and every symmetric (HMAC) algorithm.
ALLOWED_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})

# What needs a token: the CDS Hooks discovery, services and feedback (CDS Hooks 2.0, "Trusting CDS Clients").
PROTECTED_PREFIX = "/cds-services"
PROTECTED_BLUEPRINTS = frozenset({"cds_hooks", "feedback"})

JWKS_TIMEOUT_SECONDS = 2.0  # a hook should answer in ~500 ms; a cached JWKS makes this rare
JWKS_CACHE_SECONDS = 300.0
JWKS_REFRESH_COOLDOWN_SECONDS = 30.0  # minimum gap between refetches forced by an unknown kid
REPLAY_CACHE_SIZE = 100_000
# CDS Hooks 2.0, "Trusting CDS Clients": the JWT's exp is no more than 5 minutes in the future.
MAX_TOKEN_LIFETIME_SECONDS = 300

F = TypeVar("F", bound=Callable[..., Any])


class AuthError(Exception):
    """A token was refused. `reason` is for the log (never the token, never sent to the caller)."""

    def __init__(self, reason: str, *, issuer: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issuer = issuer


# ---------------------------------------------------------------------------------------------
# Replay cache


class SeenTokens(Protocol):
    """Where used (iss, jti) pairs are kept: `ReplayCache` (memory) or `DatabaseReplayCache`."""

    def add(self, issuer: str, jti: str, expires: float, now: float | None = None) -> bool:
        """Record the pair until `expires` (POSIX seconds); False if it is recorded and unexpired."""
        ...


class ReplayCache:
    """Seen (iss, jti) pairs in memory, each kept until its token expires (plus leeway); bounded,
    thread-safe, this process only.

    When full of unexpired entries it refuses new tokens (fails closed) rather than forgetting a
    jti that could then be replayed; the bound only matters under ~REPLAY_CACHE_SIZE calls per
    token lifetime.
    """

    def __init__(self, max_entries: int = REPLAY_CACHE_SIZE) -> None:
        self.max_entries = max_entries
        self.kind = "memory"
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires:
                del self._expiry[key]

    def add(self, issuer: str, jti: str, expires: float, now: float | None = None) -> bool:
        """Record the pair; False if it was already recorded and has not expired (a replay)."""
        now = time.time() if now is None else now
        key = (issuer, jti)
        with self._lock:
            self._purge(now)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                raise AuthError("replay cache full; refusing new tokens until some expire", issuer=issuer)
            self._expiry[key] = expires
            heapq.heappush(self._heap, (expires, key))
            return True


class DatabaseReplayCache:
    """Seen (iss, jti) pairs in the store's `jwt_replay` table, shared by every worker process.

    Each token costs one insert (`Store.remember_jti`, atomic on the table's unique key); expired
    rows are purged by the store now and then. A database failure refuses the token: accepting it
    unchecked would reopen the replay hole exactly when the cache cannot see.
    """

    kind = "database"

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, issuer: str, jti: str, expires: float, now: float | None = None) -> bool:
        from fhir_vcf.store import StoreError

        try:
            return self.store.remember_jti(issuer, jti, expires, now=now)
        except StoreError as exc:
            log.warning("auth: jti replay cache unavailable: %s", exc)
            raise Unavailable("the JWT replay cache (database) is unavailable; retry shortly", retry_after=5) from None


# ---------------------------------------------------------------------------------------------
# Keys


class _RequestsJWKClient(PyJWKClient):
    """PyJWKClient (its cache, refresh-on-unknown-kid and cool-down) fetching with `requests`.

    `requests` gives the same timeouts and proxies as the rest of the service (and lets tests mock
    the JWKS URL with `responses`). Redirects are not followed: the allowlisted URL is the one used.
    `declared` keeps each key's own `alg` member (by kid), read from the JSON fetched, so the
    algorithm check needs no private attribute of PyJWT's; for the same reason the refetch on an
    unknown `kid` and its cool-down are kept here (`get_signing_key`, on PyJWKClient's public
    `get_signing_keys` / `match_kid`), timed from this class's own `fetched_at`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.declared: dict[str, str] = {}
        self.fetched_at = float("-inf")
        self.lock = threading.Lock()

    def get_signing_key(self, kid: str) -> PyJWK:
        with self.lock:
            key = self.match_kid(self.get_signing_keys(), kid)
            if key is None and time.monotonic() - self.fetched_at >= JWKS_REFRESH_COOLDOWN_SECONDS:
                key = self.match_kid(self.get_signing_keys(refresh=True), kid)  # the EHR may have rotated its key
            if key is None:
                raise PyJWKClientError("no key with this kid in the JWKS")
            return key

    def fetch_data(self) -> Any:
        try:
            response = requests.get(
                self.uri, headers={"Accept": "application/json", **self.headers},
                timeout=self.timeout, allow_redirects=False,
            )
            if response.status_code != 200:
                raise PyJWKClientConnectionError(f"JWKS endpoint answered HTTP {response.status_code}")
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise PyJWKClientConnectionError(f"JWKS fetch failed ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise PyJWKClientError("The JWKS endpoint did not return a JSON object")
        self.declared = _declared_algorithms(data)
        self.fetched_at = time.monotonic()
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)
        return data


def _jwk_client(url: str) -> _RequestsJWKClient:
    return _RequestsJWKClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=JWKS_TIMEOUT_SECONDS)


def _declared_algorithms(jwk_set: Any) -> dict[str, str]:
    """kid → the `alg` a JWK declares itself, for the keys that declare one."""
    keys = jwk_set.get("keys") if isinstance(jwk_set, dict) else None
    declared: dict[str, str] = {}
    for key in keys if isinstance(keys, list) else ():
        if isinstance(key, dict) and isinstance(key.get("kid"), str) and isinstance(key.get("alg"), str):
            declared[key["kid"]] = key["alg"]
    return declared


@dataclass
class Issuer:
    """One trusted EHR: where its keys are and which `jku` URLs it may point at."""

    iss: str
    jwks_url: str | None = None
    jwks: PyJWKSet | None = None
    jku: frozenset[str] = field(default_factory=frozenset)
    declared: dict[str, str] = field(default_factory=dict)  # kid → the inline JWK's own `alg`


def _normalise_issuer(iss: str) -> str:
    return iss.rstrip("/")


def _require_http_url(var: str, issuer: str, url: Any) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{var}: issuer {issuer!r}: {url!r} is not an http(s) URL")
    return url


def load_issuers(path: str) -> dict[str, Issuer]:
    """Parse the trusted-issuers JSON file; ConfigError naming the issuer on any mistake."""
    var = "FHIR_VCF_TRUSTED_ISSUERS"
    issuers: dict[str, Issuer] = {}
    for iss, entry in read_trusted_issuers(path).items():
        jwks_url = entry.get("jwks_url")
        if jwks_url is not None:
            _require_http_url(var, iss, jwks_url)
        jwks = None
        if entry.get("jwks") is not None:
            keys = entry["jwks"].get("keys") if isinstance(entry["jwks"], dict) else None
            if not isinstance(keys, list) or not keys:
                raise ConfigError(f"{var}: issuer {iss!r}: 'jwks' must be a JWK Set with a 'keys' list")
            if any(isinstance(k, dict) and k.get("kty") == "oct" for k in keys):
                raise ConfigError(f"{var}: issuer {iss!r}: symmetric ('oct') keys are not allowed")
            try:
                jwks = PyJWKSet.from_dict(entry["jwks"])
            except PyJWTError as exc:
                raise ConfigError(f"{var}: issuer {iss!r}: unusable 'jwks' ({exc})") from None
        jku = entry.get("jku", [])
        if isinstance(jku, str) or not isinstance(jku, list):
            raise ConfigError(f"{var}: issuer {iss!r}: 'jku' must be a list of URLs")
        for url in jku:
            _require_http_url(var, iss, url)
        declared = _declared_algorithms(entry.get("jwks"))
        issuers[_normalise_issuer(iss)] = Issuer(iss=iss, jwks_url=jwks_url, jwks=jwks, jku=frozenset(jku),
                                                 declared=declared)
    return issuers


# ---------------------------------------------------------------------------------------------
# Verification


class Trust:
    """Verifies CDS Hooks JWTs against the trusted issuers. One per app; thread-safe."""

    def __init__(
        self,
        issuers: Mapping[str, Issuer],
        *,
        leeway: int = 30,
        replay_cache: SeenTokens | None = None,
    ) -> None:
        self.issuers = {_normalise_issuer(k): v for k, v in issuers.items()}
        self.leeway = leeway
        self.replay_cache: SeenTokens = replay_cache if replay_cache is not None else ReplayCache()
        self._clients: dict[str, _RequestsJWKClient] = {}
        self._clients_lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str, *, leeway: int = 30, replay_cache: SeenTokens | None = None) -> Trust:
        return cls(load_issuers(path), leeway=leeway, replay_cache=replay_cache)

    def _client(self, url: str) -> _RequestsJWKClient:
        with self._clients_lock:
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = _jwk_client(url)
            return client

    def _signing_key(self, issuer: Issuer, header: Mapping[str, Any], kid: str) -> tuple[PyJWK, str | None]:
        """(the key, the `alg` its JWK declares or None): inline keys first, then an allowed `jku`,
        then the issuer's `jwks_url`."""
        if issuer.jwks is not None:
            for key in issuer.jwks.keys:
                if key.key_id == kid and key.public_key_use in ("sig", None):
                    return key, issuer.declared.get(kid)
        jku = header.get("jku")
        url = None
        if jku is not None:
            if not isinstance(jku, str) or jku not in issuer.jku:
                raise AuthError("jku header is not on the issuer's allowlist and no inline key has this kid",
                                issuer=issuer.iss)
            url = jku
        elif issuer.jwks_url:
            url = issuer.jwks_url
        if url is None:
            raise AuthError("no key with this kid in the issuer's JWKS", issuer=issuer.iss)
        client = self._client(url)
        try:
            key = client.get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            log.warning("auth: JWKS of issuer %s unavailable: %s", issuer.iss, exc)
            raise AuthError("JWKS unavailable", issuer=issuer.iss) from None
        except (PyJWKClientError, PyJWTError):
            raise AuthError("no key with this kid in the issuer's JWKS", issuer=issuer.iss) from None
        return key, client.declared.get(kid)

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The token's claims if it passes every check, else AuthError with the reason.

        The jti is recorded last, so a token refused for any other reason is not used up.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except PyJWTError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthError(f"algorithm {str(alg)[:16]!r} not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise AuthError("typ header is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("kid header missing")
        iss = unverified.get("iss")
        issuer = self.issuers.get(_normalise_issuer(iss)) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError("untrusted or missing iss")
        for claim in ("exp", "iat"):
            value = unverified.get(claim)
            if claim in unverified and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise AuthError(f"{claim} is not a number", issuer=issuer.iss)

        key, declared = self._signing_key(issuer, header, kid)
        if declared and declared != alg:
            raise AuthError("alg does not match the key's alg", issuer=issuer.iss)
        if not key_fits(key, alg):
            raise AuthError(f"the key with this kid is not a key for {alg}", issuer=issuer.iss)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=iss,
                leeway=self.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_aud": False},
            )
        except PyJWTError as exc:
            raise AuthError(f"{type(exc).__name__}: {exc}", issuer=issuer.iss) from None
        except (ValueError, TypeError, AttributeError) as exc:  # a key PyJWT cannot use for alg: still a 401
            raise AuthError(f"the key cannot verify {alg} ({type(exc).__name__})", issuer=issuer.iss) from None

        now = time.time()
        iat = claims["iat"]
        if iat > now + self.leeway:
            raise AuthError("iat is in the future", issuer=issuer.iss)
        if claims["exp"] > now + MAX_TOKEN_LIFETIME_SECONDS + self.leeway:
            raise AuthError(f"exp is more than {MAX_TOKEN_LIFETIME_SECONDS} s ahead", issuer=issuer.iss)
        aud = claims["aud"]
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        expected = normalise_base(audience)  # the same URL comparison as the fhirServer allowlist
        if not any(isinstance(a, str) and normalise_base(a) == expected for a in auds):
            raise AuthError(f"aud does not match the URL called ({audience})", issuer=issuer.iss)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise AuthError("jti missing or not a string", issuer=issuer.iss)
        if not self.replay_cache.add(_normalise_issuer(iss), jti, float(claims["exp"]) + self.leeway, now):
            raise AuthError("jti already used (replay)", issuer=issuer.iss)
        return claims


# The key each JWS algorithm needs (RFC 7518 section 3.1): RSA for RS*/PS*, EC on the named curve for ES*.
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


def key_fits(key: PyJWK, alg: str) -> bool:
    """Whether `key` is the kind of key `alg` verifies with (PyJWK's public `key`, `key_type`)."""
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    public = key.key
    if alg.startswith(("RS", "PS")):
        return key.key_type == "RSA" and isinstance(public, RSAPublicKey)
    if alg in _EC_CURVES:
        return key.key_type == "EC" and isinstance(public, EllipticCurvePublicKey) and \
            public.curve.name == _EC_CURVES[alg]
    return False


# ---------------------------------------------------------------------------------------------
# Flask wiring


def expected_audience(settings: Settings | None = None) -> str:
    """The URL the caller must have put in `aud`: public base URL + path; else (Host trusted, see
    `host_header_trusted`) the request's own URL."""
    base = settings.public_base_url if settings is not None else None
    if base:
        return base.rstrip("/") + request.path
    return request.base_url


def host_header_trusted(settings: Settings) -> bool:
    """Whether the audience may come from the Host header: explicitly trusted (a proxy sets Host),
    or demo mode (loopback, for trying the service)."""
    return bool(settings.trust_host_header or settings.demo)


def unauthorized() -> Response:
    """The bare 401 of CDS Hooks: no body, a Bearer challenge."""
    response = Response(b"", status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="cds-services"'
    return response


def _protected() -> bool:
    path = request.path
    return (
        request.blueprint in PROTECTED_BLUEPRINTS
        or path == PROTECTED_PREFIX
        or path.startswith(PROTECTED_PREFIX + "/")
    )


def _settings() -> Settings | None:
    services = current_app.extensions.get("fhir_vcf")
    return getattr(services, "settings", None)


def check_request() -> Response | None:
    """Verify the request's bearer JWT: None when it passes (or trust is off), else the 401 response.

    Sets `g.jwt_claims` to the verified claims (None when trust is off).
    """
    g.jwt_claims = None
    trust: Trust | None = current_app.extensions.get(EXTENSION)
    if trust is None:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        log.info("auth: refused %s %s: no bearer token", request.method, request.path)
        return unauthorized()
    try:
        g.jwt_claims = trust.verify(token.strip(), expected_audience(_settings()))
    except AuthError as exc:
        log.info(
            "auth: refused %s %s: %s%s", request.method, request.path, exc.reason,
            f" (iss {exc.issuer})" if exc.issuer else "",
        )
        return unauthorized()
    return None


def _before_request() -> Response | None:
    g.jwt_claims = None
    if request.method == "OPTIONS" or not _protected():
        return None  # CORS preflight carries no Authorization header by design
    if request.routing_exception is not None:
        # A trailing-slash redirect (308), 404 or 405: no view will run, so the token is not checked
        # here and its jti not used up; the EHR sends it again to the URL it is redirected to.
        return None
    return check_request()


def require_jwt(view: F) -> F:
    """Decorator: demand the CDS Hooks JWT on a view outside the protected paths."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.method != "OPTIONS":
            refused = check_request()
            if refused is not None:
                return refused
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def replay_cache(app: Flask, settings: Settings) -> SeenTokens:
    """The jti cache `Settings.jti_cache` names (unset = memory); logs which, once per app."""
    if settings.jti_cache == "database":
        from fhir_vcf import store as store_module

        store = app.extensions.get(store_module.EXTENSION) or store_module.init_app(app, settings)
        log.info("auth: jti replay cache in the database (shared by every worker and instance)")
        return DatabaseReplayCache(store)
    log.info(
        "auth: jti replay cache in memory (this process only; set FHIR_VCF_JTI_CACHE=database when "
        "several processes serve the same EHRs)"
    )
    return ReplayCache()


def init_app(app: Flask, settings: Settings) -> Trust | None:
    """Load the trusted issuers and protect `/cds-services*`; trust unset = auth off (warned)."""
    if settings.trusted_issuers:
        if not settings.public_base_url and not host_header_trusted(settings):
            raise ConfigError(
                "FHIR_VCF_TRUSTED_ISSUERS needs FHIR_VCF_PUBLIC_BASE_URL (the URL EHRs call, which their JWT's "
                "aud must name), or FHIR_VCF_TRUST_HOST_HEADER=true when a proxy in front sets the Host header: "
                "an aud taken from a Host header the caller chose would accept tokens minted for other services"
            )
        trust: Trust | None = Trust.from_file(
            settings.trusted_issuers, leeway=settings.jwt_leeway_seconds, replay_cache=replay_cache(app, settings)
        )
        app.extensions[EXTENSION] = trust
        log.info("auth: JWT required on %s for %d trusted issuer(s)", PROTECTED_PREFIX, len(trust.issuers))
        if not settings.public_base_url:
            log.warning("auth: JWT aud is checked against the URL in the request's Host header "
                        "(FHIR_VCF_TRUST_HOST_HEADER or demo mode); set FHIR_VCF_PUBLIC_BASE_URL in production")
    else:
        trust = None
        app.extensions.pop(EXTENSION, None)
        log.warning(
            "auth: FHIR_VCF_TRUSTED_ISSUERS is not set: CDS Hooks calls are NOT authenticated "
            "(acceptable for local development only)"
        )
    if not app.extensions.get(EXTENSION + "_hook"):
        app.before_request(_before_request)
        app.extensions[EXTENSION + "_hook"] = True
    return trust


# ---------------------------------------------------------------------------------------------
# CORS

CORS_RESOURCES = (r"/cds-services(/.*)?$", r"/api/.*")


def init_cors(app: Flask, settings: Settings) -> None:
    """CORS for `/cds-services*` and `/api/*`, only for `Settings.cors_origins`.

    No credentials mode: the EHR sends its JWT in the Authorization header, which needs no
    cookies, so `*` can never be combined with credentials. Preflight answers need no JWT. The
    browser may send `X-Request-ID` and read it back from the response (`fhir_vcf.logs`).
    """
    import re

    from flask_cors import CORS

    origins = _cors_origins(settings.cors_origins)
    if not origins:
        if settings.demo:  # demo_fhir.init_demo_cors answers loopback browsers from any origin
            log.info("cors: no FHIR_VCF_CORS_ORIGINS; demo mode: browsers on this machine may call the CDS "
                     "Hooks and demo FHIR endpoints from any origin, others cannot")
        else:
            log.info("cors: no FHIR_VCF_CORS_ORIGINS; browsers on other origins cannot call the service")
        return
    if "*" in origins:
        log.warning("cors: FHIR_VCF_CORS_ORIGINS contains '*': any web page may call the service")
    options = {
        "origins": origins,
        # X-Request-ID: a browser EHR may send its own request id; the logs use it and the
        # response echoes it, which a script can read only when it is exposed.
        "allow_headers": ["Authorization", "Content-Type", REQUEST_ID_HEADER],
        "expose_headers": [REQUEST_ID_HEADER],
        "methods": ["GET", "POST", "OPTIONS"],
        "supports_credentials": False,
        "max_age": 600,
    }
    CORS(app, resources={re.compile(pattern): options for pattern in CORS_RESOURCES})


def _cors_origins(values: Iterable[str]) -> list[str]:
    return [value.strip().rstrip("/") for value in values if value.strip()]
