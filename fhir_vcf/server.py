"""`fhir-vcf serve`: the service on gunicorn, started programmatically.

The configuration is checked once in the master before any worker starts, so a bad setting stops
the service with one clear line (and a non-zero exit) instead of a crash loop of workers. Each
worker then builds its own app after the fork (no preloading), so database connections and thread
pools are never shared across processes.

State that must be one across the workers:

- Metrics. `serve` switches prometheus_client to its multiprocess mode: it points
  `PROMETHEUS_MULTIPROC_DIR` at a fresh folder (a new temporary directory, removed when the master
  exits; or the operator's own `PROMETHEUS_MULTIPROC_DIR`, whose old `*.db` files are wiped) *before
  anything imports prometheus_client*, which picks its value class at import. Nothing on the way
  here imports it: `fhir_vcf.cli` and this module do not, and `fhir_vcf.app` (which does, through
  `fhir_vcf.metrics`) is imported inside `serve` after the variable is set. The workers inherit the
  variable and the mode through the fork; `/metrics` then sums every worker's files
  (`fhir_vcf.metrics.exposition`), and gunicorn's `child_exit` hook tells prometheus_client when a
  worker died.
- The JWT `jti` replay cache. With more than one worker it lives in the database
  (`FHIR_VCF_JTI_CACHE=database`, the store's `jwt_replay` table) unless `memory` was set
  explicitly; the choice is logged at start-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from gunicorn.app.base import BaseApplication

from fhir_vcf.errors import FhirVcfError

log = logging.getLogger(__name__)

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

        # The master built (and logged) the same app before forking: a worker saying it all again
        # would only bury the demo banner and the first requests. Errors still show.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            return create_app(self.overrides)
        finally:
            logging.disable(previous)


def _logconfig(level: str) -> dict[str, Any]:
    from fhir_vcf.logs import gunicorn_logconfig

    return gunicorn_logconfig(level or "INFO")


def _overrides(demo: bool) -> dict[str, Any]:
    """Settings given to every worker. Demo mode without FHIR_VCF_EVALUATION_KEYS gets one key for
    this run, made here in the master, so that a page link made by one worker opens on another."""
    out: dict[str, Any] = {"demo": True} if demo else {}
    demo_env = os.environ.get("FHIR_VCF_DEMO", "").strip().lower() in {"1", "true", "yes", "on"}
    if (demo or demo_env) and not os.environ.get("FHIR_VCF_EVALUATION_KEYS", "").strip():
        from cryptography.fernet import Fernet

        out["evaluation_keys"] = (Fernet.generate_key().decode("ascii"),)
    return out


# prometheus_client's variable (as `fhir_vcf.metrics.MULTIPROC_ENV`, not imported from there: that
# module imports prometheus_client, which must not happen before the variable is set).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_PREFIX = "fhir-vcf-prometheus-"


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[str | None]:
    """Point prometheus_client's multiprocess mode at a clean folder for this run; yield it.

    Yields None (per-worker metrics, the caller warns) when prometheus_client was imported
    already without the variable: its value class is fixed, and the workers inherit it.
    The folder this creates is removed when the master leaves `serve`; gunicorn workers leave
    through this frame too (SystemExit in the forked child), which must not touch it.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # prometheus_client: wipe the folder between runs
            stale.unlink(missing_ok=True)
        yield configured
        return
    if _prometheus_imported():
        yield None
        return
    owner = os.getpid()
    folder_name = tempfile.mkdtemp(prefix=MULTIPROC_PREFIX)
    os.environ[MULTIPROC_ENV] = folder_name
    try:
        yield folder_name
    finally:
        if os.getpid() == owner:
            if os.environ.get(MULTIPROC_ENV) == folder_name:
                del os.environ[MULTIPROC_ENV]
            shutil.rmtree(folder_name, ignore_errors=True)


def _prometheus_imported() -> bool:
    return "prometheus_client" in sys.modules


def _child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook (in the master) when a worker exits: prometheus_client's bookkeeping."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _jti_cache(overrides: dict[str, Any], workers: int) -> str:
    """Resolve `jti_cache` for the workers: an explicit setting wins; unset = database when several
    workers must share it (added to `overrides`, which every worker's app is built from), else
    memory. Returns the choice."""
    from fhir_vcf.config import Settings

    explicit = Settings.from_env().updated(overrides).jti_cache
    if explicit:
        return explicit
    if workers > 1:
        overrides["jti_cache"] = "database"
        return "database"
    return "memory"


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
    with multiprocess_metrics() as metrics_dir:  # first: before anything imports prometheus_client
        return _serve(host, port, workers or default_workers(), _overrides(demo), metrics_dir, err)


def _serve(
    host: str, port: int, workers: int, overrides: dict[str, Any], metrics_dir: str | None, err: TextIO
) -> int:
    try:
        jti_cache = _jti_cache(overrides, workers)
        from fhir_vcf.app import create_app
        from fhir_vcf.service.demo_fhir import demo_banner, demo_overrides, local_base_url, samples_dir

        app = create_app(overrides)  # validate everything once, in the master, before forking
        settings = app.extensions["fhir_vcf"].settings
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
    problem = _cannot_listen(host, port)
    if problem:
        err.write(f"fhir-vcf serve: cannot listen on {host}:{port}: {problem} (choose another --port)\n")
        return EXIT_CONFIG
    _log_start_up(workers, metrics_dir, jti_cache, trust=bool(settings.trusted_issuers))
    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "preload_app": False,
        "proc_name": "fhir-vcf",
        # gunicorn's access log is off: request logging (with request ids, without tokens or
        # patient ids) is the app's own; gunicorn's error log uses the same JSON format.
        "accesslog": None,
        "logconfig_dict": _logconfig(settings.log_level),
    }
    if metrics_dir:
        options["child_exit"] = _child_exit
    if settings.demo:
        # The REST API's patient endpoints read the demo endpoint (unless FHIR_VCF_FHIR_BASE_URL is
        # set), through the workers' environment; then the URLs to try first.
        extra = demo_overrides(overrides, host, port)
        options["raw_env"] = [f"FHIR_VCF_{k.upper()}={v}" for k, v in extra.items()]
        options["post_worker_init"] = _banner_when_all_workers_are_up(
            demo_banner(local_base_url(host, port), samples=samples_dir(settings)), workers, err,
            then=options.get("post_worker_init"))
    FhirVcfApplication(overrides, options).run()
    return EXIT_OK


def _banner_when_all_workers_are_up(banner: str, workers: int, err: TextIO, *, then: Any = None) -> Any:
    """A gunicorn `post_worker_init` hook printing `banner` once, when the last of the first
    `workers` workers has loaded the app: the port is bound and every worker answers, and the
    start-up lines (gunicorn's "Booting worker ...") are above it, so that what follows the banner
    is the log of the requests one makes with it. A worker started later (a replacement) prints
    nothing. The count is shared through memory the master allocates before forking. `then`, a
    `post_worker_init` hook set already, runs first (the worker is ready when it returns)."""
    import multiprocessing

    booted = multiprocessing.Value("i", 0)

    def post_worker_init(worker: Any) -> None:
        if callable(then):
            then(worker)
        with booted.get_lock():
            booted.value += 1
            last = booted.value == workers
        if last:
            err.write(banner)
            err.flush()

    return post_worker_init


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the address cannot be bound (e.g. "Address already in use"), checked before gunicorn
    starts: gunicorn itself retries for a while, logging, and then exits without saying why."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _log_start_up(workers: int, metrics_dir: str | None, jti_cache: str, *, trust: bool) -> None:
    """One line each on how the workers share metrics and the jti cache (JSON logs, master)."""
    if metrics_dir:
        log.info("serve: %d worker(s); /metrics sums every worker (prometheus multiprocess mode)", workers)
    else:
        log.warning(
            "serve: prometheus_client was imported before serve() could set %s: each worker keeps its "
            "own metrics and /metrics shows only the worker that answers", MULTIPROC_ENV,
        )
    if not trust:
        return
    if jti_cache == "memory" and workers > 1:
        log.warning(
            "serve: FHIR_VCF_JTI_CACHE=memory with %d workers: a JWT replayed to another worker is not "
            "caught; use database", workers,
        )
    else:
        log.info("serve: JWT jti replay cache: %s", jti_cache)


__all__ = ["FhirVcfApplication", "default_workers", "multiprocess_metrics", "serve"]
