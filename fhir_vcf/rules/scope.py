"""S1, the coding route: which door the fracture comes through.

Routes (clinical-rules.md "Scope and coding routes"):
- osteoporotic: M80.08XA/M80.88XA, or the sequela M80.08XS/M80.88XS (acuity still from onset and
  imaging); a SNOMED- or text-coded fracture when it says osteoporotic, or when it is a plain
  compression fracture and osteoporosis is documented.
- malignant (A56572): M84.58XA/M84.58XS together with a listed neoplasm code. I1, I5 and the NRS
  thresholds are set aside there and the level limit is waived for myeloma.
- review: fixable coding or outside the policy's scope (a neoplasm without the M84.58X- pair,
  M48.5- coded with osteoporosis, M80.08X 7th character D/G/K/P, hemangioma/other, a compression
  fracture of undocumented etiology, fractures on different routes, a deleted CPT on the order).
- traumatic: S22.0-/S32.0- without osteoporosis: not an osteoporotic VCF, not met.

A review route is reported as status `conflict` with `review=True` (the contract has no separate
status), which the decision turns into needs-review.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_vcf.facts import Fracture, FractureFacts, Status
from fhir_vcf.rules.common import CONFLICT, MET, NOT_MET, UNKNOWN, result, truthy
from fhir_vcf.rules.judgement import CriterionResult
from fhir_vcf.rules.policy import CodingRule, Policy

SCOPE = "scope"
OSTEOPOROTIC, MALIGNANT, REVIEW, TRAUMATIC, NONE = "osteoporotic", "malignant", "review", "traumatic", "none"
REVIEW_PREFIX = "a coding/scope review: "
NO_FRACTURE_MISSING = ("a documented vertebral compression fracture (Condition, e.g. ICD-10-CM M80.08XA) "
                       "with its level and onset")


@dataclass(frozen=True)
class Route:
    route: str  # osteoporotic | malignant | review | traumatic
    reason: str


def relevant_fractures(facts: FractureFacts, levels: list[str]) -> list[Fracture]:
    """The fractures the decision is about: at the decision levels, named by the request, or level-less."""
    wanted = set(levels)
    reasons = set(facts.request.reasons) if facts.request is not None else set()
    chosen = [f for f in facts.fractures if not f.levels or wanted & set(f.levels) or f.reference in reasons]
    return chosen or list(facts.fractures)


def coding_route(facts: FractureFacts, policy: Policy, levels: list[str]) -> tuple[CriterionResult | None, str]:
    """S1 and the route name the other criteria follow."""
    rule = policy.coding
    if not facts.fractures:
        crit = result("S1", rule.title, SCOPE, rule.source, UNKNOWN, "no vertebral fracture documented",
                      missing=[NO_FRACTURE_MISSING])
        return (crit if rule.enabled else None), NONE
    if not rule.enabled:
        return None, OSTEOPOROTIC
    fractures = relevant_fractures(facts, levels)
    routes = [(f, classify(f, facts, rule)) for f in fractures]
    evidence = [e for f in fractures for e in f.evidence]
    names = {r.route for _, r in routes}
    texts = [f"{f.reference}: {r.reason}" if len(routes) > 1 else r.reason for f, r in routes]
    if TRAUMATIC in names:
        route, status = TRAUMATIC, NOT_MET
        texts = [t for (_, r), t in zip(routes, texts, strict=True) if r.route == TRAUMATIC]
    elif REVIEW in names:
        route, status = REVIEW, CONFLICT
        texts = [t for (_, r), t in zip(routes, texts, strict=True) if r.route == REVIEW]
    elif names == {OSTEOPOROTIC, MALIGNANT}:
        route, status = REVIEW, CONFLICT
        texts.append("fractures on different coding routes (osteoporotic and malignant) in one decision")
    else:
        route, status = names.pop(), MET
    coded_route = route  # the fracture's route, named in the reason even when the order sends it to review
    deleted = deleted_codes(facts, rule)
    if deleted:
        # The coding of the fracture may be fine: what needs fixing is the order (AMA CPT: 22520-22525,
        # 72291, 72292 deleted; 22510-22515 replace them).
        texts.append(f"CPT {', '.join(deleted)} on the request {'was' if len(deleted) == 1 else 'were'} deleted: "
                     "order 22510-22515 instead")
        evidence.extend(facts.request.evidence if facts.request is not None else ())
        if status == MET:
            route, status = REVIEW, CONFLICT
    review = status == CONFLICT
    missing = [REVIEW_PREFIX + "; ".join(texts)] if review else []
    crit = result("S1", rule.title, SCOPE, rule.source, status, f"{coded_route} route: " + "; ".join(texts),
                  evidence=evidence, missing=missing, review=review)
    return crit, route


def deleted_codes(facts: FractureFacts, rule: CodingRule) -> list[str]:
    request = facts.request
    if request is None:
        return []
    listed = set(rule.deleted_cpt.value or ())
    return sorted(c for c in dict.fromkeys((*request.deleted_codes, *request.cpt)) if c in listed)


def _icd(fracture: Fracture) -> list[str]:
    return [c.code for c in fracture.codes if c.system == "icd-10-cm"]


def _neoplasms(facts: FractureFacts, fracture: Fracture) -> list[str]:
    found: list[str] = []
    if facts.malignancy.status is Status.PRESENT:
        found.extend(str(v) for v in facts.malignancy.value or ("malignancy documented",))
    found.extend(c for c in _icd(fracture) if c.startswith("C"))
    if not found and truthy(facts.myeloma) == "yes":
        found.append("multiple myeloma")
    return list(dict.fromkeys(found))


def classify(fracture: Fracture, facts: FractureFacts, rule: CodingRule) -> Route:
    """One fracture's route, read like the coding rules."""
    icd = _icd(fracture)
    neoplasms = _neoplasms(facts, fracture)
    osteoporosis = truthy(facts.osteoporosis) == "yes"
    label = _label(fracture, icd)
    if fracture.kind == "pathologic":
        return _pathologic(icd, neoplasms, rule, label)
    if neoplasms:
        return Route(REVIEW, f"neoplasm documented ({', '.join(neoplasms)}) but the fracture is coded {label}, "
                     f"without the {'/'.join(rule.malignant_fracture_codes.value)} pair")
    if fracture.kind == "osteoporotic":
        return _osteoporotic(fracture, icd, rule, label)
    if fracture.kind == "traumatic":
        if osteoporosis:
            return Route(REVIEW, f"traumatic code {label} with osteoporosis documented: if a low-energy fracture, "
                         "code M80.08XA")
        return Route(TRAUMATIC, f"traumatic fracture {label} and no osteoporosis documented: not an osteoporotic VCF")
    if fracture.kind == "collapsed-nec":
        if osteoporosis and rule.icd_checks.value:
            return Route(REVIEW, f"{label} (collapsed vertebra NEC) coded although osteoporosis is documented: "
                         "code M80.08XA (osteoporotic)")
        if osteoporosis:
            return Route(OSTEOPOROTIC, f"collapsed vertebra {label} with osteoporosis documented")
        return Route(REVIEW, f"{label} (collapsed vertebra NEC) without documented osteoporosis: etiology outside "
                     "the osteoporotic scope")
    if fracture.kind == "compression":
        if osteoporosis:
            return Route(OSTEOPOROTIC, f"compression fracture ({label}) with osteoporosis documented")
        return Route(REVIEW, "compression fracture with no osteoporosis or malignancy documented: etiology "
                     "undocumented")
    return Route(REVIEW, f"{fracture.kind} indication ({label}): neither osteoporotic nor malignant, outside the "
                 "policy's scope")


def _label(fracture: Fracture, icd: list[str]) -> str:
    """How the fracture is coded, for reasons: "M80.08XA", "snomed 42942008", "text 'compression fracture'"."""
    if icd:
        return ", ".join(icd)
    codes = [f"{c.system} {c.code}" for c in fracture.codes if c.system != "text"]
    if codes:
        return ", ".join(codes)
    return "text only"


def _osteoporotic(fracture: Fracture, icd: list[str], rule: CodingRule, label: str) -> Route:
    covered = set(rule.osteoporotic_codes.value or ())
    m80 = [c for c in icd if c.startswith("M80")]
    if not rule.icd_checks.value or not m80:
        return Route(OSTEOPOROTIC, f"osteoporotic fracture, {label}")
    hit = [c for c in m80 if c in covered]
    if hit:
        sequela = any(c.endswith("S") for c in hit)
        note = " (sequela: acuity from onset and imaging)" if sequela else ""
        return Route(OSTEOPOROTIC, f"{', '.join(hit)}{note}")
    seventh = fracture.seventh or (m80[0][-1] if len(m80[0]) == 8 else "")
    if seventh in set(rule.review_seventh.value or ()):
        return Route(REVIEW, f"{m80[0]}: 7th character {seventh} (subsequent encounter) is not covered; code the "
                     "initial encounter (A) or sequela (S)")
    return Route(REVIEW, f"{', '.join(m80)} is not in the covered list ({', '.join(sorted(covered))})")


def _pathologic(icd: list[str], neoplasms: list[str], rule: CodingRule, label: str) -> Route:
    if not rule.malignant_route.value:
        return Route(REVIEW, f"pathologic fracture ({label}): outside this policy's scope (osteoporotic fractures)")
    pair = [c for c in icd if c in set(rule.malignant_fracture_codes.value or ())]
    listed = [n for n in neoplasms if n in set(rule.malignant_neoplasm_codes.value or ())]
    if not rule.icd_checks.value and neoplasms:
        return Route(MALIGNANT, f"pathologic fracture with {', '.join(neoplasms)}")
    if pair and listed:
        return Route(MALIGNANT, f"{', '.join(pair)} with {', '.join(listed)} (malignant group)")
    codes = "/".join(rule.malignant_fracture_codes.value)
    group = ", ".join(rule.malignant_neoplasm_codes.value)
    if pair and neoplasms:
        return Route(REVIEW, f"{', '.join(pair)} with {', '.join(neoplasms)}: not in the malignant group ({group})")
    if pair:
        return Route(REVIEW, f"{', '.join(pair)} without a neoplasm code ({group})")
    return Route(REVIEW, f"pathologic fracture {label} without {codes}: code the pair with the neoplasm "
                 f"({group}) for the malignant route")
