"""Expectation files (`samples/expected.json`): file name → "Patient/id" → the documented answer.

Two readers share it: `fhir-vcf replay --expect` compares decisions with it, and demo mode dates
each sample patient by the `asOf` its expectation holds on (`fhir_vcf.service.demo_fhir`). Both
read it here, so neither transport imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import NamedTuple

from fhir_vcf.clinical_time import parse_as_of
from fhir_vcf.errors import InputError
from fhir_vcf.sources.hook_request import HOOKS


class Expectation(NamedTuple):
    """One patient's expected decision, the as-of date it was written for (when stated), and the
    hooks on which the service rightly answers no card for this patient (`silentOn`)."""

    decision: str
    as_of: date | None = None
    silent_on: frozenset[str] = frozenset()


def load_expectations(path: str | Path) -> dict[str, dict[str, Expectation]]:
    """`samples/expected.json`: file name → "Patient/id" → {"decision": ..., "asOf"?: ...}.

    An entry's `asOf` is the date its decision holds on: replay evaluates it as of that date unless
    `--as-of` says otherwise, so a saved bundle replays to the same answer forever. Other members
    (`levels`, `why`, ...) are ignored here. `silentOn`, a list of hook names, says where the
    service answers no card at all: patient-view stays silent for a patient with no vertebral
    fracture on record (docs/cds-hooks.md), while the evaluation itself says insufficient-data.
    A file that breaks this shape is an InputError naming it.
    """
    from fhir_vcf.sources.files import parse_json

    source = str(path)
    try:
        data = parse_json(Path(path).read_bytes(), source=source)
    except OSError as exc:
        raise InputError(f"{source}: cannot read the expectations file ({exc.strerror})") from None
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: expected an object of file name → patient → {{\"decision\": ...}}")
    found: dict[str, dict[str, Expectation]] = {}
    for name, patients in data.items():
        if not isinstance(patients, Mapping):
            raise InputError(f"{source}: {name}: expected an object of patient → {{\"decision\": ...}}")
        for patient, expectation in patients.items():
            decision = expectation.get("decision") if isinstance(expectation, Mapping) else None
            if not isinstance(decision, str):
                raise InputError(f"{source}: {name} {patient}: no decision")
            raw_as_of = expectation.get("asOf")
            try:
                as_of = parse_as_of(raw_as_of) if raw_as_of is not None else None
            except ValueError:
                raise InputError(f"{source}: {name} {patient}: asOf {raw_as_of!r} is not YYYY-MM-DD") from None
            silent_on = expectation.get("silentOn", [])
            if not isinstance(silent_on, list) or not all(h in HOOKS for h in silent_on):
                raise InputError(f"{source}: {name} {patient}: silentOn must be a list of hook names "
                                 f"({', '.join(HOOKS)})")
            found.setdefault(Path(name).name, {})[patient] = Expectation(decision, as_of, frozenset(silent_on))
    return found


__all__ = ["Expectation", "load_expectations"]
