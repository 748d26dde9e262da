"""PLACEHOLDER: replaced by its owner (see docs/design.md)."""

from flask import Blueprint

bp = Blueprint("ops", __name__)
