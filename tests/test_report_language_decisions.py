"""End to end: only the words of a report change, and the decision follows (issues 8 and 9).

The record is samples/eligible-outpatient-worsening.json (eligible: L1 osteoporotic fracture, onset
within six weeks, worsening outpatient pain >= 5 despite NSM, DXA referral and treatment) with its
coded marrow-edema Observation taken out, so that the MRI report's conclusion alone decides I3.
Each case replaces that conclusion (or adds one exam note) and nothing else.

The expected decisions were written from clinical-rules.md and the input profile ("Reading report
text") before the code ran:
- I3 is met by marrow edema / increased uptake affirmed at L1; not met when the MRI states there is
  none (negated, resolved, chronic, healed); unknown (insufficient data) when the report names L1 but
  neither affirms nor denies edema, hedges it, or says it cannot be assessed.
- Exclusions: an affirmed mention is present (not eligible); negated or resolved is absent;
  hypothetical and other-person mentions are no facts (absent); possible or historical ones are a
  conflict (needs review).
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.sources.files import load_file

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "eligible-outpatient-worsening.json"
AS_OF = date(2025, 6, 30)
MRI_REPORT = "p-moreau-rpt-12"
CODED_EDEMA = "p-moreau-find-13"
ACUTE = "Acute L1 compression fracture with STIR hyperintense marrow edema."

# (case, MRI conclusion, decision, {criterion: status} that must hold)
CASES = [
    # -- the sixteen sentence kinds of issue 8
    ("pseudo-negation", "No change in the L1 marrow edema.", "eligible", {"I3": "met"}),
    ("long negated list",
     f"{ACUTE} No evidence of retropulsion, cord compression, epidural abscess, or discitis.",
     "eligible", {"I3": "met", "X2": "absent", "X8": "absent", "X11": "absent"}),
    ("long negated list, as the issue wrote it",
     f"{ACUTE} No evidence of fracture, cord compression, epidural abscess, or discitis.",
     "eligible", {"I3": "met", "X2": "absent", "X8": "absent"}),
    ("no longer present", "L1 compression fracture. Marrow edema at L1 is no longer present.",
     "not-eligible", {"I3": "not-met"}),
    ("has resolved", "L1 compression fracture. The L1 marrow edema has resolved.", "not-eligible", {"I3": "not-met"}),
    ("previously seen, now resolved (edema)",
     "L1 compression fracture. Marrow edema previously seen at L1 is now resolved.", "not-eligible", {"I3": "not-met"}),
    ("previously seen, now resolved (exclusion)",
     f"{ACUTE} Epidural abscess previously seen at T12 is now resolved.", "eligible", {"X2": "absent"}),
    ("hypothetical", f"{ACUTE} If symptoms persist, assess for discitis.", "eligible", {"X2": "absent"}),
    ("other person", f"{ACUTE} Mother had osteomyelitis.", "eligible", {"X2": "absent"}),
    ("no other (MRI)", f"{ACUTE} No other marrow edema.", "eligible", {"I3": "met"}),
    ("no other (uptake)", "Intense uptake at L1. No other abnormal uptake.", "eligible", {"I3": "met"}),
    ("silent on marrow signal", "Compression fracture of L1 with 18% anterior height loss. No retropulsion.",
     "insufficient-data", {"I3": "unknown"}),
    ("negated edema", "L1 compression fracture without marrow edema.", "not-eligible", {"I3": "not-met"}),
    ("chronic", "Chronic healed L1 compression fracture.", "not-eligible", {"I3": "not-met"}),
    ("possible exclusion", f"{ACUTE} Possible discitis at T12-L1.", "needs-review", {"X2": "conflict"}),
    ("historical exclusion", f"{ACUTE} History of discitis at L4-5.", "needs-review", {"X2": "conflict"}),
    ("affirmed exclusion", f"{ACUTE} Discitis at L2-L3 with a small epidural abscess.", "not-eligible",
     {"X2": "present"}),
    # -- more constructs of the profile
    ("hedged edema", "L1 compression fracture. Possible marrow edema at L1.", "insufficient-data", {"I3": "unknown"}),
    ("cannot be assessed", "L1 compression fracture. Marrow edema at L1 cannot be assessed due to motion.",
     "insufficient-data", {"I3": "unknown"}),
    ("termination word", "No retropulsion but marrow edema at L1 with acute compression fracture.", "eligible",
     {"I3": "met", "X11": "absent"}),
    ("question section", f"INDICATION: r/o discitis.\nIMPRESSION: {ACUTE}", "eligible", {"X2": "absent"}),
    ("comparison section", f"COMPARISON: MRI 2024-01-10 showed no edema at L1.\nIMPRESSION: {ACUTE}", "eligible",
     {"I3": "met"}),
    ("unlikely", f"{ACUTE} Discitis unlikely.", "eligible", {"X2": "absent"}),
    ("probable", "L1 compression fracture with probable marrow edema.", "eligible", {"I3": "met"}),
    ("other person's edema", "L1 compression fracture. Sister had marrow edema.", "insufficient-data",
     {"I3": "unknown"}),
    # -- issue 9: infection words (X2) and neurologic deficits as written in exams (X9)
    ("sepsis", f"{ACUTE} Clinical sepsis with positive blood cultures.", "not-eligible", {"X2": "present"}),
    ("bacteremia", f"{ACUTE} Known MRSA bacteremia.", "not-eligible", {"X2": "present"}),
    ("no sepsis", f"{ACUTE} No signs of sepsis.", "eligible", {"X2": "absent"}),
    ("surgical-site infection", f"{ACUTE} Surgical site infection at the prior laminectomy wound.", "not-eligible",
     {"X2": "present"}),
]

# (case, exam note, decision, {criterion: status}); the MRI conclusion stays the sample's own.
EXAMS = [
    ("motor grade", "Neuro exam: 4/5 hip flexors on the left, otherwise intact.", "not-eligible", {"X9": "present"}),
    ("weakness by muscle group", "Exam: weakness of the left quadriceps.", "not-eligible", {"X9": "present"}),
    ("sensory loss", "Decreased sensation to light touch in the left L2 dermatome.", "not-eligible",
     {"X9": "present"}),
    ("bladder dysfunction", "New urinary retention and bowel incontinence.", "not-eligible", {"X9": "present"}),
    ("normal strength", "Strength 5/5 throughout. Sensation intact.", "eligible", {"X9": "absent"}),
    ("no bowel or bladder dysfunction", "No bowel or bladder dysfunction. No saddle anesthesia.", "eligible",
     {"X9": "absent"}),
    ("hypothetical deficit", "Return if new leg weakness or numbness develops.", "eligible", {"X9": "absent"}),
]


def _bundle() -> dict[str, Any]:
    bundle = json.loads(SAMPLE.read_text())
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != CODED_EDEMA]
    return bundle


BASE = _bundle()


def _evaluate(bundle: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    (record,) = load_file(path)
    return evaluate_record(record, as_of=AS_OF, policy=load_policies()["cms-lcd-pva"])


def _with_conclusion(conclusion: str) -> dict[str, Any]:
    bundle = copy.deepcopy(BASE)
    for entry in bundle["entry"]:
        if entry["resource"]["id"] == MRI_REPORT:
            entry["resource"]["conclusion"] = conclusion
    return bundle


def _with_exam(note: str) -> dict[str, Any]:
    bundle = copy.deepcopy(BASE)
    bundle["entry"].append({"resource": {
        "resourceType": "Observation", "id": "p-moreau-exam", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "exam"}]}],
        "code": {"text": "Physical examination"},
        "subject": {"reference": "Patient/p-moreau"},
        "effectiveDateTime": "2025-06-20T10:00:00Z",
        "valueString": note,
    }})
    return bundle


def _statuses(evaluation: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in evaluation["criteria"]}


def test_the_record_without_the_coded_finding_is_eligible_on_the_report_alone(tmp_path: Path) -> None:
    evaluation = _evaluate(BASE, tmp_path)
    assert evaluation["decision"] == "eligible"
    (i3,) = [c for c in evaluation["criteria"] if c["id"] == "I3"]
    assert any(d.get("reference") == f"DiagnosticReport/{MRI_REPORT}" for d in i3["evidenceDetail"])


@pytest.mark.parametrize(("case", "conclusion", "decision", "statuses"), CASES, ids=[c[0] for c in CASES])
def test_the_decision_follows_the_report(case: str, conclusion: str, decision: str, statuses: dict[str, str],
                                         tmp_path: Path) -> None:
    evaluation = _evaluate(_with_conclusion(conclusion), tmp_path)
    assert (evaluation["decision"], {k: _statuses(evaluation)[k] for k in statuses}) == (decision, statuses)


@pytest.mark.parametrize(("case", "note", "decision", "statuses"), EXAMS, ids=[c[0] for c in EXAMS])
def test_the_decision_follows_the_exam(case: str, note: str, decision: str, statuses: dict[str, str],
                                       tmp_path: Path) -> None:
    evaluation = _evaluate(_with_exam(note), tmp_path)
    assert (evaluation["decision"], {k: _statuses(evaluation)[k] for k in statuses}) == (decision, statuses)


def test_a_silent_report_asks_for_a_report_that_states_edema(tmp_path: Path) -> None:
    evaluation = _evaluate(_with_conclusion("Compression fracture of L1 with 18% anterior height loss."), tmp_path)
    (i3,) = [c for c in evaluation["criteria"] if c["id"] == "I3"]
    assert i3["status"] == "unknown"
    assert any("marrow edema" in m and "L1" in m and f"DiagnosticReport/{MRI_REPORT}" in m for m in i3["missing"])


def test_a_criterion_decided_by_prose_quotes_the_sentence_and_the_trigger(tmp_path: Path) -> None:
    evaluation = _evaluate(_with_conclusion("No change in the L1 marrow edema."), tmp_path)
    (i3,) = [c for c in evaluation["criteria"] if c["id"] == "I3"]
    assert "'No change in the L1 marrow edema' (MRI 2025-06-05): edema present at L1" in i3["reason"]
    found = [d["found"] for d in i3["evidenceDetail"] if d.get("method") == "text"]
    assert "(affirmed: pseudo-trigger 'No change in')" in i3["reason"]
    assert any("No change in the L1 marrow edema" in f and "'no change in'" in f.lower() for f in found), found


def test_an_exclusion_decided_by_prose_quotes_the_trigger(tmp_path: Path) -> None:
    evaluation = _evaluate(_with_conclusion(f"{ACUTE} Possible discitis at T12-L1."), tmp_path)
    (x2,) = [c for c in evaluation["criteria"] if c["id"] == "X2"]
    assert "'Possible discitis at T12-L1' (possible: 'Possible')" in x2["reason"]
    assert x2["evidenceDetail"][0]["found"] == "'Possible discitis at T12-L1' (possible: 'Possible')"


# With the sample's coded marrow-edema finding kept: the report and the code must agree (clinical rules,
# "Decision": the record contradicting itself is a conflict, needs review).
WITH_CODE = [
    ("code and pseudo-negation agree", "No change in the L1 marrow edema.", "eligible", {"I3": "met"}),
    ("code and report disagree", "L1 compression fracture without marrow edema.", "needs-review", {"I3": "conflict"}),
    ("code and a silent report", "Compression fracture of L1.", "eligible", {"I3": "met"}),
    ("code beside a hedge", "Possible marrow edema at L1.", "eligible", {"I3": "met"}),
]


@pytest.mark.parametrize(("case", "conclusion", "decision", "statuses"), WITH_CODE, ids=[c[0] for c in WITH_CODE])
def test_the_report_beside_the_coded_finding(case: str, conclusion: str, decision: str, statuses: dict[str, str],
                                             tmp_path: Path) -> None:
    bundle = json.loads(SAMPLE.read_text())
    for entry in bundle["entry"]:
        if entry["resource"]["id"] == MRI_REPORT:
            entry["resource"]["conclusion"] = conclusion
    evaluation = _evaluate(bundle, tmp_path)
    assert (evaluation["decision"], {k: _statuses(evaluation)[k] for k in statuses}) == (decision, statuses)
