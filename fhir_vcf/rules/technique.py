"""Technique advice (not coverage): kyphoplasty, vertebroplasty, either, or none, with the reason.

Kyphoplasty restores height only while the fracture is unhealed (NICE TA279): prefer it for height
loss above the policy's threshold (Genant grade 2-3, > 25 %), kyphotic deformity or progressive
collapse. Vertebroplasty suits simpler fractures (height loss <= 25 %, no deformity). "either" when
the record does not favour one; "none" when not eligible or no fracture is documented.
"""

from __future__ import annotations

from fhir_vcf.facts import FractureFacts, Status
from fhir_vcf.rules.common import fmt_number, truthy
from fhir_vcf.rules.policy import Policy


def advise(facts: FractureFacts, policy: Policy, levels: list[str], decision: str) -> tuple[str, str, list[str]]:
    """(technique, reason, flags)."""
    flags = []
    if truthy(facts.vertebra_plana) == "yes" and policy.technique.vertebra_plana_flag:
        flags.append(policy.technique.vertebra_plana_flag)
    if decision == "not-eligible":
        return "none", "not eligible: no procedure proposed", flags
    if not facts.fractures or not levels:
        return "none", "no fracture level documented: no procedure to advise", flags
    limit = policy.technique.kyphoplasty_height_loss_above_percent.value
    heights = {lv: float(f.value) for lv in levels
               if (f := facts.height_loss.get(lv)) is not None and f.status is Status.PRESENT and f.value is not None}
    favour = []
    above = {lv: v for lv, v in heights.items() if v > limit}
    if above:
        favour.append("height loss " + ", ".join(f"{lv} {fmt_number(v)} %" for lv, v in above.items())
                      + f" > {fmt_number(limit)} %")
    if truthy(facts.kyphosis) == "yes":
        favour.append("kyphotic deformity")
    if truthy(facts.progression) == "yes":
        favour.append("progressive collapse")
    unhealed = all(facts.acuity.get(lv) is not None and facts.acuity[lv].status is Status.PRESENT for lv in levels)
    if favour:
        technique = "kyphoplasty"
        reason = "kyphoplasty: " + ", ".join(favour) + (
            "; height restoration while the fracture is unhealed (acuity on imaging)" if unhealed
            else "; height restoration needs an unhealed fracture: confirm acuity on MRI/bone scan")
    elif len(heights) == len(levels):
        # Height loss is the discriminator; kyphosis/progression count only when shown (a single study
        # cannot show progression, so "not documented" does not argue for kyphoplasty).
        technique = "vertebroplasty"
        reason = ("vertebroplasty: simple fracture (height loss "
                  + ", ".join(f"{lv} {fmt_number(v)} %" for lv, v in heights.items())
                  + f" <= {fmt_number(limit)} %, no kyphotic deformity or progression shown): "
                  "no height restoration needed")
    else:
        unknown = ", ".join(lv for lv in levels if lv not in heights)
        technique = "either"
        reason = f"either: the record does not favour one (height loss not documented at {unknown})"
    requested = facts.request.technique if facts.request is not None else ""
    if requested in ("kyphoplasty", "vertebroplasty") and technique in ("kyphoplasty", "vertebroplasty") \
            and requested != technique:
        flags.append(f"{requested} requested; the record favours {technique}")
    return technique, reason, flags
