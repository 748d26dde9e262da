"""PLACEHOLDER: replaced by its owner (see docs/design.md)."""

from flask import Blueprint

bp = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")
