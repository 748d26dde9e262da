"""The JWT `jti` replay cache shared by every worker: the store's jwt_replay table, on SQLite and
PostgreSQL (`db_support`: the PostgreSQL half is skipped with the reason when 127.0.0.1:5432 does
not answer), and how auth picks it (`FHIR_VCF_JTI_CACHE`).

A "worker" here is a second `Store` (its own engine and connection pool) or a second app on the
same database: what another gunicorn process has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from db_support import Database, database_fixture, run_together  # noqa: F401  (the `database` fixture)
from flask import Blueprint, Flask
from trust_support import BASE, ISSUER, bearer, ec_key, issuers_file, jwks, mint

from fhir_vcf import store as store_module
from fhir_vcf.config import Settings
from fhir_vcf.errors import Unavailable
from fhir_vcf.service import auth
from fhir_vcf.service.auth import AuthError, DatabaseReplayCache, ReplayCache, Trust, load_issuers
from fhir_vcf.store import Store, jwt_replay

SERVICE = "/cds-services/vcf-patient-view"
AUD = BASE + SERVICE
KEY = ec_key("ec-jti")


@pytest.fixture
def workers(database: Database) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as two gunicorn workers have."""
    first = Store(database.url)
    second = Store(database.url)
    yield first, second
    first.dispose()
    second.dispose()


def rows(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(jwt_replay.c.issuer, jwt_replay.c.jti).order_by("jti"))]


# --- the store ------------------------------------------------------------------------------------


def test_a_jti_is_accepted_once_across_workers(workers: tuple[Store, Store]) -> None:
    first, second = workers
    now = time.time()
    assert first.remember_jti(ISSUER, "jti-a", now + 300, now=now)
    assert not first.remember_jti(ISSUER, "jti-a", now + 300, now=now)
    assert not second.remember_jti(ISSUER, "jti-a", now + 300, now=now)  # the replay lands on another worker
    assert second.remember_jti("https://other-ehr.example.org", "jti-a", now + 300, now=now)  # per issuer


def test_an_expired_jti_is_forgotten_and_purged(workers: tuple[Store, Store]) -> None:
    first, second = workers
    now = time.time()
    assert first.remember_jti(ISSUER, "old", now + 10, now=now)
    assert first.remember_jti(ISSUER, "live", now + 300, now=now)
    # 20 s later "old" has expired: a token reusing the id is no replay (its own exp is checked
    # before) and takes the row over, once: the takeover is conditional on the expiry.
    assert second.remember_jti(ISSUER, "old", now + 320, now=now + 20)
    assert not first.remember_jti(ISSUER, "old", now + 320, now=now + 20)
    # a purge (at most once a minute per process) deletes expired rows, never live ones
    assert first.remember_jti(ISSUER, "short", now + 30, now=now)
    second._next_jti_purge = float("-inf")
    assert second.remember_jti(ISSUER, "later", now + 900, now=now + 400)
    assert rows(first) == [(ISSUER, "later")]


def test_long_issuer_and_jti_are_kept_as_digests(workers: tuple[Store, Store]) -> None:
    first, second = workers
    now = time.time()
    long_jti = "x" * 1000
    assert first.remember_jti(ISSUER, long_jti, now + 300, now=now)
    assert not second.remember_jti(ISSUER, long_jti, now + 300, now=now)
    assert second.remember_jti(ISSUER, long_jti + "y", now + 300, now=now)
    assert all(len(jti) <= store_module.KEY_LENGTH for _, jti in rows(first))
    assert first.remember_jti(ISSUER, "far-future", 1e15, now=now)  # an absurd exp is clamped, not a crash


def test_concurrent_workers_accept_one_token_exactly_once(database: Database) -> None:
    stores = [Store(database.url) for _ in range(6)]
    now = time.time()
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def present(store: Store) -> None:
        barrier.wait()
        results.append(store.remember_jti(ISSUER, "raced", now + 300, now=now))

    errors = run_together([partial(present, s) for s in stores])
    try:
        assert errors == []
        assert sorted(results) == [False] * (len(stores) - 1) + [True]
    finally:
        for s in stores:
            s.dispose()


# --- auth on top of it ----------------------------------------------------------------------------


def trust(tmp_path: Path, cache: Any) -> Trust:
    return Trust(load_issuers(issuers_file(tmp_path, {ISSUER: {"jwks": jwks(KEY)}})), replay_cache=cache)


def test_a_token_replayed_to_another_worker_is_refused(workers: tuple[Store, Store], tmp_path: Path) -> None:
    first, second = workers
    token = mint(KEY, AUD)
    assert trust(tmp_path, DatabaseReplayCache(first)).verify(token, AUD)["iss"] == ISSUER
    with pytest.raises(AuthError, match="replay"):
        trust(tmp_path, DatabaseReplayCache(second)).verify(token, AUD)
    # the per-process memory cache cannot see it: the reason serve() uses the database
    assert trust(tmp_path, ReplayCache()).verify(token, AUD)


def test_database_failure_refuses_the_token(workers: tuple[Store, Store], tmp_path: Path) -> None:
    first, _ = workers
    first.engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")  # nothing listens on 1
    with pytest.raises(Unavailable, match="unavailable"):  # a 503 the EHR can retry, never a 401
        trust(tmp_path, DatabaseReplayCache(first)).verify(mint(KEY, AUD), AUD)


# --- wiring: FHIR_VCF_JTI_CACHE -------------------------------------------------------------------


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    """A stub CDS Hooks service wired as create_app wires auth (which opens the store if needed)."""
    settings = Settings(trusted_issuers=issuers_file(tmp_path, {ISSUER: {"jwks": jwks(KEY)}}),
                        trust_host_header=True, **overrides).validated()
    app = Flask(__name__)
    app.extensions["fhir_vcf"] = SimpleNamespace(settings=settings)
    cds = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")

    @cds.post("/<service_id>")
    def call(service_id: str) -> dict[str, Any]:
        return {"cards": []}

    app.register_blueprint(cds)
    auth.init_app(app, settings)
    return app


def close(*apps: Flask) -> None:
    for app in apps:
        store = app.extensions.get(store_module.EXTENSION)
        if store is not None:
            store.dispose()


@pytest.mark.parametrize(("setting", "shared"), [("database", True), ("memory", False), (None, False)])
def test_jti_cache_setting_decides_whether_workers_share(tmp_path: Path, setting: str | None, shared: bool) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = (make_app(tmp_path, database_url=url, jti_cache=setting) for _ in range(2))
    try:
        kinds = {type(app.extensions[auth.EXTENSION].replay_cache) for app in (one, two)}
        assert kinds == {DatabaseReplayCache if shared else ReplayCache}
        token = mint(KEY, AUD)
        assert one.test_client().post(SERVICE, json={}, headers=bearer(token)).status_code == 200
        assert one.test_client().post(SERVICE, json={}, headers=bearer(token)).status_code == 401
        replayed = two.test_client().post(SERVICE, json={}, headers=bearer(token))
        assert replayed.status_code == (401 if shared else 200)
    finally:
        close(one, two)


def test_the_app_uses_its_own_store_for_the_jti_cache(tmp_path: Path) -> None:
    from fhir_vcf import create_app

    app = create_app({
        "database_url": f"sqlite:///{tmp_path / 'app.db'}", "jti_cache": "database",
        "trusted_issuers": issuers_file(tmp_path, {ISSUER: {"jwks": jwks(KEY)}}), "trust_host_header": True,
    })
    try:
        cache = app.extensions[auth.EXTENSION].replay_cache
        assert isinstance(cache, DatabaseReplayCache)
        assert cache.store is app.extensions["fhir_vcf"].store
    finally:
        close(app)
