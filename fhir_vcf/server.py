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

Sized for a CPU-bound service: one worker process per CPU this container may use (its cgroup CPU
quota, else its CPU affinity; `FHIR_VCF_WORKERS` overrides), each with `FHIR_VCF_THREADS`
threads, which only wait (for a FHIR server, a slow client); the CPU work of a process runs one
thread at a time under the GIL, so more workers than CPUs would only add memory and contention.
Within a worker, a call builds its record and is judged holding the process's evaluation slot
(`fhir_vcf.service.slot.EvaluationSlot`), which the calls take in the order they ask for it: one
call computes while the others wait without competing for the GIL, and a call waiting for a FHIR
server or a slow client holds no slot. Across workers, a kept-alive connection would stay with the
worker that accepted it, however busy; a worker serving more than one call at once closes the
connection of the later one after its answer, so that client reconnects, usually to an idle sibling
(`GuardedThreadWorker.handle_request`).

Slow clients. gunicorn's threaded worker (`gthread`) keeps idle connections in its event loop,
but once a request's first bytes arrive it hands the connection to a thread, which then blocks
reading the rest: ten connections that announce a body and send one byte a second held every
thread. `GuardedThreadWorker` gives each request a deadline: its connection's socket
(`DeadlineSocket`) refuses to wait past `FHIR_VCF_REQUEST_READ_TIMEOUT` seconds from the moment a
thread takes the request, headers and body together, so a slow client costs a thread for at most
that long and the request is dropped (408 when the body was late: `ReadBody`, which also reads
the body once, to its announced length, within `FHIR_VCF_MAX_BODY_BYTES`). gunicorn's own limits
apply to the request line and headers (`limit_request_line` and friends). This bounds what slow
clients can hold to `workers x threads` connections for that long; a deployment that expects
more hostile traffic puts a buffering proxy in front (nginx buffers whole requests by default).

Pauses. Each worker builds its app, runs one evaluation to warm every lazily built part (models,
compiled patterns), then moves everything it holds to the garbage collector's permanent
generation (`gc.freeze()`), so full collections no longer walk the ~100k start-up objects on the
request path, and raises the collector's first threshold (`GC_THRESHOLDS`: measured there).

gunicorn's control socket (25.1+) is off: the service is managed through signals and its
environment, and the default path (`$HOME/.gunicorn`) is not writable in the image.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import TConn, ThreadWorker

from fhir_vcf.errors import FhirVcfError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2

# A hook must answer within ~5 s (Da Vinci CRD); a request stuck past this is killed and logged.
WORKER_TIMEOUT_SECONDS = 30
# gunicorn's limits on the request head (its defaults, stated): a request line, header count, header size.
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs this container may use by its cgroup quota (v2 `cpu.max`, v1 `cfs_quota_us`), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, capped by the container's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def default_workers(settings: Any = None) -> int:
    """`FHIR_VCF_WORKERS`, else one worker per usable CPU (the service is CPU-bound)."""
    configured = getattr(settings, "workers", None)
    return configured if configured else usable_cpus()


# --- slow clients ---------------------------------------------------------------------------------


class DeadlineSocket(socket.socket):
    """An accepted connection whose reads share one deadline per request.

    gthread calls `setblocking(True)` when a thread takes the connection for a request (new or kept
    alive) and `setblocking(False)` when it goes back to the event loop; here the first arms a
    deadline of `read_timeout` seconds and the second disarms it. Until then every read waits at
    most what is left, however the client paces its bytes; past it the read fails as a reset
    connection (gunicorn drops those quietly). Sends keep a plain timeout of `read_timeout`.
    """

    read_timeout = 10.0
    _deadline: float | None = None

    def setblocking(self, flag: bool) -> None:
        if flag:
            self._deadline = time.monotonic() + self.read_timeout
            super().settimeout(self.read_timeout)
        else:
            self._deadline = None
            super().setblocking(False)

    def _before_read(self) -> None:
        if self._deadline is None:
            return
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ConnectionResetError(104, "the client did not send its request within FHIR_VCF_REQUEST_READ_TIMEOUT")
        super().settimeout(left)

    def recv(self, *args: Any) -> bytes:
        self._before_read()
        try:
            return super().recv(*args)
        except TimeoutError:
            raise ConnectionResetError(104, "the client did not send its request in time") from None

    def recv_into(self, *args: Any) -> int:
        self._before_read()
        try:
            return super().recv_into(*args)
        except TimeoutError:
            raise ConnectionResetError(104, "the client did not send its request in time") from None

    def sendall(self, *args: Any) -> None:
        if self._deadline is not None:
            super().settimeout(self.read_timeout)
        super().sendall(*args)


class GuardedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker with a read deadline per request (`DeadlineSocket`), which hands
    persistent connections back to the listener while it is busy (`handle_request`)."""

    _in_flight = 0
    _in_flight_lock = threading.Lock()  # a fresh one per worker: gunicorn forks before any request

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Answer, and close the connection after the answer when this worker already serves another call.

        A kept-alive connection stays with the worker that accepted it. Clients that open their
        connections together (an EHR's pool, a proxy) are shared out by whichever worker's acceptor
        wins each race, and then stay put: measured at concurrency 8 with 2 workers, the busier did
        51-90 % of the work while the other idled and its calls queued (docs/performance.md, fifth
        round). A busy worker's acceptor must wait for the GIL, an idle one's need not, so a client
        whose connection closed usually reconnects to the idle worker; an idle worker keeps its
        connections. One worker has no sibling to hand to.
        """
        with self._in_flight_lock:
            busy = self._in_flight > 0
            self._in_flight += 1
        try:
            if busy and self.cfg.workers > 1:
                req.force_close()
            return super().handle_request(req, conn)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _read_timeout(self) -> float:
        """`Settings.request_read_timeout` of the app this worker serves (default for another app)."""
        services = getattr(self.wsgi, "extensions", {}).get("fhir_vcf")
        return float(getattr(getattr(services, "settings", None), "request_read_timeout", DeadlineSocket.read_timeout))

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (11, 103):  # EAGAIN / ECONNABORTED, as gthread ignores them
                raise
            return
        guarded = DeadlineSocket(client.family, client.type, client.proto, fileno=client.detach())
        guarded.read_timeout = self._read_timeout()
        self.nr_conns += 1
        guarded.setblocking(True)
        self.enqueue_req(TConn(self.cfg, guarded, address, listener.getsockname()))


class ReadBody:
    """WSGI middleware: the request body read once, to its announced length and at most `limit`
    bytes, before the app runs. A client too slow to send it (its socket's deadline) gets 408, one
    announcing too much 413, both closing the connection; the app then reads from memory."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refuse(self, environ: dict[str, Any], start_response: Callable[..., Any], status: str,
                detail: str) -> list[bytes]:
        """The error in the dialect of the path: an OperationOutcome under /cds-services, else RFC 9457."""
        if str(environ.get("PATH_INFO", "")).startswith("/cds-services"):
            code = "timeout" if status.startswith("408") else "too-costly"
            body = json.dumps({"resourceType": "OperationOutcome",
                               "issue": [{"severity": "error", "code": code, "diagnostics": detail}]}).encode()
            media_type = "application/json"
        else:
            body = json.dumps({"type": "about:blank", "title": status[4:], "status": int(status[:3]),
                               "detail": detail}).encode()
            media_type = "application/problem+json"
        start_response(status, [("Content-Type", media_type), ("Content-Length", str(len(body))),
                                ("Connection", "close")])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if stream is None or not ((length.isdigit() and int(length) > 0) or chunked):
            return self.app(environ, start_response)
        if length.isdigit() and int(length) > self.limit:
            return self._refuse(environ, start_response, "413 Content Too Large",
                                f"the request body is larger than {self.limit} bytes")
        try:
            body = stream.read(int(length)) if length.isdigit() else stream.read(self.limit + 1)
        except OSError:
            log.info("a client did not send its request body in time; connection closed")
            return self._refuse(environ, start_response, "408 Request Timeout",
                                "the request body did not arrive in time")
        if len(body) > self.limit:
            return self._refuse(environ, start_response, "413 Content Too Large",
                                f"the request body is larger than {self.limit} bytes")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


# --- each worker: warm, then freeze ------------------------------------------------------------------

# A small record touching every mapper family (fracture, imaging, pain, care), evaluated once per
# worker before it takes traffic: codes are the input profile's (ICD-10-CM M80.08XA, LOINC 72514-3).
_WARM_UP = {
    "resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "warm-up", "gender": "female", "birthDate": "1950-01-01"}},
        {"resource": {"resourceType": "Condition", "id": "warm-vcf", "subject": {"reference": "Patient/warm-up"},
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}],
                               "text": "osteoporotic compression fracture L1"},
                      "onsetDateTime": "2025-06-02"}},
        {"resource": {"resourceType": "Observation", "id": "warm-nrs", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                      "subject": {"reference": "Patient/warm-up"}, "effectiveDateTime": "2025-06-20",
                      "valueInteger": 8}},
        {"resource": {"resourceType": "DiagnosticReport", "id": "warm-mri", "status": "final",
                      "code": {"text": "MRI lumbar spine"}, "subject": {"reference": "Patient/warm-up"},
                      "effectiveDateTime": "2025-06-10",
                      "conclusion": "Acute L1 compression fracture with marrow edema on STIR, 30% height loss."}},
    ],
}


# The collector's thresholds in a worker. A hook call holds thousands of containers at once (its parsed
# body, the record's models) and frees almost all of them by reference counting; with CPython's
# default first threshold (700) that peak alone set off ~6 young collections a call, and a full one
# every ~20 calls (measured on an order-select with a 150-resource prefetch: 4 ms of collection per
# call after gc.freeze(), 8 ms and 170-220 ms full-collection pauses without). At 10,000 a call sets
# off almost none (0.15 ms a call); cyclic garbage still goes at the next collection.
GC_THRESHOLDS = (10_000, 10, 10)


def warm_and_freeze(app: Any) -> None:
    """Run one evaluation (builds what is built lazily), then freeze what the worker holds (gc.freeze)
    and raise the collector's first threshold (`GC_THRESHOLDS`)."""
    from datetime import date

    from fhir_vcf.evaluation import evaluate_record
    from fhir_vcf.record import load_document

    try:
        policy = app.extensions["fhir_vcf"].default_policy
        for record in load_document(_WARM_UP, source="warm-up"):
            evaluate_record(record, as_of=date(2025, 6, 30), policy=policy)
    except Exception:  # warming is an optimisation: never a reason not to serve
        log.warning("serve: warm-up evaluation failed; serving anyway", exc_info=True)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _post_worker_init(worker: Any) -> None:
    """gunicorn hook, in each worker once its app is loaded."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        warm_and_freeze(app)


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
            app = create_app(self.overrides)
        finally:
            logging.disable(previous)
        app.wsgi_app = ReadBody(app.wsgi_app, app.extensions["fhir_vcf"].settings.max_body_bytes)  # type: ignore[method-assign]
        return app


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
        return _serve(host, port, workers, _overrides(demo), metrics_dir, err)


def _serve(
    host: str, port: int, workers: int | None, overrides: dict[str, Any], metrics_dir: str | None, err: TextIO
) -> int:
    try:
        from fhir_vcf.config import Settings

        workers = workers or default_workers(Settings.from_env().updated(overrides))
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
    options = gunicorn_options(settings, host, port, workers)
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


def gunicorn_options(settings: Any, host: str, port: int, workers: int) -> dict[str, Any]:
    """The gunicorn settings of `fhir-vcf serve` (benchmarks/bench_serving.py runs the same)."""
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": GuardedThreadWorker,
        "threads": settings.threads,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "keepalive": 2,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "preload_app": False,
        "proc_name": "fhir-vcf",
        "control_socket_disable": True,
        "post_worker_init": _post_worker_init,
        # gunicorn's access log is off: request logging (with request ids, without tokens or
        # patient ids) is the app's own; gunicorn's error log uses the same JSON format.
        "accesslog": None,
        "logconfig_dict": _logconfig(settings.log_level),
    }


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


__all__ = [
    "DeadlineSocket",
    "FhirVcfApplication",
    "GuardedThreadWorker",
    "ReadBody",
    "cpu_quota",
    "default_workers",
    "gunicorn_options",
    "multiprocess_metrics",
    "serve",
    "usable_cpus",
    "warm_and_freeze",
]
