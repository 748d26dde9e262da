"""A fresh, empty database for store tests: a SQLite file, or a throwaway schema on PostgreSQL.

The `database` fixture runs a test twice: on a SQLite file and on PostgreSQL at 127.0.0.1:5432
(database `test`, override with FHIR_VCF_TEST_POSTGRES_URL), each PostgreSQL run in a fresh schema
that is dropped afterwards. Without a reachable PostgreSQL the PostgreSQL run is skipped with the
reason. Import the fixture into a test module: `from db_support import database_fixture`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("FHIR_VCF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run_together(works: Iterable[Callable[[], Any]]) -> list[BaseException]:
    """Run each callable in a thread of its own, all at once; what they raised (asserted empty by callers)."""
    errors: list[BaseException] = []

    def run(work: Callable[[], Any]) -> None:
        try:
            work()
        except BaseException as exc:  # collected and returned
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class Database:
    """A fresh, empty database: its URL and a way to run hand-written SQL in it."""

    def __init__(self, kind: str, url: str, run_sql: Callable[[str], None]) -> None:
        self.kind = kind
        self.url = url
        self.run_sql = run_sql


def _sqlite(tmp_path: Path) -> Database:
    path = tmp_path / "var" / "store.db"  # var/ does not exist yet: the store creates it

    def run_sql(script: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.executescript(script)

    return Database("sqlite", f"sqlite:///{path}", run_sql)


@pytest.fixture(name="database", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield _sqlite(tmp_path)
        return
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - psycopg is a test dependency
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: psycopg not installed ({exc})")
    try:
        admin = psycopg.connect(PG_URL, connect_timeout=3, autocommit=True)
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    schema = f"fhir_vcf_test_{uuid.uuid4().hex[:12]}"
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))

    def run_sql(script: str) -> None:
        with psycopg.connect(PG_URL, autocommit=False) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)

    try:
        # libpq `options` puts every table of the store in the throwaway schema.
        yield Database("postgresql", f"{PG_URL}?options=-csearch_path%3D{schema}", run_sql)
    finally:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()
