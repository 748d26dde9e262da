"""Structured JSON logs with a request id on every line, and redaction that logs cannot bypass.

One JSON object per line: `time`, `level`, `logger`, `message`, `request_id`, plus the safe extras
listed in `SAFE_FIELDS` (endpoint, method, status, duration_ms, decision, hook, service, ...).
Every HTTP call ends with one `request` line carrying its status, duration and, when the answer
holds one, the decision.

Why redaction sits in the handler, not at the call sites: a log line is written by many modules
(ours, Flask, werkzeug, gunicorn, urllib3) and a single careless `%s` of a header or a request body
would leak a token forever. So every record that reaches our handler goes through `redact()`:

- JWTs (`eyJ….….…`), `Bearer …` values, `Authorization:` header values, and `access_token` /
  `client_assertion` / `password`-style fields become `[REDACTED]`, and so does the token of an
  explanation-page link (`/explanations/<token>`);
- patient ids (`Patient/123`, `patients/123` in API paths, `patientId: 123`, `?patient=123` in a
  logged URL), whatever characters they hold, become `#` + 12 hex digits of a *keyed* HMAC-SHA256
  (`patient_hash`), so lines about one patient still correlate but a table of hashed known ids
  cannot reverse them. The key is the store's per-install secret (`set_patient_key`, wired by the
  app factory), the same one the audit's `patient_hash` uses, so a log line's hash is the first 12
  hex digits of the audit row's; until it is set (the command line), a random per-process key;
- HumanName parts (`"family": …`, `"given": [...]`) are removed;
- every extra passed to the logger is printed (none is silently dropped), each value redacted as
  above; an extra whose *name* says it is a secret or a name part (`token`, `authorization`,
  `family`, ...) is printed as `[REDACTED]`; a `patient` extra is printed only as `patient_hash`.

The request id comes from a well-formed incoming `X-Request-ID` (so a trace crosses the EHR, a
proxy and us) or is generated, and is echoed in the response's `X-Request-ID` header. It lives in a
context variable for the length of the request, so lines written by the threads a request starts
(the FHIR fetches: `contextvars.copy_context().run`) carry it too. A W3C `traceparent` header is
accepted (`trace_id` on every line) and propagated to the FHIR servers the request calls
(`trace_headers`: the same trace id, a new parent id per call; `tracestate` passed on unchanged);
without one, the request starts a trace of its own.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_vcf.errors import ConfigError

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
# Letters, digits and . _ : - only, at most 128: an id can never inject a line break or markup.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
# W3C Trace Context level 1, section 3.2: version-traceid-parentid-flags, lower-case hex; version ff
# and all-zero ids are invalid. A later version may append fields after the flags ("-...").
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?$")
# tracestate (section 3.3): list-members of printable ASCII, at most 512 characters passed on.
_TRACESTATE = re.compile(r"^[\x20-\x7e]{1,512}$")

# The fields the app itself sets on its lines (`log.info(..., extra={"status": 502})`), kept in this
# order first; any other extra is printed after them, redacted (see `JsonFormatter`).
SAFE_FIELDS = (
    "endpoint",
    "method",
    "status",
    "duration_ms",
    "decision",
    "decisions",
    "hook",
    "service",
    "policy",
    "upstream",
    "patient_hash",
    "keys",
    "count",
    "cards",
    "hookInstance",
    "skipped",
    "trace_id",
)

# Extras whose name says their value is a secret or a part of a person's name: printed as [REDACTED].
_SECRET_FIELD = re.compile(
    r"(?i)(token|authori[sz]ation|password|secret|assertion|jwt|cookie|api[_-]?key|family|given|"
    r"prefix|suffix|birth|address|telecom|^name$)"
)
# The attributes every LogRecord has: not extras.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "taskName",
}

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED = "[REDACTED]"
JWT_PATTERN = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (JWT_PATTERN, REDACTED),
    # A credential after the scheme word; "no bearer token" in a message names no credential.
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!token\b)[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\]|bearer |basic )[^\s\"',;]+"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)([\"']?\b(?:access_token|refresh_token|id_token|client_assertion|client_secret|password|"
                r"secret|api[_-]?key|token)[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;&}]+"),
     r"\1" + REDACTED),
    # user:password@ in a URL (a database URL in a start-up line, say)
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(\"(?:family|given|prefix|suffix)\"\s*:\s*)(\[[^\]]*\]|\"[^\"]*\")"), r'\1"' + REDACTED + '"'),
    # An explanation page's link is its credential (service/pages.py): a path that carries one is cut.
    (re.compile(r"(/explanations/)[^\s\"'?#<>]+"), r"\1" + REDACTED),
)
# An id runs to the next delimiter, whatever it holds: FHIR ids are [A-Za-z0-9-.] (R4 datatypes,
# "id"), but a caller may send `_`, `%`-escapes or anything else, and a pattern that stopped at the
# first unexpected character would print the rest of the id (as urllib3's DEBUG lines showed).
_ID = r"[^\s/?&#\"'<>,;()\[\]{}\\]+"
_PATIENT_PATTERNS = (
    re.compile(r"(\bPatient(?:/|%2[Ff]))(" + _ID + ")"),
    re.compile(r"(\bpatients/)(" + _ID + ")"),
    re.compile(r"(?i)(\bpatient_?id[\"']?\s*[:=]\s*[\"']?)(" + _ID + ")"),
    # FHIR search parameters in logged URLs (urllib3's DEBUG and retry lines print them):
    # "Encounter?patient=p-1", "&subject=Patient%2Fp-1", "patient=Patient/p-1".
    re.compile(r"([?&](?:patient|subject)(?::[A-Za-z]+)?=)(?!Patient(?:/|%2[Ff]))(" + _ID + ")"),
)


def _anywhere(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern that finds a match wherever any of `patterns` would (an alternation of them, each
    leading `(?i)` scoped to its own branch)."""
    branches = []
    for pattern in patterns:
        source = pattern.pattern
        if source.startswith("(?i)"):
            source = f"(?i:{source[4:]})"
        elif pattern.flags & re.IGNORECASE:
            raise ValueError(f"cannot scope the flags of {source!r}")
        branches.append(f"(?:{source})")
    return re.compile("|".join(branches))


# Most strings a line carries (hook and service names, decisions, hashes, ids) hold nothing to redact:
# one search of this pattern tells them apart for a third of the eleven substitutions' cost.
_MAY_REDACT = _anywhere([pattern for pattern, _ in _SECRET_PATTERNS] + list(_PATIENT_PATTERNS))

_HANDLER_MARK = "_fhir_vcf_json_handler"
_TOKEN_KEY = "fhir_vcf.log_context"
_request_log = logging.getLogger("fhir_vcf.request")


# The key of the patient hashes: random per process until the app sets the store's (set_patient_key).
_patient_key: bytes = secrets.token_bytes(32)


def set_patient_key(key: bytes) -> None:
    """Key the log's patient hashes with the store's per-install secret (called by the app factory).

    Process-wide on purpose: the redaction filter hashes ids in every line, whoever writes it.
    """
    global _patient_key
    _patient_key = bytes(key)


def patient_reference(value: str) -> str:
    """"123", "Patient/123" → "Patient/123": the one form both the log and the audit hash."""
    value = value.strip()
    if "Patient/" in value:
        value = value.rsplit("Patient/", 1)[-1]
    return f"Patient/{value}"


def keyed_patient_hash(key: bytes, value: str) -> str:
    """Hex HMAC-SHA256 of the patient reference (surrogates and any other code point hashed, never
    an encoding error: an id that cannot be hashed must not cost a log line or an audit row)."""
    mac = _keyed_mac(key).copy()
    mac.update(patient_reference(value).encode("utf-8", "surrogatepass"))
    return mac.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed_mac(key: bytes) -> hmac.HMAC:
    """The HMAC keyed with `key` before any message: each hash copies it (`HMAC.copy`, the
    documented way to share a prefix). Setting the key up is most of a short message's cost:
    a patient hash 25.5 -> 18 K instructions (callgrind); twice a hook call (log line, audit row).
    Never updated, so threads may copy it at once. At most the store's key and a few others (tests,
    the command line's random one) are held."""
    return hmac.new(key, digestmod=hashlib.sha256)


class OwnId(str):
    """An identifier this service made, or checked and rewrote to a fixed form: a trace id (32 hex
    digits), a log patient hash ("#" and 12 hex digits), a hook instance as `str(uuid.UUID(...))`.

    Printed as it is, as `request_id` always was: it holds no secret and no name. Each is new on
    almost every line, so `_CLEAN_TEXTS` never spared the redaction search on it, which costs
    ~0.09 M instructions on a 32-character id (an alternation of every pattern tried at every
    position). `tests/test_logs.py` holds `redact` to leave every such form unchanged.
    """

    __slots__ = ()


def patient_hash(value: str) -> OwnId:
    """`#` + 12 hex digits of the keyed hash of the patient id; "Patient/123" and "123" hash alike."""
    return OwnId("#" + keyed_patient_hash(_patient_key, value)[:12])


# Short texts `_MAY_REDACT` found nothing in. A line's field values recur on every line (hook and
# service names, decisions, the route, policy ids), and the search costs a few microseconds a text
# (an alternation of every pattern tried at every position): a request line searched about ten,
# 0.8 M instructions of an order-select call. Only texts with nothing to redact are kept, so a
# secret is never held here; the answer depends on the text alone. Bounded: emptied when full.
_CLEAN_TEXTS: set[str] = set()
_CLEAN_TEXTS_LIMIT = 4096
_CLEAN_TEXT_LENGTH = 200


def redact(text: str) -> str:
    """The text without tokens, JWTs, Authorization values, name parts or raw patient ids."""
    if text in _CLEAN_TEXTS:
        return text
    if _MAY_REDACT.search(text) is None:  # no pattern below matches anywhere: each would leave it as it is
        if len(text) <= _CLEAN_TEXT_LENGTH:
            if len(_CLEAN_TEXTS) >= _CLEAN_TEXTS_LIMIT:
                _CLEAN_TEXTS.clear()
            _CLEAN_TEXTS.add(text)
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    for pattern in _PATIENT_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + patient_hash(m.group(2)), text)
    return text


@functools.lru_cache(maxsize=512)
def _secret_name(name: str) -> bool:
    """Whether an extra's (or a logged mapping's key's) name says its value is a secret or a name part.
    Remembered: the names are the code's own field names and a few categories (the `skipped` counts),
    and the answer depends on the name alone."""
    return _SECRET_FIELD.search(name) is not None


def _clean(value: Any, name: str = "") -> Any:
    if name and _secret_name(name):
        return REDACTED
    kind = type(value)  # the usual values by exact type first: the ABC checks below cost more than the work
    if kind is str:
        return redact(value)
    if kind is OwnId:
        return value
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


# --- the request context: request id and W3C trace, for every thread the request starts -------------


@dataclass(frozen=True)
class RequestContext:
    """What every log line of a request carries, and what its outgoing FHIR calls propagate."""

    request_id: str
    trace_id: str
    trace_flags: str = "00"
    tracestate: str | None = None


_context: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("fhir_vcf_request", default=None)


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, flags) of a valid W3C `traceparent`, else None (then a new trace is started)."""
    match = _TRACEPARENT.match((value or "").strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, flags


def new_context(
    request_id: str | None = None, traceparent: str | None = None, tracestate: str | None = None
) -> RequestContext:
    """The context of a request: its id, and the caller's trace when `traceparent` is valid (its
    `tracestate` is kept only then, W3C section 3.3), else a new trace."""
    trace = parse_traceparent(traceparent)
    state = (tracestate or "").strip()
    return RequestContext(
        request_id=request_id or uuid.uuid4().hex,
        trace_id=trace[0] if trace else uuid.uuid4().hex,
        trace_flags=trace[1] if trace else "00",
        tracestate=state if trace and _TRACESTATE.match(state) else None,
    )


@contextmanager
def request_context(
    request_id: str | None = None, traceparent: str | None = None, tracestate: str | None = None
) -> Iterator[RequestContext]:
    """Bind a request id and trace to this context (and the threads that copy it) for a block."""
    context = new_context(request_id, traceparent, tracestate)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def current_context() -> RequestContext | None:
    return _context.get()


def trace_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) for an outgoing call made on behalf of the current request:
    the request's trace id with a new parent id (W3C Trace Context, section 3.2.2.4); empty outside
    a request."""
    context = _context.get()
    if context is None:
        return {}
    headers = {TRACEPARENT_HEADER: f"00-{context.trace_id}-{secrets.token_hex(8)}-{context.trace_flags}"}
    if context.tracestate:
        headers[TRACESTATE_HEADER] = context.tracestate
    return headers


def current_request_id() -> str | None:
    """The id of the request being served in this context (this thread, or one it started), if any."""
    context = _context.get()
    if context is not None:
        return context.request_id
    try:
        from flask import g, has_app_context
    except ImportError:  # pragma: no cover - Flask is a dependency
        return None
    if has_app_context():
        return g.get("request_id")
    return None


class RedactionFilter(logging.Filter):
    """Rewrite every record in place so that no handler, ours or a library's, can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        if not getattr(record, "trace_id", None):
            context = _context.get()
            record.trace_id = OwnId(context.trace_id) if context is not None else None  # hex: new_context
        patient = record.__dict__.pop("patient", None)
        if isinstance(patient, str) and patient and not getattr(record, "patient_hash", None):
            record.patient_hash = patient_hash(patient)
        return True


# What `json.dumps(payload, default=str)` builds for every line, built once: an encoder keeps no state
# between calls (each `encode` makes its own), and building it was ~9,300 of a line's ~75,800
# instructions of JSON writing (callgrind).
_LINE_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with only the fields we know to be safe."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for name in SAFE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                payload[name] = _clean(value)
        patient = record.__dict__.get("patient")
        if isinstance(patient, str) and patient and "patient_hash" not in payload:
            payload["patient_hash"] = patient_hash(patient)
        for name, value in record.__dict__.items():  # every other extra: printed, never silently dropped
            if name in _RECORD_ATTRS or name in payload or name == "patient" or name.startswith("_"):
                continue
            payload[name] = _clean(value, name)
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            payload["exception"] = redact(self.formatException(record.exc_info))
        return _LINE_ENCODER.encode(payload)  # ASCII: a lone surrogate is escaped, never a write error


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record (test runners swap it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr


def json_handler(level: str | int = "INFO", stream: Any = None) -> logging.Handler:
    """A JSON, redacting handler on `stream` (default: the current sys.stderr at each write)."""
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    handler.setLevel(level)
    setattr(handler, _HANDLER_MARK, True)
    return handler


def configure_root(level: str | int = "INFO") -> logging.Handler:
    """Install (once per process) the JSON handler on the root logger; later calls update its level.

    The root level is only ever lowered to `level`, never raised: raising it would silence other
    code's loggers (and pytest's caplog) for no benefit; the handler's own level does the filtering.
    """
    if isinstance(level, str):
        level = level.strip().upper()
        if level not in LEVELS:
            raise ConfigError(f"FHIR_VCF_LOG_LEVEL: {level!r} is not one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = json_handler(level)
        root.addHandler(handler)
    handler.setLevel(level)
    wanted = logging.getLevelName(level) if isinstance(level, str) else level
    if isinstance(wanted, int) and (root.level == logging.NOTSET or root.level > wanted):
        root.setLevel(wanted)
    return handler


def annotate(**fields: Any) -> None:
    """Add safe fields (decision=, hook=, service=, policy=, patient=) to this request's log line."""
    from flask import g, has_request_context

    if not has_request_context():
        return
    extra = g.setdefault("log_fields", {})
    for key, value in fields.items():
        if key == "patient" and isinstance(value, str):
            extra["patient_hash"] = patient_hash(value)
        elif key in SAFE_FIELDS and value is not None:
            extra[key] = value


def _path_fields(request: Any) -> dict[str, Any]:
    """The CDS service from the path, for views that did not annotate(). Bodies are never re-read
    here: the request is parsed once by its view, and the decision comes from `annotate`."""
    path = request.path or ""
    if path.startswith("/cds-services/"):
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2:
            return {"service": parts[1]}
    return {}


def card_decision(card: Any) -> str | None:
    """The decision a fhir-vcf card carries in its `extension` (`{"fhir-vcf": {"decision": ...}}`)."""
    if not isinstance(card, Mapping):
        return None
    extension = card.get("extension")
    if isinstance(extension, Mapping):
        own = extension.get("fhir-vcf")
        if isinstance(own, Mapping) and isinstance(own.get("decision"), str):
            return own["decision"]
    return None


def init_logging(app: Any, settings: Any) -> None:
    """JSON logs for this app: root handler, the request id, and one `request` line per call."""
    from flask import g, request

    configure_root(getattr(settings, "log_level", "INFO") or "INFO")
    if app.extensions.get("fhir_vcf_logs"):
        return
    app.extensions["fhir_vcf_logs"] = True

    @app.before_request
    def _start_request() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        context = new_context(
            g.request_id, request.headers.get(TRACEPARENT_HEADER), request.headers.get(TRACESTATE_HEADER)
        )
        # On the request itself, not on `g`: a request made from inside another (the same app, so
        # the same app context and `g`) must not overwrite the outer one's token.
        request.environ[_TOKEN_KEY] = _context.set(context)

    @app.teardown_request
    def _end_request(_exc: BaseException | None) -> None:
        token = request.environ.pop(_TOKEN_KEY, None)
        if token is not None:
            with suppress(ValueError):  # set in another context (cannot happen in WSGI): nothing to undo
                _context.reset(token)

    @app.after_request
    def _finish_request(response: Any) -> Any:
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        fields: dict[str, Any] = {
            # The route template, not the path: paths carry patient ids (/api/v1/patients/<id>/...).
            "endpoint": request.url_rule.rule if request.url_rule is not None else "(no route)",
            "method": request.method,
            "status": response.status_code,
        }
        if started is not None:
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        annotated = g.get("log_fields", {})
        fields.update({k: v for k, v in _path_fields(request).items() if k not in annotated})
        fields.update(annotated)
        # 500 is our failure; 502-504 are an upstream's (already logged by the FHIR client).
        status = response.status_code
        level = logging.ERROR if status == 500 else logging.WARNING if status >= 500 else logging.INFO
        _request_log.log(
            level, "%s %s %s", request.method, fields["endpoint"], response.status_code, extra=fields
        )
        return response


def gunicorn_logconfig(level: str = "INFO") -> dict[str, Any]:
    """A `logconfig_dict` for gunicorn: its error log in the same JSON format, no access log.

    The access log is off on purpose: its lines carry raw paths (patient ids in the REST API) and
    duplicate the `request` line the app writes for every call, which has the request id.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # The same (marked) handler configure_root() installs, so the app adds no second one.
        "handlers": {"json": {"()": json_handler, "level": level}},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


__all__ = [
    "JWT_PATTERN",
    "REQUEST_ID_HEADER",
    "SAFE_FIELDS",
    "JsonFormatter",
    "OwnId",
    "RedactionFilter",
    "RequestContext",
    "annotate",
    "card_decision",
    "configure_root",
    "current_context",
    "current_request_id",
    "gunicorn_logconfig",
    "init_logging",
    "keyed_patient_hash",
    "new_context",
    "parse_traceparent",
    "patient_hash",
    "patient_reference",
    "redact",
    "request_context",
    "set_patient_key",
    "trace_headers",
]
