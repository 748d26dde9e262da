"""Whole populations from Bulk FHIR: `fhir-vcf screen`, `fhir-vcf audit`, `fhir-vcf synth`.

A transport like the CLI and the service: it partitions Bulk Data NDJSON by patient on disk
(`partition.py`), evaluates one patient at a time through `fhir_vcf.evaluation` only
(`patients.py`), on local processes or a Dask cluster (`engines.py`), and writes the outputs
(`run.py`, with the writers of `fhir_vcf.outputs.table` and `fhir_vcf.outputs.summary`).
No clinical logic lives here; `synth.py` writes synthetic records for tests and benchmarks.
"""

ENGINES = ("local", "dask")  # here, so that the command line lists them without importing an engine
