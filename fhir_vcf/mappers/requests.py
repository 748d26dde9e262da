"""Vertebral-augmentation requests: which procedure, which levels, how many, and which one is judged.

A request arrives as a ServiceRequest in the record (CDS Hooks draft orders are merged in by the
service). It is recognised by CPT 22510-22515, by a deleted code (22520-22525, 72291, 72292: still
a request, so that the rules can reject it with a clear message), or by its words ("kyphoplasty",
"vertebroplasty", "vertebral augmentation") whatever code system carries them (input profile,
"requested procedure").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_vcf.clinical_time import When
from fhir_vcf.facts import Evidence, Method, ProcedureRequest
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import assertion, common, sites, text
from fhir_vcf.mappers.assertion import HISTORICAL, OTHER_PERSON, Assertion
from fhir_vcf.mappers.codes import cpt

# Statuses that are judged by default; "on-hold" is listed but judged only when named (a paused
# order is not what the clinician is placing now). completed / revoked are history.
JUDGED_STATUSES = frozenset({"draft", "active"})

_TECHNIQUE_TEXT = (
    ("kyphoplasty", re.compile(r"\bkyphoplast", re.IGNORECASE)),
    ("vertebroplasty", re.compile(r"\bvertebroplast", re.IGNORECASE)),
    ("unspecified", re.compile(r"\bvertebral\s+augmentation|\bvertebral\s+body\s+augmentation", re.IGNORECASE)),
)


def _technique_from_text(value: str) -> set[str]:
    """The techniques an order's words ask for: a first mention the text does not deny ("no kyphoplasty")."""
    found = set()
    for name, pattern in _TECHNIQUE_TEXT:
        m = pattern.search(value)
        if m and assertion.read_mention(value, m.start(), m.end()).evidence != "absent":
            found.add(name)
    return found


def _ordered(said: Assertion) -> bool:
    """Whether an order's text asks for the level it names: not a negated ("not L1"), excluded ("L1 not
    to be treated", "L2 deferred") or past ("prior L1 kyphoplasty", "s/p L1 PVP") one (input profile,
    rule 6; the phrases are in assertion-triggers.yaml)."""
    return said.evidence != "absent" and said.status not in (HISTORICAL, OTHER_PERSON)


def _ordered_levels(value: str | None) -> list[str]:
    """The levels an order's text asks to treat."""
    if not value:
        return []
    read = assertion.reading(value).read
    found = [lv for start, end, levels in text.level_mentions(value) if _ordered(read(start, end)) for lv in levels]
    return sort_levels(found)


@dataclass(frozen=True)
class _CodeReading:
    """What recognises an order as a vertebral augmentation, read from its `code`: its technique, the
    CPT codes (current and deleted) and the evidence, which names no resource yet (the caller's)."""

    technique: str
    cpt_codes: tuple[str, ...]
    deleted: tuple[str, ...]
    add_on_codings: int
    method: Method  # CODE when a CPT code (current or deleted) says it, else TEXT
    evidence: tuple[Evidence, ...]  # reference ""


def requested_technique(resource: Any) -> str | None:
    """kyphoplasty | vertebroplasty | unspecified for a vertebral-augmentation ServiceRequest, else None:
    `map_request`'s own recognition without the levels and counts (what a transport needs to tell an
    augmentation order from another)."""
    reading = _read_code(resource.code)
    return reading.technique if reading else None


def _read_code(code: Any) -> _CodeReading | None:
    """`_code_reading` of an order's code, kept in the memory of a code of the record (a function of
    its content alone, like its codings). A CDS call reads its draft order's code twice, once in the
    transport (`requested_technique`, to skip unrelated orders before fetching) and once in
    `map_request` on the record's copy, whose code is the same shared element (`fhir_vcf.elements`):
    the second reading is a look-up (the benchmark's order-select call: 29.81 -> 29.64 M instructions)."""
    memo = common.memo_of(code)
    if memo is None:
        return _code_reading(code)
    found = memo.get(_read_code, memo)
    if found is memo:
        found = memo[_read_code] = _code_reading(code)
    return found  # type: ignore[no-any-return]


def _code_reading(code: Any) -> _CodeReading | None:
    evidence: list[Evidence] = []
    techniques: set[str] = set()
    cpt_codes: list[str] = []
    deleted: list[str] = []
    add_on_codings = 0
    for coding, path in common.codings(code, "code"):
        if coding.system != "cpt" and coding.system != "":
            continue
        if coding.code in cpt.AUGMENTATION:
            cpt_codes.append(coding.code)
            techniques.add("kyphoplasty" if coding.code in cpt.KYPHOPLASTY else "vertebroplasty")
            evidence.append(common.code_evidence("", path, coding, "CPT"))
        elif coding.code in cpt.DELETED:
            deleted.append(coding.code)
            kind = cpt.DELETED[coding.code][0]
            if kind != "unspecified":
                techniques.add(kind)
            evidence.append(common.code_evidence("", path, coding, "CPT (deleted)"))
        else:
            continue
        if coding.code in cpt.ADD_ON:
            add_on_codings += 1
    method = Method.CODE if (cpt_codes or deleted) else Method.TEXT
    text_techniques: set[str] = set()
    for value, path in common.texts(code, "code"):
        found = _technique_from_text(value)
        if found:
            text_techniques |= found
            if method is Method.TEXT:
                evidence.append(Evidence("", path, Method.TEXT, f"'{value}'"))
    if not (cpt_codes or deleted or text_techniques):
        return None
    if not techniques:
        techniques = text_techniques
    specific = techniques - {"unspecified"}
    technique = specific.pop() if len(specific) == 1 else "unspecified"
    return _CodeReading(technique, tuple(cpt_codes), tuple(deleted), add_on_codings, method, tuple(evidence))


def map_request(record: Any, resource: Any) -> ProcedureRequest | None:
    """The ProcedureRequest of one ServiceRequest, or None when it is not a vertebral augmentation."""
    ref = record.ref(resource)
    reading = _read_code(resource.code)
    if reading is None:
        return None
    technique, cpt_codes, deleted = reading.technique, reading.cpt_codes, reading.deleted
    add_on_codings, method = reading.add_on_codings, reading.method
    evidence = [Evidence(ref, e.element, e.method, e.found) for e in reading.evidence]

    site_levels, level_ev, _ = sites.body_site_levels(ref, getattr(resource, "bodySite", None))
    code_text = getattr(resource.code, "text", None)
    # Coded body sites name the levels of the order (input profile: level count = bodySites); the
    # words are read only when no body site names one.
    from_code_text = [] if site_levels else _ordered_levels(code_text)
    if from_code_text:
        level_ev.append(Evidence(ref, "code.text", Method.TEXT, f"'{code_text}'"))
    levels = tuple(sort_levels([*site_levels, *from_code_text]))
    evidence.extend(level_ev)

    if levels:
        level_count = len(levels)
    else:
        add_ons = 0
        if add_on_codings:
            quantity = getattr(getattr(resource, "quantityQuantity", None), "value", None)
            if quantity is not None and float(quantity) >= 1:
                add_ons = int(quantity)
                evidence.append(Evidence(ref, "quantityQuantity.value", Method.CODE, f"add-on quantity {add_ons}"))
            else:
                add_ons = add_on_codings
        level_count = 1 + add_ons

    reasons = []
    for reason in getattr(resource, "reasonReference", None) or []:
        target = record.resolve(reason)
        reasons.append(record.ref(target) if target is not None else reason.reference)
    return ProcedureRequest(
        reference=ref,
        status=resource.status or "unknown",
        technique=technique,
        levels=levels,
        level_count=level_count,
        cpt=tuple(dict.fromkeys(cpt_codes)),
        method=method,
        deleted_codes=tuple(dict.fromkeys(deleted)),
        reasons=tuple(r for r in reasons if r),
        authored=authored.day if (authored := _authored(resource)) is not None else None,
        evidence=tuple(evidence),
    )


def _authored(resource: Any) -> When | None:
    """When the order was written; for a performed Procedure judged as the request (an audit), when
    it was performed (input profile, rule 4: the clinical date)."""
    if resource.get_resource_type() == "Procedure":
        return common.clinical_when(resource)[0]
    return common.when(resource, getattr(resource, "authoredOn", None), "authoredOn")


def map_requests(
    record: Any, *, request: str | None = None
) -> tuple[tuple[ProcedureRequest, ...], ProcedureRequest | None]:
    """(every augmentation request, the one judged).

    The judged one is the request named by `request` ("ServiceRequest/x", any reference form the
    record resolves) when it is an augmentation request; otherwise the latest draft/active one by
    authoredOn (bundle order breaks ties, the later entry winning); None when there is none.
    `request` may also name a performed augmentation Procedure: an audit judges the procedure done
    as if it were the order, on the documentation of its day (its code, levels and reasons are read
    by the same rule as an order's).
    """
    found: list[tuple[Any, ProcedureRequest]] = []
    named = record.resolve(request) if request else None
    procedures = [named] if named is not None and named.get_resource_type() == "Procedure" else []
    for resource in [*record.of_type("ServiceRequest"), *procedures]:
        mapped = map_request(record, resource)
        if mapped is not None:
            found.append((resource, mapped))
    requests = tuple(m for _, m in found)
    judged: ProcedureRequest | None = None
    if request:
        target = record.resolve(request)
        for resource, mapped in found:
            if mapped.reference == request or (target is not None and resource is target):
                judged = mapped
                break
    if judged is None:
        candidates = [(i, m, _authored(r)) for i, (r, m) in enumerate(found) if m.status in JUDGED_STATUSES]
        if candidates:
            # The latest by instant (offsets included); undated ones before dated ones; then record order.
            judged = max(candidates, key=lambda c: (c[2] is not None, c[2].order if c[2] else (), c[0]))[1]
    return requests, judged

