"""The Flask application factory: configuration, shared services, blueprints, error handling.

Everything a request needs is built here, once per app, and reached through `service.registry.services()`: no
module-level singletons holding request state (a peer CDS service once answered every request
with the first one's cards through such a singleton). Errors never leave as a stack trace: the
handlers below turn anything unhandled into a generic body (an OperationOutcome under
/cds-services, RFC 9457 problem details elsewhere) and log the exception server-side.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from fhir_vcf.config import Settings
from fhir_vcf.errors import ConfigError, InputError, Unavailable, UpstreamError
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.service.registry import EXTENSION_KEY, Services, fhir_client_factory
from fhir_vcf.sources.fhir_server import FetchSlots

CDS_PREFIX = "/cds-services"
log = logging.getLogger(__name__)

__all__ = ["CDS_PREFIX", "create_app"]


def _settings_from(config: Settings | Mapping[str, Any] | None) -> Settings:
    if isinstance(config, Settings):
        return config.validated()
    settings = Settings.from_env()
    if config:
        settings = settings.updated(config)
    return settings


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` is a Settings, a mapping of Settings fields over the environment, or None.

    Raises ConfigError / PolicyError (and the store's StoreError) at start-up, before any request.
    """
    settings = _settings_from(config)
    from fhir_vcf import logs

    # The JSON handler before anything can log: a start-up warning (no evaluation keys, trust off)
    # must be a JSON line like the rest, not Python's bare last-resort text.
    logs.configure_root(settings.log_level or "INFO")
    policies = load_policies(settings.policy_files)
    default = policies.get(settings.policy)
    if default is None:
        raise ConfigError(f"FHIR_VCF_POLICY: unknown policy {settings.policy!r}; known: {', '.join(policies)}")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    svc = Services(
        settings=settings,
        policies=policies,
        default_policy=default,
        fhir_client=fhir_client_factory(settings),
        fetch_slots=FetchSlots(settings.fhir_max_concurrent_fetches),
    )
    app.extensions[EXTENSION_KEY] = svc

    from fhir_vcf import store as store_module

    svc.store = store_module.init_app(app, settings)
    logs.set_patient_key(svc.store.patient_key)  # the log's patient hashes: the audit's key (keyed, per install)
    svc.kept, svc.links = _explanation_pages(settings, svc.store)

    from fhir_vcf.service import api, cds_hooks, demo_fhir, docs, feedback, ops, pages

    for blueprint in (cds_hooks.bp, feedback.bp, api.bp, ops.bp, pages.bp):
        app.register_blueprint(blueprint)
    docs.init_app(app)  # /docs (Swagger UI, bundled assets) and the /problems pages
    if settings.demo:
        app.register_blueprint(demo_fhir.bp)
    _init_optional(app, settings)
    _register_error_handlers(app)
    return app


def _explanation_pages(settings: Settings, store: Any) -> tuple[Any, Any]:
    """The kept evaluations and the link signer (docs/explanation-pages.md), or (None, None).

    Keys come from FHIR_VCF_EVALUATION_KEYS. Demo mode without keys makes one for this app (`fhir-vcf
    serve --demo` makes one per run and hands it to every worker): demo pages work with no setup,
    and what they kept is unreadable after a restart. Production without keys keeps nothing and its
    cards carry no page link; a warning says so once at start-up.
    """
    from datetime import timedelta

    from cryptography.fernet import Fernet

    from fhir_vcf.kept import KeptEvaluations, LinkSigner, derive_link_secret

    keys = settings.evaluation_keys
    if not keys and settings.demo:
        keys = (Fernet.generate_key().decode("ascii"),)
    if not keys:
        log.warning("explanation pages are off: set FHIR_VCF_EVALUATION_KEYS to keep evaluations and link "
                    "cards to their page (docs/explanation-pages.md)")
        return None, None
    kept = KeptEvaluations(store, keys, retention=timedelta(days=settings.evaluation_retention_days))
    kept.purge()
    secret = settings.link_secret.encode() if settings.link_secret else derive_link_secret(keys[0])
    return kept, LinkSigner(secret, timedelta(hours=settings.link_ttl_hours))


def _init_optional(app: Flask, settings: Settings) -> None:
    """App-wide wiring: JSON logs, JWT trust on /cds-services* (a before_request hook: a bare 401
    before any view runs), CORS for the configured origins."""
    from fhir_vcf import logs
    from fhir_vcf.service import auth

    logs.init_logging(app, settings)  # JSON lines, request id, one `request` line per call
    svc = app.extensions[EXTENSION_KEY]
    svc.extras["fhir_vcf.service.auth"] = auth.init_app(app, settings)
    auth.init_cors(app, settings)


# --- errors: never a traceback to a caller ---------------------------------------------------------


def _under_cds_hooks() -> bool:
    return request.path == CDS_PREFIX or request.path.startswith(CDS_PREFIX + "/")


def _register_error_handlers(app: Flask) -> None:
    """App-wide fallbacks in the dialect of the path (the blueprints' own handlers take precedence):
    routing errors and anything a blueprint leaves unhandled. Bodies come from the one
    OperationOutcome helper (`service/outcomes.py`) and the one problem helper (`service/problems.py`)."""
    from fhir_vcf.service import outcomes, problems

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if _under_cds_hooks():
            return outcomes.from_http_exception(exc, media_type=outcomes.JSON)
        return problems.from_http_exception(exc)

    @app.errorhandler(InputError)
    def _input(exc: InputError) -> Response:
        if _under_cds_hooks():
            return outcomes.operation_outcome(400, outcomes.INVALID, str(exc), media_type=outcomes.JSON)
        return problems.from_input_error(exc)

    @app.errorhandler(UpstreamError)
    def _upstream(exc: UpstreamError) -> Response:
        if _under_cds_hooks():
            return outcomes.operation_outcome(504 if exc.timeout else 502, outcomes.EXCEPTION, str(exc),
                                              media_type=outcomes.JSON)
        return problems.from_upstream_error(exc)

    @app.errorhandler(Unavailable)
    def _unavailable(exc: Unavailable) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if _under_cds_hooks():
            return outcomes.operation_outcome(503, outcomes.TRANSIENT, str(exc), headers=headers,
                                              media_type=outcomes.JSON)
        return problems.problem(503, str(exc), type_=problems.TYPE_UNAVAILABLE, title="Temporarily unavailable",
                                headers=headers)

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> Response:
        if _under_cds_hooks():
            return outcomes.internal_error(exc, media_type=outcomes.JSON)
        return problems.internal_error(exc)
