"""Outputs: Judgement → the public evaluation object (with its proposed CarePlan)."""

from __future__ import annotations

from fhir_vcf.outputs.evaluation import render_evaluation

__all__ = ["render_evaluation"]
