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

    Coded vertebrae win: when a code names a level, the text beside it is not parsed (it usually
    repeats the code). Without a coded level the concept text and displays are parsed.
    """
    coded: list[str] = []
    evidence: list[Evidence] = []
    for coding, path in common.codings(concepts, element):
        if coding.system == "snomed" and coding.code in snomed.VERTEBRA:
            level = snomed.VERTEBRA[coding.code]
            coded.append(level)
            evidence.append(Evidence(ref, path, Method.CODE, f"SNOMED CT {coding.code} ({level})"))
    if coded:
        return sort_levels(coded), evidence, Method.CODE
    found: list[str] = []
    for value, path in common.texts(concepts, element):
        levels = text.find_levels(value)
        if levels:
            found.extend(levels)
            evidence.append(Evidence(ref, path, Method.TEXT, f"'{value}'"))
    return sort_levels(found), evidence, Method.TEXT
