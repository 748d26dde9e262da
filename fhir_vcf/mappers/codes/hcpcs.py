"""HCPCS Level II codes the mappers recognise, each with its source (see /work/shared/docs/input-profile.md)."""

from __future__ import annotations

# Thoracic-lumbar-sacral orthoses (TLSO), L0450-L0472 (input profile, "NSM": brace; CMS HCPCS
# "Spinal orthoses: TLSO"). Compared as numbers so that every code of the range is matched.
BRACE_FIRST = "L0450"
BRACE_LAST = "L0472"


def is_brace(code: str) -> bool:
    """Whether a HCPCS code falls in the TLSO range L0450-L0472."""
    code = code.strip().upper()
    if len(code) != 5 or not code.startswith("L") or not code[1:].isdigit():
        return False
    return int(BRACE_FIRST[1:]) <= int(code[1:]) <= int(BRACE_LAST[1:])
