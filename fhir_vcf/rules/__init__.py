"""Rules: FractureFacts + Policy → Judgement. No FHIR here, and no branching on policy ids."""

from __future__ import annotations

from fhir_vcf.rules.decision import judge
from fhir_vcf.rules.judgement import CriterionResult, Judgement
from fhir_vcf.rules.policy import Policy, load_policies, load_policy

__all__ = ["CriterionResult", "Judgement", "Policy", "judge", "load_policies", "load_policy"]
