"""CPT codes the mappers recognise, each with its source (see /work/shared/docs/input-profile.md).

Two sections, one per mapper engineer: edit only your own (anchor edits on the markers).
"""

from __future__ import annotations

# === fractures, levels, imaging findings (fracture mapper) ===

# Percutaneous vertebral augmentation (clinical rules, "Technique"; AMA CPT 2015+).
VERTEBROPLASTY = {
    "22510": "percutaneous vertebroplasty, first cervicothoracic level",
    "22511": "percutaneous vertebroplasty, first lumbosacral level",
    "22512": "percutaneous vertebroplasty, each additional level (add-on)",
}
KYPHOPLASTY = {
    "22513": "percutaneous vertebral augmentation (kyphoplasty), first thoracic level",
    "22514": "percutaneous vertebral augmentation (kyphoplasty), first lumbar level",
    "22515": "percutaneous vertebral augmentation (kyphoplasty), each additional level (add-on)",
}
AUGMENTATION = {**VERTEBROPLASTY, **KYPHOPLASTY}
ADD_ON = frozenset({"22512", "22515", "22522", "22525"})
# Deleted 2015 (replaced by 22510-22515): received codes are rejected with a message (clinical rules,
# "Technique"; input profile, "requested procedure").
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

# === end fractures ===

# === symptoms, care, exclusions (context mapper) ===

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
    "77080": "DXA bone density, axial skeleton",
    "77081": "DXA bone density, appendicular skeleton",
    "77085": "DXA bone density, axial, with vertebral fracture assessment",
}

# === end context ===
