"""Evaluations kept to be shown: encrypted at rest, purged after a retention window, opened by a
signed, expiring link. The threat model and the choices are in docs/explanation-pages.md.

- Storage. Each hook or API evaluation gets a random id (UUID4) and is stored in the store's
  `kept_evaluation` table as a Fernet token (`cryptography`: AES-128-CBC with HMAC-SHA256, a random
  IV per message; no home-made cryptography). The key list comes from configuration
  (`FHIR_VCF_EVALUATION_KEYS`): the first key encrypts, every key decrypts (`MultiFernet`), so a key
  can be rotated without losing what is kept. The plaintext names its own id, checked on reading,
  so a ciphertext copied onto another row is refused. A database dump alone reveals no patient data.
- Retention. Rows carry `expires` (default 7 days); reads refuse expired rows and Fernet's own
  timestamp check refuses older tokens too; `purge()` deletes them, run at start-up and at most
  once per `PURGE_SECONDS` per process on a write.
- Links. `LinkSigner` makes `itsdangerous` URL-safe timed tokens (HMAC-SHA256 over the id and a
  timestamp; Pallets' library, which Flask uses for its sessions). A token opens one evaluation for
  `FHIR_VCF_LINK_TTL_HOURS` (default 24 h); an unknown, expired or tampered token reads as nothing,
  and the page says only "Not found" (no oracle telling which). The signing secret is
  `FHIR_VCF_LINK_SECRET`, else derived from the first evaluation key with HKDF-SHA256.

Never logged: tokens, ids in links, evaluation content. Only counts and the kept id's prefix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.exc import SQLAlchemyError

from fhir_vcf.errors import ConfigError
from fhir_vcf.store import Store, StoreError, kept_evaluation

log = logging.getLogger(__name__)

PURGE_SECONDS = 300.0  # at most one purge of expired rows per process every five minutes
_LINK_SALT = "fhir-vcf explanation link"  # itsdangerous salt: a token for anything else never validates
_HKDF_INFO = b"fhir-vcf link signing v1"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class KeptEvaluation:
    """One evaluation as kept: its id, when and where it was made, and the evaluation object."""

    id: str
    created: datetime
    expires: datetime
    source: str
    evaluation: dict[str, Any]


def derive_link_secret(evaluation_key: str) -> bytes:
    """A signing secret of its own for links, derived from the first evaluation key (HKDF-SHA256):
    one configured secret, two keys that never serve both purposes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(evaluation_key.encode())


class LinkSigner:
    """Signed, expiring link tokens naming one kept evaluation (see the module docstring)."""

    def __init__(self, secret: bytes | str, ttl: timedelta) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret, salt=_LINK_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self.ttl = ttl

    def token(self, evaluation_id: str) -> str:
        return self._serializer.dumps(evaluation_id)

    def evaluation_id(self, token: str) -> str | None:
        """The id a valid, unexpired token names; None for anything else (never says why)."""
        if not token or len(token) > 512:
            return None
        try:
            value = self._serializer.loads(token, max_age=int(self.ttl.total_seconds()))
        except BadData:
            return None
        return value if isinstance(value, str) and _is_uuid(value) else None


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class KeptEvaluations:
    """The kept_evaluation table behind encryption; safe to share between threads."""

    def __init__(self, store: Store, keys: Sequence[str], *, retention: timedelta) -> None:
        if not keys:
            raise ConfigError("kept evaluations need at least one key (FHIR_VCF_EVALUATION_KEYS)")
        self._store = store
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
        self.retention = retention
        self._next_purge = float("-inf")
        self._lock = threading.Lock()

    def keep(self, evaluation: Mapping[str, Any], *, source: str, now: datetime | None = None) -> str:
        """Encrypt and store one evaluation; return its new id. Raises StoreError if the database fails."""
        evaluation_id = str(uuid.uuid4())
        created = now or _utcnow()
        plaintext = json.dumps({"id": evaluation_id, "evaluation": evaluation}, separators=(",", ":"))
        token = self._fernet.encrypt_at_time(plaintext.encode("utf-8"), int(_epoch(created)))
        try:
            with self._store.engine.begin() as conn:
                conn.execute(kept_evaluation.insert().values(
                    id=evaluation_id, created=created, expires=created + self.retention, source=source[:32],
                    ciphertext=token.decode("ascii"),
                ))
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not keep the evaluation ({type(exc).__name__})") from exc
        self._maybe_purge(created)
        return evaluation_id

    def get(self, evaluation_id: str, *, now: datetime | None = None) -> KeptEvaluation | None:
        """The kept evaluation, or None when unknown, expired or not readable with the configured keys."""
        if not _is_uuid(evaluation_id):
            return None
        now = now or _utcnow()
        query = sa.select(kept_evaluation).where(kept_evaluation.c.id == evaluation_id,
                                                 kept_evaluation.c.expires > now)
        try:
            with self._store.engine.connect() as conn:
                row = conn.execute(query).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not read a kept evaluation ({type(exc).__name__})") from exc
        if row is None:
            return None
        try:
            plaintext = self._fernet.decrypt_at_time(
                row.ciphertext.encode("ascii"), ttl=int(self.retention.total_seconds()), current_time=int(_epoch(now))
            )
            data = json.loads(plaintext)
        except (InvalidToken, ValueError):
            log.warning("kept evaluation %s… could not be decrypted with the configured keys", evaluation_id[:8])
            return None
        named = isinstance(data, dict) and data.get("id") == evaluation_id
        if not named or not isinstance(data.get("evaluation"), dict):
            log.warning("kept evaluation %s… does not name its own row: refused", evaluation_id[:8])
            return None
        return KeptEvaluation(evaluation_id, row.created, row.expires, row.source, data["evaluation"])

    def purge(self, *, now: datetime | None = None) -> int:
        """Delete every expired row; return how many went."""
        try:
            with self._store.engine.begin() as conn:
                gone = conn.execute(kept_evaluation.delete().where(kept_evaluation.c.expires <= (now or _utcnow())))
        except SQLAlchemyError as exc:
            raise StoreError(f"store: could not purge kept evaluations ({type(exc).__name__})") from exc
        if gone.rowcount:
            log.info("kept evaluations: purged %d past their retention window", gone.rowcount)
        return int(gone.rowcount or 0)

    def _maybe_purge(self, now: datetime) -> None:
        """Housekeeping on writes, at most once per PURGE_SECONDS in this process; a failure is logged."""
        tick = time.monotonic()
        with self._lock:
            if tick < self._next_purge:
                return
            self._next_purge = tick + PURGE_SECONDS
        try:
            self.purge(now=now)
        except StoreError as exc:
            log.warning("kept evaluations: purge failed (%s)", exc)


def _epoch(value: datetime) -> float:
    return value.replace(tzinfo=UTC).timestamp()


__all__ = ["KeptEvaluation", "KeptEvaluations", "LinkSigner", "derive_link_secret"]
