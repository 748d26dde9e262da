"""The package version: one place, read by pyproject (setuptools dynamic version), the CLI and the service."""

__version__ = "0.1.0"
