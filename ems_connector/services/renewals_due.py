"""Notes renewal dates as they arrive: where Cleeng would raise
`subscriptionReadyForPaymentCapture`, an externally-managed subscription records a
`webhookSuppressed` operation instead (the store bills it, not us)."""

from __future__ import annotations

from ems_connector.context import RequestContext
from ems_connector.persistence import subscriptions as repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWorkFactory

BATCH = 500
SUPPRESSED_TOPIC = "subscriptionReadyForPaymentCapture"


class RenewalsDue:
    def __init__(self, db: Database, uow: UnitOfWorkFactory) -> None:
        self.db = db
        self.uow = uow

    async def run(self) -> int:
        """Note every renewal date that has come; returns how many. Safe to run twice, or in
        two processes at once: a date is noted, and logged, once."""
        noted = 0
        while True:
            now = self.uow.clock.now()
            async with self.db.read() as conn:
                due = await repo.renewals_due(conn, now, BATCH)
            for row in due:
                context = RequestContext(
                    publisher_id=row["publisher_id"], request_id=None, actor="system:renewals"
                )
                async with self.uow(context) as uow:
                    if not await repo.note_renewal_due(uow.conn, row):
                        continue
                    await uow.log(
                        "webhookSuppressed",
                        {
                            "topic": SUPPRESSED_TOPIC,
                            "reason": "externally-managed subscriptions are billed by their "
                            "store; ReadyFor webhooks are never sent",
                            "dateTo": row["date_to"],
                        },
                        customer_id=row["customer_id"],
                        subscription_id=row["id"],
                    )
                    noted += 1
            if len(due) < BATCH:
                return noted
