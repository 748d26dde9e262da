"""The durable store on SQLite and PostgreSQL: audit, idempotent feedback, ping (migrations:
test_migrations.py).

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
from db_support import Database, database_fixture, run_together  # noqa: F401  (the `database` fixture)

from fhir_vcf.errors import ConfigError
from fhir_vcf.store import IssuedCard, Store, StoreError, StoreValueError, audit, engine_url, store_meta


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
    errors = run_together([lambda: results.append(store.store_feedback("vcf-patient-view", [item(card)]))] * 8)
    assert errors == []
    assert sum(s for s, _ in results) == 1
    assert sum(d for _, d in results) == 7
    assert len(store.feedback_for(card)) == 1


def test_a_value_the_database_cannot_hold_is_a_value_error(store: Store, database: Database) -> None:
    """PostgreSQL text cannot hold NUL: that is the data's fault (StoreValueError, a 4xx for the
    caller), not a failing database (a plain StoreError, "retry later"). SQLite stores it."""
    bad = item(new_card(), "overridden", overrideReason={"reason": {"code": "a\x00b"}})
    if database.kind == "postgresql":
        with pytest.raises(StoreValueError):
            store.store_feedback("vcf-patient-view", [bad])
        with pytest.raises(StoreValueError):
            store.issued_card("a\x00b", "vcf-patient-view")
    else:
        assert store.store_feedback("vcf-patient-view", [bad]) == (1, 0)


def test_issued_cards_remember_what_they_offered(store: Store) -> None:
    card = {"uuid": new_card().upper(), "suggestions": [{"uuid": "S-1", "label": "x"}, {"label": "no uuid"}],
            "overrideReasons": [{"system": "urn:r", "code": "c1", "display": "C1"}, {"display": "no code"}]}
    issued = IssuedCard.from_card(card)
    assert issued == IssuedCard(card["uuid"].lower(), ("S-1",), (("urn:r", "c1"),))
    store.record_call(hook="order-sign", service_id="vcf-order-sign", cards=[issued])
    assert store.issued_card(card["uuid"], "vcf-order-sign") == issued
    assert store.issued_card(card["uuid"], "vcf-patient-view") is None  # another service's card
    assert issued.offers_suggestion("s-1") and not issued.offers_suggestion("s-2")
    assert issued.offers_reason("urn:r", "c1") and issued.offers_reason(None, "c1")
    assert not issued.offers_reason("urn:other", "c1")
    later = IssuedCard(issued.uuid, ("S-9",), ())
    store.record_call(hook="order-sign", service_id="vcf-order-sign", cards=[later])
    assert store.issued_card(issued.uuid, "vcf-order-sign") == later  # the latest call that issued it


# --- audit ---------------------------------------------------------------------------------------------


def test_a_failed_audit_write_leaves_no_row_and_the_connection_usable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit write's two inserts roll back together: a card row the database refuses (here a
    duplicate key) takes the call's audit row with it, the failure is a StoreError (503), and the
    next write works."""
    from fhir_vcf import store as store_module

    def count() -> int:
        with store.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(audit)).scalar_one()

    plain_row = store_module._card_row
    before = count()
    with monkeypatch.context() as patched:
        patched.setattr(store_module, "_card_row", lambda audit_id, card, decision: {
            **plain_row(audit_id, card, decision), "card_uuid": "the same"})
        with pytest.raises(StoreError):
            store.record_call(hook="order-select", service_id="x", card_uuids=[new_card(), new_card()])
    assert count() == before
    assert store.record_call(hook="order-select", service_id="x", card_uuids=[new_card()]) > 0
    assert count() == before + 1


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
    assert engine_url("sqlite+pysqlite:///var/x.db").drivername == "sqlite+pysqlite"
    for unsupported in ("mysql://u@h/db", "sqlite+pysqlcipher://:key@/x.db"):
        with pytest.raises(ConfigError):
            engine_url(unsupported)


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


def test_a_sqlite_file_is_one_connection_per_process_and_writers_queue_for_it(tmp_path: Path) -> None:
    """Every transaction takes SQLite's write lock (BEGIN IMMEDIATE), so the threads of a process
    queue for its one connection instead of racing through SQLite's sleeping busy handler: a
    writer waits while another holds it, then writes; one held past `statement_timeout` is a
    StoreError (503), as a locked database is."""
    s = Store(f"sqlite:///{tmp_path / 'one.db'}", statement_timeout=0.5)
    try:
        assert s.engine.pool.size() == 1 and s.engine.pool._max_overflow == 0  # type: ignore[attr-defined]
        written: list[int] = []
        with s.engine.connect():  # another thread of this process holds the connection
            writer = threading.Thread(target=lambda: written.append(s.record_call(hook="patient-view",
                                                                                  service_id="x")))
            writer.start()
            writer.join(0.2)
            assert writer.is_alive() and written == []  # waiting for the connection, not failing
        writer.join(5)
        assert len(written) == 1
        with s.engine.connect(), pytest.raises(StoreError):
            s.record_call(hook="patient-view", service_id="x")  # the same thread: never gets it
    finally:
        s.dispose()


def test_every_sqlite_transaction_takes_the_write_lock_at_begin_and_a_held_lock_is_a_store_error(
    tmp_path: Path,
) -> None:
    """The BEGIN is SQLite's IMMEDIATE one (the store's `begin` event): a transaction that has only read
    still holds the write lock, so another process's writer waits its busy timeout and then fails as
    a StoreError (503), SQLAlchemy having wrapped the driver's "database is locked"."""
    path = tmp_path / "two.db"
    holder, other = Store(f"sqlite:///{path}"), Store(f"sqlite:///{path}", statement_timeout=0.3)
    try:
        with holder.engine.begin() as conn:
            conn.execute(sa.text("SELECT count(*) FROM audit")).scalar()  # a read, and the lock is ours
            with pytest.raises(StoreError):
                other.record_call(hook="patient-view", service_id="x")
            with pytest.raises(sa.exc.OperationalError, match="locked"), other.engine.begin():
                pass  # the BEGIN itself is refused, wrapped by SQLAlchemy
        assert other.record_call(hook="patient-view", service_id="x") > 0  # free again
    finally:
        holder.dispose()
        other.dispose()


def test_two_processes_read_then_write_and_each_waits_its_turn(tmp_path: Path) -> None:
    """Two stores on one file (two worker processes) each read, then write, in one transaction. With
    SQLite's default DEFERRED BEGIN the second would read beside the first and then fail at once
    with "database is locked" when it writes; the store's IMMEDIATE BEGIN makes it wait for the
    first one's commit (its busy timeout), so it reads what the first wrote and both land."""
    path = tmp_path / "turns.db"
    first, second = (Store(f"sqlite:///{path}", statement_timeout=10) for _ in range(2))
    began = threading.Event()
    seen: dict[str, int] = {}

    def read_then_write(store: Store, name: str) -> None:
        with store.engine.begin() as conn:
            if store is first:
                began.set()
            seen[name] = conn.execute(sa.select(sa.func.count()).select_from(store_meta)).scalar_one()
            if store is first:
                time.sleep(0.3)  # the second asks for the write lock meanwhile
            conn.execute(store_meta.insert().values(key=name, value="x"))

    def after_the_first() -> None:
        began.wait(5)
        read_then_write(second, "second")

    try:
        assert run_together([lambda: read_then_write(first, "first"), after_the_first]) == []
        assert seen["second"] == seen["first"] + 1  # it began after the first's commit: it waited its turn
    finally:
        first.dispose()
        second.dispose()


def test_canonical_uuid_fast_path_agrees_with_parsing() -> None:
    from fhir_vcf.store import _canonical_uuid

    def parsed(value: Any) -> str:
        text = str(value).strip()
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return text.lower()

    made = str(uuid.uuid4())
    for value in (made, made.upper(), " " + made, made + "\n", made.replace("-", ""), "{" + made + "}",
                  "urn:uuid:" + made, "not-a-uuid", "", " X ", uuid.UUID(made), 12, made[:-1] + "g"):
        assert _canonical_uuid(value) == parsed(value), value


def test_utcnow_is_the_naive_utc_time() -> None:
    """`_utcnow` drops the zone with `combine`, not `replace(tzinfo=None)`: the same naive UTC time."""
    from datetime import UTC

    from fhir_vcf.store import _utcnow

    before = datetime.now(UTC).replace(tzinfo=None)
    now = _utcnow()
    after = datetime.now(UTC).replace(tzinfo=None)
    assert type(now) is datetime and now.tzinfo is None
    assert before <= now <= after


def test_a_card_row_stores_the_text_lists_give(store: Store) -> None:
    """`_card_row` hands the card's tuples to the JSON columns: the stored text is what the lists
    it copied them into before gave, and reads back as lists."""
    import json

    from fhir_vcf.store import audit_card

    card = IssuedCard(new_card(), ("s-1", "s-2"), (("urn:r", "c1"), (None, "c2")))
    bare = IssuedCard(new_card())
    store.record_call(hook="order-sign", service_id="x", cards=[card, bare])
    query = sa.select(audit_card.c.card_uuid, sa.cast(audit_card.c.suggestion_ids, sa.Text),
                      sa.cast(audit_card.c.override_reasons, sa.Text), audit_card.c.override_reasons)
    with store.engine.connect() as conn:
        rows = {row[0]: row[1:] for row in conn.execute(query)}
    assert rows[card.uuid] == (json.dumps(["s-1", "s-2"]), json.dumps([["urn:r", "c1"], [None, "c2"]]),
                               [["urn:r", "c1"], [None, "c2"]])
    assert rows[bare.uuid] == ("null", "null", None)  # unknown: JSON null, as before


def test_concurrent_audit_writes_on_a_sqlite_file_all_land(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'many.db'}")

    def write() -> None:
        for _ in range(20):
            s.record_call(hook="patient-view", service_id="x", card_uuids=[new_card()])

    errors = run_together([write] * 8)
    try:
        assert errors == []
        with s.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM audit")).scalar() == 160
    finally:
        s.dispose()
