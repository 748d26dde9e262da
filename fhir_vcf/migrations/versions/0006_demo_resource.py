"""demo_resource: resources written to the demo FHIR endpoint (demo mode only)

Revision ID: 0006
Revises: 0005
Create Date: 2026-01-20

`serve --demo` accepts the CarePlan write-back on `/demo/fhir` (conditional create), so that the
whole flow can be tried without an EHR. The written resources live here, so that every worker
process sees them. `condition` is the conditional create's normalised If-None-Exist query: unique
per type, so two concurrent creates with one condition store one resource. Outside demo mode the
table stays empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "demo_resource",
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("condition", sa.String(1024)),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.UniqueConstraint("resource_type", "resource_id", name="uq_demo_resource_id"),
        sa.UniqueConstraint("resource_type", "condition", name="uq_demo_resource_condition"),
    )


def downgrade() -> None:
    op.drop_table("demo_resource")
