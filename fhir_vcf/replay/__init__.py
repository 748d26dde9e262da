"""`fhir-vcf replay`: play Bundle files through the CDS Hooks service as an EHR would, and check
every answer.

The package holds one concern in three modules: `flow` (requests, checks, expectations, the
command line), `transport` (the app in-process or a service over HTTP, JWT signing) and `output`
(rows, table, JSON lines, JUnit XML, progress). Nothing here imports the command line: `cli`
imports `add_replay_parser`, never the other way round.
"""

from fhir_vcf.replay.flow import (
    EXTENSION,
    HOOKS,
    ORDER_HOOKS,
    USER_ID,
    add_replay_parser,
    build_request,
    decision_of,
    draft_orders,
    load_expectations,
    main,
    run,
    run_replay,
)
from fhir_vcf.replay.transport import Signer

__all__ = [
    "EXTENSION",
    "HOOKS",
    "ORDER_HOOKS",
    "USER_ID",
    "Signer",
    "add_replay_parser",
    "build_request",
    "decision_of",
    "draft_orders",
    "load_expectations",
    "main",
    "run",
    "run_replay",
]
