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
- patient ids (`Patient/123`, `patients/123` in API paths, `patientId: 123`) become
  `#` + the first 12 hex digits of their sha256, so lines about one patient still correlate;
- HumanName parts (`"family": …`, `"given": [...]`) are removed;
- extras that are not in `SAFE_FIELDS` are dropped rather than printed; a `patient` extra is
  printed only as `patient_hash`.

The request id comes from a well-formed incoming `X-Request-ID` (so a trace crosses the EHR, a
proxy and us) or is generated, and is echoed in the response's `X-Request-ID` header.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fhir_vcf.errors import ConfigError

REQUEST_ID_HEADER = "X-Request-ID"
# Letters, digits and . _ : - only, at most 128: an id can never inject a line break or markup.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")

# Extras printed when a record carries them (`log.info(..., extra={"status": 502})`); others dropped.
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
)

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
_PATIENT_PATTERNS = (
    re.compile(r"(\bPatient/)([A-Za-z0-9\-.]{1,64})"),
    re.compile(r"(\bpatients/)([A-Za-z0-9\-.]{1,64})"),
    re.compile(r"(?i)(\bpatient_?id[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9\-.]{1,64})"),
    # FHIR search parameters in logged URLs (urllib3's retry warnings print them):
    # "Encounter?patient=p-1", "&subject=Patient%2Fp-1", "patient=Patient/p-1".
    re.compile(r"([?&](?:patient|subject)=(?:Patient(?:/|%2F))?)([A-Za-z0-9\-.]{1,64})"),
)

_HANDLER_MARK = "_fhir_vcf_json_handler"
_request_log = logging.getLogger("fhir_vcf.request")


def patient_hash(value: str) -> str:
    """`#` + 12 hex digits of sha256 of the patient id; "Patient/123" and "123" hash alike."""
    pid = value.rsplit("Patient/", 1)[-1] if "Patient/" in value else value
    return "#" + hashlib.sha256(pid.encode("utf-8")).hexdigest()[:12]


def redact(text: str) -> str:
    """The text without tokens, JWTs, Authorization values, name parts or raw patient ids."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    for pattern in _PATIENT_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + patient_hash(m.group(2)), text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def current_request_id() -> str | None:
    """The id of the request being served on this thread, if any."""
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
        patient = record.__dict__.pop("patient", None)
        if isinstance(patient, str) and patient and not getattr(record, "patient_hash", None):
            record.patient_hash = patient_hash(patient)
        return True


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
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            payload["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


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


def _sniff_fields(response: Any, request: Any) -> dict[str, Any]:
    """Decision, hook and service from the exchange itself, for views that did not annotate().

    Reads only JSON bodies already in memory (never a stream) and only the fields of the public
    contracts: `decision` / `patient` of an evaluation, the fhir-vcf card extension, the `hook`.
    """
    found: dict[str, Any] = {}
    path = request.path or ""
    if path.startswith("/cds-services/"):
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2:
            found["service"] = parts[1]
        body = request.get_json(silent=True) if request.is_json else None
        if isinstance(body, Mapping) and isinstance(body.get("hook"), str):
            found["hook"] = body["hook"]
    if response.direct_passthrough or not response.is_json:
        return found
    if (response.content_length or 0) > 2_000_000:
        return found
    data = response.get_json(silent=True)
    if isinstance(data, Mapping):
        if isinstance(data.get("decision"), str):
            found["decision"] = data["decision"]
            if isinstance(data.get("patient"), str):
                found["patient_hash"] = patient_hash(data["patient"])
        cards = data.get("cards")
        if isinstance(cards, list):
            decisions = [d for d in (card_decision(c) for c in cards) if d]
            if len(decisions) == 1:
                found["decision"] = decisions[0]
            elif decisions:
                found["decisions"] = decisions
    return found


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
        try:
            sniffed = _sniff_fields(response, request)
        except Exception:  # logging must never break a response
            sniffed = {}
        fields.update({k: v for k, v in sniffed.items() if k not in g.get("log_fields", {})})
        fields.update(g.get("log_fields", {}))
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
    "RedactionFilter",
    "annotate",
    "card_decision",
    "configure_root",
    "current_request_id",
    "gunicorn_logconfig",
    "init_logging",
    "patient_hash",
    "redact",
]
