"""reconciliations and their items

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("publisher_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_method_id", sa.BigInteger(), nullable=False),
        sa.Column("tolerance_seconds", sa.BigInteger(), nullable=False),
        sa.Column("apply", sa.Boolean(), nullable=False),
        sa.Column("terminate_missing", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("missing_after_id", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["publisher_id"], ["publishers.id"], name="fk_reconciliations_publisher_id_publishers"
        ),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name="fk_reconciliations_payment_method_id_payment_methods",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliations"),
    )
    op.create_index("ix_reconciliations_status", "reconciliations", ["status"])
    op.create_table(
        "reconciliation_items",
        sa.Column("reconciliation_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("external_id", sa.String(120), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("offer_id", sa.String(16), nullable=True),
        sa.Column("customer_email", sa.String(254), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("differences", sa.JSON(), nullable=True),
        sa.Column("action", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["reconciliations.id"],
            name="fk_reconciliation_items_reconciliation_id_reconciliations",
        ),
        sa.PrimaryKeyConstraint("reconciliation_id", "position", name="pk_reconciliation_items"),
    )
    op.create_index(
        "ix_reconciliation_items_external_id",
        "reconciliation_items",
        ["reconciliation_id", "external_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_items_external_id", table_name="reconciliation_items")
    op.drop_table("reconciliation_items")
    op.drop_index("ix_reconciliations_status", table_name="reconciliations")
    op.drop_table("reconciliations")
