"""The durable store on SQLite and PostgreSQL: audit, idempotent feedback, migrations, ping.

Every store test runs twice: on a SQLite file and on PostgreSQL at 127.0.0.1:5432 (database
`test`, override with FHIR_VCF_TEST_POSTGRES_URL), each PostgreSQL test in a fresh schema that is
dropped afterwards (the `database` fixture of `db_support`). Without a reachable PostgreSQL the
PostgreSQL half is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from db_support import Database, database_fixture  # noqa: F401  (the `database` fixture)

from fhir_vcf import store as store_module
from fhir_vcf.errors import ConfigError
from fhir_vcf.store import SCHEMA_VERSION, Migration, Store, StoreError, engine_url


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    s = Store(database.url)
    yield s
    s.dispose()


def item(card: str, outcome: str = "accepted", ts: str = "2020-12-11T00:00:00Z", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"card": card, "outcome": outcome, "outcomeTimestamp": ts}
    if outcome == "accepted":
        body["acceptedSuggestions"] = [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}]
    body.update(extra)
    return body


def new_card() -> str:
    return str(uuid.uuid4())


# --- feedback: idempotent --------------------------------------------------------------------------


def test_same_feedback_twice_is_stored_once(store: Store) -> None:
    card = new_card()
    assert store.store_feedback("vcf-patient-view", [item(card)]) == (1, 0)
    assert store.store_feedback("vcf-patient-view", [item(card)]) == (0, 1)
    assert store.store_feedback("vcf-patient-view", [item(card), item(card)]) == (0, 2)
    rows = store.feedback_for(card)
    assert len(rows) == 1
    assert rows[0]["accepted_suggestions"] == ["e56e1945-20b3-4393-8503-a1a20fd73152"]
    assert rows[0]["outcome_timestamp"] == datetime(2020, 12, 11)


def test_duplicates_inside_one_batch_and_the_same_instant_in_another_offset(store: Store) -> None:
    card = new_card()
    same_instant = item(card, ts="2020-12-11T01:00:00+01:00")  # = 00:00Z
    assert store.store_feedback("vcf-patient-view", [item(card), same_instant]) == (1, 1)


def test_distinct_interactions_on_one_card_are_all_kept(store: Store) -> None:
    card = new_card()
    first = item(card, "overridden", "2020-12-11T00:00:00Z")
    later = item(card, "overridden", "2020-12-11T00:05:00Z")  # dismissed again later
    accepted = item(card, "accepted", "2020-12-11T00:00:00Z")
    assert store.store_feedback("vcf-order-sign", [first, later, accepted]) == (3, 0)
    assert [r["outcome"] for r in store.feedback_for(card)] == ["overridden", "overridden", "accepted"]


def test_override_reason_kept_user_comment_not(store: Store) -> None:
    card = new_card()
    comment = "Pt John Doe MRN 998877 declined"
    reason = {"code": "d7ecf885", "system": "https://example.com/cds-hooks/override-reason-system",
              "display": "Patient declined"}
    store.store_feedback("vcf-patient-view", [item(card, "overridden",
                                                    overrideReason={"reason": reason, "userComment": comment})])
    (row,) = store.feedback_for(card)
    assert (row["override_code"], row["override_system"], row["override_display"]) == (
        reason["code"], reason["system"], reason["display"])
    assert row["user_comment_present"] is True
    assert not any(comment in str(value) for value in row.values())


def test_concurrent_deliveries_of_one_feedback_store_one_row(store: Store) -> None:
    card = new_card()
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            results.append(store.store_feedback("vcf-patient-view", [item(card)]))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(s for s, _ in results) == 1
    assert sum(d for _, d in results) == 7
    assert len(store.feedback_for(card)) == 1


# --- audit ---------------------------------------------------------------------------------------------


def test_record_call_and_feedback_joined_through_the_card(store: Store) -> None:
    card, other = new_card(), new_card()
    audit_id = store.record_call(
        hook="order-sign", service_id="vcf-order-sign", hook_instance=str(uuid.uuid4()),
        patient="Patient/123", decision="not-eligible", card_uuids=[card.upper(), card],
        suggestion_uuids=["s-1"], duration_ms=41.27, status=200,
    )
    row = store.audit_row(audit_id)
    assert row is not None
    assert row["card_uuids"] == [card]  # canonical and de-duplicated
    assert row["suggestion_uuids"] == ["s-1"]
    assert (row["hook"], row["service_id"], row["decision"], row["status"]) == (
        "order-sign", "vcf-order-sign", "not-eligible", 200)
    store.store_feedback("vcf-order-sign", [item(card, "overridden"), item(other, "overridden")])
    assert store.feedback_for(card)[0]["audit_id"] == audit_id
    assert store.feedback_for(other)[0]["audit_id"] is None  # a card we never audited


def test_audit_keeps_a_salted_hash_never_the_patient_id(store: Store, database: Database) -> None:
    audit_id = store.record_call(hook="patient-view", service_id="vcf-patient-view", patient="Patient/pt-4711")
    row = store.audit_row(audit_id)
    assert row is not None
    assert not any("pt-4711" in str(value) for value in row.values())
    assert row["patient_hash"] == store.patient_hash("pt-4711") == store.patient_hash("Patient/pt-4711")
    assert row["patient_hash"] != hashlib.sha256(b"Patient/pt-4711").hexdigest()  # salted
    reopened = Store(database.url)
    try:
        assert reopened.patient_hash("Patient/pt-4711") == row["patient_hash"]  # the salt persists
    finally:
        reopened.dispose()


def test_patient_hash_differs_between_installs_and_honours_a_given_salt(tmp_path: Path) -> None:
    a = Store(f"sqlite:///{tmp_path / 'a.db'}")
    b = Store(f"sqlite:///{tmp_path / 'b.db'}")
    c = Store(f"sqlite:///{tmp_path / 'c.db'}", patient_salt="pepper")
    try:
        assert a.patient_hash("Patient/1") != b.patient_hash("Patient/1")
        assert c.patient_hash("1") == hmac.new(b"pepper", b"Patient/1", hashlib.sha256).hexdigest()
    finally:
        for s in (a, b, c):
            s.dispose()


# --- migrations ----------------------------------------------------------------------------------------

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
INSERT INTO audit (created, hook, service_id, card_uuids, suggestion_uuids, status)
  VALUES ('2025-01-02 10:00:00.000000', 'order-sign', 'vcf-order-sign', '["{card}"]', '[]', 200);
INSERT INTO feedback (card_uuid, service_id, outcome, accepted_suggestions, override_code, user_comment_present,
  outcome_timestamp, received)
  VALUES ('{card}', 'vcf-order-sign', 'overridden', '[]', 'd7ecf885', FALSE, '2025-01-02 10:05:00.000000',
  '2025-01-02 10:05:01.000000')
"""


def make_v1_database(database: Database, card: str) -> None:
    """A database as release 1 left it, written by hand (not through the store's code).

    Timestamps are written as release 1 (SQLAlchemy) wrote them; on SQLite, where a DATETIME is
    text, that exact form is what the (card, outcome, outcomeTimestamp) key compares.
    """
    types = (
        {"pk": "INTEGER NOT NULL PRIMARY KEY", "ts": "DATETIME"}
        if database.kind == "sqlite"
        else {"pk": "SERIAL PRIMARY KEY", "ts": "TIMESTAMP WITHOUT TIME ZONE"}
    )
    database.run_sql(V1_DDL.format(card=card, **types))


def versions(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(store_module.schema_version.c.version).order_by("version")).scalars())


def test_upgrade_from_v1_keeps_feedback_and_advances_the_version(database: Database) -> None:
    card = new_card()
    make_v1_database(database, card)
    store = Store(database.url)
    try:
        assert store.version == SCHEMA_VERSION == 4
        assert versions(store) == [1, 2, 3, 4]
        (row,) = store.feedback_for(card)
        assert (row["outcome"], row["override_code"], row["outcome_timestamp"]) == (
            "overridden", "d7ecf885", datetime(2025, 1, 2, 10, 5))
        assert row["audit_id"] == 1  # backfilled through the v1 audit row's card_uuids
        # the idempotency key survived the upgrade
        assert store.store_feedback("vcf-order-sign", [item(card, "overridden", "2025-01-02T10:05:00Z")]) == (0, 1)
    finally:
        store.dispose()
    again = Store(database.url)  # a restart applies nothing more
    try:
        assert versions(again) == [1, 2, 3, 4]
        assert len(again.feedback_for(card)) == 1
    finally:
        again.dispose()


def test_upgrade_from_v2_adds_the_jti_table_and_keeps_feedback(database: Database) -> None:
    """A database release 2 left (its migrations, then a hook call and feedback) upgrades to v3."""
    card = new_card()
    engine = store_module.create_store_engine(database.url)
    try:
        assert store_module.migrate(engine, target=2) == 2
        with engine.begin() as conn:
            assert not sa.inspect(conn).has_table("jwt_replay")
            audit_id = conn.execute(store_module.audit.insert().values(
                created=datetime(2025, 3, 1, 9), hook="order-sign", service_id="vcf-order-sign",
                card_uuids=[card], suggestion_uuids=[], status=200)).inserted_primary_key[0]
            conn.execute(store_module.audit_card.insert().values(audit_id=audit_id, card_uuid=card))
            conn.execute(store_module.feedback.insert().values(
                card_uuid=card, service_id="vcf-order-sign", outcome="overridden", accepted_suggestions=[],
                override_code="d7ecf885", user_comment_present=False, outcome_timestamp=datetime(2025, 3, 1, 9, 5),
                received=datetime(2025, 3, 1, 9, 5, 1), audit_id=audit_id))
    finally:
        engine.dispose()
    store = Store(database.url)
    try:
        assert store.version == SCHEMA_VERSION == 4
        assert versions(store) == [1, 2, 3, 4]
        (row,) = store.feedback_for(card)
        assert (row["outcome"], row["override_code"], row["audit_id"]) == ("overridden", "d7ecf885", audit_id)
        assert store.store_feedback("vcf-order-sign", [item(card, "overridden", "2025-03-01T09:05:00Z")]) == (0, 1)
        assert store.remember_jti("https://ehr.example.org", "jti-1", time.time() + 60)  # the new table works
    finally:
        store.dispose()


def test_upgrade_from_v3_adds_kept_evaluations_and_files_cards_by_decision(database: Database) -> None:
    """A database release 3 left upgrades to v4 without loss: audit, cards and feedback stay; each card
    of a one-decision call is filed under that decision; a mixed call's cards stay unfiled."""
    single, mixed_a, mixed_b = new_card(), new_card(), new_card()
    engine = store_module.create_store_engine(database.url)
    try:
        assert store_module.migrate(engine, target=3) == 3
        with engine.begin() as conn:
            assert not sa.inspect(conn).has_table("kept_evaluation")
            ids = []
            for decision, cards in (("not-eligible", [single]), ("eligible,not-eligible", [mixed_a, mixed_b])):
                audit_id = conn.execute(store_module.audit.insert().values(
                    created=datetime(2025, 3, 1, 9), hook="order-sign", service_id="vcf-order-sign",
                    decision=decision, card_uuids=cards, suggestion_uuids=[], status=200)).inserted_primary_key[0]
                ids.append(audit_id)
                for card in cards:
                    conn.execute(store_module.audit_card.insert().values(audit_id=audit_id, card_uuid=card))
            conn.execute(store_module.feedback.insert().values(
                card_uuid=single, service_id="vcf-order-sign", outcome="overridden", accepted_suggestions=[],
                override_code="clinical-judgement", user_comment_present=False,
                outcome_timestamp=datetime(2025, 3, 1, 9, 5), received=datetime(2025, 3, 1, 9, 5, 1), audit_id=ids[0]))
    finally:
        engine.dispose()
    store = Store(database.url)
    try:
        assert store.version == SCHEMA_VERSION == 4
        assert len(store.feedback_for(single)) == 1
        with store.engine.connect() as conn:
            filed = dict(conn.execute(sa.select(store_module.audit_card.c.card_uuid,
                                                store_module.audit_card.c.decision)).all())
            assert sa.inspect(conn).has_table("kept_evaluation")
        assert filed == {single: "not-eligible", mixed_a: None, mixed_b: None}
    finally:
        store.dispose()


def test_failed_migration_rolls_back_completely(
    database: Database, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = new_card()
    store.store_feedback("vcf-patient-view", [item(card)])
    store.dispose()

    def broken(conn: sa.Connection) -> None:
        sa.Table("half_done", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)).create(conn)
        conn.execute(sa.text("SELECT no_such_column FROM feedback"))

    broken_step = Migration(SCHEMA_VERSION + 1, "broken", broken)
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, broken_step))
    with pytest.raises(StoreError, match="migration failed"):
        Store(database.url)
    monkeypatch.undo()
    reopened = Store(database.url)
    try:
        assert versions(reopened) == [1, 2, 3, 4]
        with reopened.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("half_done")
        assert len(reopened.feedback_for(card)) == 1
    finally:
        reopened.dispose()


def test_database_newer_than_the_release_refused(database: Database, store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            store_module.schema_version.insert().values(version=99, description="future", applied=datetime.now())
        )
    store.dispose()
    with pytest.raises(StoreError, match="newer"):
        Store(database.url)


def test_two_workers_starting_together_both_come_up(database: Database) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(Store(database.url))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert [s.version for s in stores] == [SCHEMA_VERSION, SCHEMA_VERSION]
        assert versions(stores[0]) == [1, 2, 3, 4]
        assert stores[0].patient_hash("1") == stores[1].patient_hash("1")  # one salt per install
    finally:
        for s in stores:
            s.dispose()


# --- ping, URLs ----------------------------------------------------------------------------------------


def test_ping(store: Store) -> None:
    assert store.ping() is True
    store.engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")  # nothing listens on 1
    assert store.ping() is False


def test_unreachable_database_fails_at_start_up() -> None:
    with pytest.raises(StoreError):
        Store("postgresql://postgres@127.0.0.1:1/none")


def test_database_urls() -> None:
    assert engine_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///var/x.db").drivername == "sqlite"
    with pytest.raises(ConfigError):
        engine_url("mysql://u@h/db")


def test_default_sqlite_path_creates_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from fhir_vcf.config import Settings

    s = Store(Settings().database_url)
    try:
        assert (tmp_path / "var" / "fhir-vcf.db").is_file()
        assert s.ping()
    finally:
        s.dispose()


def test_in_memory_sqlite_shared_between_threads() -> None:
    s = Store("sqlite://")
    card = new_card()
    t = threading.Thread(target=lambda: s.store_feedback("vcf-patient-view", [item(card)]))
    t.start()
    t.join()
    assert len(s.feedback_for(card)) == 1
