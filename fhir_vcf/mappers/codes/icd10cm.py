"""ICD-10-CM codes the mappers recognise, each with its source (see /work/shared/docs/input-profile.md)."""

from __future__ import annotations

# === fractures, levels, imaging findings (fracture mapper) ===

# === end fractures ===

# === symptoms, care, exclusions (context mapper) ===

# === end context ===
