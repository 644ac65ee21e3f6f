"""indexes for the dispatcher: one that hands it one endpoint's due deliveries, longest due first

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
    # the order check ("is an earlier delivery of this subscription pending?") probes
    # status too, instead of reading every delivered event of the subscription
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["endpoint_id", "ordering_key", "status", "event_seq"],
        unique=False,
    )
    op.create_index(
        "ix_webhook_deliveries_pick",
        "webhook_deliveries",
        ["endpoint_id", "status", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pick", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["endpoint_id", "ordering_key", "event_seq"],
        unique=False,
    )
