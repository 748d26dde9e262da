"""The Flask application factory: configuration, shared services, blueprints, error handling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from fhir_vcf.config import Settings
from fhir_vcf.rules.policy import Policy, load_policies


@dataclass
class Services:
    """What the blueprints share, built once per app (never per process: tests build many apps)."""

    settings: Settings
    policies: dict[str, Policy]
    default_policy: Policy


def services() -> Services:
    return current_app.extensions["fhir_vcf"]


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` is a Settings, a mapping of Settings fields over the environment, or None."""
    if isinstance(config, Settings):
        settings = config.validated()
    else:
        settings = Settings.from_env()
        if config:
            settings = settings.updated(config)
    policies = load_policies(settings.policy_files)
    default = policies.get(settings.policy)
    if default is None:
        from fhir_vcf.errors import ConfigError

        raise ConfigError(f"FHIR_VCF_POLICY: unknown policy {settings.policy!r}; known: {', '.join(policies)}")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["fhir_vcf"] = Services(settings=settings, policies=policies, default_policy=default)

    from fhir_vcf.service import api, cds_hooks, demo_fhir, feedback, ops

    for blueprint in (cds_hooks.bp, feedback.bp, api.bp, ops.bp):
        app.register_blueprint(blueprint)
    if settings.demo:
        app.register_blueprint(demo_fhir.bp)
    return app
