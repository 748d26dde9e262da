"""fhir-vcf: explained vertebral-augmentation eligibility from FHIR R4 records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir_vcf.version import __version__

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Any = None) -> Flask:
    """The Flask app (imported lazily so that the CLI and the rules load without Flask's weight)."""
    from fhir_vcf.app import create_app as factory

    return factory(config)


__all__ = ["__version__", "create_app"]
