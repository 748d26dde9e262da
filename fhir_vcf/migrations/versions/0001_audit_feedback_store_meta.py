"""audit, feedback, store_meta: the first released schema (legacy schema_version 1)

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Audit rows hold the card uuids of a call only as JSON; feedback is keyed by (card, outcome,
outcomeTimestamp) so a retransmission is stored once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "audit",
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
    op.create_table(
        "feedback",
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


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("audit")
    op.drop_table("store_meta")
