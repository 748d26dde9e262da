"""`fhir-vcf serve`: the service on gunicorn, started programmatically.

The configuration is checked once in the master before any worker starts, so a bad setting stops
the service with one clear line (and a non-zero exit) instead of a crash loop of workers. Each
worker then builds its own app after the fork (no preloading), so database connections and thread
pools are never shared across processes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from gunicorn.app.base import BaseApplication

from fhir_vcf.errors import FhirVcfError

EXIT_OK = 0
EXIT_CONFIG = 2

# A hook must answer within ~5 s (Da Vinci CRD); a request stuck past this is killed and logged.
WORKER_TIMEOUT_SECONDS = 30
THREADS_PER_WORKER = 4


def default_workers() -> int:
    """2 × CPUs + 1, capped at 8: each worker has threads for concurrent EHR calls."""
    return max(1, min(8, 2 * (os.cpu_count() or 1) + 1))


class FhirVcfApplication(BaseApplication):
    """gunicorn's programmatic application: options in, `create_app(overrides)` per worker."""

    def __init__(self, overrides: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self.overrides = dict(overrides)
        self.options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        assert self.cfg is not None
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        from fhir_vcf.app import create_app

        return create_app(self.overrides)


def _logconfig(level: str) -> dict[str, Any]:
    from fhir_vcf.logs import gunicorn_logconfig

    return gunicorn_logconfig(level or "INFO")


def _overrides(demo: bool) -> dict[str, Any]:
    return {"demo": True} if demo else {}


def _check_address(host: str, port: int) -> str | None:
    if not host or any(c.isspace() for c in host):
        return f"invalid --host {host!r}"
    if not isinstance(port, int) or not 0 < port < 65536:
        return f"invalid --port {port!r}: expected 1-65535"
    return None


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    demo: bool = False,
    *,
    err: TextIO | None = None,
) -> int:
    """Run the service on gunicorn until it is stopped; return the process exit status.

    `workers` None = `default_workers()`. `demo` serves the sample patients at /demo/fhir and
    allows that endpoint as a CDS Hooks fhirServer. A configuration error (environment
    FHIR_VCF_*, policies, database) prints one line to `err` (stderr) and returns 2.
    """
    err = err or sys.stderr
    problem = _check_address(host, port)
    if problem is None and workers is not None and workers < 1:
        problem = f"invalid --workers {workers}: expected 1 or more"
    if problem:
        err.write(f"fhir-vcf serve: {problem}\n")
        return EXIT_CONFIG
    overrides = _overrides(demo)
    try:
        from fhir_vcf.app import create_app
        from fhir_vcf.service.demo_fhir import demo_banner, demo_overrides, local_base_url

        app = create_app(overrides)  # validate everything once, in the master, before forking
        log_level = app.extensions["fhir_vcf"].settings.log_level
        store = app.extensions["fhir_vcf"].store
        dispose = getattr(store, "dispose", None)
        if callable(dispose):
            dispose()  # the workers open their own connections
    except FhirVcfError as exc:
        err.write(f"fhir-vcf serve: configuration error: {exc}\n")
        return EXIT_CONFIG
    except Exception as exc:  # e.g. a database driver that is not installed: still one line
        err.write(f"fhir-vcf serve: cannot start: {type(exc).__name__}: {exc}\n")
        return EXIT_CONFIG
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers or default_workers(),
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "preload_app": False,
        "proc_name": "fhir-vcf",
        # gunicorn's access log is off: request logging (with request ids, without tokens or
        # patient ids) is the app's own; gunicorn's error log uses the same JSON format.
        "accesslog": None,
        "logconfig_dict": _logconfig(log_level),
    }
    if app.extensions["fhir_vcf"].settings.demo:
        # The REST API's patient endpoints read the demo endpoint (unless FHIR_VCF_FHIR_BASE_URL is
        # set), through the workers' environment; then the URLs to try first.
        extra = demo_overrides(overrides, host, port)
        options["raw_env"] = [f"FHIR_VCF_{k.upper()}={v}" for k, v in extra.items()]
        err.write(demo_banner(local_base_url(host, port)))
        err.flush()
    FhirVcfApplication(overrides, options).run()
    return EXIT_OK


__all__ = ["FhirVcfApplication", "default_workers", "serve"]
