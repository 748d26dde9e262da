"""jwt_replay: JWT ids already used, shared by every worker (legacy schema_version 3)

Revision ID: 0003
Revises: 0002
Create Date: 2025-05-01

(issuer, jti) → expires_at; the primary key makes check-and-record one atomic insert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jwt_replay",
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name="pk_jwt_replay"),
    )
    op.create_index("ix_jwt_replay_expires_at", "jwt_replay", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_jwt_replay_expires_at", table_name="jwt_replay")
    op.drop_table("jwt_replay")
