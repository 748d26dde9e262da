"""PatientRecord: one patient's validated resources, with reference resolution.

Whatever the source (a Bundle file, CDS Hooks prefetch, a FHIR server), the resources end up in
`load_resources`, which sets aside what carries no clinical meaning (types no mapper reads, records
in error, cancelled or refuted) and what no criterion reads (routine vital signs and lab results,
everyday chronic prescriptions and problems: `routine-resources.yaml`), all decided from the JSON
before any check and counted in `PatientRecord.skipped`, reads the rest as
`fhir_vcf.elements` Elements (checked against the R4B definitions, without building the models),
indexes every form a reference can take (`Type/id`, an absolute URL, a `urn:uuid:` fullUrl) and
groups the resources by the patient they belong to. A Bundle nested in the Bundle is read through.

Every problem with a resource that is read is an InputError naming the resource and the element,
in words a sender can act on ("Observation/x valueQuantity.value: invalid Observation: 'abc' is not a valid
FHIR decimal"), never a pydantic message or a traceback.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from fhir_vcf import collector
from fhir_vcf.elements import KEY_OPTIONS, Element, NotValid, model_of, read_resource, remember_by_text
from fhir_vcf.errors import InputError

# The resource types the mappers read. Anything else is skipped unvalidated: a feed full of
# Practitioners and Medications costs nothing and cannot fail the evaluation.
USED_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Condition",
        "ImagingStudy",
        "Observation",
        "DiagnosticReport",
        "Encounter",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "Medication",
        "Procedure",
        "ServiceRequest",
        "DeviceRequest",
        "AllergyIntolerance",
        "CarePlan",
        "DocumentReference",
    }
)

# Why a resource (or a part of one) was set aside: the keys of `PatientRecord.skipped`, which the
# evaluation reports as `skipped` (issue 9: nothing is dropped without a trace). The sources add their
# own (`fhir_vcf.sources.binding.SKIP_REASONS`: resources not proven to be the patient's) and the
# mappers one more (`AFTER_AS_OF`).
ENTERED_IN_ERROR = "entered-in-error"  # status or verificationStatus entered-in-error, docStatus too
CANCELLED = "cancelled"
REFUTED = "refuted"  # verificationStatus refuted
SUPERSEDED = "superseded"  # a DocumentReference replaced by a newer version (status superseded)
UNSUPPORTED_ATTACHMENT = "unsupported-attachment-type"  # an attachment that is not text/plain (counted each)
ATTACHMENT_NOT_INLINE = "attachment-not-inline"  # text/plain by `url` only: nothing is fetched (counted each)
NO_READABLE_TEXT = "document-without-readable-text"  # a DocumentReference none of whose attachments is read
TYPE_NOT_READ = "type-not-read"  # a resource type no mapper reads (Practitioner, OperationOutcome, Claim...)
# A vital sign or lab result, a prescription, a problem no criterion reads, set aside unvalidated
# (routine-resources.yaml says which).
ROUTINE_RESULT = "routine-result"
ROUTINE_PRESCRIPTION = "routine-prescription"
ROUTINE_PROBLEM = "routine-problem"
DUPLICATE = "duplicate"  # an earlier copy of the same Type/id, replaced by the later one (CDS Hooks)
AFTER_AS_OF = "after-as-of"  # dated after the evaluation's as-of date (counted by the mappers' view)

# Report text is read from plain-text attachments only (input profile, "report text": "other content
# types are ignored"), inline base64 `data` only, and at most this many characters of each.
READABLE_CONTENT_TYPE = "text/plain"
MAX_ATTACHMENT_TEXT = 20_000

# Where each used type points at its patient.
_PATIENT_ELEMENTS = ("subject", "patient")


@dataclass
class PatientRecord:
    """The validated resources of one patient.

    `patient` is the canonical reference ("Patient/123"; the fullUrl when the Patient has no id).
    `resources` keeps bundle order within each type. `index` is shared by every record loaded from
    the same input, so a reference to a resource filed under no patient (an Encounter without a
    subject, say) still resolves; `refs` (canonical reference by object id) is shared the same way,
    so `ref` works for whatever `resolve` returns.
    """

    patient: str
    source: str = ""
    resources: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    index: dict[str, Resource] = field(default_factory=dict)
    refs: dict[int, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # what was set aside, by reason (see above)

    def of_type(self, *types: str) -> list[Resource]:
        found: list[Resource] = []
        for t in types:
            found.extend(self.resources.get(t, ()))
        return found

    @property
    def patient_resource(self) -> Resource | None:
        return self.index.get(self.patient)

    def ref(self, resource: Resource) -> str:
        """The canonical reference of a resource: "Type/id", else its fullUrl.

        `refs` is shared by the records of one input, so a resource this record reaches through the
        shared index (another patient's Encounter, an unfiled one) has its reference too; a resource
        known to no record (built elsewhere) falls back to "Type/id".
        """
        found = self.refs.get(id(resource))
        if found is not None:
            return found
        rid = getattr(resource, "id", None)
        return f"{resource.get_resource_type()}/{rid}" if rid else resource.get_resource_type()

    def resolve(self, reference: Any) -> Resource | None:
        """The resource a Reference (or a reference string) points at, if it is in the record."""
        value = getattr(reference, "reference", reference)
        if not isinstance(value, str) or not value:
            return None
        return self.index.get(value) or self.index.get(relative_reference(value))

    def add(self, resource: Resource, ref: str) -> None:
        self.resources[resource.get_resource_type()].append(resource)
        self.refs[id(resource)] = ref
        self.index.setdefault(ref, resource)


def relative_reference(reference: str) -> str:
    """"http://x/fhir/Patient/1" or "Patient/1/_history/2" → "Patient/1"; other forms unchanged."""
    if reference.count("/") < 2:  # "Type/id" (most references and fullUrls), or less: nothing to cut
        return reference
    if reference.startswith("urn:"):
        return reference
    parts = [p for p in reference.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


def _element_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "root":  # pydantic's name for the value of a RootModel, not a FHIR element
            path += ("." if path else "") + str(part)
    return path


def _unknown_type(rtype: Any) -> str:
    hint = ""
    if isinstance(rtype, str) and rtype and model_of(rtype[0].upper() + rtype[1:]) is not None:
        hint = f" (resource types are case-sensitive: did you mean {rtype[0].upper() + rtype[1:]!r}?)"
    return f"unknown FHIR resource type {rtype!r}{hint}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# "DateTime value string does not match spec regex." and its kin, from the fhir.resources primitives.
_PRIMITIVE = re.compile(r"(\w+) value (?:string )?does not match spec regex")
_CHOICE = re.compile(r"Any of one field value is expected from this list \[(.*)\], but got multiple")


def _describe(error: Mapping[str, Any], rtype: str) -> tuple[str, tuple[Any, ...]]:
    """(a readable problem, its location) for one pydantic error of an R4B model."""
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    msg = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"is not an element of {rtype}", loc
    if kind == "missing":
        return "a required element is missing", loc
    if (m := _CHOICE.search(msg)) is not None:
        names = re.findall(r"'(\w+)'", m[1])
        given = [n for n in names if isinstance(value, Mapping) and n in value]
        prefix = names[0] if names else ""
        while prefix and not all(n.startswith(prefix) for n in names):  # effectiveDateTime, ... → effective
            prefix = prefix[:-1]
        return f"only one of {', '.join(given or names)} may be given", (*loc, f"{prefix}[x]") if prefix else loc
    if isinstance(value, str) and not value.strip():
        return "empty value: FHIR has no empty strings (leave the element out)", loc
    if (m := _PRIMITIVE.search(msg)) is not None:
        name = m[1][0].lower() + m[1][1:]
        return f"{_show(value)} is not a valid FHIR {name}", loc
    if kind == "json_invalid":  # a string where an object belongs
        return f"expected a JSON object, got {_show(value)}", loc
    if kind == "string_pattern_mismatch":
        return f"{_show(value)} does not match the FHIR format of this element", loc
    msg = re.sub(r"<class '(\w+)'>", r"\1", msg)
    if value is not None and not isinstance(value, Mapping | list):
        msg += f" (got {_show(value)})"
    return msg, loc


def validate_resource(data: Mapping[str, Any], *, source: str, label: str) -> Resource:
    """Validate one resource with its R4B model, or raise an InputError naming the element."""
    rtype = data.get("resourceType")
    model = model_of(rtype)
    if model is None:
        raise InputError(_unknown_type(rtype), source=source, resource=label)
    contained = data.get("contained")
    for i, item in enumerate(contained if isinstance(contained, list) else ()):
        # The R4B models raise KeyError / TypeError (not a validation error) for these.
        ctype = item.get("resourceType") if isinstance(item, Mapping) else None
        if isinstance(item, Mapping) and model_of(ctype) is None:
            raise InputError(f"invalid {rtype}: contained resource: {_unknown_type(ctype)}", source=source,
                             resource=label, element=f"contained[{i}].resourceType")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail, loc = _describe(exc.errors()[0], str(rtype))
        extra = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InputError(
            f"invalid {rtype}: {detail}{extra}", source=source, resource=label, element=_element_path(loc) or None
        ) from None
    except RecursionError:
        raise InputError(f"invalid {rtype}: elements nested too deeply to read", source=source,
                         resource=label) from None
    except (KeyError, TypeError, ValueError) as exc:  # a model failure that is not a ValidationError
        raise InputError(f"invalid {rtype}: cannot be read as FHIR R4 ({type(exc).__name__})", source=source,
                         resource=label) from None


def read_validated(data: Mapping[str, Any], *, source: str, label: str) -> Any:
    """The resource for the mappers to read: a `fhir_vcf.elements` Element (checked against the R4B
    definitions without building a model, ~5x cheaper), or, when that walk finds a problem, the full
    model's verdict: the InputError naming the element, or the model itself where the walk was stricter."""
    try:
        return read_resource(data)  # type: ignore[arg-type]
    except NotValid:
        return validate_resource(data, source=source, label=label)


# A Bundle inside a Bundle (a batch-response of searchsets, a collection of documents) is read through;
# deeper than this is no real feed.
MAX_BUNDLE_NESTING = 8


def entries_of(document: Any, *, source: str) -> list[tuple[str | None, Mapping[str, Any], str]]:
    """(fullUrl, resource, label) for each resource in a Bundle of any type, or the single resource.

    Resources of Bundles nested in the Bundle are read as entries of their own (a Bundle is never
    a record's resource). A lone resource must be of a FHIR R4 type.
    """
    if type(document) is not dict and not isinstance(document, Mapping):
        raise InputError("not a FHIR resource: expected a JSON object", source=source)
    rtype = document.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InputError(_no_type(document), source=source)
    if rtype != "Bundle":
        if model_of(rtype) is None:
            raise InputError(_unknown_type(rtype), source=source, element="resourceType")
        return [(None, document, _label(rtype, document.get("id"), None))]
    found: list[tuple[str | None, Mapping[str, Any], str]] = []
    _bundle_entries(document, source=source, prefix="", depth=0, found=found)
    return found


def _no_type(resource: Mapping[str, Any]) -> str:
    if "resourceType" in resource:
        return f"not a FHIR resource: resourceType must be a non-empty string, not {_show(resource['resourceType'])}"
    return "not a FHIR resource: no resourceType"


def _bundle_entries(
    bundle: Mapping[str, Any], *, source: str, prefix: str, depth: int,
    found: list[tuple[str | None, Mapping[str, Any], str]],
) -> None:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InputError("invalid Bundle: entry must be an array", source=source, element=f"{prefix}entry")
    for i, entry in enumerate(entries):
        if type(entry) is not dict and not isinstance(entry, Mapping):  # `type`: the ABC check costs more
            raise InputError("invalid Bundle: entry must be an object", source=source, element=f"{prefix}entry[{i}]")
        resource = entry.get("resource")
        if resource is None:  # e.g. a DELETE in a transaction: nothing to read
            continue
        if type(resource) is not dict and not isinstance(resource, Mapping):
            raise InputError("not a FHIR resource: expected a JSON object", source=source,
                             element=f"{prefix}entry[{i}].resource")
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            raise InputError(_no_type(resource), source=source, element=f"{prefix}entry[{i}].resource")
        if rtype == "Bundle":
            where = f"{prefix}entry[{i}]"
            if depth >= MAX_BUNDLE_NESTING:
                raise InputError(f"invalid Bundle: Bundles nested more than {MAX_BUNDLE_NESTING} deep",
                                 source=source, element=f"{where}.resource")
            _bundle_entries(resource, source=source, prefix=f"{where}.resource.", depth=depth + 1, found=found)
            continue
        full_url = entry.get("fullUrl")
        rid = resource.get("id")  # the position is worded only for a resource without an id, the one it labels
        label = _label(rtype, rid, None if isinstance(rid, str) else f"{prefix}entry[{i}]")
        found.append((full_url if isinstance(full_url, str) else None, resource, label))


def _label(rtype: Any, rid: Any, position: str | None) -> str:
    """"Type/id", else where the resource sits ("entry[3] (Observation)"), else its type alone."""
    if isinstance(rid, str):
        return f"{rtype}/{rid}"
    return f"{position} ({rtype})" if position is not None else str(rtype)


def load_document(document: Any, *, source: str) -> list[PatientRecord]:
    """Records, one per patient, from a parsed Bundle or single resource."""
    with collector.paused():  # listing the entries too: the parsed document is young, a collection walks all of it
        return load_resources(entries_of(document, source=source), source=source)


def load_resources(
    entries: Iterable[tuple[str | None, Mapping[str, Any], str]], *, source: str
) -> list[PatientRecord]:
    """Validate the used types, index every reference form, and group resources by patient."""
    with collector.paused():
        return _load_resources(entries, source=source)


def _load_resources(
    entries: Iterable[tuple[str | None, Mapping[str, Any], str]], *, source: str
) -> list[PatientRecord]:
    index: dict[str, Resource] = {}
    refs: dict[int, str] = {}  # each read resource's reference by object id, shared like `index`
    validated: list[tuple[Resource, str, str | None, str]] = []  # (resource, its reference, the patient it names, type)
    set_aside: list[tuple[Mapping[str, Any], str]] = []  # (a resource set aside, why), in input order
    for full_url, data, label in entries:
        rtype = data.get("resourceType")
        if rtype not in USED_TYPES:
            reason: str | None = TYPE_NOT_READ
        else:
            reason = _noise_in_json(data)  # decided before any check: what is never read is never validated
            if reason is None:
                reason = routine_reason(data)
        if reason is None:
            resource = read_validated(data, source=source, label=label)
            if _may_be_noise_when_read(rtype, data):
                reason = skip_reason(resource)
        if reason is not None:
            set_aside.append((data, reason))
            continue
        if _ATTACHED.get(rtype) in data:  # only what the JSON holds was read: no element, no attachment
            for why in attachment_skips(resource):
                set_aside.append((data, why))
        rid = resource.id
        ref = f"{rtype}/{rid}" if rid else (full_url or label)
        if ref:
            index.setdefault(ref, resource)
        if full_url and (full_url != ref or not rid):  # most fullUrls are the "Type/id" just indexed (an id has no "/")
            index.setdefault(full_url, resource)
            index.setdefault(relative_reference(full_url), resource)
        refs[id(resource)] = ref
        validated.append((resource, ref, None if rtype == "Patient" else _patient_reference(resource), rtype))

    keys: dict[str, str] = {}  # reference -> its patient key (most resources of an input name the same patient)

    def patient_key(reference: str) -> str:
        found = keys.get(reference)
        if found is None:
            target = index.get(reference) or index.get(relative_reference(reference))
            if target is not None and target.get_resource_type() == "Patient":
                found = refs[id(target)]
            else:
                found = relative_reference(reference)
            keys[reference] = found
        return found

    records: dict[str, PatientRecord] = {}
    unfiled: list[tuple[Resource, str]] = []
    for resource, ref, pointer, rtype in validated:
        if rtype == "Patient":
            key = ref
        elif not pointer:
            unfiled.append((resource, ref))
            continue
        else:
            key = patient_key(pointer)
        record = records.get(key)
        if record is None:
            record = records[key] = PatientRecord(patient=key, source=source, index=index, refs=refs)
        # `record.add`, less what is done: `refs` holds it, and `index` its reference (when there is one)
        record.resources[rtype].append(resource)
        if not ref:
            index.setdefault(ref, resource)
    if len(records) == 1:
        (only,) = records.values()
        for resource, ref in unfiled:
            only.add(resource, ref)
    _count_set_aside(set_aside, records, patient_key)
    return list(records.values())


def _count_set_aside(set_aside: list[tuple[Mapping[str, Any], str]], records: dict[str, PatientRecord],
                     patient_key: Callable[[str], str]) -> None:
    """What was set aside is counted on the record of the patient it names, each record's reasons in
    the order first seen. With one patient in the input (every population patient, every CDS call),
    everything is that patient's, so the patient each resource names is not read. In an input of
    several patients, a set-aside resource that names none of them (a Practitioner, an
    OperationOutcome) is nobody's, and counted on no record."""
    if len(records) == 1:
        (only,) = records.values()
        only.skipped.update(reason for _, reason in set_aside)
        return
    counts: dict[tuple[str | None, str], int] = {}  # by (the patient reference it names, reason), first seen first
    for data, reason in set_aside:
        key = (_raw_patient(data), reason)
        counts[key] = counts.get(key, 0) + 1
    for (pointer, reason), count in counts.items():
        target = records.get(patient_key(pointer)) if pointer else None
        if target is not None:
            target.skipped[reason] += count


# The types whose attachments the loader looks at (`attachments`), and the element that holds them.
_ATTACHED: dict[str, str] = {"DiagnosticReport": "presentedForm", "DocumentReference": "content"}


def _patient_reference(resource: Resource) -> Any:
    """The `reference` of the first of a read resource's patient elements that is set, else None."""
    for element in _PATIENT_ELEMENTS:
        pointer = field(resource, element)
        if pointer:
            return getattr(pointer, "reference", None)
    return None


def field(resource: Any, name: str) -> Any:
    """`resource.name`, or None when the resource's model has no such element (a Medication's
    `subject`, an Observation's `verificationStatus`), without raising and catching an AttributeError.

    What the loader read (an `Element`) holds exactly its present elements in its `__dict__`, so they
    are read there, without the look-up in the type's element table (the screen and the mappers ask
    hundreds of times an evaluation; `tests/test_mappers_index.py` holds the two to one answer)."""
    if isinstance(resource, Element):
        return resource.__dict__.get(name)
    return getattr(resource, name) if name in getattr(type(resource), "model_fields", ()) else None


def _noise_in_json(data: Mapping[str, Any]) -> str | None:
    """The first reasons of `skip_reason` (recorded in error, cancelled, refuted), read from the JSON
    before any validation, so that noise is never validated (its elements are never read)."""
    status = data.get("status")
    if status == "entered-in-error":
        return ENTERED_IN_ERROR
    if status == "cancelled":
        return CANCELLED
    verification = data.get("verificationStatus")
    if verification is None:  # most resources (the `Mapping` check of None alone cost a fifth of the screen)
        return None
    coding = verification.get("coding") if type(verification) is dict or isinstance(verification, Mapping) \
        else None
    codes = {c.get("code") for c in coding
             if (type(c) is dict or isinstance(c, Mapping)) and isinstance(c.get("code"), str)} \
        if isinstance(coding, list) else set()
    if "entered-in-error" in codes:
        return ENTERED_IN_ERROR
    if "refuted" in codes:
        return REFUTED
    return None


def _may_be_noise_when_read(rtype: str, data: Mapping[str, Any]) -> bool:
    """Whether `skip_reason` may find a reason in what was read from `data`, which `_noise_in_json` let
    through. The read keeps a status as written (a code is never trimmed or recased), so only a
    DocumentReference (superseded, its docStatus, its attachments) or a verificationStatus (read from a
    JSON text, or a coding written as one, the JSON check does not look into) can still be set aside:
    most resources are not asked again (`tests/test_record_fast_paths.py`)."""
    return rtype == "DocumentReference" or "verificationStatus" in data


@dataclass(frozen=True)
class _Routine:
    """What `routine-resources.yaml` vouches for, for one resource type."""

    reason: str  # the skip reason it is counted under
    concept: str  # the element holding its code
    elements: frozenset[str]
    component_elements: frozenset[str]
    names: dict[tuple[str, str], frozenset[str]]  # (system, code) -> its names, as `_name_key` gives them
    coded: dict[bytes, bool]  # `_routinely_coded` of a concept, by its JSON text (filled as concepts are met)


def _routine_types(path: Path) -> dict[str, _Routine]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        rtype: _Routine(
            reason=spec["reason"],
            concept=spec["concept"],
            elements=frozenset(spec["elements"]),
            component_elements=frozenset(spec.get("component_elements", ())),
            names={(c["system"], c["code"]): frozenset(_name_key(n) for n in c["names"]) for c in spec["codes"]},
            coded={},
        )
        for rtype, spec in data.items()
    }


def _name_key(text: str) -> str:
    return " ".join(text.split()).casefold()


_CONCEPT_KEYS = frozenset({"coding", "text"})
_CODING_KEYS = frozenset({"system", "code", "display", "version"})
_KEYS_OF_NAMES: dict[str, str] = {}  # a display or text as written -> `_name_key` (they recur on every visit)


def _key_of_name(text: str) -> str:
    found = _KEYS_OF_NAMES.get(text)
    if found is None:
        found = _name_key(text)
        if len(_KEYS_OF_NAMES) >= 10_000:  # bounded: the texts come from the input
            _KEYS_OF_NAMES.clear()
        _KEYS_OF_NAMES[text] = found
    return found


_ROUTINE = _routine_types(Path(__file__).with_name("routine-resources.yaml"))
if not {r.reason for r in _ROUTINE.values()} <= {ROUTINE_RESULT, ROUTINE_PRESCRIPTION, ROUTINE_PROBLEM}:
    raise ValueError("routine-resources.yaml names a skip reason record.py does not define")


def routine_reason(data: Mapping[str, Any]) -> str | None:
    """The skip reason of a routine resource no criterion reads (`routine-resources.yaml` says exactly
    when), or None: decided from the JSON, so that most of a real record is never validated or mapped.
    Anything the file does not vouch for (another code, a text of its own, a note, a link) is read.
    Parsed JSON only (plain dicts and lists): anything else is read."""
    routine = _ROUTINE.get(data.get("resourceType"))  # type: ignore[arg-type]
    if routine is None or not routine.elements.issuperset(data):
        return None
    if not _routinely_coded(data.get(routine.concept), routine):
        return None
    components = data.get("component")
    if components is not None and not (type(components) is list and all(
            type(c) is dict and routine.component_elements.issuperset(c)
            and _routinely_coded(c.get("code"), routine) for c in components)):
        return None
    return routine.reason


# Concepts recur (every heart rate of a feed, every lisinopril prescription, across patients): the
# screen's answer for a concept is remembered per type, keyed by the concept's JSON text as orjson writes
# it (`elements.KEY_OPTIONS`: the text decides the content, `fhir_vcf.elements._FLAT` says why). ~0.3 µs
# to write the key against ~1.3 µs to screen a concept of one coding. Kept as the element memory keeps
# its elements (`elements.remember_by_text`: no text holding `null`, bounded at `_CODED_LIMIT` texts a
# type); what orjson cannot write is screened each time.
_CODED_LIMIT = 10_000


def _routinely_coded(concept: Any, routine: _Routine) -> bool:
    """`_coded(concept, routine)`, remembered for a concept met before (above)."""
    if type(concept) is not dict:
        return False
    try:
        text = orjson.dumps(concept, option=KEY_OPTIONS)
    except orjson.JSONEncodeError:
        return _coded(concept, routine)
    found = routine.coded.get(text)
    if found is None:
        found = _coded(concept, routine)
        remember_by_text(routine.coded, text, text, found, _CODED_LIMIT)
    return found


def _coded(concept: dict[str, Any], routine: _Routine) -> bool:
    """A CodeableConcept all of whose codings are the type's routine codes, each display (if any) one
    of that code's names, and whose text (if any) is one of their names."""
    if not concept.keys() <= _CONCEPT_KEYS:
        return False
    codings = concept.get("coding")
    if type(codings) is not list or not codings:
        return False
    names: frozenset[str] | None = None  # the names of every coding (one coding: its own, no union built)
    for coding in codings:
        if type(coding) is not dict or not coding.keys() <= _CODING_KEYS:
            return False
        found = routine.names.get((coding.get("system"), coding.get("code")))  # type: ignore[arg-type]
        display = coding.get("display")
        if found is None or (display is not None and (type(display) is not str or _key_of_name(display) not in found)):
            return False
        names = found if names is None else names | found
    text = concept.get("text")
    return text is None or (type(text) is str and _key_of_name(text) in names)  # type: ignore[operator]


def _raw_patient(data: Mapping[str, Any]) -> str | None:
    """The patient reference a raw resource names (`subject` or `patient`), or None."""
    for element in _PATIENT_ELEMENTS:
        pointer = data.get(element)
        if (type(pointer) is dict or isinstance(pointer, Mapping)) and isinstance(pointer.get("reference"), str) \
                and pointer["reference"]:
            return pointer["reference"]
    return None


def skip_reason(resource: Resource) -> str | None:
    """Why a resource carries no clinical meaning, or None (input profile, rule 3 and "report text").

    Recorded in error, cancelled or refuted; a DocumentReference superseded by a newer version, whose
    document was entered in error, or with no attachment the service can read. The loader asks this
    again, after the read, only where `_may_be_noise_when_read` says a reason can remain: a reason
    added here must be added to `_noise_in_json` (read from the JSON) or to that predicate.
    """
    status = field(resource, "status")
    if status == "entered-in-error":
        return ENTERED_IN_ERROR
    if status == "cancelled":
        return CANCELLED
    verification = field(resource, "verificationStatus")
    if verification is not None:
        codes = {c.code for c in (getattr(verification, "coding", None) or [])}
        if "entered-in-error" in codes:
            return ENTERED_IN_ERROR
        if "refuted" in codes:
            return REFUTED
    if resource.get_resource_type() == "DocumentReference":
        if status == "superseded":
            return SUPERSEDED
        if getattr(resource, "docStatus", None) == "entered-in-error":
            return ENTERED_IN_ERROR
        contents = getattr(resource, "content", None) or []
        if not any(attachment_text(getattr(c, "attachment", None)) for c in contents):
            return NO_READABLE_TEXT
    return None


def attachments(resource: Resource) -> list[tuple[Any, str]]:
    """(attachment, element) of a DiagnosticReport's presentedForm or a DocumentReference's content."""
    rtype = resource.get_resource_type()
    if rtype == "DiagnosticReport":
        return [(a, f"presentedForm[{i}]") for i, a in enumerate(getattr(resource, "presentedForm", None) or [])]
    if rtype == "DocumentReference":
        return [(getattr(c, "attachment", None), f"content[{i}].attachment")
                for i, c in enumerate(getattr(resource, "content", None) or [])]
    return []


def attachment_problem(attachment: Any) -> str | None:
    """Why an attachment's text is not read (a skip reason), or None when it is."""
    content_type = (getattr(attachment, "contentType", None) or "").split(";")[0].strip().lower()
    if content_type != READABLE_CONTENT_TYPE:
        return UNSUPPORTED_ATTACHMENT
    if not getattr(attachment, "data", None):
        return ATTACHMENT_NOT_INLINE
    return None


def attachment_skips(resource: Resource) -> list[str]:
    """A skip reason for each attachment of a read resource that is not read (a PDF beside the text)."""
    return [why for a, _ in attachments(resource) if a is not None and (why := attachment_problem(a)) is not None]


def attachment_text(attachment: Any) -> str | None:
    """The text of a plain-text attachment with inline `data` (base64; the R4B model decodes it, a
    lighter representation may keep the string), decoded as its charset says (UTF-8 by default)."""
    if attachment is None or attachment_problem(attachment) is not None:
        return None
    data = attachment.data
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    charset = re.search(r"charset\s*=\s*\"?([\w.:-]+)", attachment.contentType or "", re.IGNORECASE)
    try:
        text = data[: MAX_ATTACHMENT_TEXT * 4].decode(charset[1] if charset else "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        text = data[: MAX_ATTACHMENT_TEXT * 4].decode("utf-8", errors="replace")
    text = text[:MAX_ATTACHMENT_TEXT]
    return text if text.strip() else None
