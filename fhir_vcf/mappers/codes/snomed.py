"""SNOMED CT codes the mappers recognise, each with its source (see /work/shared/docs/input-profile.md)."""

from __future__ import annotations

# Vertebral fracture Conditions, with the kind each code says (input profile, "fracture").
FRACTURE = {
    "42942008": ("compression", "compression fracture of vertebral column"),
    "240198002": ("osteoporotic", "osteoporotic vertebral collapse"),
    "311891006": ("osteoporotic", "collapse of thoracic vertebra due to osteoporosis"),
    "311890007": ("osteoporotic", "collapse of lumbar vertebra due to osteoporosis"),
    "203451004": ("osteoporotic", "osteoporosis with pathological fracture of thoracic vertebrae"),
    "203450003": ("osteoporotic", "osteoporosis with pathological fracture of lumbar vertebrae"),
    "866087009": ("pathologic", "pathologic fracture of vertebra at site of metastatic neoplasm"),
}

# Vertebrae -> level labels (input profile, "level(s)").
VERTEBRA = {
    "64864005": "T1", "53733008": "T2", "1626008": "T3", "73071006": "T4", "56401006": "T5",
    "45296009": "T6", "62487009": "T7", "11068009": "T8", "82687006": "T9", "7610001": "T10",
    "12989004": "T11", "23215003": "T12", "66794005": "L1", "14293000": "L2", "36470004": "L3",
    "11994002": "L4", "49668003": "L5",
    "54735007": "S1",  # sacrum: reported as S1 so that it fails the level rule (input profile, "level labels")
}
# Region codes: they name a region, never a level (input profile, "level(s)").
SPINE_REGION = {
    "122495006": "thoracic spine",
    "122496007": "lumbar spine",
    "1217256009": "thoracolumbar spine",
    "297172009": "thoracolumbar spine",
}

# Etiology context (input profile, "etiology context"). 102447009 postmenopausal osteoporosis is a
# subtype of 64859006 (SNOMED CT hierarchy; named in the fracture-mapper brief). The osteoporotic
# fracture codes above imply osteoporosis as well.
OSTEOPOROSIS = {
    "64859006": "osteoporosis",
    "390833005": "corticosteroid-induced osteoporosis",
    "102447009": "postmenopausal osteoporosis",
}
MYELOMA = {"109989006": "multiple myeloma"}
MALIGNANCY = {**MYELOMA, "94222008": "secondary malignant neoplasm of bone (metastasis to bone)"}

# Healed / old fracture (input profile, "healed / old fracture").
HEALED_FRACTURE = {"307136000": "old healed fracture"}

# Kyphosis (input profile, "kyphosis").
KYPHOSIS = {
    "414564002": "kyphosis deformity of spine",
    "413428007": "kyphosis",
    "203657009": "kyphosis (dorsal)",
}

# Edema, counted as marrow edema when the Observation/Condition names a vertebra (input profile,
# "acuity finding").
EDEMA = {"79654002": "edema"}


# NSM and continuum of care (input profile, "NSM", "continuum of care").
PHYSICAL_THERAPY = {"91251008": "physical therapy procedure"}
DXA = {"312681000": "bone density scan"}

# X1 pain generator other than the fracture.
RADICULOPATHY = {"72274001": "radiculopathy"}
SPINAL_STENOSIS = {"76107001": "spinal stenosis"}

# X2 infection (input profile, "infection").
INFECTION = {
    "203241002": "vertebral osteomyelitis",
    "444760002": "infection of intervertebral disc",
    "445063003": "discitis",
    "2304001": "intraspinal abscess",
    "302935008": "spinal epidural abscess",
    "202756004": "pyogenic infection of vertebra",
    # active systemic infection (input profile, "infection"; clinical rules X2)
    "91302008": "sepsis",
    "5758002": "bacteremia",
    # surgical-site infection: the SNOMED CT concept 433202001 "Surgical site infection (disorder)", the
    # counterpart of the profile's ICD-10-CM T81.4- (the profile names no SNOMED code for it)
    "433202001": "surgical site infection",
}

# X3 pregnancy (input profile: 77386006; 72892002 "normal pregnancy" is a child concept).
PREGNANCY = {"77386006": "pregnancy", "72892002": "normal pregnancy"}
NOT_PREGNANT = {"60001007": "not pregnant"}  # pregnancy-status answer (LOINC 82810-3)

# X5 allergy to bone cement or contrast (input profile, "cement / contrast allergy").
CEMENT_ALLERGY = {
    "427811002": "allergy to polymethyl methacrylate",
    "426722004": "allergy to iodinated contrast media",
    "385420005": "contrast media",
    "293637006": "allergy to contrast media",
}

# X6 coagulopathy (input profile, "coagulopathy").
COAGULOPATHY = {"64779008": "blood coagulation disorder", "234466008": "acquired coagulation disorder"}

# X7 instability (input profile, "instability").
INSTABILITY = {"240220009": "spinal instability"}

# X8 myelopathy / cord (input profile, "myelopathy / cord / neuro").
MYELOPATHY = {
    "71286001": "spinal cord compression",
    "48522003": "myelopathy",
    "192970008": "cauda equina syndrome",
}

