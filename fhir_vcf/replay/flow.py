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

This module is the flow (requests, checks, expectations, the command line); the transports and
JWT signing are in `fhir_vcf.replay.transport`, the rows and their output in `fhir_vcf.replay.output`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from fhir_vcf.clinical_time import as_of_argument
from fhir_vcf.errors import FhirVcfError, InputError
from fhir_vcf.logs import card_decision
from fhir_vcf.outputs.cards import DECISION_WORDS
from fhir_vcf.replay.output import NO_CARD, Progress, Row, junit_xml, render_table, summary
from fhir_vcf.replay.transport import InProcess, Remote, ReplayInputError, Signer, Transport, outcome_text
from fhir_vcf.sources import hook_request
from fhir_vcf.sources.expectations import Expectation, load_expectations
from fhir_vcf.sources.hook_request import EXTENSION, HOOKS, ORDER_HOOKS, USER_ID
from fhir_vcf.sources.memory import MemoryFhir

# The FHIR models, requests, Flask and prometheus_client load only when replay runs, so
# `fhir-vcf --help` stays fast (and `fhir-vcf serve` chooses prometheus_client's mode first).

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2

# The words of a card's "**Decision:** ..." line, back to the decision codes.
_DECISION_WORDS = {words: code for code, words in DECISION_WORDS.items()}
_DETAIL_DECISION = re.compile(r"\*\*Decision:\*\*\s*([A-Za-z][A-Za-z -]*?)\s*(?:·|\n|$)")
_DETAIL_AS_OF = re.compile(r"\*\*As of:\*\*\s*(\d{4}-\d{2}-\d{2})")


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


# --- running --------------------------------------------------------------------------------------


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
        row.problems.append(f"HTTP {answer.status}: {outcome_text(answer)}")
        row.error = row.problems[-1]
        return row
    if answer.body is None:
        row.problems.append("the response is not JSON")
        row.error = row.problems[-1]
        return row
    row.problems += card_problems(answer.body)
    cards = [c for c in answer.body.get("cards") or [] if isinstance(c, Mapping)]
    row.cards = len(cards)
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



def run(
    paths: Sequence[str],
    *,
    transport: Transport,
    hooks: Sequence[str],
    as_of: date | None,
    expectations: Mapping[str, Mapping[str, Expectation]] | None,
    err: TextIO,
    on_row: Callable[[Row], None] = lambda row: None,
) -> tuple[list[Row], list[Row], list[Row]]:
    """Replay every file; returns (rows of the calls made, unusable input files, skipped order hooks):
    the last two as rows that say why, for JUnit."""
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
    bad: list[Row] = []
    skipped: list[Row] = []

    def unusable(path: Path, reason: str) -> None:
        progress.clear()
        print(reason, file=err)
        bad.append(Row(file=path.name, patient="", hook="", error=reason))

    for index, path in enumerate(files, 1):
        progress.show(index, path.name)
        source = str(path)
        try:
            document = parse_json(path.read_bytes(), source=source)
            records = load_document(document, source=source)
        except FileNotFoundError:
            unusable(path, f"{source}: no such file")
            continue
        except OSError as exc:
            unusable(path, f"{source}: cannot read the file ({exc.strerror})")
            continue
        except InputError as exc:
            unusable(path, str(exc))
            continue
        store = MemoryFhir.from_bundles([document])
        patients = [store.canonical(r.patient) for r in records if store.canonical(r.patient).startswith("Patient/")]
        if not patients:
            unusable(path, f"{source}: no patient found (nothing to replay)")
            continue
        for patient in patients:
            for hook in hooks:
                if hook in ORDER_HOOKS and not draft_orders(store, patient.split("/", 1)[1]):
                    skipped.append(Row(file=path.name, patient=patient, hook=hook,
                                       skipped="no draft vertebral augmentation order for this order hook"))
                    continue
                expectation = (expectations or {}).get(path.name, {}).get(patient)

                def warn(message: str) -> None:
                    progress.clear()
                    print(message, file=err)

                row = replay_patient(
                    transport, store, patient, services[hook], file=path.name,
                    as_of=as_of or (expectation.as_of if expectation else None),
                    expected=_expected(expectation, hook), warn=warn,
                )
                rows.append(row)
                on_row(row)
    progress.clear()
    return rows, bad, skipped


def _expected(expectation: Expectation | None, hook: str) -> str | None:
    """The decision a hook's answer should state, or NO_CARD where the expectation says it is silent."""
    if expectation is None:
        return None
    return NO_CARD if hook in expectation.silent_on else expectation.decision


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
    p.add_argument("--as-of", type=as_of_argument, metavar="YYYY-MM-DD",
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
        out.write(summary(rows, len(bad), len(skipped)) + "\n")
    else:
        print(summary(rows, len(bad), len(skipped)), file=err)
    if args.junit:
        try:
            Path(args.junit).write_bytes(junit_xml(rows, skipped=skipped, unusable=bad))
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



__all__ = [
    "EXTENSION",
    "HOOKS",
    "ORDER_HOOKS",
    "USER_ID",
    "add_replay_parser",
    "build_request",
    "decision_of",
    "draft_orders",
    "load_expectations",
    "run",
    "run_replay",
]
