"""`ctx.match_names` (a medication text's names, remembered per worker for short texts) against the
plain reading it replaces (`ctx.read_names`, read now), on every string of every bundle under `samples/`
and `tests/data/` and on the drug names of the data files, asked twice (the second answer remembered)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from json_strings import strings_in

from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import care
from fhir_vcf.mappers.codes import rxnorm

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"analgesics": care._ANALGESIC_NAMES, "osteoporosis drugs": care._OSTEOPOROSIS_NAMES,
          "anticoagulants": care._ANTICOAGULANT_NAMES}


def _strings() -> set[str]:
    """Every string of every JSON file under samples/ and tests/data/ (the expectations' words too)."""
    return {text for folder in ("samples", "tests/data") for path in sorted((ROOT / folder).rglob("*.json"))
            for text in strings_in(json.loads(path.read_text(encoding="utf-8")))}


def _plain(names: dict[str, re.Pattern[str]], body: str) -> tuple[tuple[str, object], ...]:
    return ctx.read_names(names, ctx.TermFamilies(names, remember=False), body)


def test_remembered_names_are_the_plain_reading_on_every_bundle_string() -> None:
    names_of_drugs = {n for table in (rxnorm.ANALGESICS, rxnorm.OSTEOPOROSIS_DRUGS, rxnorm.ANTICOAGULANTS)
                      for n in table.values()}
    bodies = sorted(_strings() | names_of_drugs | {f"no {n}" for n in names_of_drugs}
                    | {f"Patient declined {n}; takes {n} 5 mg daily" for n in names_of_drugs})
    named = 0
    for table, names in TABLES.items():
        for body in bodies:
            expected = _plain(names, body)
            assert ctx.match_names(names, body) == expected, (table, body)
            assert ctx.match_names(names, body) == expected, (table, body)  # from memory when short
            named += bool(expected)
    assert named > 20  # the texts exercise both answers


def test_short_texts_only_are_remembered_and_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = ctx.NameReader(care._ANALGESIC_NAMES)
    long = "oxycodone 5 mg " + "x" * ctx.TermFilter.SHORT
    assert reader.read(long) == _plain(care._ANALGESIC_NAMES, long)
    assert long not in reader._seen
    monkeypatch.setattr(ctx.TermFilter, "LIMIT", 3)
    for i in range(7):
        reader.read(f"acetaminophen {i}")
    assert 1 <= len(reader._seen) <= 3
