"""Procedure and order codes the outputs propose (one place, each with its source).

CPT codes for vertebral augmentation are vocabulary, not coverage policy, so they live here rather
than in a policy file; the deleted codes a policy rejects are policy data (coding.deleted_cpt).
"""

from __future__ import annotations

from fhir_vcf.levels import region

CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"

# AMA CPT 2015+: vertebroplasty 22510-22512, vertebral augmentation (kyphoplasty) 22513-22515,
# first level by region + an add-on code for each additional level (clinical-rules.md, Technique).
CPT_DISPLAY = {
    "22510": "Percutaneous vertebroplasty, 1 vertebral body, cervicothoracic",
    "22511": "Percutaneous vertebroplasty, 1 vertebral body, lumbosacral",
    "22512": "Percutaneous vertebroplasty, each additional cervicothoracic or lumbosacral vertebral body",
    "22513": "Percutaneous vertebral augmentation (kyphoplasty), 1 vertebral body, thoracic",
    "22514": "Percutaneous vertebral augmentation (kyphoplasty), 1 vertebral body, lumbosacral",
    "22515": "Percutaneous vertebral augmentation (kyphoplasty), each additional thoracic or lumbar vertebral body",
    # Orders around the procedure (AMA CPT).
    "77080": "Dual-energy X-ray absorptiometry (DXA), bone density study, axial skeleton",
    "85610": "Prothrombin time (PT/INR)",
    "72146": "MRI thoracic spine without contrast (with STIR)",
    "72148": "MRI lumbar spine without contrast (with STIR)",
}
FIRST_LEVEL = {
    "vertebroplasty": {"cervical": "22510", "thoracic": "22510", "lumbar": "22511", "sacral": "22511"},
    "kyphoplasty": {"thoracic": "22513", "lumbar": "22514", "sacral": "22514"},  # no cervical kyphoplasty code
}
ADD_ON = {"vertebroplasty": "22512", "kyphoplasty": "22515"}
MRI_BY_REGION = {"thoracic": "72146", "lumbar": "72148"}

# LOINC
PAIN_NRS = ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
INR = ("6301-6", "INR in Platelet poor plasma by Coagulation assay")


def procedure_lines(technique: str, levels: list[str]) -> list[tuple[str, str | None]]:
    """(level, CPT) per level head to foot: the first level's code by region, then the add-on code.

    E.g. kyphoplasty T12, L1 -> [(T12, 22513), (L1, 22515)]. None when CPT has no code (cervical
    kyphoplasty) or the technique is not a single procedure ("either").
    """
    if technique not in FIRST_LEVEL or not levels:
        return [(lv, None) for lv in levels]
    first, *rest = levels
    lines: list[tuple[str, str | None]] = [(first, FIRST_LEVEL[technique].get(region(first)))]
    lines.extend((lv, ADD_ON[technique]) for lv in rest)
    return lines
