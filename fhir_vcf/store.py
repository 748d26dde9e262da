"""The durable store: one audit row per hook call, CDS Hooks feedback, the shared JWT replay
cache, versioned migrations.

SQLAlchemy 2 Core over SQLite (the default, a file under ./var/) or PostgreSQL (psycopg 3).
Nothing here writes dialect-specific SQL: tables, inserts and queries are SQLAlchemy constructs;
the only SQLite-specific lines are SQLAlchemy's documented recipe that makes SQLite transactions
(and so migrations and savepoints) behave as on PostgreSQL, its BEGIN emitted by a dialect of
SQLAlchemy's pysqlite one (`ImmediateSQLiteDialect`).

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
`lock_timeout`; SQLite's busy timeout, the time a writer waits for the lock, and as long for the
one connection each process keeps to a SQLite file: `_sqlite_pool`), and on PostgreSQL a
watchdog shuts down the socket of a connection whose server stops answering altogether, the pool's
pre-ping included (a server-side timeout cannot fire then). Every failure is a `StoreError`, which
the transports answer with 503 and Retry-After.

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

Migrations. Alembic revisions shipped in the package (`fhir_vcf/migrations/versions/`, one head):
at start-up `migrate` upgrades the database to the newest one in a single transaction, so a failed
upgrade leaves the database as it was and never loses stored feedback; `fhir-vcf db upgrade` does
the same on demand. A database from before Alembic (releases that recorded `schema_version` 1-3)
is stamped with the equivalent revision first. Never edit a released revision; add one
(docs/migrations.md). The Table objects below are the schema the newest revision leaves, which
`tests/test_migrations.py` compares with the migrated database.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import re
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
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from fhir_vcf.errors import ConfigError, FhirVcfError
from fhir_vcf.logs import keyed_patient_hash

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from flask import Flask

    from fhir_vcf.config import Settings

log = logging.getLogger(__name__)


class _AlembicChatter(logging.Filter):
    """Alembic says which dialect it drives at every migration context ("Context impl SQLiteImpl.",
    "Will assume ... DDL."): noise in a service's log. Its "Running upgrade ..." lines stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_AlembicChatter())
# Alembic 1.16+ announces each of its plugins at start-up ("setup plugin alembic.autogenerate..."):
# seven lines before the demo banner that say nothing about this service.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

EXTENSION = "fhir_vcf_store"
DEFAULT_CONNECT_TIMEOUT_SECONDS = 2.0
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 2.0  # also SQLite's busy timeout: how long a writer waits for another one
JTI_PURGE_SECONDS = 60.0  # at most one purge of expired jwt_replay rows per process per minute
KEY_LENGTH = 255  # jwt_replay.issuer / jti: longer values are stored as their SHA-256
_LATEST_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z: an absurd `exp` is clamped, not a crash


class StoreError(FhirVcfError):
    """The database failed (unreachable, locked, newer schema); the message holds no row data."""


class StoreValueError(StoreError):
    """The database refused a value as such (e.g. PostgreSQL and a NUL character): sending the same
    data again fails again, so a caller answers 4xx, not "retry later"."""


@dataclass(frozen=True)
class IssuedCard:
    """A card as the service issued it: what feedback about it may name.

    `suggestion_ids` / `override_reasons` are None when unknown (a card audited before revision
    0004 remembered them); an empty tuple means the card offered none.
    """

    uuid: str
    suggestion_ids: tuple[str, ...] | None = None
    override_reasons: tuple[tuple[str | None, str], ...] | None = None

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> IssuedCard:
        """From a CDS Hooks 2.0 card: its `uuid`, each suggestion's `uuid`, each `overrideReasons` Coding."""
        suggestions = tuple(
            str(s["uuid"]) for s in card.get("suggestions") or () if isinstance(s, Mapping) and s.get("uuid")
        )
        reasons = tuple(
            (r.get("system"), str(r["code"]))
            for r in card.get("overrideReasons") or ()
            if isinstance(r, Mapping) and r.get("code")
        )
        return cls(_canonical_uuid(card["uuid"]), suggestions, reasons)

    def offers_suggestion(self, suggestion_id: str) -> bool:
        """Whether the card carried a suggestion with this uuid (any letter case)."""
        if self.suggestion_ids is None:
            return True
        return _canonical_uuid(suggestion_id) in {_canonical_uuid(s) for s in self.suggestion_ids}

    def offers_reason(self, system: str | None, code: str) -> bool:
        """Whether the card offered this override reason (a Coding matches on system and code;
        a reason sent without a system matches on the code alone)."""
        if self.override_reasons is None:
            return True
        return any(code == c and (system is None or system == s) for s, c in self.override_reasons)


# ---------------------------------------------------------------------------------------------
# The current schema (what the newest revision leaves). Queries use these Table objects; each
# revision defines the tables it touches as they were at that revision.

metadata = sa.MetaData()

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

# 0002: one row per card of an audited call, so feedback finds its call by card uuid with an index.
audit_card = sa.Table(
    "audit_card",
    metadata,
    sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit.id"), primary_key=True),
    sa.Column("card_uuid", sa.String(128), primary_key=True),
    sa.Column("decision", sa.String(32)),  # 0004: the card's own decision (a call may have several)
    # 0005: what the card offered, for checking its feedback (NULL for cards issued before: unknown).
    sa.Column("suggestion_ids", sa.JSON),
    sa.Column("override_reasons", sa.JSON),  # [[system, code], ...]
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
    sa.Column("audit_id", sa.Integer),  # 0002
    sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_interaction"),
    sa.Index("ix_feedback_audit_id", "audit_id"),
)

_INSERT_AUDIT = audit.insert()
_INSERT_AUDIT_CARD = audit_card.insert()

# 0003: JWT ids already used (CDS Hooks replay protection), shared by every worker.
jwt_replay = sa.Table(
    "jwt_replay",
    metadata,
    sa.Column("issuer", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("jti", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),  # UTC: exp + leeway
    sa.PrimaryKeyConstraint("issuer", "jti", name="pk_jwt_replay"),  # the unique key: insert-or-fail
    sa.Index("ix_jwt_replay_expires_at", "expires_at"),
)


# 0004: evaluations kept to be shown on the explanation page (fhir_vcf.kept): encrypted, purged.
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

# 0006: resources written to the demo FHIR endpoint (demo mode only; fhir_vcf.service.demo_fhir).
demo_resource = sa.Table(
    "demo_resource",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("condition", sa.String(1024)),  # the normalised If-None-Exist query it was created under
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.UniqueConstraint("resource_type", "resource_id", name="uq_demo_resource_id"),
    sa.UniqueConstraint("resource_type", "condition", name="uq_demo_resource_condition"),
)


# ---------------------------------------------------------------------------------------------
# Migrations (Alembic; the revisions are fhir_vcf/migrations/versions/*.py)

# The package's migration scripts, as an Alembic package resource (works from a wheel too).
SCRIPT_LOCATION = "fhir_vcf:migrations"

# Before Alembic, releases recorded their schema in `schema_version` (versions 1-4, one row per step).
# Such a database is stamped with the Alembic revision of the same schema, then upgraded; the
# legacy table is kept as it was (never written again), so nothing an older release left is lost.
LEGACY_REVISIONS = {1: "0001", 2: "0002", 3: "0003", 4: "0004"}
legacy_schema_version = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied", sa.DateTime, nullable=False),
)


def alembic_config(*, extra_version_locations: Sequence[str] = ()) -> AlembicConfig:
    """Alembic's configuration in code (no ini file to find at run time).

    `extra_version_locations` adds folders of revisions (tests use it to append a broken one).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if extra_version_locations:
        from alembic.script import ScriptDirectory

        own = ScriptDirectory.from_config(config).versions
        config.set_main_option("version_locations", os.pathsep.join([own, *extra_version_locations]))
    return config


def head_revision(config: AlembicConfig | None = None) -> str:
    """The newest revision this release knows (one head: docs/migrations.md)."""
    from alembic.script import ScriptDirectory

    if config is None:
        return _default_head()
    return ScriptDirectory.from_config(config).get_current_head() or ""


@functools.cache
def _default_head() -> str:
    """The package's head revision, read once per process (the scripts do not change while it runs)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; a legacy database reads as its equivalent; None when empty."""
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None:
        return revision
    legacy = _legacy_version(conn)
    return LEGACY_REVISIONS.get(legacy, str(legacy)) if legacy else None


def read_revision(engine: Engine, read: Callable[[Connection], str | None] = current_revision) -> str | None:
    """`current_revision` on a connection of its own, a database failure as StoreError."""
    try:
        with engine.connect() as conn:
            return read(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"store: cannot read the schema revision ({type(exc).__name__})") from exc


def _legacy_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(sa.select(sa.func.max(legacy_schema_version.c.version))).scalar() or 0


def _stamp_legacy(conn: Connection, config: AlembicConfig) -> None:
    """A database an older release migrated by hand gets the Alembic revision of its schema."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    if MigrationContext.configure(conn).get_current_revision() is not None:
        return
    legacy = _legacy_version(conn)
    if not legacy:
        return
    revision = LEGACY_REVISIONS.get(legacy)
    if revision is None:
        raise StoreError(
            f"store: the database schema is version {legacy}, newer than this release knows; upgrade fhir-vcf"
        )
    log.info("store: legacy schema version %d is Alembic revision %s", legacy, revision)
    command.stamp(config, revision)


# Alembic keeps the running migration in module-level state (`alembic.context`), so two threads of
# one process must not migrate at once (tests start several stores in threads); processes are
# kept apart by the database itself (see `migrate`).
_alembic_lock = threading.Lock()


def migrate(engine: Engine, target: str = "head", *, config: AlembicConfig | None = None) -> str:
    """Bring the database to `target` (default: the newest revision); return the revision reached.

    Everything runs in one transaction on one connection (Alembic's documented recipe for sharing
    a connection; SQLite's DDL is transactional through `ImmediateSQLiteDialect`'s BEGIN), so a
    failed upgrade leaves the database as it was and never loses stored feedback. Two workers
    starting together may race: the loser fails on an existing table or the alembic_version row,
    rolls back, and on its retry finds nothing left to do.
    """
    from alembic import command
    from alembic.util import CommandError

    default = config is None
    config = config or alembic_config()
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            with _alembic_lock, engine.begin() as conn:
                config.attributes["connection"] = conn
                if conn.dialect.name == "postgresql":  # a migration may run longer than a request's statement
                    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                try:
                    if target == "head" and default and current_revision(conn) == _default_head():
                        return _default_head()  # the common restart: nothing to do, no scripts loaded
                    _stamp_legacy(conn, config)
                    command.upgrade(config, target)
                    return current_revision(conn) or ""
                finally:
                    config.attributes.pop("connection", None)
        except CommandError as exc:  # e.g. a revision this release does not know: a newer database
            raise StoreError(
                f"store: cannot migrate the database ({_first_line(exc)}); is it newer than this release? "
                "upgrade fhir-vcf"
            ) from None
        except SQLAlchemyError as exc:
            if attempt == attempts:
                raise StoreError(f"store: schema migration failed: {type(exc).__name__}") from exc
            log.warning("store: migration attempt %d failed (%s); retrying", attempt, type(exc).__name__)
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Engine


def engine_url(database_url: str) -> URL:
    """The SQLAlchemy URL: `postgresql://` and `postgres://` use the psycopg 3 driver; SQLite only its
    standard driver, pysqlite (which `create_store_engine` drives through `ImmediateSQLiteDialect`)."""
    try:
        url = make_url(database_url)
    except (SQLAlchemyError, ValueError) as exc:
        raise ConfigError(f"FHIR_VCF_DATABASE_URL: not a database URL ({type(exc).__name__})") from None
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(f"FHIR_VCF_DATABASE_URL: unsupported database {url.get_backend_name()!r}")
    if url.get_backend_name() == "sqlite" and url.get_driver_name() != "pysqlite":  # ImmediateSQLiteDialect's
        raise ConfigError(f"FHIR_VCF_DATABASE_URL: unsupported SQLite driver {url.get_driver_name()!r}")
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

        # The pool pings a pooled connection (`pool_pre_ping`) before its "checkout" event arms the
        # watch: a server gone silent since the last use held that ping, and the request thread, for
        # good. The ping is watched too; a socket shut down fails it as a disconnect, and the pool
        # then connects anew within `connect_timeout`.
        ping = engine.dialect.do_ping

        def _watched_ping(dbapi_connection: Any) -> bool:
            if _UNBOUNDED.get():
                return ping(dbapi_connection)
            watch = _DatabaseWatch(dbapi_connection, deadline)
            try:
                return ping(dbapi_connection)
            finally:
                watch.cancel()

        engine.dialect.do_ping = _watched_ping  # type: ignore[method-assign]

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
        url.set(drivername=_IMMEDIATE_SQLITE),
        connect_args={"check_same_thread": False, "timeout": statement_timeout},
        **_sqlite_pool(in_memory, statement_timeout),
    )

    # The driver's own transaction handling is off (`ImmediateSQLiteDialect` emits every BEGIN).
    # WAL with synchronous=NORMAL: a commit costs an append to the log, no fsync (see the module
    # docstring for what a crash can lose); readers never wait for the writer. A pool event: it
    # runs once per connection and, unlike an engine event, costs the statements nothing.
    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        if not in_memory:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine


class ImmediateSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite whose every transaction begins `BEGIN IMMEDIATE`, emitted by SQLAlchemy.

    SQLAlchemy's SQLite recipe lets SQLAlchemy emit BEGIN (with the driver's own transaction
    handling off: `create_store_engine`), so that DDL and SAVEPOINT are transactional: pysqlite
    would otherwise run DDL outside the transaction and break savepoints. IMMEDIATE takes the write
    lock up front: two deferred transactions that read, then write, would otherwise deadlock and one
    fail at once with "database is locked" instead of waiting its turn (the busy timeout).

    The recipe's usual form, an engine `begin` event running `BEGIN IMMEDIATE` through
    `exec_driver_sql`, made SQLAlchemy dispatch events around every statement of the engine and
    sent the BEGIN through the whole execution machinery: 0.33 M instructions of an audit write's
    0.90 M (callgrind). Here the BEGIN is the dialect's own `do_begin`, which SQLAlchemy calls in
    its place and whose driver errors it wraps as for any statement (a held lock is an
    OperationalError, so a `StoreError`, as before). Registered under `_IMMEDIATE_SQLITE`.
    """

    supports_statement_cache = True

    def do_begin(self, dbapi_connection: Any) -> None:
        dbapi_connection.execute("BEGIN IMMEDIATE")


_IMMEDIATE_SQLITE = "sqlite+fhir_vcf_immediate"
registry.register(_IMMEDIATE_SQLITE.replace("+", "."), __name__, "ImmediateSQLiteDialect")


def _sqlite_pool(in_memory: bool, statement_timeout: float) -> dict[str, Any]:
    """The pool of a SQLite engine: one connection per process.

    In memory, one shared connection (`StaticPool`), else every connection sees an empty database.
    A file: SQLite lets one transaction write at a time, and every transaction here begins
    IMMEDIATE (takes the write lock: `ImmediateSQLiteDialect`), so a process's threads could never use two
    connections at once anyway. With one, they queue for it in the pool, each woken when it is
    free (waiting at most `statement_timeout`, then StoreError), instead of each retrying the lock
    through SQLite's busy handler, which sleeps 1, 2, 5, ... up to 100 ms between tries: under load
    a call could wait over a second for its audit row while later ones went first (measured with
    bench_serving.py at concurrency 8, docs/performance.md, fifth round). Processes (gunicorn
    workers) still share the file through the busy handler.
    """
    if in_memory:
        return {"poolclass": StaticPool}
    return {"pool_size": 1, "max_overflow": 0, "pool_timeout": statement_timeout}


# ---------------------------------------------------------------------------------------------
# The store


def _utcnow() -> datetime:
    """Now, naive UTC. `combine` with the naive `time()` drops the zone: `replace(tzinfo=None)`
    parses its keyword arguments, 13.3 K instructions of the 5.6 K this costs (callgrind)."""
    now = datetime.now(UTC)
    return datetime.combine(now, now.time())


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _card_row(audit_id: int, card: IssuedCard, decision: str | None) -> dict[str, Any]:
    """The card's row; its tuples go to the JSON columns as they are (JSON writes a tuple as the
    array a list gives: the same stored text, without copying each into lists first)."""
    return {
        "audit_id": audit_id,
        "card_uuid": card.uuid,
        "decision": decision,
        "suggestion_ids": card.suggestion_ids,
        "override_reasons": card.override_reasons,
    }


# What `str(uuid.UUID(...))` gives back unchanged: the form the service's own card uuids have.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical_uuid(value: Any) -> str:
    """Lower-case hyphenated form of a UUID; anything else stripped and lower-cased."""
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical (three of these per audited card): parsing it would give it back
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
            "store: %s ready at schema revision %s",
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
        cards: Iterable[IssuedCard] = (),
        card_decisions: Mapping[str, str] | None = None,
        duration_ms: float | None = None,
        status: int = 200,
    ) -> int:
        """Record one hook call; return its audit id. `patient` is the raw reference: only its hash is kept.

        `cards` are the cards answered, with what each offered (feedback is checked against it);
        `card_uuids` / `suggestion_uuids` name cards and suggestions without those details.
        `card_decisions` (card uuid → decision) files each card under its own decision for the
        governance view; a card without one takes the call's decision when the call has only one.
        """
        per_card = {_canonical_uuid(k): v[:32] for k, v in (card_decisions or {}).items() if v}
        fallback = decision[:32] if decision and "," not in decision else None
        issued = {c.uuid: c for c in cards}
        for uuid_ in card_uuids:
            if uuid_:
                key = _canonical_uuid(uuid_)
                if key not in issued:  # a card named without its details (the service passes both)
                    issued[key] = IssuedCard(key)
        suggestion_ids = [*suggestion_uuids, *(s for c in issued.values() for s in c.suggestion_ids or ())]
        suggestions = list(dict.fromkeys(str(s) for s in suggestion_ids if s))
        values = {
            "created": _utcnow(),
            "hook": hook[:64],
            "hook_instance": hook_instance[:64] if hook_instance else None,
            "service_id": service_id[:128],
            "patient_hash": self.patient_hash(patient) if patient else None,
            "decision": decision[:200] if decision else None,
            "card_uuids": list(issued),
            "suggestion_uuids": suggestions,
            "duration_ms": None if duration_ms is None else round(float(duration_ms), 3),
            "status": int(status),
        }
        try:
            # `Engine.begin`'s own body without its generator context manager (~10 K instructions).
            with self.engine.connect() as conn, conn.begin():
                if self._postgres:  # see the module docstring: survives the worker, not a server crash
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                # One constant statement with its values as parameters: SQLAlchemy compiles it once and
                # caches it (`.values(**row)` built a new statement, and its cache key, on every call).
                audit_id = conn.execute(_INSERT_AUDIT, values).inserted_primary_key[0]
                if issued:
                    conn.execute(_INSERT_AUDIT_CARD, [
                        _card_row(audit_id, c, per_card.get(c.uuid, fallback)) for c in issued.values()
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
        except DataError as exc:
            raise StoreValueError(f"store: the database refused a feedback value ({type(exc).__name__})") from exc
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

    def feedback_for(self, card_uuid: str, service_id: str | None = None) -> list[dict[str, Any]]:
        """Feedback rows stored for one card (sent to `service_id`, when given), oldest first."""
        query = sa.select(feedback).where(feedback.c.card_uuid == _canonical_uuid(card_uuid))
        if service_id is not None:
            query = query.where(feedback.c.service_id == service_id)
        try:
            with self.engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(query.order_by(feedback.c.id))]
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not read feedback ({type(exc).__name__})") from exc

    def issued_card(self, card_uuid: str, service_id: str) -> IssuedCard | None:
        """The card `service_id` issued with this uuid (its latest audited call), else None."""
        query = (
            sa.select(audit_card.c.card_uuid, audit_card.c.suggestion_ids, audit_card.c.override_reasons)
            .join(audit, audit.c.id == audit_card.c.audit_id)
            .where(audit_card.c.card_uuid == _canonical_uuid(card_uuid), audit.c.service_id == service_id)
            .order_by(audit_card.c.audit_id.desc())
            .limit(1)
        )
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        except DataError as exc:
            raise StoreValueError(f"store: the database refused a card uuid ({type(exc).__name__})") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not read the card ({type(exc).__name__})") from exc
        if row is None:
            return None
        return IssuedCard(
            row.card_uuid,
            None if row.suggestion_ids is None else tuple(str(s) for s in row.suggestion_ids),
            None if row.override_reasons is None else tuple((s, str(c)) for s, c in row.override_reasons),
        )

    def audit_row(self, audit_id: int) -> dict[str, Any] | None:
        """One audit row (for tests and operations)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(audit).where(audit.c.id == audit_id)).first()
        return dict(row._mapping) if row else None

    # -- the demo FHIR endpoint's written resources (demo mode only) ------------------------------

    def demo_resources(self) -> tuple[int, list[dict[str, Any]]]:
        """(the latest write's sequence number, every written resource), oldest first."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(demo_resource.c.seq, demo_resource.c.body)
                                    .order_by(demo_resource.c.seq)).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not read the demo resources ({type(exc).__name__})") from exc
        return (rows[-1].seq if rows else 0), [dict(row.body) for row in rows]

    def demo_latest(self) -> int:
        """The latest write's sequence number (0 when nothing was written): a cheap change check."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(sa.func.max(demo_resource.c.seq))).scalar() or 0
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not read the demo resources ({type(exc).__name__})") from exc

    def demo_create(self, resource: Mapping[str, Any], condition: str | None) -> bool:
        """Store a resource written to the demo endpoint; False when one with the same `condition`
        (or type and id) is stored already, by an earlier or a concurrent call."""
        values = {
            "resource_type": str(resource["resourceType"])[:64],
            "resource_id": str(resource["id"])[:64],
            "condition": condition[:1024] if condition else None,
            "body": dict(resource),
            "created": _utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                try:
                    with conn.begin_nested():
                        conn.execute(demo_resource.insert().values(**values))
                except IntegrityError:
                    return False
        except DataError as exc:
            raise StoreValueError(f"store: the database refused a value ({type(exc).__name__})") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not store the demo resource ({type(exc).__name__})") from exc
        return True

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
    "SCRIPT_LOCATION",
    "IssuedCard",
    "Store",
    "StoreError",
    "StoreValueError",
    "alembic_config",
    "current_revision",
    "current_store",
    "engine_url",
    "head_revision",
    "init_app",
    "jwt_replay",
    "kept_evaluation",
    "migrate",
    "read_revision",
)
