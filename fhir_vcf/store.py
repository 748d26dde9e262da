"""The durable store: one audit row per hook call, CDS Hooks feedback, the shared JWT replay
cache, versioned migrations.

SQLAlchemy 2 Core over SQLite (the default, a file under ./var/) or PostgreSQL (psycopg 3).
Nothing here writes dialect-specific SQL: tables, inserts and queries are SQLAlchemy constructs;
the only SQLite-specific lines are SQLAlchemy's documented recipe that makes SQLite transactions
(and so migrations and savepoints) behave as on PostgreSQL.

Privacy. The audit never holds a raw patient id: `patient_hash` is HMAC-SHA256 of the patient
reference keyed with a random per-install salt (kept in `store_meta`, or given to `Store`), so
rows for one patient correlate inside one install but cannot be joined across installs or
reversed with a table of hashed ids from elsewhere. Feedback's free-text `userComment` is not
stored (only whether there was one): clinicians type patient details into such boxes, and the
store would otherwise become a PHI store needing the controls of one, for text the service
never uses. The coded `overrideReason.reason` is what drives rule review, and it is kept.

Idempotency. The spec lets an EHR send feedback "multiple times for a card" and asks it to report
each distinct end-user interaction. An interaction is identified by (card, outcome,
outcomeTimestamp): the same triple again is a retransmission and is stored once (the first copy
wins); a later override or acceptance of the same card has another timestamp and is kept. The
unique constraint on those columns enforces it, also against two concurrent requests.

JWT replay cache. `remember_jti` records each CDS Hooks JWT's (issuer, jti) in `jwt_replay` until
the token expires. The (issuer, jti) primary key makes the check-and-record one atomic insert, so
every worker process (and every instance on the same database) sees the same set: a token replayed
to another worker is refused there too. Expired rows are purged opportunistically (at most once a
`JTI_PURGE_SECONDS` per process); an expired row not yet purged does not block a new token with
the same id, as the in-memory cache forgets it too.

Budgets. A database that is down, locked or hung must cost a request seconds, not forever: a
connection is opened within `connect_timeout` (libpq `connect_timeout`; the pool waits no longer
for a free one), a statement runs within `statement_timeout` (PostgreSQL `statement_timeout` and
`lock_timeout`; SQLite's busy timeout, the time a writer waits for the lock), and on PostgreSQL a
watchdog shuts down the socket of a connection whose server stops answering altogether (a
server-side timeout cannot fire then). Every failure is a `StoreError`, which the transports answer
with 503 and Retry-After.

The audit write. One row per hook call, committed before the answer leaves, so a worker killed
after answering cannot lose it; it must cost well under a millisecond. SQLite runs in WAL mode
with `synchronous=NORMAL`: a commit appends to the write-ahead log without an fsync (the log is
synced at checkpoints). What a crash can lose: a killed worker process, nothing committed (the
log is in the operating system's page cache); only an operating-system crash or power loss can
lose the transactions committed since the last checkpoint (SQLite's documented WAL/NORMAL
durability; the database stays consistent). On PostgreSQL the audit transaction sets
`synchronous_commit = off`: the same guarantee (a worker's death loses nothing the server has
acknowledged; a *server* crash can lose the audit rows of the last ~0.6 s, three
`wal_writer_delay`s) without waiting for a WAL flush. Feedback and the JWT replay cache keep full
durability.

Migrations. `MIGRATIONS` is an ordered list; at start-up every step newer than the recorded
`schema_version` runs, together with its `schema_version` row, in one transaction, so a failed
upgrade leaves the database as it was and never loses stored feedback. Never edit a released
step; append a new one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from fhir_vcf.errors import ConfigError, FhirVcfError
from fhir_vcf.logs import keyed_patient_hash

if TYPE_CHECKING:
    from flask import Flask

    from fhir_vcf.config import Settings

log = logging.getLogger(__name__)

EXTENSION = "fhir_vcf_store"
DEFAULT_CONNECT_TIMEOUT_SECONDS = 2.0
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 2.0  # also SQLite's busy timeout: how long a writer waits for another one
JTI_PURGE_SECONDS = 60.0  # at most one purge of expired jwt_replay rows per process per minute
KEY_LENGTH = 255  # jwt_replay.issuer / jti: longer values are stored as their SHA-256
_LATEST_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z: an absurd `exp` is clamped, not a crash


class StoreError(FhirVcfError):
    """The database failed (unreachable, locked, newer schema); the message holds no row data."""


# ---------------------------------------------------------------------------------------------
# The current schema (the latest migration's result). Queries use these Table objects; the
# migrations below build each version's tables from their own frozen definitions.

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied", sa.DateTime, nullable=False),
)

store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created", sa.DateTime, nullable=False),  # UTC, naive (every timestamp here is UTC)
    sa.Column("hook", sa.String(64), nullable=False),
    sa.Column("hook_instance", sa.String(64)),
    sa.Column("service_id", sa.String(128), nullable=False),
    sa.Column("patient_hash", sa.String(64)),
    sa.Column("decision", sa.String(200)),
    sa.Column("card_uuids", sa.JSON, nullable=False),
    sa.Column("suggestion_uuids", sa.JSON, nullable=False),
    sa.Column("duration_ms", sa.Float),
    sa.Column("status", sa.Integer, nullable=False),
)

# v2: one row per card of an audited call, so feedback finds its call by card uuid with an index.
audit_card = sa.Table(
    "audit_card",
    metadata,
    sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit.id"), primary_key=True),
    sa.Column("card_uuid", sa.String(128), primary_key=True),
    sa.Column("decision", sa.String(32)),  # v4: the card's own decision (a call may have several)
    sa.Index("ix_audit_card_card_uuid", "card_uuid"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("card_uuid", sa.String(128), nullable=False),
    sa.Column("service_id", sa.String(128), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("accepted_suggestions", sa.JSON, nullable=False),
    sa.Column("override_code", sa.String(256)),
    sa.Column("override_system", sa.String(512)),
    sa.Column("override_display", sa.String(512)),
    sa.Column("user_comment_present", sa.Boolean, nullable=False),
    sa.Column("outcome_timestamp", sa.DateTime, nullable=False),
    sa.Column("received", sa.DateTime, nullable=False),
    sa.Column("audit_id", sa.Integer),  # v2
    sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_interaction"),
)

_INSERT_AUDIT = audit.insert()
_INSERT_AUDIT_CARD = audit_card.insert()

# v3: JWT ids already used (CDS Hooks replay protection), shared by every worker.
jwt_replay = sa.Table(
    "jwt_replay",
    metadata,
    sa.Column("issuer", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("jti", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),  # UTC: exp + leeway
    sa.PrimaryKeyConstraint("issuer", "jti", name="pk_jwt_replay"),  # the unique key: insert-or-fail
    sa.Index("ix_jwt_replay_expires_at", "expires_at"),
)


# v4: evaluations kept to be shown on the explanation page (fhir_vcf.kept): encrypted, purged.
kept_evaluation = sa.Table(
    "kept_evaluation",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # a random UUID: the page link names it
    sa.Column("created", sa.DateTime, nullable=False),  # UTC
    sa.Column("expires", sa.DateTime, nullable=False),  # UTC: purged after this
    sa.Column("source", sa.String(32), nullable=False),  # the hook, or "api"
    sa.Column("ciphertext", sa.Text, nullable=False),  # a Fernet token: AES-128-CBC + HMAC-SHA256
    sa.Index("ix_kept_evaluation_expires", "expires"),
)


# ---------------------------------------------------------------------------------------------
# Migrations


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    """The first released schema: audit (card uuids only as JSON), feedback, store_meta."""
    v1 = sa.MetaData()
    sa.Table(
        "store_meta", v1,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    sa.Table(
        "audit", v1,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("hook", sa.String(64), nullable=False),
        sa.Column("hook_instance", sa.String(64)),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("patient_hash", sa.String(64)),
        sa.Column("decision", sa.String(200)),
        sa.Column("card_uuids", sa.JSON, nullable=False),
        sa.Column("suggestion_uuids", sa.JSON, nullable=False),
        sa.Column("duration_ms", sa.Float),
        sa.Column("status", sa.Integer, nullable=False),
    )
    sa.Table(
        "feedback", v1,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON, nullable=False),
        sa.Column("override_code", sa.String(256)),
        sa.Column("override_system", sa.String(512)),
        sa.Column("override_display", sa.String(512)),
        sa.Column("user_comment_present", sa.Boolean, nullable=False),
        sa.Column("outcome_timestamp", sa.DateTime, nullable=False),
        sa.Column("received", sa.DateTime, nullable=False),
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_interaction"),
    )
    v1.create_all(conn)


def _v2(conn: Connection) -> None:
    """Join feedback to its audited call: the audit_card index table and feedback.audit_id, backfilled."""
    v2 = sa.MetaData()  # audit_card as v2 made it (frozen: v4 adds a column to the live definition)
    sa.Table(
        "audit_card", v2,
        sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit.id"), primary_key=True),
        sa.Column("card_uuid", sa.String(128), primary_key=True),
        sa.Index("ix_audit_card_card_uuid", "card_uuid"),
    )
    sa.Table("audit", v2, sa.Column("id", sa.Integer, primary_key=True))  # the foreign key's target
    v2.tables["audit_card"].create(conn)
    # ALTER TABLE ... ADD COLUMN is the same on SQLite and PostgreSQL; the type comes from the dialect.
    column_type = sa.Integer().compile(dialect=conn.dialect)
    preparer = conn.dialect.identifier_preparer
    conn.execute(
        sa.text(f"ALTER TABLE {preparer.quote('feedback')} ADD COLUMN {preparer.quote('audit_id')} {column_type}")
    )
    sa.Index("ix_feedback_audit_id", feedback.c.audit_id).create(conn)
    rows = conn.execute(sa.select(audit.c.id, audit.c.card_uuids)).all()
    links = {(row.id, _canonical_uuid(card)) for row in rows for card in (row.card_uuids or []) if card}
    if links:
        conn.execute(audit_card.insert(), [{"audit_id": a, "card_uuid": c} for a, c in sorted(links)])
    latest = (
        sa.select(sa.func.max(audit_card.c.audit_id))
        .where(audit_card.c.card_uuid == feedback.c.card_uuid)
        .scalar_subquery()
    )
    conn.execute(feedback.update().where(feedback.c.audit_id.is_(None)).values(audit_id=latest))


def _v3(conn: Connection) -> None:
    """The shared JWT replay cache: jwt_replay (issuer, jti) → expires_at. Nothing else changes."""
    v3 = sa.MetaData()
    sa.Table(
        "jwt_replay", v3,
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name="pk_jwt_replay"),
        sa.Index("ix_jwt_replay_expires_at", "expires_at"),
    )
    v3.create_all(conn)


def _v4(conn: Connection) -> None:
    """Explanation pages: the kept_evaluation table, and each card's own decision in audit_card
    (backfilled from its call when the call had one decision) for the governance view."""
    v4 = sa.MetaData()
    sa.Table(
        "kept_evaluation", v4,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("expires", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Index("ix_kept_evaluation_expires", "expires"),
    )
    v4.create_all(conn)
    column_type = sa.String(32).compile(dialect=conn.dialect)
    preparer = conn.dialect.identifier_preparer
    conn.execute(
        sa.text(f"ALTER TABLE {preparer.quote('audit_card')} ADD COLUMN {preparer.quote('decision')} {column_type}")
    )
    single = (
        sa.select(audit.c.decision)
        .where(audit.c.id == audit_card.c.audit_id, ~audit.c.decision.contains(","))
        .scalar_subquery()
    )
    conn.execute(audit_card.update().values(decision=single))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "audit, feedback, store_meta", _v1),
    Migration(2, "audit_card index table; feedback.audit_id joined through the card uuid", _v2),
    Migration(3, "jwt_replay: JWT ids already used, shared by every worker", _v3),
    Migration(4, "kept_evaluation (explanation pages); audit_card.decision (governance view)", _v4),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The recorded schema version (0 for an empty database)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def migrate(engine: Engine, target: int | None = None) -> int:
    """Bring the database to `target` (default: the latest); return the version reached.

    All pending steps run in one transaction. Two workers starting together may race: the loser
    fails on the schema_version primary key (or an existing table), rolls back, re-reads the
    version and finds nothing left to do.
    """
    latest = MIGRATIONS[-1].version
    target = latest if target is None else target
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # a migration may run longer than a request's statement
                    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                schema_version.create(conn, checkfirst=True)
                version = current_version(conn)
                if version > latest:
                    raise StoreError(
                        f"store: the database schema is version {version}, newer than this release "
                        f"({latest}); upgrade fhir-vcf"
                    )
                for step in MIGRATIONS:
                    if version < step.version <= target:
                        log.info("store: migrating schema to version %d (%s)", step.version, step.description)
                        step.apply(conn)
                        conn.execute(
                            schema_version.insert().values(
                                version=step.version, description=step.description, applied=_utcnow()
                            )
                        )
                        version = step.version
                return version
        except SQLAlchemyError as exc:
            if attempt == attempts:
                raise StoreError(f"store: schema migration failed: {type(exc).__name__}") from exc
            log.warning("store: migration attempt %d failed (%s); retrying", attempt, type(exc).__name__)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Engine


def engine_url(database_url: str) -> URL:
    """The SQLAlchemy URL: `postgresql://` and `postgres://` use the psycopg 3 driver."""
    try:
        url = make_url(database_url)
    except (SQLAlchemyError, ValueError) as exc:
        raise ConfigError(f"FHIR_VCF_DATABASE_URL: not a database URL ({type(exc).__name__})") from None
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(f"FHIR_VCF_DATABASE_URL: unsupported database {url.get_backend_name()!r}")
    return url


class _DatabaseWatch:
    """Shuts down the socket of a checked-out PostgreSQL connection still checked out past its deadline:
    a hung server (it accepts, then never answers) fails the blocked call at once instead of holding
    the request thread, and the connection is then thrown away (`handle_error` below)."""

    def __init__(self, dbapi_connection: Any, seconds: float) -> None:
        self.expired = False
        self._connection = dbapi_connection
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        _shutdown_connection(self._connection)


def _shutdown_connection(dbapi_connection: Any) -> None:
    """Shut the socket of a psycopg connection down (its public `pgconn.socket` descriptor)."""
    with suppress(Exception):
        fd = dbapi_connection.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)


# Set while the schema is migrated: a migration may legitimately hold its connection, and run a
# statement, longer than a request may (start-up, before any request).
_UNBOUNDED: ContextVar[bool] = ContextVar("fhir_vcf_database_unbounded", default=False)
_WATCH_KEY = "fhir_vcf_watch"


@contextmanager
def unbounded() -> Iterator[None]:
    """No deadline for the connections checked out in this block (schema migrations)."""
    token = _UNBOUNDED.set(True)
    try:
        yield
    finally:
        _UNBOUNDED.reset(token)


def create_store_engine(
    database_url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
) -> Engine:
    url = engine_url(database_url)
    if url.get_backend_name() != "sqlite":
        milliseconds = max(1, int(statement_timeout * 1000))
        options = " ".join(filter(None, (str(url.query.get("options") or ""),
                                         f"-c statement_timeout={milliseconds}", f"-c lock_timeout={milliseconds}")))
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=connect_timeout,
            # libpq counts whole seconds (and at least 2); the options apply from the session's start.
            connect_args={"connect_timeout": max(2, math.ceil(connect_timeout)), "options": options},
        )

        deadline = connect_timeout + statement_timeout + 1.0

        @event.listens_for(engine, "checkout")
        def _watched(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            if not _UNBOUNDED.get():
                record.info[_WATCH_KEY] = _DatabaseWatch(dbapi_connection, deadline)

        @event.listens_for(engine, "checkin")
        def _unwatched(_dbapi_connection: Any, record: Any) -> None:
            watch = record.info.pop(_WATCH_KEY, None) if record is not None else None
            if watch is not None:
                watch.cancel()

        @event.listens_for(engine, "handle_error")
        def _hung(context: Any) -> None:
            watch = context.connection.info.get(_WATCH_KEY) if context.connection is not None else None
            if watch is not None and watch.expired:
                context.is_disconnect = True  # the socket was shut down: never reuse this connection

        return engine
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": statement_timeout},
        # One shared connection for an in-memory database, else every connection sees an empty one.
        poolclass=StaticPool if in_memory else None,
    )

    # SQLAlchemy's recipe for SQLite: let SQLAlchemy emit BEGIN, so DDL and SAVEPOINT are
    # transactional (pysqlite otherwise commits before DDL and breaks savepoints). IMMEDIATE takes
    # the write lock up front: two deferred transactions that read, then write, would otherwise
    # deadlock and one fail at once with "database is locked" instead of waiting its turn.
    # WAL with synchronous=NORMAL: a commit costs an append to the log, no fsync (see the module
    # docstring for what a crash can lose); readers never wait for the writer.
    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        if not in_memory:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# ---------------------------------------------------------------------------------------------
# The store


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _canonical_uuid(value: Any) -> str:
    """Lower-case hyphenated form of a UUID; anything else stripped and lower-cased."""
    text = str(value).strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text.lower()


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _utc_naive(value)
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("outcomeTimestamp needs a time zone")
    return _utc_naive(parsed)


def _from_epoch(seconds: float) -> datetime:
    """POSIX seconds → naive UTC datetime (clamped to years 1970-9999)."""
    return datetime.fromtimestamp(min(max(float(seconds), 0.0), _LATEST_EPOCH), UTC).replace(tzinfo=None)


def _replay_key(value: str) -> str:
    """An issuer or jti as stored: itself, or its SHA-256 when longer than the column or not storable
    text (a lone surrogate: the database driver cannot encode it). Still unique."""
    try:
        value.encode("utf-8")
        if len(value) <= KEY_LENGTH and "\x00" not in value:
            return value
    except UnicodeEncodeError:
        pass
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _patient_reference(patient: str) -> str:
    patient = patient.strip()
    return patient if "/" in patient else f"Patient/{patient}"


class Store:
    """Audit and feedback rows in SQLite or PostgreSQL; safe to share between threads.

    `Store(url)` connects and migrates the schema (start-up cost, once per app). Every method
    opens its own short transaction from the engine's pool, so one Store serves all request
    threads. Database failures raise `StoreError` (with no row data in the message), except
    `ping()`, which answers False.
    """

    def __init__(
        self,
        database_url: str,
        *,
        patient_salt: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        self.url = engine_url(database_url)
        self.engine = create_store_engine(
            database_url, connect_timeout=connect_timeout, statement_timeout=statement_timeout
        )
        self._postgres = self.url.get_backend_name() == "postgresql"
        try:
            with unbounded():
                self.version = migrate(self.engine)
        except StoreError:
            self.engine.dispose()
            raise
        self._salt = (patient_salt or self._install_salt()).encode()
        self._next_jti_purge = float("-inf")
        self._purge_lock = threading.Lock()
        log.info(
            "store: %s ready at schema version %d",
            self.url.render_as_string(hide_password=True),
            self.version,
        )

    def _install_salt(self) -> str:
        """The per-install salt for patient hashes, created on first start (race-safe)."""
        query = sa.select(store_meta.c.value).where(store_meta.c.key == "patient_salt")
        with self.engine.begin() as conn:
            salt = conn.execute(query).scalar()
            if salt:
                return salt
            try:
                with conn.begin_nested():
                    conn.execute(store_meta.insert().values(key="patient_salt", value=secrets.token_hex(32)))
            except IntegrityError:
                pass  # another worker created it first; use theirs
            return conn.execute(query).scalar_one()

    @property
    def patient_key(self) -> bytes:
        """The per-install key of the patient hashes (the logs hash with it too: `logs.set_patient_key`)."""
        return self._salt

    def patient_hash(self, patient: str) -> str:
        """HMAC-SHA256 of `Patient/<id>` (a bare id gets the `Patient/` prefix) with the install salt.

        Any string hashes, lone surrogates included: an id that cannot be encoded must not cost the
        call its audit row."""
        return keyed_patient_hash(self._salt, _patient_reference(patient))


    # -- writes ---------------------------------------------------------------------------------

    def record_call(
        self,
        *,
        hook: str,
        service_id: str,
        hook_instance: str | None = None,
        patient: str | None = None,
        decision: str | None = None,
        card_uuids: Iterable[str] = (),
        suggestion_uuids: Iterable[str] = (),
        duration_ms: float | None = None,
        status: int = 200,
        card_decisions: Mapping[str, str] | None = None,
    ) -> int:
        """Record one hook call; return its audit id. `patient` is the raw reference: only its hash is kept.

        `card_decisions` (card uuid → decision) files each card under its own decision for the
        governance view; a card without one takes the call's decision when the call has only one.
        """
        cards = list(dict.fromkeys(_canonical_uuid(c) for c in card_uuids if c))
        per_card = {_canonical_uuid(k): v[:32] for k, v in (card_decisions or {}).items() if v}
        fallback = decision[:32] if decision and "," not in decision else None
        suggestions = list(dict.fromkeys(str(s) for s in suggestion_uuids if s))
        values = {
            "created": _utcnow(),
            "hook": hook[:64],
            "hook_instance": hook_instance[:64] if hook_instance else None,
            "service_id": service_id[:128],
            "patient_hash": self.patient_hash(patient) if patient else None,
            "decision": decision[:200] if decision else None,
            "card_uuids": cards,
            "suggestion_uuids": suggestions,
            "duration_ms": None if duration_ms is None else round(float(duration_ms), 3),
            "status": int(status),
        }
        try:
            with self.engine.begin() as conn:
                if self._postgres:  # see the module docstring: survives the worker, not a server crash
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                # One constant statement with its values as parameters: SQLAlchemy compiles it once and
                # caches it (`.values(**row)` built a new statement, and its cache key, on every call).
                audit_id = conn.execute(_INSERT_AUDIT, values).inserted_primary_key[0]
                if cards:
                    conn.execute(_INSERT_AUDIT_CARD, [
                        {"audit_id": audit_id, "card_uuid": c, "decision": per_card.get(c, fallback)} for c in cards
                    ])
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not record the hook call ({type(exc).__name__})") from exc
        return int(audit_id)

    def store_feedback(self, service_id: str, items: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
        """Store CDS Hooks feedback items; return (stored, duplicates).

        Each item has the 2.0 JSON shape (`card`, `outcome`, `acceptedSuggestions`,
        `overrideReason`, `outcomeTimestamp` as an RFC 3339 string or an aware datetime), already
        validated by the caller. An item whose (card, outcome, outcomeTimestamp) is stored already
        (earlier, or earlier in the same batch) counts as a duplicate and changes nothing.
        """
        received = _utcnow()
        rows = [self._feedback_row(service_id, item, received) for item in items]
        stored = duplicates = 0
        try:
            with self.engine.begin() as conn:
                for row in rows:
                    row["audit_id"] = self._audit_id_for(conn, row["card_uuid"])
                    try:
                        with conn.begin_nested():
                            conn.execute(feedback.insert().values(**row))
                    except IntegrityError:
                        duplicates += 1
                    else:
                        stored += 1
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not store feedback ({type(exc).__name__})") from exc
        return stored, duplicates

    @staticmethod
    def _feedback_row(service_id: str, item: Mapping[str, Any], received: datetime) -> dict[str, Any]:
        override = item.get("overrideReason") or {}
        reason = override.get("reason") or {}
        accepted = [
            str(s["id"]) if isinstance(s, Mapping) else str(s) for s in (item.get("acceptedSuggestions") or ())
        ]
        return {
            "card_uuid": _canonical_uuid(item["card"]),
            "service_id": service_id,
            "outcome": item["outcome"],
            "accepted_suggestions": accepted,
            "override_code": reason.get("code"),
            "override_system": reason.get("system"),
            "override_display": reason.get("display"),
            "user_comment_present": bool(override.get("userComment")),
            "outcome_timestamp": _parse_timestamp(item["outcomeTimestamp"]),
            "received": received,
        }

    @staticmethod
    def _audit_id_for(conn: Connection, card_uuid: str) -> int | None:
        return conn.execute(
            sa.select(sa.func.max(audit_card.c.audit_id)).where(audit_card.c.card_uuid == card_uuid)
        ).scalar()

    def remember_jti(self, issuer: str, jti: str, expires_at: float, *, now: float | None = None) -> bool:
        """Record a JWT's (issuer, jti) until `expires_at` (POSIX seconds); False if it is a replay.

        A replay is a pair already recorded whose expiry has not passed. Atomic across threads,
        processes and instances: the insert either creates the row or fails on the primary key
        (a concurrent insert of the same pair waits for the first one's commit, then fails). A
        pair recorded earlier whose token has expired (its row not purged yet) is taken over by
        a conditional update, which also only one concurrent caller can win.
        """
        now = time.time() if now is None else now
        key = {"issuer": _replay_key(issuer), "jti": _replay_key(jti)}
        expires, current = _from_epoch(expires_at), _from_epoch(now)
        try:
            with self.engine.begin() as conn:
                try:
                    with conn.begin_nested():
                        conn.execute(jwt_replay.insert().values(**key, expires_at=expires))
                    fresh = True
                except IntegrityError:
                    taken_over = conn.execute(
                        jwt_replay.update()
                        .where(
                            jwt_replay.c.issuer == key["issuer"],
                            jwt_replay.c.jti == key["jti"],
                            jwt_replay.c.expires_at < current,
                        )
                        .values(expires_at=expires)
                    ).rowcount
                    fresh = taken_over == 1
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not record the JWT id ({type(exc).__name__})") from exc
        self._purge_expired_jtis(now)
        return fresh

    def _purge_expired_jtis(self, now: float) -> None:
        """Delete expired jwt_replay rows, at most once per JTI_PURGE_SECONDS in this process.

        Only housekeeping: a failure is logged and changes no answer (expired rows never block).
        """
        with self._purge_lock:
            if now < self._next_jti_purge:
                return
            self._next_jti_purge = now + JTI_PURGE_SECONDS
        try:
            with self.engine.begin() as conn:
                conn.execute(jwt_replay.delete().where(jwt_replay.c.expires_at < _from_epoch(now)))
        except SQLAlchemyError as exc:
            log.warning("store: purging expired JWT ids failed (%s)", type(exc).__name__)

    # -- reads ----------------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the database answers a trivial query (for /readyz)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.literal(1))).scalar()
        except SQLAlchemyError as exc:
            log.warning("store: ping failed (%s)", type(exc).__name__)
            return False
        return True

    def feedback_for(self, card_uuid: str) -> list[dict[str, Any]]:
        """Feedback rows stored for one card, oldest first (for tests and operations)."""
        query = (
            sa.select(feedback)
            .where(feedback.c.card_uuid == _canonical_uuid(card_uuid))
            .order_by(feedback.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def audit_row(self, audit_id: int) -> dict[str, Any] | None:
        """One audit row (for tests and operations)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(audit).where(audit.c.id == audit_id)).first()
        return dict(row._mapping) if row else None

    def dispose(self) -> None:
        """Close pooled connections (tests; the app keeps its store for its lifetime)."""
        self.engine.dispose()


# ---------------------------------------------------------------------------------------------
# Flask wiring

_lazy_lock = threading.Lock()


def init_app(app: Flask, settings: Settings) -> Store:
    """Open (and migrate) the store at start-up and keep it in `app.extensions["fhir_vcf_store"]`."""
    store = Store(settings.database_url, connect_timeout=settings.database_connect_timeout,
                  statement_timeout=settings.database_statement_timeout)
    app.extensions[EXTENSION] = store
    return store


def current_store() -> Store:
    """The app's store. Falls back to opening it from the app's settings if `init_app` was not called."""
    from flask import current_app

    store = current_app.extensions.get(EXTENSION)
    if store is not None:
        return store
    with _lazy_lock:
        store = current_app.extensions.get(EXTENSION)
        if store is None:
            services = current_app.extensions.get("fhir_vcf")
            if services is None:
                raise StoreError("store: no settings on this app; call fhir_vcf.store.init_app")
            store = init_app(current_app, services.settings)  # type: ignore[arg-type]
        return store


__all__: Sequence[str] = (
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Store",
    "StoreError",
    "current_store",
    "engine_url",
    "init_app",
    "jwt_replay",
    "kept_evaluation",
    "migrate",
)
