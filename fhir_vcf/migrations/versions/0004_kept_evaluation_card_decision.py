"""kept_evaluation (explanation pages); audit_card.decision (governance view) (legacy schema_version 4)

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-10

Evaluations kept to be shown on the explanation page (`fhir_vcf.kept`: encrypted, purged after
`expires`), and each card's own decision in audit_card, backfilled from its call when the call had
one decision (a call over several orders may have several).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The tables as they are at this revision (never the store's current Table objects).
_meta = sa.MetaData()
audit = sa.Table("audit", _meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("decision", sa.String(200)))
audit_card = sa.Table(
    "audit_card", _meta,
    sa.Column("audit_id", sa.Integer, primary_key=True),
    sa.Column("card_uuid", sa.String(128), primary_key=True),
    sa.Column("decision", sa.String(32)),
)


def upgrade() -> None:
    op.create_table(
        "kept_evaluation",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("expires", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ciphertext", sa.Text, nullable=False),
    )
    op.create_index("ix_kept_evaluation_expires", "kept_evaluation", ["expires"])
    op.add_column("audit_card", sa.Column("decision", sa.String(32)))
    single = (
        sa.select(audit.c.decision)
        .where(audit.c.id == audit_card.c.audit_id, ~audit.c.decision.contains(","))
        .scalar_subquery()
    )
    op.get_bind().execute(audit_card.update().values(decision=single))


def downgrade() -> None:
    with op.batch_alter_table("audit_card") as batch:
        batch.drop_column("decision")
    op.drop_index("ix_kept_evaluation_expires", table_name="kept_evaluation")
    op.drop_table("kept_evaluation")
