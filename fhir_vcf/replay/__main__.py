"""`python -m fhir_vcf.replay ...`: the same as `fhir-vcf replay ...`."""

import sys

from fhir_vcf.replay.flow import main

sys.exit(main())
