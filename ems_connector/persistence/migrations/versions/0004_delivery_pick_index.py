"""an index that hands the dispatcher one endpoint's pending deliveries in event order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_pick",
        "webhook_deliveries",
        ["endpoint_id", "status", "event_seq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pick", table_name="webhook_deliveries")
