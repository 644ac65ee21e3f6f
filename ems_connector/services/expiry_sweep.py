"""The expiry sweep (CONTRACT §4): terminates what its store let lapse past the grace period."""

from __future__ import annotations

from ems_connector.context import RequestContext
from ems_connector.errors import Conflict
from ems_connector.persistence import subscriptions as repo
from ems_connector.persistence.database import Database
from ems_connector.services.subscriptions import SubscriptionService

BATCH = 500
ACTOR = "system:expiry-sweep"


class ExpirySweep:
    def __init__(self, db: Database, subscriptions: SubscriptionService) -> None:
        self.db = db
        self.subscriptions = subscriptions

    async def run(self) -> int:
        """Terminate every subscription due now on the service clock; returns how many.

        Each one is its own unit of work that checks again that it is due, so a second run,
        or one in another process at the same time, terminates nothing twice.
        """
        terminated = 0
        after_id = 0
        while True:
            now = self.subscriptions.uow.clock.now()
            async with self.db.read() as conn:
                due = await repo.expired(conn, now, after_id, BATCH)
            for row in due:
                context = RequestContext(
                    publisher_id=row["publisher_id"], request_id=None, actor=ACTOR
                )
                try:
                    if await self.subscriptions.terminate_expired(context, row["id"]):
                        terminated += 1
                except Conflict:
                    continue  # another process changed it first: it decides, not us
            if len(due) < BATCH:
                return terminated
            after_id = due[-1]["id"]
