"""The `screen`, `audit` and `synth` sub-commands: argument parsing and messages, nothing else.

    fhir-vcf screen SOURCE --out DIR [--as-of D] [--policy P] [--engine local|dask] [--workers N]
                    [--scheduler tcp://host:8786] [--all-patients] [--export-level ...] [--group ID]
    fhir-vcf audit  SOURCE --out DIR [same options; no --as-of: each procedure is judged on its day]
    fhir-vcf synth  --patients N --out DIR [--seed S] [--as-of D]

SOURCE is a folder of Bulk Data NDJSON files, or a FHIR server's base URL (http/https): then the
export is run into DIR/export first (SMART Backend Services from the FHIR_VCF_SMART_* variables when
they are set), and a second run with the same DIR resumes it. Exit 0 when the run finished (malformed
lines are reported and counted, they do not fail it), 2 for a usage error, an unusable source or a
failed export. No traceback reaches the user: `cli.main` turns every error into one line.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from fhir_vcf.arguments import share, whole_number
from fhir_vcf.clinical_time import as_of_argument, today_utc
from fhir_vcf.config import Settings
from fhir_vcf.errors import FhirVcfError
from fhir_vcf.population import ENGINES

EXIT_OK, EXIT_ERROR = 0, 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE",
                   help="a folder of Bulk Data NDJSON files, or a FHIR server base URL to $export from")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder for the outputs (created)")
    p.add_argument("--policy", default=Settings.policy, metavar="ID|FILE",
                   help=f"a built-in policy id or a YAML/JSON policy file (default: {Settings.policy})")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: processes on this machine (default); dask: a Dask distributed cluster")
    p.add_argument("--workers", type=whole_number("number"), metavar="N",
                   help="processes (local) or LocalCluster workers (dask); default: one per core")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: the scheduler, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (there is none when stderr is not a terminal)")
    p.add_argument("--export-level", choices=("system", "patient", "group"), default="patient",
                   help="with a server SOURCE: [base]/$export, [base]/Patient/$export (default) or "
                   "[base]/Group/ID/$export")
    p.add_argument("--group", metavar="ID", help="the Group id of a group-level export")
    p.add_argument("--since", metavar="INSTANT", help="with a server SOURCE: only resources changed since (_since)")


def add_population_parsers(sub: Any) -> None:
    screen = sub.add_parser(
        "screen", help="screen a whole population from Bulk FHIR (folder or $export)",
        description="Judge every patient of a Bulk Data export as of one date and write evaluations.jsonl, "
        "table.parquet, table.csv and summary.html (docs/population.md).")
    _common(screen)
    screen.add_argument("--as-of", type=as_of_argument, metavar="YYYY-MM-DD",
                        help="the evaluation date (default: today, UTC)")
    screen.add_argument("--all-patients", action="store_true",
                        help="list every patient, also those with no vertebral fracture or request (default: "
                        "they are counted in the summary, not listed)")
    screen.set_defaults(handler=run_population, mode="screen")

    audit = sub.add_parser(
        "audit", help="judge every completed vertebral augmentation as of the day it was performed",
        description="For every completed vertebral-augmentation Procedure (CPT 22510-22515 or its words), "
        "judge the record as it stood on the day performed, with that procedure as the request.")
    _common(audit)
    audit.set_defaults(handler=run_population, mode="audit", as_of=None, all_patients=False)

    synth = sub.add_parser(
        "synth", help="write a synthetic population as Bulk Data NDJSON",
        description="Write N synthetic patients, one NDJSON file per resource type; the same seed gives the "
        "same bytes.")
    synth.add_argument("--patients", type=whole_number("number"), required=True, metavar="N")
    synth.add_argument("--out", required=True, metavar="DIR")
    synth.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default: 1)")
    synth.add_argument("--as-of", type=as_of_argument, default=date(2025, 6, 30), metavar="YYYY-MM-DD",
                       help="the date the episodes are current at (default: 2025-06-30)")
    synth.add_argument("--vcf-share", type=share, metavar="P",
                       help="the share of patients with a fracture episode, 0-1 (default: by age and sex, "
                       "about 2 %%)")
    synth.set_defaults(handler=run_synth)


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _export(args: argparse.Namespace, err: TextIO) -> Path:
    from fhir_vcf.record import USED_TYPES
    from fhir_vcf.sources.bulk_export import BulkExportClient
    from fhir_vcf.sources.smart_backend import SmartBackendAuth

    settings = Settings.from_env()
    token = SmartBackendAuth.from_settings(settings) if settings.smart_client_id else None
    folder = Path(args.out) / "export"
    client = BulkExportClient(args.source, token=token,
                              on_progress=lambda text: print(f"fhir-vcf: export: {text}", file=err))
    print(f"fhir-vcf: exporting from {urlsplit(args.source).netloc} into {folder} (run again to resume)", file=err)
    result = client.export(folder, level=args.export_level, group=args.group, types=sorted(USED_TYPES),
                           since=args.since)
    if result.errors:
        print(f"fhir-vcf: the server reported export problems in {len(result.errors)} file(s) under "
              f"{folder / 'errors'}", file=err)
    return folder


def run_population(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.population.run import make_engine, run
    from fhir_vcf.rules.policy import load_policies, load_policy

    if args.scheduler and args.engine != "dask":
        print("fhir-vcf: --scheduler needs --engine dask", file=err)
        return EXIT_ERROR
    try:
        policy = load_policy(args.policy, load_policies())
        folder = _export(args, err) if _is_url(args.source) else Path(args.source)
        # A bar only on a terminal, as for `evaluate`: in a log file or a pipe it is a line of \r noise.
        on_terminal = bool(getattr(err, "isatty", lambda: False)())
        engine = make_engine(args.engine, workers=args.workers, scheduler=args.scheduler,
                             progress=on_terminal and not args.no_progress, err=err)
        report = run(args.mode, folder, args.out, as_of=args.as_of or today_utc(), policy=policy, engine=engine,
                     all_patients=args.all_patients, source_label=args.source, err=err)
    except FhirVcfError as exc:
        print(f"fhir-vcf: {exc}", file=err)
        return EXIT_ERROR
    unit = "procedures" if args.mode == "audit" else "patients listed"
    decisions = ", ".join(f"{k} {v}" for k, v in report.summary.to_dict()["decisions"].items())
    out.write(f"{report.patients} patients read, {report.rows} {unit} ({decisions or 'none'}); "
              f"{report.bad_lines} malformed lines, {report.errors} not evaluated; {report.seconds:.1f} s\n")
    written = sorted(f"{p.name}/" if p.is_dir() else p.name for p in Path(report.out).iterdir())
    out.write(f"outputs in {report.out}: {' '.join(written)}\n")
    return EXIT_OK


def run_synth(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from fhir_vcf.population.synth import write_population

    try:
        counts = write_population(args.out, args.patients, seed=args.seed, as_of=args.as_of,
                                  vcf_share=args.vcf_share)
    except OSError as exc:
        print(f"fhir-vcf: cannot write {args.out} ({exc.strerror})", file=err)
        return EXIT_ERROR
    out.write(json.dumps(counts, indent=1) + "\n")
    return EXIT_OK
