"""The record as it stood on the as-of date: the one pass over a record that every fact family reads.

Resources dated after the as-of date are invisible to the evaluation (input profile, "The evaluation
date"). `map_record` builds one `VisibleRecord` and hands it to every family, so that the record is
sorted into what the date shows and hides once per evaluation rather than once per family (issue 11:
one pre-pass per record); a resource's full clinical date (`common.clinical_when`) is worked out only
when a family asks for it. The families also take a plain
`PatientRecord` with an as-of date (`visible`), as their tests call them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fhir_vcf.mappers import common
from fhir_vcf.record import PatientRecord


class VisibleRecord:
    """The visible resources of a record by type, in record order, and how many the date hides.

    A resource with no clinical date stays visible (nothing says it is from the future). `record` is
    the whole record, for the few reads that are not limited to the date (see `map_symptoms`).
    """

    def __init__(self, record: PatientRecord, as_of: date) -> None:
        self.record = record
        self.as_of = as_of
        self.patient = record.patient
        self.source = record.source
        # The record's own `ref` (canonical reference of a resource), not a method that calls it: the
        # mappers ask a few hundred times an evaluation.
        self.ref: Callable[[Any], str] = record.ref
        self._shown: dict[str, list[Any]] = {}
        self._hidden = 0
        self._free_texts: dict[str, list[tuple[Any, str, str, str]]] = {}
        self._joined: dict[tuple[str, ...], list[tuple[Any, str, str, str]]] = {}
        after = common.after  # every resource is asked once; most are never dated again (see `after`)
        for rtype, resources in record.resources.items():
            shown = [r for r in resources if not after(r, as_of)]
            self._shown[rtype] = shown
            self._hidden += len(resources) - len(shown)

    def of_type(self, *types: str) -> list[Any]:
        """The visible resources of these types, type by type. The list of a single type is the view's
        own: read it, never change it."""
        if len(types) == 1:
            return self._shown.get(types[0], [])
        found: list[Any] = []
        for t in types:
            found.extend(self._shown.get(t, ()))
        return found

    def free_texts(self, *types: str) -> list[tuple[Any, str, str, str]]:
        """`common.free_texts` of the visible resources of these types (by default its own), as one list
        (read it, never change it): each type's rows gathered once per view, and each list of types
        joined once, since symptoms, care and exclusions all read them (a list is read faster than a
        generator is resumed)."""
        joined = self._joined.get(types)
        if joined is None:
            joined = self._joined[types] = [row for rtype in types or common.FREE_TEXT_TYPES
                                            for row in self._type_rows(rtype)]
        return joined

    def _type_rows(self, rtype: str) -> list[tuple[Any, str, str, str]]:
        rows = self._free_texts.get(rtype)
        if rows is None:
            rows = self._free_texts[rtype] = self._rows(rtype)
        return rows

    def _rows(self, rtype: str) -> list[tuple[Any, str, str, str]]:
        """`common.free_texts(self, rtype)` as a list, built without its generator: each resource's
        texts (`common.texts_of`), the reference only of a resource that has some."""
        rows: list[tuple[Any, str, str, str]] = []
        texts_of, ref = common.texts_of, self.ref
        for resource in self._shown.get(rtype, ()):
            found = texts_of(resource)
            if found:
                at = ref(resource)
                for element, text in found:  # a loop: a comprehension is a call of its own
                    rows.append((resource, at, element, text))
        return rows

    def hidden(self) -> int:
        """How many resources of the record this view hides (dated after the as-of date)."""
        return self._hidden

    @property
    def patient_resource(self) -> Any:
        return self.record.patient_resource

    def resolve(self, reference: Any) -> Any:
        target = self.record.resolve(reference)
        if target is not None and common.after(target, self.as_of):
            return None
        return target


def visible(record: PatientRecord | VisibleRecord, as_of: date) -> VisibleRecord:
    """The record as of `as_of`: the view itself when `map_record` passes the one it built for that
    date, else a view built now."""
    if isinstance(record, VisibleRecord):
        if record.as_of == as_of:
            return record
        record = record.record
    return VisibleRecord(record, as_of)
