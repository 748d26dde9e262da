"""CPT codes: the augmentation procedures read from orders and proposed in care plans, and the
orders around them (AMA CPT; clinical rules, "Technique"; input profile, "requested procedure")."""

from __future__ import annotations

# Percutaneous vertebral augmentation, AMA CPT 2015+: the first level by region, then an add-on code
# for each additional level (clinical rules, "Technique").
VERTEBROPLASTY = {
    "22510": "Percutaneous vertebroplasty, 1 vertebral body, cervicothoracic",
    "22511": "Percutaneous vertebroplasty, 1 vertebral body, lumbosacral",
    "22512": "Percutaneous vertebroplasty, each additional cervicothoracic or lumbosacral vertebral body",
}
KYPHOPLASTY = {
    "22513": "Percutaneous vertebral augmentation (kyphoplasty), 1 vertebral body, thoracic",
    "22514": "Percutaneous vertebral augmentation (kyphoplasty), 1 vertebral body, lumbosacral",
    "22515": "Percutaneous vertebral augmentation (kyphoplasty), each additional thoracic or lumbar vertebral body",
}
AUGMENTATION = {**VERTEBROPLASTY, **KYPHOPLASTY}
FIRST_LEVEL = {
    "vertebroplasty": {"cervical": "22510", "thoracic": "22510", "lumbar": "22511", "sacral": "22511"},
    "kyphoplasty": {"thoracic": "22513", "lumbar": "22514", "sacral": "22514"},  # no cervical kyphoplasty code
}
ADD_ON_BY_TECHNIQUE = {"vertebroplasty": "22512", "kyphoplasty": "22515"}
# Add-on codes, current and deleted: a request's level count is 1 + its add-ons.
ADD_ON = frozenset({"22512", "22515", "22522", "22525"})
# Deleted 2015 (replaced by 22510-22515): received codes are rejected with a message (clinical rules,
# "Technique"; input profile, "requested procedure"). Value: (technique, meaning).
DELETED = {
    "22520": ("vertebroplasty", "percutaneous vertebroplasty, thoracic (deleted 2015)"),
    "22521": ("vertebroplasty", "percutaneous vertebroplasty, lumbar (deleted 2015)"),
    "22522": ("vertebroplasty", "percutaneous vertebroplasty, each additional level (deleted 2015)"),
    "22523": ("kyphoplasty", "percutaneous vertebral augmentation, thoracic (deleted 2015)"),
    "22524": ("kyphoplasty", "percutaneous vertebral augmentation, lumbar (deleted 2015)"),
    "22525": ("kyphoplasty", "percutaneous vertebral augmentation, each additional level (deleted 2015)"),
    "72291": ("unspecified", "radiological supervision for vertebroplasty/augmentation, fluoroscopy (deleted 2015)"),
    "72292": ("unspecified", "radiological supervision for vertebroplasty/augmentation, CT (deleted 2015)"),
}

# Physical therapy evaluations, low / moderate / high complexity (input profile, "NSM"; AMA CPT 2017+),
# and the PT re-evaluation 97164 (same family: a patient re-evaluated is in therapy).
PHYSICAL_THERAPY = {
    "97161": "PT evaluation, low complexity",
    "97162": "PT evaluation, moderate complexity",
    "97163": "PT evaluation, high complexity",
    "97164": "PT re-evaluation",
}

# Dual-energy X-ray absorptiometry, axial / appendicular (input profile, "continuum of care" (a));
# 77085 is axial DXA with vertebral fracture assessment (AMA CPT 2015+), a DXA all the same.
DXA = {
    "77080": "Dual-energy X-ray absorptiometry (DXA), bone density study, axial skeleton",
    "77081": "DXA bone density, appendicular skeleton",
    "77085": "DXA bone density, axial, with vertebral fracture assessment",
}

# Orders a care plan proposes around the procedure (AMA CPT): the coagulation check before it, and
# the MRI that shows acuity when the record lacks one.
PT_INR = {"85610": "Prothrombin time (PT/INR)"}
MRI_SPINE = {
    "72146": "MRI thoracic spine without contrast (with STIR)",
    "72148": "MRI lumbar spine without contrast (with STIR)",
}
MRI_BY_REGION = {"thoracic": "72146", "lumbar": "72148"}
