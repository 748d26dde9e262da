"""Alembic migrations of the store, on SQLite and PostgreSQL (the `database` fixture of db_support).

What an operator relies on: a fresh database gets exactly the schema the code queries; a database an
older release built by hand (legacy `schema_version` 1 or 3) upgrades without losing a row; a failed
upgrade changes nothing; a database newer than the release is refused; two workers starting together
both come up; `fhir-vcf db upgrade` / `db current` do it on demand. The legacy databases are written
here with hand-written SQL, as those releases left them, not through the store's code.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from db_support import Database, database_fixture, run_together  # noqa: F401  (the `database` fixture)

from fhir_vcf import store as store_module
from fhir_vcf.cli import main
from fhir_vcf.store import IssuedCard, Store, StoreError, alembic_config, head_revision, migrate

HEAD = "0006"
VERSIONS = Path(store_module.__file__).parent / "migrations" / "versions"


def item(card: str, outcome: str = "overridden", ts: str = "2025-01-02T10:05:00Z") -> dict[str, Any]:
    return {"card": card, "outcome": outcome, "outcomeTimestamp": ts}


def revision_of(database: Database) -> str | None:
    engine = sa.create_engine(store_module.engine_url(database.url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_differences(store: Store) -> list[Any]:
    """What differs between the migrated database and the Table objects the store queries."""

    def ours(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        return not (kind == "table" and name in {"schema_version", "alembic_version"})

    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        return compare_metadata(context, store_module.metadata)


# --- the revision chain ---------------------------------------------------------------------------


def test_one_head_and_a_linear_numbered_chain() -> None:
    """Two branches that each add a revision must be chained before merging (docs/migrations.md)."""
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD] == [head_revision()]
    chain = [rev.revision for rev in script.walk_revisions()][::-1]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    for rev in script.walk_revisions():
        file = Path(rev.path).name
        assert file.startswith(rev.revision + "_"), file
        assert rev.down_revision is None or isinstance(rev.down_revision, str)  # no merge points


def test_revisions_never_import_the_current_tables() -> None:
    """A revision freezes the tables it touches; importing fhir_vcf.store's would change old revisions."""
    for path in VERSIONS.glob("0*.py"):
        assert not re.search(r"^\s*(from|import) fhir_vcf", path.read_text(), re.M), path.name


# --- a fresh database -------------------------------------------------------------------------------


def test_fresh_database_gets_the_schema_the_code_queries(database: Database) -> None:
    store = Store(database.url)
    try:
        assert store.version == HEAD
        assert schema_differences(store) == []
        with store.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("schema_version")  # no legacy table on a new install
    finally:
        store.dispose()
    assert revision_of(database) == HEAD


def downgrade(engine: sa.Engine, target: str) -> None:
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, target)


def test_every_revision_downgrades_and_upgrades_again(database: Database) -> None:
    engine = store_module.create_store_engine(database.url)
    try:
        assert migrate(engine) == HEAD
        downgrade(engine, "0002")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("jwt_replay")
            assert MigrationContext.configure(conn).get_current_revision() == "0002"
        downgrade(engine, "base")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("audit")
        assert migrate(engine) == HEAD
    finally:
        engine.dispose()


# --- databases older releases left ---------------------------------------------------------------------

V1_DDL = """
CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, description VARCHAR(200) NOT NULL,
  applied {ts} NOT NULL);
CREATE TABLE store_meta (key VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(256) NOT NULL);
CREATE TABLE audit (id {pk}, created {ts} NOT NULL, hook VARCHAR(64) NOT NULL, hook_instance VARCHAR(64),
  service_id VARCHAR(128) NOT NULL, patient_hash VARCHAR(64), decision VARCHAR(200), card_uuids JSON NOT NULL,
  suggestion_uuids JSON NOT NULL, duration_ms FLOAT, status INTEGER NOT NULL);
CREATE TABLE feedback (id {pk}, card_uuid VARCHAR(128) NOT NULL, service_id VARCHAR(128) NOT NULL,
  outcome VARCHAR(16) NOT NULL, accepted_suggestions JSON NOT NULL, override_code VARCHAR(256),
  override_system VARCHAR(512), override_display VARCHAR(512), user_comment_present BOOLEAN NOT NULL,
  outcome_timestamp {ts} NOT NULL, received {ts} NOT NULL,
  CONSTRAINT uq_feedback_interaction UNIQUE (card_uuid, outcome, outcome_timestamp));
INSERT INTO schema_version (version, description, applied)
  VALUES (1, 'audit, feedback, store_meta', '2025-01-01 00:00:00.000000');
INSERT INTO store_meta (key, value) VALUES ('patient_salt', 'legacy-salt');
INSERT INTO audit (created, hook, service_id, card_uuids, suggestion_uuids, status)
  VALUES ('2025-01-02 10:00:00.000000', 'order-sign', 'vcf-order-sign', '["{card}"]', '[]', 200);
INSERT INTO feedback (card_uuid, service_id, outcome, accepted_suggestions, override_code, user_comment_present,
  outcome_timestamp, received)
  VALUES ('{card}', 'vcf-order-sign', 'overridden', '[]', 'd7ecf885', FALSE, '2025-01-02 10:05:00.000000',
  '2025-01-02 10:05:01.000000')
"""

# What releases 2 and 3 added by hand on top of release 1 (their ALTER TABLE and CREATE statements).
V3_DDL = V1_DDL + """;
CREATE TABLE audit_card (audit_id INTEGER NOT NULL REFERENCES audit (id), card_uuid VARCHAR(128) NOT NULL,
  PRIMARY KEY (audit_id, card_uuid));
CREATE INDEX ix_audit_card_card_uuid ON audit_card (card_uuid);
ALTER TABLE feedback ADD COLUMN audit_id INTEGER;
CREATE INDEX ix_feedback_audit_id ON feedback (audit_id);
CREATE TABLE jwt_replay (issuer VARCHAR(255) NOT NULL, jti VARCHAR(255) NOT NULL, expires_at {ts} NOT NULL,
  CONSTRAINT pk_jwt_replay PRIMARY KEY (issuer, jti));
CREATE INDEX ix_jwt_replay_expires_at ON jwt_replay (expires_at);
INSERT INTO schema_version (version, description, applied)
  VALUES (2, 'audit_card index table, feedback.audit_id joined through the card uuid', '2025-03-01 00:00:00.000000');
INSERT INTO schema_version (version, description, applied)
  VALUES (3, 'jwt_replay: JWT ids already used, shared by every worker', '2025-05-01 00:00:00.000000');
INSERT INTO audit_card (audit_id, card_uuid) VALUES (1, '{card}');
UPDATE feedback SET audit_id = 1;
INSERT INTO jwt_replay (issuer, jti, expires_at)
  VALUES ('https://ehr.example.org', 'jti-1', '2999-01-01 00:00:00.000000')
"""


def make_legacy_database(database: Database, ddl: str, card: str) -> None:
    """A database as an older release left it. Timestamps are written as SQLAlchemy wrote them: on
    SQLite, where a DATETIME is text, that exact form is what the idempotency key compares."""
    types = (
        {"pk": "INTEGER NOT NULL PRIMARY KEY", "ts": "DATETIME"}
        if database.kind == "sqlite"
        else {"pk": "SERIAL PRIMARY KEY", "ts": "TIMESTAMP WITHOUT TIME ZONE"}
    )
    database.run_sql(ddl.format(card=card, **types))


def legacy_versions(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        query = sa.select(store_module.legacy_schema_version.c.version).order_by("version")
        return list(conn.execute(query).scalars())


def test_release_1_database_upgrades_and_keeps_feedback(database: Database) -> None:
    card = str(uuid.uuid4())
    make_legacy_database(database, V1_DDL, card)
    store = Store(database.url)
    try:
        assert store.version == HEAD
        assert legacy_versions(store) == [1]  # the legacy record is left as it was
        (row,) = store.feedback_for(card)
        assert (row["outcome"], row["override_code"], row["outcome_timestamp"]) == (
            "overridden", "d7ecf885", datetime(2025, 1, 2, 10, 5))
        assert row["audit_id"] == 1  # backfilled through the release-1 audit row's card_uuids
        assert store.store_feedback("vcf-order-sign", [item(card)]) == (0, 1)  # the idempotency key survived
        assert schema_differences(store) == []
    finally:
        store.dispose()
    again = Store(database.url)  # a restart applies nothing more
    try:
        assert again.version == HEAD
        assert len(again.feedback_for(card)) == 1
    finally:
        again.dispose()


def test_release_3_database_upgrades_without_loss(database: Database) -> None:
    card = str(uuid.uuid4())
    make_legacy_database(database, V3_DDL, card)
    store = Store(database.url)
    try:
        assert store.version == HEAD
        assert revision_of(database) == HEAD
        assert legacy_versions(store) == [1, 2, 3]
        assert schema_differences(store) == []
        (row,) = store.feedback_for(card)
        assert (row["outcome"], row["override_code"], row["audit_id"]) == ("overridden", "d7ecf885", 1)
        assert store.store_feedback("vcf-order-sign", [item(card)]) == (0, 1)
        audit = store.audit_row(1)
        assert audit is not None and audit["card_uuids"] == [card] and audit["hook"] == "order-sign"
        # the install's salt is kept, so patient hashes still correlate with the rows before the upgrade
        assert store.patient_hash("Patient/1") == Store(database.url, patient_salt="legacy-salt").patient_hash("1")
        assert not store.remember_jti("https://ehr.example.org", "jti-1", time.time() + 60)  # still a replay
        # a card audited before 0005 is known, with what it offered unknown (so not checked against)
        issued = store.issued_card(card, "vcf-order-sign")
        assert issued == IssuedCard(card, None, None)
        assert issued.offers_suggestion("anything") and issued.offers_reason(None, "anything")
    finally:
        store.dispose()


# A database the last hand-written release (schema_version 4) left: release 3 plus the kept
# evaluations of the explanation pages and each card's decision.
V4_DDL = V3_DDL + """;
CREATE TABLE kept_evaluation (id VARCHAR(36) NOT NULL PRIMARY KEY, created {ts} NOT NULL, expires {ts} NOT NULL,
  source VARCHAR(32) NOT NULL, ciphertext TEXT NOT NULL);
CREATE INDEX ix_kept_evaluation_expires ON kept_evaluation (expires);
ALTER TABLE audit_card ADD COLUMN decision VARCHAR(32);
INSERT INTO schema_version (version, description, applied)
  VALUES (4, 'kept_evaluation (explanation pages), audit_card.decision', '2026-01-10 00:00:00.000000');
INSERT INTO kept_evaluation (id, created, expires, source, ciphertext)
  VALUES ('6f1c0c8e-8d0b-4c1e-9a4e-1f7c2a3b4d5e', '2026-01-10 10:00:00.000000', '2999-01-01 00:00:00.000000',
  'patient-view', 'gAAAA-opaque')
"""


def test_release_4_database_upgrades_without_loss(database: Database) -> None:
    card = str(uuid.uuid4())
    make_legacy_database(database, V4_DDL, card)
    store = Store(database.url)
    try:
        assert store.version == HEAD
        assert legacy_versions(store) == [1, 2, 3, 4]
        assert schema_differences(store) == []
        with store.engine.connect() as conn:
            kept = conn.execute(sa.select(store_module.kept_evaluation.c.id, store_module.kept_evaluation.c.ciphertext))
            assert kept.all() == [("6f1c0c8e-8d0b-4c1e-9a4e-1f7c2a3b4d5e", "gAAAA-opaque")]
        assert len(store.feedback_for(card)) == 1
    finally:
        store.dispose()


def test_release_3_cards_are_filed_under_their_call_s_single_decision(database: Database) -> None:
    """0004 backfills audit_card.decision: each card of a one-decision call takes that decision, the
    cards of a call with several decisions stay unfiled."""
    single, mixed_a, mixed_b = (str(uuid.uuid4()) for _ in range(3))
    make_legacy_database(database, V3_DDL, single)  # audit row 1 (no decision) issued `single`
    database.run_sql(
        "UPDATE audit SET decision = 'not-eligible' WHERE id = 1;"
        "INSERT INTO audit (created, hook, service_id, decision, card_uuids, suggestion_uuids, status) VALUES "
        f"('2025-03-01 09:00:00.000000', 'order-sign', 'vcf-order-sign', 'eligible,not-eligible', "
        f"'[\"{mixed_a}\", \"{mixed_b}\"]', '[]', 200);"
        f"INSERT INTO audit_card (audit_id, card_uuid) VALUES (2, '{mixed_a}');"
        f"INSERT INTO audit_card (audit_id, card_uuid) VALUES (2, '{mixed_b}')"
    )
    store = Store(database.url)
    try:
        with store.engine.connect() as conn:
            filed = dict(conn.execute(sa.select(store_module.audit_card.c.card_uuid,
                                                store_module.audit_card.c.decision)).all())
        assert filed == {single: "not-eligible", mixed_a: None, mixed_b: None}
    finally:
        store.dispose()


# --- failures -----------------------------------------------------------------------------------------

BROKEN_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("feedback", sa.Column("half_column", sa.Integer))
    op.execute("SELECT no_such_column FROM feedback")


def downgrade() -> None:
    pass
'''


def test_failed_upgrade_rolls_back_completely(database: Database, tmp_path: Path) -> None:
    card = str(uuid.uuid4())
    store = Store(database.url)
    store.record_call(hook="patient-view", service_id="vcf-patient-view", card_uuids=[card])
    store.store_feedback("vcf-patient-view", [item(card)])
    store.dispose()
    extra = tmp_path / "extra_versions"
    extra.mkdir()
    (extra / "9001_broken.py").write_text(BROKEN_REVISION.format(head=HEAD))
    engine = store_module.create_store_engine(database.url)
    try:
        with pytest.raises(StoreError, match="migration failed"):
            migrate(engine, config=alembic_config(extra_version_locations=[str(extra)]))
    finally:
        engine.dispose()
    reopened = Store(database.url)
    try:
        assert reopened.version == HEAD
        with reopened.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("half_done")
            assert "half_column" not in {c["name"] for c in sa.inspect(conn).get_columns("feedback")}
        assert len(reopened.feedback_for(card)) == 1
    finally:
        reopened.dispose()


def test_database_newer_than_the_release_is_refused(database: Database) -> None:
    Store(database.url).dispose()
    database.run_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer than this release"):
        Store(database.url)


def test_legacy_database_newer_than_alembic_is_refused(database: Database) -> None:
    make_legacy_database(database, V1_DDL, str(uuid.uuid4()))
    database.run_sql(
        "INSERT INTO schema_version (version, description, applied) VALUES (7, 'future', '2030-01-01 00:00:00')"
    )
    with pytest.raises(StoreError, match="newer than this release"):
        Store(database.url)


def test_two_workers_starting_together_both_come_up(database: Database) -> None:
    stores: list[Store] = []
    errors = run_together([lambda: stores.append(Store(database.url))] * 2)
    try:
        assert errors == []
        assert [s.version for s in stores] == [HEAD, HEAD]
        assert stores[0].patient_hash("1") == stores[1].patient_hash("1")  # one salt per install
    finally:
        for s in stores:
            s.dispose()


# --- the command line -----------------------------------------------------------------------------------


def test_db_upgrade_and_current_on_demand(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    make_legacy_database(database, V3_DDL, str(uuid.uuid4()))
    assert main(["db", "current", "--database-url", database.url]) == 0
    assert capsys.readouterr().out.strip() == f"0003 (head: {HEAD}; upgrade pending)"
    assert revision_of(database) is None  # `current` only reads: nothing stamped
    assert main(["db", "upgrade", "--database-url", database.url]) == 0
    assert capsys.readouterr().out.strip() == f"{HEAD} (head)"
    assert main(["db", "current", "--database-url", database.url]) == 0
    assert capsys.readouterr().out.strip() == f"{HEAD} (head)"


def test_db_commands_report_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--database-url", "mysql://u@h/db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fhir-vcf: ") and "unsupported database" in err and "Traceback" not in err
    assert main(["db", "current", "--database-url", "postgresql://postgres@127.0.0.1:1/none"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_migration_logs_its_upgrades_not_alembics_chatter(tmp_path: Path) -> None:
    # In a fresh process: Alembic announces its plugins once per process, at their first use.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s'); "
            "import sqlalchemy as sa; from fhir_vcf.store import migrate; "
            f"migrate(sa.create_engine({url!r}))")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Running upgrade" in said
    assert not [m for m in said.splitlines() if m.startswith(("setup plugin", "Context impl", "Will assume"))]
