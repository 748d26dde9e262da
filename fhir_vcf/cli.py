"""The `fhir-vcf` command line: a thin shell over `fhir_vcf.evaluation`.

    fhir-vcf evaluate PATH... [--as-of YYYY-MM-DD] [--policy ID|FILE] [--format json|text|html]
    fhir-vcf policies
    fhir-vcf serve [--host H] [--port P] [--workers N] [--demo]   (fhir_vcf.server)
    fhir-vcf replay PATH... [--hook H] [--against URL] ...         (fhir_vcf.replay)
    fhir-vcf screen SOURCE --out DIR | audit SOURCE --out DIR | synth --patients N --out DIR
                                                                   (fhir_vcf.population)
    fhir-vcf db upgrade|current [--database-url URL]               (fhir_vcf.store, Alembic)
    fhir-vcf read-text "SENTENCE..." [--modality MR] [--format text|json]
                                                                   (fhir_vcf.evaluation.read_text)
    fhir-vcf --version

No clinical logic lives here. Exit codes: 0 when every input was evaluated; 2 for a usage error, a
bad policy, or when any input could not be evaluated (the rest are still evaluated and printed; each
bad file gets one line on stderr). A user never sees a traceback: known errors (`FhirVcfError`) are
printed as they are, anything unexpected as one "internal error" line naming the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TextIO

from fhir_vcf.arguments import whole_number
from fhir_vcf.clinical_time import as_of_argument, today_utc
from fhir_vcf.config import Settings
from fhir_vcf.errors import FhirVcfError, InputError
from fhir_vcf.version import __version__

EXIT_OK = 0
EXIT_ERROR = 2  # usage errors, bad policies and inputs that could not be evaluated alike
DEFAULT_POLICY = Settings.policy  # the service's default (FHIR_VCF_POLICY unset), one place


def _evaluate(record: Any, *, as_of: date, policy: Any) -> dict[str, Any]:
    """The one clinical call. Imported late so `--help`, `policies` and usage errors stay fast."""
    from fhir_vcf.evaluation import evaluate_record

    return evaluate_record(record, as_of=as_of, policy=policy)


def _load_policy(id_or_path: str) -> Any:
    from fhir_vcf.rules.policy import load_policies, load_policy

    return load_policy(id_or_path, load_policies())


def _error(stream: TextIO, message: str) -> None:
    print(f"fhir-vcf: {message}", file=stream)


# --------------------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate FHIR Bundle files (or directories of them)",
        description="Evaluate each patient of each Bundle file against a coverage policy.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a Bundle / resource JSON file, or a directory of them")
    p.add_argument(
        "--as-of",
        type=as_of_argument,
        default=None,
        metavar="YYYY-MM-DD",
        help="the evaluation date every day count uses (default: today, UTC)",
    )
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        metavar="ID|FILE",
        help=f"a built-in policy id or a YAML/JSON policy file (default: {DEFAULT_POLICY}; "
        "FHIR_VCF_POLICY and FHIR_VCF_POLICY_FILES apply to the service, not here)",
    )
    p.add_argument("--format", choices=("json", "text", "html"), default="json",
                   help="json (JSON Lines), text (100 columns), or html (one self-contained explanation page, "
                   "a section per patient, for a browser or print)")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.outputs.text import render_text
    from fhir_vcf.sources.files import bundle_files, load_file

    try:
        policy = _load_policy(args.policy)
    except FhirVcfError as exc:
        _error(err, str(exc))
        return EXIT_ERROR
    as_of = args.as_of or today_utc()
    files = bundle_files(args.paths)
    if not files:
        _error(err, "no Bundle files (*.json) found in " + ", ".join(args.paths))
        return EXIT_ERROR

    failed = False
    first = True
    pages: list[dict[str, Any]] = []  # --format html: every evaluation goes on one page, written at the end
    with _progress(files, err) as bar:

        def say(line: str) -> None:  # one stderr line, the progress bar kept below it
            with bar.external_write_mode(file=err):
                print(line, file=err)

        for path in bar:
            source = str(path)
            try:
                records = load_file(path)
            except InputError as exc:
                say(str(exc))  # already names the file, the resource and the element
                failed = True
                continue
            except FhirVcfError as exc:
                say(_prefixed(source, exc))
                failed = True
                continue
            except Exception as exc:  # a bug, not bad input: say so in one line, never a traceback
                say(f"fhir-vcf: internal error evaluating {source}: {type(exc).__name__}")
                failed = True
                continue
            if not records:  # e.g. an empty searchset or a lone Practitioner: nothing was evaluated
                say(f"{source}: no patient found (nothing to evaluate)")
                failed = True
                continue
            for record in records:
                try:
                    evaluation = _evaluate(record, as_of=as_of, policy=policy)
                    if args.format == "html":
                        pages.append(evaluation)
                        continue
                    text = _render(evaluation, args.format, render_text)
                except FhirVcfError as exc:
                    say(_prefixed(source, exc))
                    failed = True
                    continue
                except Exception as exc:
                    say(f"fhir-vcf: internal error evaluating {source}: {type(exc).__name__}")
                    failed = True
                    continue
                with bar.external_write_mode(file=err):
                    if args.format == "text" and not first:
                        out.write("\n")
                    out.write(text)
                    out.flush()
                first = False
    if pages:
        out.write(_html(pages, args))
        out.flush()
    return EXIT_ERROR if failed else EXIT_OK


# Progress is for people: shown on stderr only when it is a terminal, and only once a run has
# lasted this long (a few files never show a bar).
PROGRESS_DELAY_SECONDS = 2.0


def _progress(files: Sequence[Any], err: TextIO) -> Any:
    """tqdm over the files on `err`; silent (no output at all) when `err` is not a terminal, so logs,
    pipes and CI see only the results and the error lines."""
    from tqdm import tqdm

    interactive = bool(getattr(err, "isatty", lambda: False)())
    return tqdm(files, file=err, disable=not interactive, delay=PROGRESS_DELAY_SECONDS, unit="file",
                desc="evaluate", leave=False, dynamic_ncols=True)


def _html(evaluations: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The explanation page the service shows, for every evaluated patient (outputs/page.py)."""
    from fhir_vcf.outputs.page import PageNote, render_page

    inputs = ", ".join(args.paths)
    noun = "patient" if len(evaluations) == 1 else "patients"
    note = PageNote(meta_line=f"{len(evaluations)} {noun} · written by fhir-vcf evaluate",
                    footer_note=f"Evaluated from {inputs}.")
    return render_page(evaluations, note)


def _render(evaluation: dict[str, Any], fmt: str, render_text: Callable[[dict[str, Any]], str]) -> str:
    if fmt == "text":
        return render_text(evaluation)
    # JSON Lines: compact, one object per line; ensure_ascii keeps the line pure ASCII.
    return json.dumps(evaluation, separators=(",", ":")) + "\n"


def _prefixed(source: str, exc: FhirVcfError) -> str:
    """The error line, with the file named once (an InputError with a source already names it)."""
    text = str(exc)
    return text if text.startswith(source) else f"{source}: {text}"


# --------------------------------------------------------------------------- policies


def _add_policies(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "policies",
        help="list the built-in policies",
        description="List the built-in policies: id, then title. FHIR_VCF_POLICY_FILES is not read here; "
        "to try a policy file, pass it to `fhir-vcf evaluate --policy FILE`.",
    )
    p.add_argument("--schema", action="store_true",
                   help="print the JSON Schema of a policy file instead (as docs/policy.schema.json and "
                   "GET /api/v1/policies/schema)")
    p.set_defaults(handler=_run_policies)


def _run_policies(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.rules.policy import load_policies, policy_json_schema

    if args.schema:
        out.write(json.dumps(policy_json_schema(), indent=2) + "\n")
        return EXIT_OK

    try:
        policies = load_policies()
    except FhirVcfError as exc:
        _error(err, str(exc))
        return EXIT_ERROR
    width = max((len(pid) for pid in policies), default=0)
    for pid in sorted(policies):
        out.write(f"{pid.ljust(width)}  {policies[pid].title}".rstrip() + "\n")
    return EXIT_OK


# --------------------------------------------------------------------------- serve

# The port `serve` listens on without --port: one variable for the container's bind, EXPOSE and
# HEALTHCHECK (Dockerfile), and for anyone else who configures through the environment.
PORT_ENV = "FHIR_VCF_PORT"
DEFAULT_PORT = 8080


_port = whole_number("port", 1, 65535)
_workers = whole_number("worker count")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the service (CDS Hooks + REST API)",
        description="Run the service on gunicorn until stopped (Ctrl-C). Configuration comes from FHIR_VCF_* "
        "variables (docs/configuration.md); a bad value stops the start with exit status 2.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=None,
                   help=f"port to listen on (default: {PORT_ENV} when set, else {DEFAULT_PORT})")
    p.add_argument("--workers", type=_workers, default=None,
                   help="gunicorn worker processes (default: FHIR_VCF_WORKERS, else one per CPU the container may use; "
                        "FHIR_VCF_THREADS threads each)")
    p.add_argument("--demo", action="store_true",
                   help="also serve the sample patients at /demo/fhir, and print curl commands to try "
                   "(same as FHIR_VCF_DEMO=true; never in production)")
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.server import serve  # gunicorn is imported only when serving

    port = args.port
    if port is None:
        try:
            port = _port(os.environ.get(PORT_ENV) or str(DEFAULT_PORT))
        except argparse.ArgumentTypeError as exc:
            _error(err, f"{PORT_ENV}: {exc}")
            return EXIT_ERROR
    return serve(host=args.host, port=port, workers=args.workers, demo=args.demo, err=err)


# --------------------------------------------------------------------------- replay


def _add_replay(sub: argparse._SubParsersAction) -> None:
    from fhir_vcf.replay import add_replay_parser  # sets handler=run_replay(args, out, err)

    add_replay_parser(sub)


# --------------------------------------------------------------------------- screen, audit, synth


def _add_population(sub: argparse._SubParsersAction) -> None:
    from fhir_vcf.population.commands import add_population_parsers  # sets handler(args, out, err)

    add_population_parsers(sub)


# --------------------------------------------------------------------------- db


def _add_db(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "db",
        help="database migrations: upgrade, current",
        description="The store's schema migrations (Alembic revisions shipped with fhir-vcf). The service "
        "also upgrades the database when it starts; `db upgrade` does it ahead of a deployment. A database "
        "from a release before Alembic is recognised and upgraded without loss.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("upgrade", "upgrade the database to this release's newest revision (one transaction)"),
        ("current", "print the database's revision and this release's newest one; change nothing"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("--database-url", metavar="URL",
                            help="the database (default: FHIR_VCF_DATABASE_URL, else sqlite:///var/fhir-vcf.db)")
        action.set_defaults(handler=_run_db)


def _run_db(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.store import create_store_engine, head_revision, migrate, read_revision, unbounded

    url = args.database_url or Settings.from_env().database_url
    engine = create_store_engine(url)
    try:
        with unbounded():  # a migration may run longer than a request's database deadline
            revision = migrate(engine) if args.action == "upgrade" else read_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "(head)" if revision == head else f"(head: {head}; upgrade pending)"
    out.write(f"{revision or 'none'} {state}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- read-text

MODALITIES = ("MR", "NM", "PT", "CT", "DX", "CR", "none")


def _add_read_text(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "read-text",
        help="show what the mappers take from a report text, and why",
        description="Read report text as the mappers read a DiagnosticReport conclusion and print each finding "
        "they take from it: the level, the fact and criterion it feeds, the assertion (affirmed, negated, "
        "possible, historical, resolved, hypothetical, other-person), the trigger that decided it and its scope.",
    )
    p.add_argument("text", nargs="+", metavar="TEXT", help="the report text (several arguments are joined by spaces; "
                   "'-' reads it from standard input)")
    p.add_argument("--modality", choices=MODALITIES, default="MR",
                   help="the report's modality, DICOM code (default: MR; edema in a CT or radiograph report shows "
                   "no acuity; 'none' for a clinic note)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="text (a table) or json (a list)")
    p.set_defaults(handler=_run_read_text)


def _run_read_text(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.evaluation import read_text

    value = sys.stdin.read() if args.text == ["-"] else " ".join(args.text)
    if not value.strip():
        _error(err, "read-text: no text to read")
        return EXIT_ERROR
    findings = read_text(value, modality=None if args.modality == "none" else args.modality)
    if args.format == "json":
        out.write(json.dumps(findings, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not findings:
        # "No evidence of fracture at L2" holds the word but no fact: a fracture counts only when affirmed.
        out.write("no finding the mappers read (they take edema, acuity, height, retropulsion and exclusion "
                  "words, and a fracture only when the text affirms it)\n")
        return EXIT_OK
    for f in findings:
        mention = " ".join(f["mention"].split())
        out.write(f"{', '.join(f['levels']) or '-'}  {f['criterion']} {f['name']}: {f['reading']}\n")
        out.write(f"    '{mention}' is {f['assertion']}: {f['why']}")
        out.write(f"; scope '{f['scope']}'\n" if f["scope"] else "\n")
        out.write(f"    in '{f['sentence']}'\n")
    return EXIT_OK


# --------------------------------------------------------------------------- parser and entry point

# name → adds its sub-parser, which sets `handler(args, out, err) -> int`.
SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "evaluate": _add_evaluate,
    "policies": _add_policies,
    "serve": _add_serve,
    "replay": _add_replay,
    "population": _add_population,  # screen, audit, synth
    "db": _add_db,
    "read-text": _add_read_text,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhir-vcf",
        description="Explained vertebral-augmentation (vertebroplasty / kyphoplasty) coverage decisions "
        "from FHIR R4 records.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return args.handler(args, sys.stdout, sys.stderr)
    except BrokenPipeError:  # `fhir-vcf evaluate samples | head`: the reader left, nothing to report
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except FhirVcfError as exc:
        _error(sys.stderr, str(exc))
        return EXIT_ERROR
    except Exception as exc:  # a bug outside any one file (e.g. the policy machinery): one line, no traceback
        _error(sys.stderr, f"internal error: {type(exc).__name__}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
