"""The test bundles as the fast-path tests use them: every file under `samples/` and `tests/data/`,
the resources of them the loader reads, every evaluation of them, and record text made hostile.

A fast path is held to the route it replaces on all of these, so they live in one place."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from fhir_vcf.errors import FhirVcfError
from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.record import USED_TYPES, load_document
from fhir_vcf.rules.policy import load_policies

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted(p for folder in ("samples", "tests/data") for p in (ROOT / folder).rglob("*.json")
                 if p.name != "expected.json")
AS_OF_DATES = (date(2025, 6, 30), date(2026, 1, 15))
HOSTILE = ' <script>alert("x")</script> & \'q\' <b>'


def used_resources() -> list[dict[str, Any]]:
    """Every resource of a type the loader reads, in every bundle (or single resource) that parses."""
    found = []
    for path in BUNDLES:
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        bundle = isinstance(doc, dict) and doc.get("resourceType") == "Bundle"
        entries = doc.get("entry") if bundle else [{"resource": doc}]
        if isinstance(entries, list):
            found += [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                      and e["resource"].get("resourceType") in USED_TYPES]
    return found


def evaluations_by_bundle() -> dict[str, list[dict[str, Any]]]:
    """Every bundle's evaluations under every policy and both as-of dates, by the bundle's path
    (the bundles that test refusal give none)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in BUNDLES:
        try:
            records = load_document(json.loads(path.read_text(encoding="utf-8")), source=path.name)
        except (FhirVcfError, ValueError):
            continue
        for record in records:
            for policy in load_policies().values():
                for as_of in AS_OF_DATES:
                    out.setdefault(str(path.relative_to(ROOT)), []).append(
                        evaluate_record(record, as_of=as_of, policy=policy))
    return out


def hostile(value: Any) -> Any:
    """Every string of a value with markup, quotes and an ampersand appended."""
    if isinstance(value, dict):
        return {k: hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hostile(v) for v in value]
    return value + HOSTILE if isinstance(value, str) else value
