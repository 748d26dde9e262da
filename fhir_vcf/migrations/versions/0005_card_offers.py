"""audit_card: the suggestions and override reasons each card offered

Revision ID: 0005
Revises: 0004
Create Date: 2026-01-15

Feedback may accept only a suggestion the card carried and give only an override reason the card
offered (CDS Hooks 2.0, "Feedback"). Both are remembered per card: `suggestion_ids` (a JSON list
of suggestion uuids) and `override_reasons` (a JSON list of [system, code] pairs). Cards issued
before this revision have NULL there: unknown, so their feedback is not checked against them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_card", sa.Column("suggestion_ids", sa.JSON))
    op.add_column("audit_card", sa.Column("override_reasons", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("audit_card") as batch:
        batch.drop_column("override_reasons")
        batch.drop_column("suggestion_ids")
