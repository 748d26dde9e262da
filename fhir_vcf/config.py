"""Service configuration, read from the environment and validated at start-up.

A bad value stops the service before it accepts a request, with a message naming the variable;
nothing is re-read mid-request. Every setting has an embedded default so that the service starts
with no configuration at all (SQLite under ./var/, the built-in policies, demo data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fhir_vcf.errors import ConfigError

PREFIX = "FHIR_VCF_"
# SMART Backend Services client assertions: the two algorithms the spec requires servers to support.
SMART_ALGORITHMS = ("RS384", "ES384")
JTI_CACHES = ("memory", "database")
DEMO_DATES = ("today", "as-written")


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. Environment variable = FHIR_VCF_ + the field name in capitals."""

    database_url: str = "sqlite:///var/fhir-vcf.db"
    # Base URLs the service may contact as a CDS Hooks `fhirServer`; anything else is refused.
    allowed_fhir_servers: tuple[str, ...] = ()
    # Path to a JSON file: issuer → {"jwks_url": ...} or {"jwks": {...}}, optional "jku" allowlist.
    trusted_issuers: str | None = None
    cors_origins: tuple[str, ...] = ()
    policy: str = "cms-lcd-pva"
    # Extra policy files (YAML/JSON) loaded beside the built-in ones.
    policy_files: tuple[str, ...] = ()
    # The external base URL (behind a proxy), used for the JWT `aud` check and links.
    public_base_url: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    # The EHR FHIR server for the REST API's patient endpoints.
    fhir_base_url: str | None = None
    fhir_token: str | None = None
    smart_client_id: str | None = None
    smart_token_url: str | None = None
    smart_private_key: str | None = None  # path to a PEM file
    smart_key_id: str | None = None
    smart_algorithm: str = "RS384"
    smart_scope: str = "system/*.read system/CarePlan.write"
    fhir_connect_timeout: float = 1.0
    fhir_read_timeout: float = 2.0
    fhir_max_pages: int = 5
    # The whole fetch phase of one call (every key, page and retry): room for the evaluation inside
    # the EHR's 5-second budget (Da Vinci CRD; CDS Hooks asks for ~500 ms).
    fhir_fetch_budget_seconds: float = 3.5
    # One FHIR response on the wire (Content-Length or counted), and all responses of one call after
    # decompression: a 50 MB page or a gzip bomb is cut off, not held in memory.
    fhir_max_response_bytes: int = 10 * 1024 * 1024
    fhir_max_decoded_bytes: int = 32 * 1024 * 1024
    # Calls of one worker process fetching from FHIR servers at once; more are answered 503 at once,
    # so calls stuck on a slow server leave request threads to calls with a complete prefetch.
    fhir_max_concurrent_fetches: int = 4
    # Patients evaluated per REST API request (POST /api/v1/evaluations); more is a 413.
    max_patients_per_request: int = 100
    # Seconds to open a database connection, and for one statement (or a SQLite lock wait).
    database_connect_timeout: float = 2.0
    database_statement_timeout: float = 2.0
    # Take the JWT `aud` from the request's Host header when FHIR_VCF_PUBLIC_BASE_URL is unset. Only
    # behind a proxy that sets Host itself: a caller could otherwise forge it (demo mode implies it).
    trust_host_header: bool = False
    # `fhir-vcf serve`: worker processes (unset: the CPUs this container may use), threads per
    # worker, and the seconds a client has to send a whole request (headers and body).
    workers: int | None = None
    threads: int = 8
    request_read_timeout: float = 10.0
    # Serve the sample patients on a read-only FHIR endpoint at /demo/fhir and allow it as fhirServer.
    demo: bool = False
    # The folder of sample Bundles demo mode serves; default: samples/ of the source checkout.
    demo_dir: str | None = None
    # Demo mode's dates: "today" moves each sample patient's record so that the date its
    # expectations were written for (expected.json `asOf`) is today; "as-written" serves the files as they are.
    demo_dates: str = "today"
    jwt_leeway_seconds: int = 30
    # Where the JWT `jti` replay cache lives: "memory" (this process only) or "database" (the
    # store's jwt_replay table, shared by every worker and instance on the database). Unset: memory,
    # except that `fhir-vcf serve` with more than one worker uses database.
    jti_cache: str | None = None
    log_level: str = "INFO"
    # Explanation pages (docs/explanation-pages.md). Fernet keys (url-safe base64 of 32 bytes) that
    # encrypt kept evaluations at rest: the first encrypts, every one decrypts (rotation). Unset:
    # evaluations are not kept and cards carry no page link (demo mode makes a key per run).
    evaluation_keys: tuple[str, ...] = field(default=(), repr=False)
    evaluation_retention_days: int = 7  # kept evaluations are purged after this many days
    # HMAC secret that signs page links; unset: derived from the first evaluation key (HKDF).
    link_secret: str | None = field(default=None, repr=False)
    link_ttl_hours: int = 24  # a card's page link opens the page for this long
    # Bearer token of the CDS committee's governance view (/governance); unset: the view is off.
    admin_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        return cls(**values).validated()

    def updated(self, overrides: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return replace(self, **overrides).validated()

    def validated(self) -> Settings:
        for url in self.allowed_fhir_servers:
            _require_http_url("ALLOWED_FHIR_SERVERS", url)
        for name in ("public_base_url", "fhir_base_url", "smart_token_url"):
            value = getattr(self, name)
            if value:
                _require_http_url(name.upper(), value)
        if self.trusted_issuers:
            read_trusted_issuers(self.trusted_issuers)
        if not self.database_url.split(":", 1)[0].startswith(("sqlite", "postgresql", "postgres")):
            raise ConfigError(
                f"{PREFIX}DATABASE_URL: unsupported database {self.database_url.split(':', 1)[0]!r}; "
                "use sqlite:///path or postgresql://user@host/db"
            )
        if self.jti_cache is not None and self.jti_cache not in JTI_CACHES:
            raise ConfigError(
                f"{PREFIX}JTI_CACHE: expected {' or '.join(JTI_CACHES)}, got {self.jti_cache!r} "
                "(memory: this process only; database: shared by every worker through FHIR_VCF_DATABASE_URL)"
            )
        if self.demo_dates not in DEMO_DATES:
            raise ConfigError(f"{PREFIX}DEMO_DATES: expected {' or '.join(DEMO_DATES)}, got {self.demo_dates!r}")
        for name in ("max_body_bytes", "fhir_max_response_bytes", "fhir_max_decoded_bytes",
                     "fhir_max_concurrent_fetches", "max_patients_per_request", "threads", "fhir_max_pages"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{PREFIX}{name.upper()} must be a positive number")
        for name in ("fhir_connect_timeout", "fhir_read_timeout", "fhir_fetch_budget_seconds",
                     "database_connect_timeout", "database_statement_timeout", "request_read_timeout"):
            value = getattr(self, name)
            if not (0 < value < 3600):
                raise ConfigError(f"{PREFIX}{name.upper()} must be a number of seconds above 0 (and below 3600)")
        if self.workers is not None and self.workers <= 0:
            raise ConfigError(f"{PREFIX}WORKERS must be a positive number")
        if self.smart_client_id and not (self.smart_token_url and self.smart_private_key):
            raise ConfigError(
                f"{PREFIX}SMART_CLIENT_ID needs {PREFIX}SMART_TOKEN_URL and {PREFIX}SMART_PRIVATE_KEY"
            )
        if self.smart_algorithm not in SMART_ALGORITHMS:
            raise ConfigError(
                f"{PREFIX}SMART_ALGORITHM: {self.smart_algorithm!r} is not one of {', '.join(SMART_ALGORITHMS)}"
            )
        _check_page_settings(self)
        if self.smart_private_key and not Path(self.smart_private_key).is_file():
            raise ConfigError(f"{PREFIX}SMART_PRIVATE_KEY: no such file {self.smart_private_key}")
        return self


SECRET_MIN_LENGTH = 32  # characters of a link secret or admin token: long enough not to be guessed


def _check_page_settings(settings: Settings) -> None:
    """Keys, secrets and windows of the explanation pages and the governance view."""
    from cryptography.fernet import Fernet  # a dependency of PyJWT[crypto]; imported only to check keys

    for i, key in enumerate(settings.evaluation_keys, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                f"{PREFIX}EVALUATION_KEYS: key {i} is not a Fernet key (32 bytes, url-safe base64; make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
    for name in ("link_secret", "admin_token"):
        value = getattr(settings, name)
        if value is not None and len(value) < SECRET_MIN_LENGTH:
            raise ConfigError(f"{PREFIX}{name.upper()}: use at least {SECRET_MIN_LENGTH} random characters")
    if settings.evaluation_retention_days < 1:
        raise ConfigError(f"{PREFIX}EVALUATION_RETENTION_DAYS must be 1 or more")
    if settings.link_ttl_hours < 1:
        raise ConfigError(f"{PREFIX}LINK_TTL_HOURS must be 1 or more")


def _parse(name: str, raw: str, kind: Any) -> Any:
    var = PREFIX + name.upper()
    kind = str(kind).removesuffix(" | None")
    if kind.startswith("tuple"):
        return tuple(part.strip().rstrip("/") if "://" in part else part.strip()
                     for part in raw.split(",") if part.strip())
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{var}: expected true or false, got {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var}: expected a whole number, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{var}: expected a number, got {raw!r}") from None
    return raw


def _require_http_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{PREFIX}{name}: {url!r} is not an http(s) URL")


def read_trusted_issuers(path: str) -> dict[str, dict[str, Any]]:
    """The trusted-issuers file as issuer → entry, each naming a key source.

    Read here, at start-up, so that a bad file stops the service with the variable's name; the
    JWT layer (`service/auth.py`) builds on this and checks the keys and URLs inside each entry.
    """
    var = f"{PREFIX}TRUSTED_ISSUERS"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{var}: no such file {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{var}: {path} is not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{var}: {path} must map each issuer to {{'jwks_url': ...}} or {{'jwks': {{...}}}}")
    for issuer, entry in data.items():
        if not isinstance(entry, dict) or not ({"jwks_url", "jwks"} & set(entry)):
            raise ConfigError(f"{var}: issuer {issuer!r} needs 'jwks_url' or 'jwks'")
    return data
