"""PLACEHOLDER: replaced by its owner (see docs/design.md)."""

from flask import Blueprint

bp = Blueprint("demo_fhir", __name__, url_prefix="/demo/fhir")
