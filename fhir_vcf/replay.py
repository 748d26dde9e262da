"""`fhir-vcf replay`: play Bundle files through the CDS Hooks service as an EHR would, and check
every answer.

For each Bundle file (or directory of them) and each patient in it, replay builds a real CDS Hooks
2.0 request: it reads the service's discovery document, picks the service for the hook, fills its
`prefetch` by running each template against the Bundle's resources (an in-memory FHIR store,
`fhir_vcf.sources.memory`: a key the Bundle has nothing for becomes an empty searchset Bundle, a
read of a missing resource `null`), puts the patient's draft vertebral augmentation
ServiceRequests in `draftOrders` (and `selections`) for the order hooks, and sends no `fhirServer`:
everything the service needs is prefetched. (The request is built by
`fhir_vcf.sources.hook_request`, which demo mode's `$cds-hooks-request` uses too.) The call goes
to the app in-process (Flask's test client; the audit store is an in-memory SQLite so a replay
leaves no rows behind) or, with `--against URL`, over HTTP, signed with a CDS Hooks JWT when a key
and issuer are given.

Every answer is checked: the card rules (`fhir_vcf.outputs.card_rules.validate_cards`), each
proposed CarePlan against the FHIR R4 model, and, with `--expect`, the decision against
`samples/expected.json`. The decision is read from the card's `extension` member
`{"fhir-vcf": {"decision": ...}}` when the service sends one, else from the `**Decision:**` line
of the card's detail.

As-of date: `--as-of` is sent as the request extension `{"fhir-vcf": {"asOf": ...}}`. In-process,
replay also evaluates through the service's `cds_hooks.evaluate_record` seam with that date, so the
answer is the one the service gives on that day; against a URL the service must honour the
extension itself, and replay reports a card that states another as-of date.

Exit status: 0 when every answer is valid and matches its expectation, 1 when any does not,
2 for unusable input (a file that is not a FHIR Bundle, a bad `--expect` file or key, an
unreachable service), with one line per problem on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from fhir_vcf.errors import FhirVcfError, InputError
from fhir_vcf.logs import card_decision
from fhir_vcf.outputs.cards import DECISION_WORDS
from fhir_vcf.sources import hook_request
from fhir_vcf.sources.hook_request import EXTENSION, HOOKS, ORDER_HOOKS, USER_ID
from fhir_vcf.sources.memory import MemoryFhir

# The FHIR models, requests, Flask and prometheus_client load only when replay runs, so
# `fhir-vcf --help` stays fast (and `fhir-vcf serve` chooses prometheus_client's mode first).

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
JWT_LIFETIME = 300  # seconds: CDS Hooks 2.0 recommends a short-lived token (exp at most 5 minutes)
PROGRESS_THRESHOLD = 20  # bundles; above this, progress is shown even when stderr is not a terminal
HTTP_TIMEOUT = (5.0, 60.0)

# The words of a card's "**Decision:** ..." line, back to the decision codes.
_DECISION_WORDS = {words: code for code, words in DECISION_WORDS.items()}
_DETAIL_DECISION = re.compile(r"\*\*Decision:\*\*\s*([A-Za-z][A-Za-z -]*?)\s*(?:·|\n|$)")
_DETAIL_AS_OF = re.compile(r"\*\*As of:\*\*\s*(\d{4}-\d{2}-\d{2})")


class ReplayInputError(FhirVcfError):
    """Replay cannot run as asked: an unusable key, expectations file or service (exit 2)."""


# --- building requests ----------------------------------------------------------------------------


def _is_augmentation_order(resource: Mapping[str, Any]) -> bool:
    """Which orders are vertebral augmentation is the service's own rule (`fhir_vcf.evaluation.ordered_technique`):
    replay asks it rather than keeping a second code list."""
    from fhir_vcf.evaluation import ordered_technique

    return ordered_technique(resource) is not None


def draft_orders(store: MemoryFhir, patient_id: str) -> list[dict[str, Any]]:
    """The patient's draft vertebral augmentation ServiceRequests (what an EHR puts in draftOrders)."""
    return hook_request.draft_orders(store, patient_id, _is_augmentation_order)


def build_request(
    store: MemoryFhir,
    patient_id: str,
    service: Mapping[str, Any],
    *,
    as_of: date | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks 2.0 request for `service` about one patient of `store`, every prefetch key filled
    (`fhir_vcf.sources.hook_request.build_request` with the service's augmentation-order rule)."""
    return hook_request.build_request(
        store, patient_id, service, is_order=_is_augmentation_order, as_of=as_of, warnings=warnings
    )


# --- reading answers ------------------------------------------------------------------------------


def decision_of(card: Mapping[str, Any]) -> str | None:
    """The decision a card states: its fhir-vcf extension, else its detail's **Decision:** line."""
    found = card_decision(card)
    if found:
        return found
    detail = card.get("detail")
    if isinstance(detail, str):
        match = _DETAIL_DECISION.search(detail)
        if match:
            return _DECISION_WORDS.get(match.group(1).strip().lower(), match.group(1).strip())
    return None


def as_of_of(card: Mapping[str, Any]) -> str | None:
    extension = card.get("extension")
    own = extension.get(EXTENSION) if isinstance(extension, Mapping) else None
    if isinstance(own, Mapping) and isinstance(own.get("asOf"), str):
        return own["asOf"]
    detail = card.get("detail")
    match = _DETAIL_AS_OF.search(detail) if isinstance(detail, str) else None
    return match.group(1) if match else None


def careplan_problems(response: Mapping[str, Any]) -> list[str]:
    """Each CarePlan a suggestion would create or update, validated with the FHIR R4 model."""
    from fhir.resources.R4B.careplan import CarePlan
    from pydantic import ValidationError

    problems = []
    for i, card in enumerate(response.get("cards") or []):
        if not isinstance(card, Mapping):
            continue
        for j, suggestion in enumerate(card.get("suggestions") or []):
            if not isinstance(suggestion, Mapping):
                continue
            for k, action in enumerate(suggestion.get("actions") or []):
                resource = action.get("resource") if isinstance(action, Mapping) else None
                if not isinstance(resource, Mapping) or resource.get("resourceType") != "CarePlan":
                    continue
                where = f"$.cards[{i}].suggestions[{j}].actions[{k}].resource"
                try:
                    CarePlan.model_validate(resource)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    path = ".".join(str(p) for p in first["loc"])
                    problems.append(f"{where}: invalid FHIR R4 CarePlan: {path}: {first['msg']}")
    return problems


def card_problems(response: Any) -> list[str]:
    from fhir_vcf.outputs.card_rules import validate_cards

    problems = list(validate_cards(response))
    if isinstance(response, Mapping):
        problems += careplan_problems(response)
    return problems


# --- transports -----------------------------------------------------------------------------------


class Signer:
    """CDS Hooks 2.0 client JWTs: ES384 for an EC P-384 key, RS384 for RSA; `aud` = the URL called."""

    def __init__(self, pem: bytes, issuer: str, kid: str | None = None) -> None:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ReplayInputError(f"--jwt-key: not an unencrypted PEM private key ({exc})") from None
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = "RS384"
            public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
            self.algorithm = "ES384"
            public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        else:
            raise ReplayInputError("--jwt-key: use an RSA key (RS384) or an EC P-384 key (ES384)")
        self.key = key
        self.issuer = issuer
        self.kid = kid or jwk_thumbprint(public_jwk)
        self.public_jwk = {**public_jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def token(self, audience: str) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "exp": now + JWT_LIFETIME,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers={"kid": self.kid, "typ": "JWT"})


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (base64url SHA-256 of the required members): a stable default `kid`."""
    import base64
    import hashlib

    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[str(jwk["kty"])]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON, or None
    text: str


class Transport:
    """Where requests go: `discovery()` and `call(service_id, body)`."""

    base_url: str = ""

    def __init__(self, signer: Signer | None = None) -> None:
        self.signer = signer

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def headers(self, url: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.signer:
            headers["Authorization"] = f"Bearer {self.signer.token(url)}"
        return headers

    def get(self, path: str) -> Answer:
        raise NotImplementedError

    def post(self, path: str, body: Any) -> Answer:
        raise NotImplementedError

    def discovery(self) -> dict[str, Any]:
        answer = self.get("/cds-services")
        if answer.status != 200 or not isinstance(answer.body, Mapping):
            raise ReplayInputError(
                f"discovery {self.url('/cds-services')} answered {answer.status}: {_outcome_text(answer)}"
            )
        services = answer.body.get("services")
        if not isinstance(services, list):
            raise ReplayInputError(f"discovery {self.url('/cds-services')}: no services array")
        return dict(answer.body)

    def call(self, service_id: str, body: Mapping[str, Any]) -> Answer:
        return self.post(f"/cds-services/{service_id}", body)

    @contextlib.contextmanager
    def evaluating_as_of(self, as_of: date | None) -> Iterator[None]:
        yield


class InProcess(Transport):
    """The app itself through Flask's test client (no server, no network)."""

    base_url = "http://localhost"

    def __init__(self, signer: Signer | None = None, app: Any = None) -> None:
        super().__init__(signer)
        if app is None:
            from fhir_vcf import create_app

            app = create_app({"database_url": "sqlite://"})
        self.app = app
        self.client = app.test_client()

    def _answer(self, response: Any) -> Answer:
        text = response.get_data(as_text=True)
        return Answer(response.status_code, _loads(text), text)

    def get(self, path: str) -> Answer:
        return self._answer(self.client.get(path, headers=self.headers(self.url(path))))

    def post(self, path: str, body: Any) -> Answer:
        return self._answer(self.client.post(path, data=json.dumps(body), headers=self.headers(self.url(path))))

    @contextlib.contextmanager
    def evaluating_as_of(self, as_of: date | None) -> Iterator[None]:
        """Evaluate as of `as_of` through the service's documented seam (`cds_hooks.evaluate_record`)."""
        if as_of is None:
            yield
            return
        from fhir_vcf.service import cds_hooks

        original = cds_hooks.evaluate_record

        def dated(record: Any, **options: Any) -> dict[str, Any]:
            return original(record, **{**options, "as_of": as_of})

        cds_hooks.evaluate_record = dated
        try:
            yield
        finally:
            cds_hooks.evaluate_record = original


class Remote(Transport):
    """A running service at `base_url` (`--against`), over HTTP with requests."""

    def __init__(self, base_url: str, signer: Signer | None = None) -> None:
        import requests

        super().__init__(signer)
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/cds-services"):
            self.base_url = self.base_url[: -len("/cds-services")]
        self.session = requests.Session()

    def _send(self, method: str, path: str, body: Any = None) -> Answer:
        import requests

        url = self.url(path)
        try:
            response = self.session.request(
                method, url, headers=self.headers(url), data=None if body is None else json.dumps(body),
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ReplayInputError(f"cannot reach {url} ({type(exc).__name__})") from None
        return Answer(response.status_code, _loads(response.text), response.text)

    def get(self, path: str) -> Answer:
        return self._send("GET", path)

    def post(self, path: str, body: Any) -> Answer:
        return self._send("POST", path, body)


def _loads(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- running --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One bundle + patient + hook: what the service decided and what is wrong with the answer."""

    file: str
    patient: str
    hook: str
    decision: str | None = None
    expected: str | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def passed(self) -> bool:
        return self.valid and (self.expected is None or self.decision == self.expected)

    def to_json(self) -> dict[str, Any]:
        problems = list(self.problems)
        if self.valid and not self.passed:
            problems.append(f"decision {self.decision!r}, expected {self.expected!r}")
        return {
            "file": self.file,
            "patient": self.patient,
            "hook": self.hook,
            "decision": self.decision,
            "expected": self.expected,
            "valid": self.valid,
            "problems": problems,
        }


class Expectation(NamedTuple):
    """One patient's expected decision, and the as-of date it was written for (when stated)."""

    decision: str
    as_of: date | None = None


def load_expectations(path: str | Path) -> dict[str, dict[str, Expectation]]:
    """`samples/expected.json`: file name → "Patient/id" → {"decision": ..., "asOf"?: ...}.

    An entry's `asOf` is the date its decision holds on: replay evaluates it as of that date unless
    `--as-of` says otherwise, so a saved bundle replays to the same answer forever. Other members
    (`levels`, `why`, ...) are ignored here.
    """
    from fhir_vcf.sources.files import parse_json

    source = str(path)
    try:
        data = parse_json(Path(path).read_bytes(), source=source)
    except OSError as exc:
        raise ReplayInputError(f"{source}: cannot read the expectations file ({exc.strerror})") from None
    if not isinstance(data, Mapping):
        raise ReplayInputError(f"{source}: expected an object of file name → patient → {{\"decision\": ...}}")
    found: dict[str, dict[str, Expectation]] = {}
    for name, patients in data.items():
        if not isinstance(patients, Mapping):
            raise ReplayInputError(f"{source}: {name}: expected an object of patient → {{\"decision\": ...}}")
        for patient, expectation in patients.items():
            decision = expectation.get("decision") if isinstance(expectation, Mapping) else None
            if not isinstance(decision, str):
                raise ReplayInputError(f"{source}: {name} {patient}: no decision")
            raw_as_of = expectation.get("asOf")
            try:
                as_of = date.fromisoformat(raw_as_of) if raw_as_of is not None else None
            except (TypeError, ValueError):
                raise ReplayInputError(f"{source}: {name} {patient}: asOf {raw_as_of!r} is not YYYY-MM-DD") from None
            found.setdefault(Path(name).name, {})[patient] = Expectation(decision, as_of)
    return found


def replay_patient(
    transport: Transport,
    store: MemoryFhir,
    patient: str,
    service: Mapping[str, Any],
    *,
    file: str,
    as_of: date | None,
    expected: str | None,
    warn: Callable[[str], None],
) -> Row:
    """Send one request and check its answer."""
    patient_id = patient.split("/", 1)[1]
    row = Row(file=file, patient=patient, hook=service["hook"], expected=expected)
    warnings: list[str] = []
    body = build_request(store, patient_id, service, as_of=as_of, warnings=warnings)
    for message in dict.fromkeys(warnings):
        warn(f"{file}: {message}")
    started = time.perf_counter()
    with transport.evaluating_as_of(as_of):
        answer = transport.call(service["id"], body)
    row.seconds = time.perf_counter() - started
    if answer.status != 200:
        row.problems.append(f"HTTP {answer.status}: {_outcome_text(answer)}")
        return row
    if answer.body is None:
        row.problems.append("the response is not JSON")
        return row
    row.problems += card_problems(answer.body)
    cards = [c for c in answer.body.get("cards") or [] if isinstance(c, Mapping)]
    decisions = list(dict.fromkeys(d for d in (decision_of(c) for c in cards) if d))
    row.decision = ",".join(decisions) or None
    if cards and not decisions:
        row.problems.append("no card states a decision (fhir-vcf extension or a **Decision:** line)")
    if as_of is not None:
        stated = {a for a in (as_of_of(c) for c in cards) if a}
        if stated and stated != {as_of.isoformat()}:
            row.problems.append(
                f"the service evaluated as of {', '.join(sorted(stated))}, not {as_of.isoformat()} "
                f"(it ignores the request extension {EXTENSION}.asOf)"
            )
    return row


def _outcome_text(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, Mapping) and body.get("resourceType") == "OperationOutcome":
        texts = [i.get("diagnostics") for i in body.get("issue") or [] if isinstance(i, Mapping)]
        return _short("; ".join(t for t in texts if isinstance(t, str)) or "OperationOutcome")
    return _short(answer.text) or "(empty body)"


def run(
    paths: Sequence[str],
    *,
    transport: Transport,
    hooks: Sequence[str],
    as_of: date | None,
    expectations: Mapping[str, Mapping[str, Expectation]] | None,
    err: TextIO,
    on_row: Callable[[Row], None] = lambda row: None,
) -> tuple[list[Row], int, int]:
    """Replay every file; returns (rows, bad input files, skipped order hooks)."""
    from fhir_vcf.record import load_document
    from fhir_vcf.sources.files import bundle_files, parse_json

    files = bundle_files(paths)
    if not files:
        raise ReplayInputError("no Bundle files (*.json) found in " + ", ".join(paths))
    discovery = transport.discovery()
    services = {}
    for hook in hooks:
        service = next((s for s in discovery["services"] if isinstance(s, Mapping) and s.get("hook") == hook), None)
        if service is None or not isinstance(service.get("id"), str):
            raise ReplayInputError(f"the service's discovery document lists no {hook} service")
        services[hook] = service

    progress = Progress(len(files), err)
    rows: list[Row] = []
    bad = skipped = 0
    for index, path in enumerate(files, 1):
        progress.show(index, path.name)
        source = str(path)
        try:
            document = parse_json(path.read_bytes(), source=source)
            records = load_document(document, source=source)
        except FileNotFoundError:
            progress.clear()
            print(f"{source}: no such file", file=err)
            bad += 1
            continue
        except OSError as exc:
            progress.clear()
            print(f"{source}: cannot read the file ({exc.strerror})", file=err)
            bad += 1
            continue
        except InputError as exc:
            progress.clear()
            print(str(exc), file=err)
            bad += 1
            continue
        store = MemoryFhir.from_bundles([document])
        patients = [store.canonical(r.patient) for r in records if store.canonical(r.patient).startswith("Patient/")]
        if not patients:
            progress.clear()
            print(f"{source}: no patient found (nothing to replay)", file=err)
            bad += 1
            continue
        for patient in patients:
            for hook in hooks:
                if hook in ORDER_HOOKS and not draft_orders(store, patient.split("/", 1)[1]):
                    skipped += 1
                    continue
                expectation = (expectations or {}).get(path.name, {}).get(patient)

                def warn(message: str) -> None:
                    progress.clear()
                    print(message, file=err)

                row = replay_patient(
                    transport, store, patient, services[hook], file=path.name,
                    as_of=as_of or (expectation.as_of if expectation else None),
                    expected=expectation.decision if expectation else None, warn=warn,
                )
                rows.append(row)
                on_row(row)
    progress.clear()
    return rows, bad, skipped


class Progress:
    """`replay: 12/140 name.json` on stderr: rewritten in place on a terminal, one line per file
    otherwise; shown only on a terminal or for more than PROGRESS_THRESHOLD bundles."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.enabled = self.tty or total > PROGRESS_THRESHOLD
        self._dirty = False

    def show(self, index: int, name: str) -> None:
        if not self.enabled:
            return
        text = f"replay: {index}/{self.total} {name}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._dirty = False


# --- output ---------------------------------------------------------------------------------------

COLUMNS = ("file", "patient", "hook", "decision", "expected", "valid", "problems")


def render_table(rows: Sequence[Row]) -> str:
    cells = []
    for row in rows:
        data = row.to_json()
        cells.append([
            data["file"],
            data["patient"],
            data["hook"],
            data["decision"] or "-",
            data["expected"] or "-",
            "yes" if data["valid"] else "NO",
            "; ".join(data["problems"]) or "-",
        ])
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def summary(rows: Sequence[Row], bad: int, skipped: int) -> str:
    passed = sum(1 for r in rows if r.passed)
    text = f"{passed} passed, {len(rows) - passed} failed"
    if skipped:
        text += f", {skipped} skipped (no draft augmentation order for an order hook)"
    if bad:
        text += f", {bad} unusable input file{'s' if bad != 1 else ''}"
    return text


def junit_xml(rows: Sequence[Row], *, name: str = "fhir-vcf replay") -> bytes:
    """JUnit XML: one testcase per row (classname = file, name = patient + hook)."""
    failures = sum(1 for r in rows if not r.passed)
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(rows)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{sum(r.seconds for r in rows):.3f}",
    )
    for row in rows:
        case = ET.SubElement(
            suite, "testcase", classname=row.file, name=f"{row.patient} {row.hook}", time=f"{row.seconds:.3f}"
        )
        data = row.to_json()
        if not row.passed:
            failure = ET.SubElement(case, "failure", message=_short("; ".join(data["problems"]), 300))
            failure.text = "\n".join(data["problems"])
        ET.SubElement(case, "system-out").text = json.dumps(data)
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


# --- the command line -----------------------------------------------------------------------------


def add_replay_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "replay",
        help="replay Bundle files through the CDS Hooks service and check every answer",
        description="Send each patient of each Bundle to the CDS Hooks service as an EHR would (prefetch "
        "filled from the Bundle, draft augmentation orders in draftOrders), validate the cards and "
        "CarePlans, and compare the decisions with --expect. Exit 0 when all pass, 1 when any fails, "
        "2 for unusable input.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a Bundle JSON file, or a directory of them")
    p.add_argument("--hook", choices=(*HOOKS, "all"), default="patient-view",
                   help="the hook to call (default: patient-view); all = the three, order hooks only for "
                   "patients with a draft augmentation order")
    p.add_argument("--against", metavar="URL",
                   help="the base URL of a running service, e.g. http://127.0.0.1:8080 (default: the app "
                   "in-process, configured from FHIR_VCF_* variables, with an in-memory database)")
    from fhir_vcf.cli import as_of_date  # the same YYYY-MM-DD rule as `fhir-vcf evaluate --as-of`

    p.add_argument("--as-of", type=as_of_date, metavar="YYYY-MM-DD",
                   help="the evaluation date for every patient (default: each expectation's asOf with "
                   "--expect, else the service's today; a service honours it in demo mode or in-process only)")
    p.add_argument("--expect", metavar="FILE",
                   help="expected decisions (and asOf dates), as in samples/expected.json; only the decision "
                   "is compared")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML here (one testcase per row)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or json: one JSON object per line")
    p.add_argument("--jwt-key", metavar="PEM", help="sign each call with this private key (RSA → RS384, P-384 → ES384)")
    p.add_argument("--jwt-issuer", metavar="ISS", help="the JWT iss (required with --jwt-key)")
    p.add_argument("--jwt-kid", metavar="KID", help="the JWT kid header (default: the key's RFC 7638 thumbprint)")
    p.set_defaults(handler=run_replay)
    return p


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def run_replay(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        signer = None
        if args.jwt_key or args.jwt_issuer:
            if not (args.jwt_key and args.jwt_issuer):
                raise ReplayInputError("--jwt-key and --jwt-issuer go together")
            try:
                pem = Path(args.jwt_key).read_bytes()
            except OSError as exc:
                raise ReplayInputError(f"--jwt-key: cannot read {args.jwt_key} ({exc.strerror})") from None
            signer = Signer(pem, args.jwt_issuer, args.jwt_kid)
        expectations = load_expectations(args.expect) if args.expect else None
        hooks = HOOKS if args.hook == "all" else (args.hook,)

        def emit(row: Row) -> None:
            if args.format == "json":
                out.write(json.dumps(row.to_json()) + "\n")
                out.flush()

        # In-process, the app's own error logs would interleave with the table; each failed call
        # is already a row with its status and the service's message.
        with contextlib.nullcontext() if args.against else _quiet_logs():
            transport: Transport = Remote(args.against, signer) if args.against else InProcess(signer)
            rows, bad, skipped = run(
                args.paths, transport=transport, hooks=hooks, as_of=args.as_of, expectations=expectations,
                err=err, on_row=emit,
            )
    except (ReplayInputError, InputError) as exc:
        print(f"fhir-vcf replay: {exc}", file=err)
        return EXIT_INPUT
    except FhirVcfError as exc:  # e.g. the in-process app's configuration
        print(f"fhir-vcf replay: {exc}", file=err)
        return EXIT_INPUT
    if args.format == "table":
        out.write(render_table(rows))
        out.write(summary(rows, bad, skipped) + "\n")
    else:
        print(summary(rows, bad, skipped), file=err)
    if args.junit:
        try:
            Path(args.junit).write_bytes(junit_xml(rows))
        except OSError as exc:
            print(f"fhir-vcf replay: --junit: cannot write {args.junit} ({exc.strerror})", file=err)
            return EXIT_INPUT
    if bad:
        return EXIT_INPUT
    return EXIT_OK if all(r.passed for r in rows) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fhir_vcf.replay ...` (the same as `fhir-vcf replay ...`)."""
    parser = argparse.ArgumentParser(prog="fhir-vcf")
    add_replay_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["replay", *(sys.argv[1:] if argv is None else argv)])
    return run_replay(args)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "EXTENSION",
    "HOOKS",
    "ORDER_HOOKS",
    "USER_ID",
    "Row",
    "Signer",
    "add_replay_parser",
    "build_request",
    "decision_of",
    "draft_orders",
    "junit_xml",
    "load_expectations",
    "run",
    "run_replay",
]
