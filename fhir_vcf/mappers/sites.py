"""Vertebral levels from body sites: SNOMED vertebra codes first, then the words beside them.

Shared by the fracture, imaging and request mappers, so that a level is read the same way wherever
it appears (input profile, "level(s)"). Region codes (thoracic spine, lumbar spine) name no level.
"""

from __future__ import annotations

from typing import Any

from fhir_vcf.facts import Evidence, Method
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import common, text
from fhir_vcf.mappers.codes import snomed


def level_of_coding(coding: Any) -> str | None:
    """The level of one FHIR Coding (e.g. ImagingStudy.series.bodySite): SNOMED code, else display."""
    if coding is None:
        return None
    if (coding.system or "").rstrip("/") == "http://snomed.info/sct" and coding.code in snomed.VERTEBRA:
        return snomed.VERTEBRA[coding.code]
    found = text.find_levels(coding.display)
    return found[0] if len(found) == 1 else None


def body_site_levels(ref: str, concepts: Any, element: str = "bodySite") -> tuple[list[str], list[Evidence], Method]:
    """(levels head to foot, evidence, method) of a bodySite CodeableConcept or list of them.

    Within one concept a coded vertebra wins: its text usually repeats the code and is not parsed.
    A concept without a coded vertebra is read through its text and displays. The method is CODE
    when every level came from a code.
    """
    if concepts is None:
        return [], [], Method.CODE
    items = concepts if isinstance(concepts, list) else [concepts]
    found: list[str] = []
    evidence: list[Evidence] = []
    method = Method.CODE
    for i, concept in enumerate(items):
        path = f"{element}[{i}]" if isinstance(concepts, list) else element
        coded = []
        for coding, cpath in common.codings(concept, path):
            if coding.system == "snomed" and coding.code in snomed.VERTEBRA:
                level = snomed.VERTEBRA[coding.code]
                coded.append(level)
                evidence.append(Evidence(ref, cpath, Method.CODE, f"SNOMED CT {coding.code} ({level})"))
        if coded:
            found.extend(coded)
            continue
        for value, tpath in common.texts(concept, path):
            levels = text.find_levels(value)
            if levels:
                found.extend(levels)
                method = Method.TEXT
                evidence.append(Evidence(ref, tpath, Method.TEXT, f"'{value}'"))
    return sort_levels(found), evidence, method
