"""RxNorm ingredients (and the names that stand for them) the mappers recognise.

Codes are RxNorm ingredient (IN) concepts from the input profile. Real feeds send product codes
(SCD/SBD) the lists cannot hold, so every ingredient also has a name pattern, matched in
`coding.display`, `CodeableConcept.text` and `medicationReference.display` (input profile, "NSM":
"real feeds carry product codes, so match names too"). Brand names sit beside the ingredient they
contain; a combination brand (Percocet, Norco) names each of its ingredients.
"""

from __future__ import annotations

# --- analgesics (NSM "analgesic"; input profile, "NSM") ---
ANALGESICS = {
    "161": "acetaminophen",
    "5640": "ibuprofen",
    "7258": "naproxen",
    "10689": "tramadol",
    "7804": "oxycodone",
    "5489": "hydrocodone",
    "7052": "morphine",
}
# Name patterns (regular expressions, case-insensitive, whole words). The last five are matched by
# name only: common analgesics for VCF pain (calcitonin: NICE TA279 "optimal pain management").
ANALGESIC_NAMES = {
    "acetaminophen": r"acetaminophen|paracetamol|tylenol|apap|percocet|norco|vicodin",
    "ibuprofen": r"ibuprofen|advil|motrin",
    "naproxen": r"naproxen|aleve|naprosyn|anaprox",
    "tramadol": r"tramadol|ultram",
    "oxycodone": r"oxycodone|oxycontin|percocet|roxicodone",
    "hydrocodone": r"hydrocodone|norco|vicodin",
    "morphine": r"morphine|ms\s*contin",
    "celecoxib": r"celecoxib|celebrex",
    "diclofenac": r"diclofenac|voltaren",
    "meloxicam": r"meloxicam|mobic",
    "hydromorphone": r"hydromorphone|dilaudid",
    "calcitonin": r"calcitonin|miacalcin",
}

# --- osteoporosis treatment (continuum of care (b), also NSM "anti-osteoporosis") ---
OSTEOPOROSIS_DRUGS = {
    "46041": "alendronate",
    "73056": "risedronate",
    "115264": "ibandronate",
    "77655": "zoledronic acid",
}
# Denosumab, teriparatide, abaloparatide and romosozumab are matched by name (input profile).
OSTEOPOROSIS_NAMES = {
    "alendronate": r"alendron(?:ate|ic\s+acid)|fosamax|binosto",
    "risedronate": r"risedron(?:ate|ic\s+acid)|actonel|atelvia",
    "ibandronate": r"ibandron(?:ate|ic\s+acid)|boniva",
    "zoledronic acid": r"zoledron(?:ic\s+acid|ate)|reclast",
    "denosumab": r"denosumab|prolia",
    "teriparatide": r"teriparatide|forteo",
    "abaloparatide": r"abaloparatide|tymlos",
    "romosozumab": r"romosozumab|evenity",
}

# --- anticoagulants (context for X6 only: an anticoagulant alone is not a coagulopathy) ---
ANTICOAGULANTS = {
    "11289": "warfarin",
    "1364430": "apixaban",
    "1114195": "rivaroxaban",
    "1037042": "dabigatran",
    "1546356": "dabigatran",
    "1599538": "edoxaban",
    "5224": "heparin",
    "67108": "enoxaparin",
}
ANTICOAGULANT_NAMES = {
    "warfarin": r"warfarin|coumadin|jantoven",
    "apixaban": r"apixaban|eliquis",
    "rivaroxaban": r"rivaroxaban|xarelto",
    "dabigatran": r"dabigatran|pradaxa",
    "edoxaban": r"edoxaban|savaysa",
    "heparin": r"heparin",
    "enoxaparin": r"enoxaparin|lovenox",
}

# --- iodinated contrast agents (X5: "allergy to opacification (contrast) agents", clinical rules) ---
# Allergy lists often name the agent (an RxNorm ingredient or the brand) rather than "contrast":
# generic and brand names of the iodinated agents used under fluoroscopy (FDA labels: Omnipaque,
# Isovue, Visipaque, Optiray, Ultravist, Oxilan, Gastrografin/MD-76R, Conray). Matched by name only.
IODINATED_CONTRAST_NAMES = (
    r"iohexol|omnipaque",
    r"iopamidol|isovue",
    r"iodixanol|visipaque",
    r"ioversol|optiray",
    r"iopromide|ultravist",
    r"ioxilan|oxilan",
    r"diatrizoate|gastrografin|hypaque",
    r"iothalamate|conray",
)
