"""DICOM modality codes (DCM, CID 29 "Acquisition Modality") and imaging report codes.

Sources: input profile, "imaging study" (MR, NM, PT, CT, DX, CR); DICOM PS3.16 CID 29.
"""

from __future__ import annotations

# Advanced imaging shows a fracture's acuity (marrow edema on MRI, uptake on bone scan / SPECT / PET):
# clinical rules I3.
ADVANCED = {
    "MR": "magnetic resonance",
    "NM": "nuclear medicine (bone scan, SPECT)",
    "PT": "positron emission tomography",
}
# These show the fracture but not its age (clinical rules I3: "radiograph or CT alone ... unknown").
ANATOMIC = {
    "CT": "computed tomography",
    "DX": "digital radiography",
    "CR": "computed radiography",
    "RF": "radio fluoroscopy",  # DICOM CID 29; a fluoroscopic spot film is a radiograph
}
MODALITIES = {**ADVANCED, **ANATOMIC}

# Imaging report codes (LOINC) that name the modality. Kept here, beside the modalities they map to,
# because the LOINC module belongs to the context mapper. Source: input profile, "imaging study"
# (bone scan 39879-2, 25031-6).
REPORT_LOINC_MODALITY = {
    "39879-2": "NM",  # NM bone study
    "25031-6": "NM",  # NM bone scan
}
