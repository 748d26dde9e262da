"""Kept evaluations (fhir_vcf.kept): encrypted at rest, bound to their row, purged after the retention
window, readable after a key rotation; page links that open one evaluation for a limited time and
nothing else."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from db_support import Database, database_fixture  # noqa: F401  (the `database` fixture)

from fhir_vcf.errors import ConfigError
from fhir_vcf.kept import KeptEvaluations, LinkSigner, derive_link_secret
from fhir_vcf.store import Store, kept_evaluation

EVALUATION = {"patient": "Patient/p-moreau", "decision": "eligible",
              "patientDetail": {"name": "Helene Moreau", "birthDate": "1951-02-14"},
              "criteria": [{"id": "I3", "reason": "marrow edema on MRI"}]}
NOW = datetime(2025, 6, 30, 12, 0, 0)


@pytest.fixture
def store(database: Database):
    """Every storage test runs on SQLite and on PostgreSQL (skipped with the reason when none answers)."""
    store = Store(database.url)
    yield store
    store.dispose()


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


def kept(store: Store, *keys: str, days: int = 7) -> KeptEvaluations:
    return KeptEvaluations(store, list(keys), retention=timedelta(days=days))


def raw_rows(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(kept_evaluation))]


def test_an_evaluation_comes_back_as_kept_and_is_unreadable_at_rest(store, key):
    kept_evaluations = kept(store, key)
    evaluation_id = kept_evaluations.keep(EVALUATION, source="patient-view", now=NOW)
    assert str(uuid.UUID(evaluation_id)) == evaluation_id
    found = kept_evaluations.get(evaluation_id, now=NOW + timedelta(hours=1))
    assert found is not None and found.evaluation == EVALUATION and found.source == "patient-view"
    assert found.expires == NOW + timedelta(days=7)
    (row,) = raw_rows(store)
    at_rest = json.dumps(row, default=str)
    for secret in ("Moreau", "p-moreau", "marrow", "eligible", "1951"):
        assert secret not in at_rest  # a database dump shows no patient data


def test_expired_rows_are_not_read_and_the_purge_removes_them(store, key):
    kept_evaluations = kept(store, key, days=7)
    old = kept_evaluations.keep(EVALUATION, source="api", now=NOW - timedelta(days=8))
    fresh = kept_evaluations.keep(EVALUATION, source="api", now=NOW)
    assert kept_evaluations.get(old, now=NOW) is None
    assert kept_evaluations.get(fresh, now=NOW) is not None
    assert kept_evaluations.purge(now=NOW) == 1
    assert [r["id"] for r in raw_rows(store)] == [fresh]


def test_a_ciphertext_moved_to_another_row_is_refused(store, key):
    """The plaintext names its own id: swapping rows' ciphertexts cannot show one patient under another's link."""
    kept_evaluations = kept(store, key)
    first = kept_evaluations.keep({**EVALUATION, "patient": "Patient/a"}, source="api", now=NOW)
    second = kept_evaluations.keep({**EVALUATION, "patient": "Patient/b"}, source="api", now=NOW)
    with store.engine.begin() as conn:
        token = conn.execute(sa.select(kept_evaluation.c.ciphertext).where(kept_evaluation.c.id == first)).scalar()
        conn.execute(kept_evaluation.update().where(kept_evaluation.c.id == second).values(ciphertext=token))
    assert kept_evaluations.get(second, now=NOW) is None
    assert kept_evaluations.get(first, now=NOW).evaluation["patient"] == "Patient/a"


def test_key_rotation_keeps_old_rows_readable_and_a_removed_key_makes_them_unreadable(store, key):
    old_id = kept(store, key).keep(EVALUATION, source="api", now=NOW)
    new_key = Fernet.generate_key().decode()
    rotated = kept(store, new_key, key)  # the new key encrypts, both decrypt
    assert rotated.get(old_id, now=NOW) is not None
    new_id = rotated.keep(EVALUATION, source="api", now=NOW)
    assert kept(store, new_key).get(new_id, now=NOW) is not None
    assert kept(store, new_key).get(old_id, now=NOW) is None  # the old key is gone: so is what it protected


def test_unknown_and_malformed_ids_read_as_nothing(store, key):
    kept_evaluations = kept(store, key)
    assert kept_evaluations.get(str(uuid.uuid4())) is None
    assert kept_evaluations.get("'; DROP TABLE kept_evaluation; --") is None


def test_keys_are_required():
    with pytest.raises(ConfigError):
        KeptEvaluations(None, [], retention=timedelta(days=7))  # type: ignore[arg-type]


# --- link tokens --------------------------------------------------------------------------------------


def test_a_link_names_its_evaluation_until_it_expires(monkeypatch):
    signer = LinkSigner(b"s" * 32, timedelta(hours=24))
    evaluation_id = str(uuid.uuid4())
    token = signer.token(evaluation_id)
    assert signer.evaluation_id(token) == evaluation_id
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 23 * 3600)
    assert signer.evaluation_id(token) == evaluation_id
    monkeypatch.setattr(time, "time", lambda: real() + 25 * 3600)
    assert signer.evaluation_id(token) is None  # expired


@pytest.mark.parametrize("change", ["signature", "first", "middle", "truncate", "other-id"])
def test_a_tampered_link_opens_nothing(change):
    signer = LinkSigner(b"s" * 32, timedelta(hours=24))
    token = signer.token(str(uuid.uuid4()))
    payload, stamp, mac = token.split(".")
    if change == "signature":  # (the last base64 character may carry only padding bits: change the first)
        token = f"{payload}.{stamp}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    elif change == "first":
        token = ("A" if token[0] != "A" else "B") + token[1:]
    elif change == "middle":
        token = f"{payload}.{stamp[:-1]}{'A' if stamp[-1] != 'A' else 'B'}.{mac}"
    elif change == "truncate":
        token = f"{payload}.{stamp}"
    else:  # a genuine signature, another id: the MAC covers the id
        other = signer.token(str(uuid.uuid4())).split(".")[0]
        token = f"{other}.{stamp}.{mac}"
    assert signer.evaluation_id(token) is None


def test_a_link_signed_with_another_secret_or_for_something_else_opens_nothing():
    evaluation_id = str(uuid.uuid4())
    theirs = LinkSigner(b"t" * 32, timedelta(hours=24)).token(evaluation_id)
    assert LinkSigner(b"s" * 32, timedelta(hours=24)).evaluation_id(theirs) is None
    assert LinkSigner(b"s" * 32, timedelta(hours=24)).evaluation_id("x" * 600) is None
    assert LinkSigner(b"s" * 32, timedelta(hours=24)).evaluation_id("") is None


def test_the_link_secret_is_derived_not_the_key_itself(key):
    secret = derive_link_secret(key)
    assert len(secret) == 32 and secret != key.encode() and secret == derive_link_secret(key)
    assert derive_link_secret(Fernet.generate_key().decode()) != secret
