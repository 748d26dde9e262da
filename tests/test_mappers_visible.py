"""`VisibleRecord.free_texts` (each type's rows gathered once per view, references worked out only for
resources that have text) gives exactly the rows read resource by resource, in the same order, for
every sample and test bundle."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from fhir_vcf.mappers import common, exclusions
from fhir_vcf.mappers.visible import VisibleRecord
from fhir_vcf.sources.files import bundle_files, load_file

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2025, 6, 30)
BUNDLES = bundle_files([ROOT / "samples", ROOT / "samples" / "ehr-exports", ROOT / "tests" / "data"])


def _slow(view: VisibleRecord, types: tuple[str, ...]) -> list[tuple]:
    """Every resource of the types, its reference and each of its texts, read afresh."""
    return [(resource, view.ref(resource), element, text)
            for resource in view.of_type(*(types or common.FREE_TEXT_TYPES))
            for element, text in common._free_texts(resource)]


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_the_views_free_texts_are_every_resources_texts(path: Path) -> None:
    for record in load_file(path):
        view = VisibleRecord(record, AS_OF)
        for types in ((), exclusions._TEXT_TYPES, ("Observation",), ("Condition", "CarePlan")):
            slow = _slow(view, types)
            assert list(common.free_texts(view, *types)) == slow
            assert list(view.free_texts(*types)) == slow
            assert list(view.free_texts(*types)) == slow  # and again, from the view's rows


def test_the_bundles_have_free_texts() -> None:
    assert len(BUNDLES) > 20
    assert any(_slow(VisibleRecord(r, AS_OF), ()) for p in BUNDLES for r in load_file(p))
