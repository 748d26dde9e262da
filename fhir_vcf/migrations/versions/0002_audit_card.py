"""audit_card index table; feedback.audit_id joined through the card uuid (legacy schema_version 2)

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-01

One row per card of an audited call, so feedback finds its call by card uuid with an index; the
rows of calls audited before are backfilled from audit.card_uuids, and stored feedback is joined
to the latest call that issued its card.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The tables as they are at this revision (never the store's current Table objects).
_meta = sa.MetaData()
audit = sa.Table("audit", _meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("card_uuids", sa.JSON))
audit_card = sa.Table(
    "audit_card", _meta,
    sa.Column("audit_id", sa.Integer, primary_key=True),
    sa.Column("card_uuid", sa.String(128), primary_key=True),
)
feedback = sa.Table(
    "feedback", _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("card_uuid", sa.String(128)),
    sa.Column("audit_id", sa.Integer),
)


def _canonical_uuid(value: object) -> str:
    """Lower-case hyphenated form of a UUID; anything else stripped and lower-cased (as the store wrote)."""
    text = str(value).strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text.lower()


def upgrade() -> None:
    op.create_table(
        "audit_card",
        sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit.id"), primary_key=True),
        sa.Column("card_uuid", sa.String(128), primary_key=True),
    )
    op.create_index("ix_audit_card_card_uuid", "audit_card", ["card_uuid"])
    op.add_column("feedback", sa.Column("audit_id", sa.Integer))
    op.create_index("ix_feedback_audit_id", "feedback", ["audit_id"])
    conn = op.get_bind()
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


def downgrade() -> None:
    op.drop_index("ix_feedback_audit_id", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("audit_id")
    op.drop_index("ix_audit_card_card_uuid", table_name="audit_card")
    op.drop_table("audit_card")
