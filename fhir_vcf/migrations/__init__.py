"""The store's schema migrations, as Alembic revisions shipped in the package.

`fhir_vcf.store.migrate` runs them at start-up (and `fhir-vcf db upgrade` on demand) through a
programmatic Alembic configuration (`fhir_vcf.store.alembic_config`); `alembic.ini` beside this
file lets a contributor use the `alembic` command itself. How to add a revision: docs/migrations.md.
"""
