"""Alembic's environment: run the revisions on the store's connection.

The service (`fhir_vcf.store.migrate`) passes its own open connection in
`config.attributes["connection"]`, inside the transaction that also stamps the legacy schema, so
an upgrade is all or nothing. Alembic's command line (`alembic -c fhir_vcf/migrations/alembic.ini`)
gets no connection: it opens one from `-x url=...`, else `FHIR_VCF_DATABASE_URL` (the service's
default when unset), through the store's engine factory so SQLite behaves as the service sees it.

Offline mode (`--sql`) is not supported: revision 0002 backfills rows it must first read.
"""

from __future__ import annotations

from alembic import context

from fhir_vcf.store import create_store_engine, metadata


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        from fhir_vcf.config import Settings

        url = Settings.from_env().database_url
    engine = create_store_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("fhir-vcf migrations: offline (--sql) mode is not supported; run against a database")
run_migrations_online()
