"""ICD-10-CM codes the mappers recognise, each with its source (see /work/shared/docs/input-profile.md)."""

from __future__ import annotations

import re

# An ICD-10-CM code: a letter, two characters, then up to four after the dot (ICD-10-CM Official
# Guidelines, "Code structure"). Feeds send "M80.08XA", "M8008XA" and "m80.08xa" (input profile,
# "ICD-10-CM spelling").
_SHAPE = re.compile(r"[A-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?")


def spelled(code: str) -> str:
    """The code as the tabular list writes it: upper case, the dot after the third character
    ("m8008xa" → "M80.08XA"). A string that is not shaped like an ICD-10-CM code is only trimmed and
    upper-cased (never matched by guess)."""
    key = code.replace(".", "").replace(" ", "").strip().upper()
    if not _SHAPE.fullmatch(key):
        return code.strip().upper()
    return key if len(key) == 3 else f"{key[:3]}.{key[3:]}"

# Codes are compared without dots and upper-cased ("M80.08XA" -> "M8008XA"); entries are prefixes.
# Vertebral fracture Conditions and the kind each says (input profile, "fracture"; clinical rules,
# "Scope and coding routes").
FRACTURE_PREFIXES = (
    ("M8008", "osteoporotic"),  # age-related osteoporosis with current pathological fracture, vertebra(e)
    ("M8088", "osteoporotic"),  # other osteoporosis with current pathological fracture, vertebra(e)
    ("M8458", "pathologic"),  # pathological fracture in neoplastic disease, vertebrae
    ("S220", "traumatic"),  # fracture of thoracic vertebra
    ("S320", "traumatic"),  # fracture of lumbar vertebra
    ("M485", "collapsed-nec"),  # collapsed vertebra, not elsewhere classified
    ("D1809", "hemangioma"),  # hemangioma of other sites (vertebral hemangioma; clinical rules, needs review)
)
# Fracture families beyond the list above (e.g. M84.48XA pathological fracture, other site, with a
# vertebral body site): a Condition coded with one may still be a vertebral fracture in its words;
# a Condition coded with anything else (G99.2 myelopathy "from T10 fracture") is not (ICD-10-CM
# chapters: M80 osteoporosis with fracture, M84 disorders of continuity of bone, M48.5 collapsed
# vertebra, S12/S22/S32 fractures of the spine, T08 fracture of spine, level unspecified).
FRACTURE_FAMILIES = ("M80", "M84", "M485", "S12", "S22", "S32", "T08")
# S22.0- / S32.0- fifth character: the vertebra (ICD-10-CM tabular list). Characters naming a
# group (S22.05 T5-T6, S22.06 T7-T8, S22.07 T9-T10, S22.08 T11-T12) or "unspecified" (0) give no
# single level and are left to bodySite/text.
TRAUMATIC_LEVEL = {
    "S2201": "T1", "S2202": "T2", "S2203": "T3", "S2204": "T4",
    "S3201": "L1", "S3202": "L2", "S3203": "L3", "S3204": "L4", "S3205": "L5",
}
TRAUMATIC_LEVEL_GROUP = {"S2205": "T5-T6", "S2206": "T7-T8", "S2207": "T9-T10", "S2208": "T11-T12"}
# M48.58X-: collapsed vertebra NEC, sacral and sacrococcygeal region (ICD-10-CM tabular list): the
# sacrum, reported as S1 like every sacral mention (input profile, "level labels").
COLLAPSED_SACRAL = "M4858"
# Sixth character of S22.0x-/S32.0x-: 2 = unstable burst fracture (ICD-10-CM tabular list; input
# profile, "retropulsion / canal").
UNSTABLE_BURST_SIXTH = "2"

# Etiology context (input profile, "etiology context"). M80.- (osteoporosis with current
# pathological fracture) implies osteoporosis.
OSTEOPOROSIS = ("M81", "M80")
MALIGNANCY = ("C412",  # malignant neoplasm of vertebral column
              "C7951",  # secondary malignant neoplasm of bone
              "C7952",  # secondary malignant neoplasm of bone marrow
              "C900")  # multiple myeloma (C90.00 / C90.01 / C90.02)
MYELOMA = ("C900",)
HEALED_FRACTURE = ("Z87310",)  # personal history of (healed) osteoporosis fracture
KYPHOSIS = ("M402",)  # other and unspecified kyphosis


# ICD-10-CM codes here are prefixes, compared without dots ("M46.2" matches "M46.25" and "M4625").

# X1 pain generator other than the fracture (clinical rules X1: "documented radiculopathy or stenosis").
RADICULOPATHY = ("M54.1",  # radiculopathy (clinical rules X1: "documented radiculopathy or stenosis")
                 "M51.1")  # thoracic/lumbar disc disorders *with radiculopathy* (ICD-10-CM tabular)
SPINAL_STENOSIS = ("M48.0",)  # spinal stenosis

# X2 infection (input profile, "infection"; clinical rules X2 "osteomyelitis, discitis, or active
# systemic or surgical-site infection").
INFECTION = ("M46.2",  # osteomyelitis of vertebra
             "M46.3",  # infection of intervertebral disc (pyogenic)
             "M46.4",  # discitis, unspecified
             # active systemic infection (input profile, "infection": sepsis / bacteremia)
             "A40",  # streptococcal sepsis
             "A41",  # other sepsis
             "R65.2",  # severe sepsis (R65.20 without, R65.21 with septic shock)
             "R78.81",  # bacteremia
             # surgical-site infection (input profile, "infection": T81.4-, infection following a procedure;
             # ICD-10-CM FY2022 T81.40-T81.49: superficial/deep incisional, organ/space SSI, sepsis after a procedure)
             "T81.4")

# X3 pregnancy (input profile, "pregnancy": Z33.1 or the O chapter O00-O9A, every code starting "O").
# Z34 (supervision of normal pregnancy) and Z3A (weeks of gestation) are only ever coded in pregnancy.
PREGNANCY = ("Z33.1", "O", "Z34", "Z3A")

# X5 allergy status to contrast media (input profile, "cement / contrast allergy").
CONTRAST_ALLERGY = ("Z91.041",)  # radiographic dye allergy status

# X6 coagulopathy (input profile, "coagulopathy").
COAGULOPATHY = ("D65",  # disseminated intravascular coagulation
                "D68")  # other coagulation defects (D68.-)
# ... of which primary and other thrombophilia (factor V Leiden, antiphospholipid syndrome, lupus
# anticoagulant) raise clotting, not bleeding, risk: reported as a conflict for a reviewer.
THROMBOPHILIA = ("D68.5", "D68.6")

# X7 spinal instability (input profile, "instability").
INSTABILITY = ("M53.2",)  # spinal instabilities

# X8 myelopathy (input profile, "myelopathy / cord / neuro").
MYELOPATHY = ("G95.2",  # other and unspecified cord compression
              "G99.2")  # myelopathy in diseases classified elsewhere

