"""Reconciliation (CONTRACT §10): a connector's view of its store against our records, and
the corrections, made through the ordinary lifecycle so each is logged and sent as a webhook.

A report is stored with its items when it is submitted and worked through in the background,
a chunk of items per transaction; after a restart the work resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from ems_connector.context import RequestContext
from ems_connector.errors import BadRequest, DomainError, NotFound, Unprocessable
from ems_connector.persistence import payment_methods as methods_repo
from ems_connector.persistence import reconciliations as repo
from ems_connector.persistence import subscriptions as subscriptions_repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWorkFactory
from ems_connector.schemas.customers import CreateCustomerRequest
from ems_connector.schemas.reconciliations import (
    Counts,
    CreateReconciliationRequest,
    ItemAction,
    Progress,
    ReconciliationResource,
    ReportItem,
)
from ems_connector.schemas.subscriptions import (
    CancelRequest,
    CreateSubscriptionRequest,
    RenewRequest,
    ReviveRequest,
    TerminateRequest,
    UpdateSubscriptionRequest,
)
from ems_connector.services.customers import CustomerService
from ems_connector.services.subscriptions import SubscriptionService
from prepared_sql import Row

log = logging.getLogger(__name__)

CHUNK = 500  # items compared, and their results stored, per transaction
_INSERT_CHUNK = 2_000  # item rows per statement batch: ~20 ms of the loop each
_CANCELLATION_REASON = "reconciliation: stopped in the store"


def reconciliation_not_found(reconciliation_id: str) -> NotFound:
    return NotFound(
        "RECONCILIATION_NOT_FOUND", f"Reconciliation with id: {reconciliation_id} not found"
    )


def _duplicates(req: CreateReconciliationRequest) -> None:
    first: dict[str, int] = {}
    for index, item in enumerate(req.items):
        earlier = first.setdefault(item.external_id, index)
        if earlier != index:
            raise BadRequest(
                "VALIDATION_ERROR",
                f"items[{index}].externalId {item.external_id!r} is also items[{earlier}]; "
                "send each subscription once",
                {"fields": [{"field": f"items[{index}].externalId", "message": "appears twice"}]},
            )


def _match(candidates: Sequence[Row]) -> Row | None:
    """The non-terminated subscription, else the latest terminated one."""
    live = [row for row in candidates if row["status"] != "terminated"]
    if live:
        return live[0]
    return max(candidates, key=lambda row: row["id"]) if candidates else None


def compare(item: Row, sub: Row | None, tolerance: int) -> tuple[str, dict[str, Any]]:
    """The outcome of one item, and what differs (`{field: {here, there}}`)."""
    if sub is None:
        return "missing_here", {}
    if sub["status"] == "terminated" and item["status"] == "terminated":
        return "in_sync", {}  # neither grants anything; a dead one's expiry does not matter
    differences: dict[str, Any] = {}
    for field, here, there in (
        ("status", sub["status"], item["status"]),
        ("offerId", sub["offer_id"], item["offer_id"]),
        ("expiresAt", sub["date_to"], item["expires_at"]),
    ):
        if here != there:
            differences[field] = {"here": here, "there": there}
    beyond = abs(sub["date_to"] - item["expires_at"]) > tolerance
    if "status" in differences or "offerId" in differences or beyond:
        return "out_of_sync", differences
    return ("minor_drift" if differences else "in_sync"), differences


class ReconciliationService:
    def __init__(
        self,
        db: Database,
        uow: UnitOfWorkFactory,
        subscriptions: SubscriptionService,
        customers: CustomerService,
    ) -> None:
        self.db = db
        self.uow = uow
        self.subscriptions = subscriptions
        self.customers = customers
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # ---- submitting and reading -------------------------------------------------------------

    async def create(
        self, ctx: RequestContext, req: CreateReconciliationRequest
    ) -> ReconciliationResource:
        """Store the report and its items; the comparison starts once that is durable."""
        _duplicates(req)
        reconciliation_id = str(uuid.uuid4())
        async with self.uow(ctx) as uow:
            method = await methods_repo.get(uow.conn, ctx.publisher_id, req.payment_method_id)
            if method is None:
                raise Unprocessable(
                    "PAYMENT_METHOD_NOT_FOUND",
                    f"Payment method with id: {req.payment_method_id} not found",
                )
            values = {
                "id": reconciliation_id,
                "publisher_id": ctx.publisher_id,
                "payment_method_id": req.payment_method_id,
                "tolerance_seconds": req.tolerance_seconds,
                "apply": req.apply,
                "terminate_missing": req.terminate_missing,
                "actor": ctx.actor,
                "status": "running",
                "total": len(req.items),
                "processed": 0,
                "missing_after_id": 0,
                "counts": msgspec.to_builtins(Counts()),
                "created_at": uow.now,
                "updated_at": uow.now,
                "finished_at": None,
            }
            await repo.insert_reconciliation(uow.conn, values)
            for start in range(0, len(req.items), _INSERT_CHUNK):
                await repo.insert_items(
                    uow.conn,
                    [
                        {
                            "reconciliation_id": reconciliation_id,
                            "position": start + offset + 1,
                            "external_id": item.external_id,
                            "status": "stopped" if item.status == "cancelled" else item.status,
                            "expires_at": item.expires_at,
                            "offer_id": item.offer_id,
                            "customer_email": item.customer_email,
                            "outcome": None,
                            "subscription_id": None,
                            "differences": None,
                            "action": None,
                        }
                        for offset, item in enumerate(req.items[start : start + _INSERT_CHUNK])
                    ],
                )
                await asyncio.sleep(0)  # reads go on between chunks; writes wait for this one
            await uow.log(
                "startReconciliation",
                {
                    "reconciliationId": reconciliation_id,
                    "paymentMethodId": req.payment_method_id,
                    "items": len(req.items),
                    "apply": req.apply,
                    "terminateMissing": req.terminate_missing,
                },
            )
            self.db.after_commit(lambda: self.start(reconciliation_id))
        return _resource(values, [], None)

    async def get(
        self,
        ctx: RequestContext,
        reconciliation_id: str,
        *,
        outcomes: Sequence[str] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> ReconciliationResource:
        async with self.db.read() as conn:
            row = await repo.get(conn, ctx.publisher_id, reconciliation_id)
            if row is None:
                raise reconciliation_not_found(reconciliation_id)
            found = await repo.report_items(conn, reconciliation_id, outcomes, offset, limit)
        items = [_report_item(item) for item in found[:limit]]
        return _resource(row, items, offset + limit if len(found) > limit else None)

    # ---- the work ---------------------------------------------------------------------------

    def start(self, reconciliation_id: str) -> None:
        """Work on a report in the background (once: a second call while it runs is a no-op)."""
        if reconciliation_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(
            self._work(reconciliation_id), name=f"reconciliation-{reconciliation_id}"
        )
        self._tasks[reconciliation_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(reconciliation_id, None))

    async def resume(self) -> int:
        """Start every report a stop left unfinished; returns how many."""
        async with self.db.read() as conn:
            unfinished = await repo.running(conn)
        for reconciliation_id in unfinished:
            self.start(reconciliation_id)
        return len(unfinished)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self, reconciliation_id: str) -> None:
        try:
            async with self.db.read() as conn:
                row = await repo.get_any(conn, reconciliation_id)
                assert row is not None
                method = await methods_repo.get(conn, row["publisher_id"], row["payment_method_id"])
            assert method is not None  # payment methods are never deleted
            run = _Run(self, row, method["source"])
            await run.submitted_items()
            await run.missing_there()
            await run.finish()
        except asyncio.CancelledError:
            raise
        except Exception:
            # left `running`: the next start of the service resumes it
            log.exception("reconciliation %s stopped", reconciliation_id)


class _Run:
    """One pass over a report, from where it was left."""

    def __init__(self, service: ReconciliationService, row: Row, source: str) -> None:
        self.service = service
        self.db = service.db
        self.row = row
        self.source = source
        self.id: str = row["id"]
        self.ctx = RequestContext(
            publisher_id=row["publisher_id"], request_id=None, actor=row["actor"]
        )
        self.counts: dict[str, int] = dict(row["counts"])
        self.processed: int = row["processed"]

    async def submitted_items(self) -> None:
        while self.processed < self.row["total"]:
            upto = min(self.processed + CHUNK, self.row["total"])
            async with self.db.read() as conn:
                chunk = await repo.submitted_after(conn, self.id, self.processed, upto)
                candidates = await subscriptions_repo.by_external_ids(
                    conn,
                    self.row["publisher_id"],
                    self.source,
                    [item["external_id"] for item in chunk],
                )
            by_external_id: dict[str, list[Row]] = {}
            for sub in candidates:
                by_external_id.setdefault(sub["external_id"], []).append(sub)
            results = [
                await self._item(item, _match(by_external_id.get(item["external_id"], [])))
                for item in chunk
            ]
            async with self.db.transaction() as conn:
                await repo.save_results(conn, self.id, results)
                await repo.update_reconciliation(
                    conn,
                    self.id,
                    {"processed": upto, "counts": self.counts, "updated_at": self._now()},
                )
            self.processed = upto

    async def missing_there(self) -> None:
        after_id: int = self.row["missing_after_id"]
        position = self.row["total"] + self.counts["missing_there"]
        while True:
            async with self.db.read() as conn:
                page = await repo.live_absent_from_items(conn, self.row, after_id, CHUNK)
            if not page:
                return
            rows = []
            for sub in page:
                position += 1
                rows.append(
                    {
                        "reconciliation_id": self.id,
                        "position": position,
                        "external_id": sub["external_id"],
                        "status": None,
                        "expires_at": None,
                        "offer_id": None,
                        "customer_email": None,
                        "outcome": "missing_there",
                        "subscription_id": sub["id"],
                        "differences": {},
                        "action": await self._missing_there(sub),
                    }
                )
                self.counts["missing_there"] += 1
            after_id = page[-1]["id"]
            async with self.db.transaction() as conn:
                await repo.insert_items(conn, rows)
                await repo.update_reconciliation(
                    conn,
                    self.id,
                    {
                        "missing_after_id": after_id,
                        "counts": self.counts,
                        "updated_at": self._now(),
                    },
                )

    async def finish(self) -> None:
        async with self.db.transaction() as conn:
            now = self._now()
            await repo.update_reconciliation(
                conn,
                self.id,
                {"status": "done", "finished_at": now, "updated_at": now, "counts": self.counts},
            )

    def _now(self) -> int:
        return self.service.uow.clock.now()

    # ---- one item ---------------------------------------------------------------------------

    async def _item(self, item: Row, sub: Row | None) -> dict[str, Any]:
        outcome, differences = compare(item, sub, self.row["tolerance_seconds"])
        self.counts[outcome] += 1
        subscription_id = sub["id"] if sub is not None else None
        action = None
        if self.row["apply"] and outcome != "in_sync":
            fix = _Fix(self)
            action = await fix.item(item, sub, outcome, differences)
            subscription_id = fix.subscription_id or subscription_id
        return {
            "position": item["position"],
            "outcome": outcome,
            "subscription_id": subscription_id,
            "differences": differences,
            "action": action,
        }

    async def _missing_there(self, sub: Row) -> dict[str, Any] | None:
        if not self.row["apply"]:
            return None
        if not self.row["terminate_missing"]:
            return _action(
                "not_applied",
                [],
                "TERMINATE_MISSING_OFF",
                "absent from the store's items; send terminateMissing: true to terminate it",
            )
        fix = _Fix(self)
        return await fix.run(fix.terminate(sub["id"]))


def _action(
    result: str, operations: list[str], code: str | None = None, message: str | None = None
) -> dict[str, Any]:
    return {"result": result, "operations": operations, "code": code, "message": message}


class _Fix:
    """The lifecycle operations that bring one subscription in line with the store."""

    def __init__(self, work: _Run) -> None:
        self.work = work
        self.subscriptions = work.service.subscriptions
        self.ctx = work.ctx
        self.operations: list[str] = []
        self.subscription_id: int | None = None

    async def run(self, steps: Any) -> dict[str, Any]:
        """Await `steps`; a refusal stops them and is reported with what was done before."""
        try:
            outcome = await steps
        except DomainError as exc:
            return _action("failed", self.operations, exc.code, exc.message)
        if outcome is not None:
            return outcome  # type: ignore[no-any-return]
        return _action("applied", self.operations)

    async def item(
        self, item: Row, sub: Row | None, outcome: str, differences: dict[str, Any]
    ) -> dict[str, Any] | None:
        if outcome == "missing_here":
            return await self.run(self.create(item))
        assert sub is not None
        return await self.run(self.align(item, sub, differences))

    async def create(self, item: Row) -> dict[str, Any] | None:
        if item["status"] == "terminated":
            return _action(
                "not_applied", [], "TERMINATED_THERE", "terminated in the store: nothing to create"
            )
        if item["customer_email"] is None:
            return _action(
                "not_applied",
                [],
                "CUSTOMER_UNKNOWN",
                "no subscription here and no customerEmail to find or create its customer by",
            )
        customer, _ = await self.work.service.customers.find_or_create(
            self.ctx, CreateCustomerRequest(email=item["customer_email"])
        )
        created = await self.subscriptions.create(
            self.ctx,
            CreateSubscriptionRequest(
                customer_id=customer.id,
                offer_id=item["offer_id"],
                payment_method_id=self.work.row["payment_method_id"],
                external_id=item["external_id"],
                expires_at=item["expires_at"],
            ),
        )
        self.subscription_id = created.subscription_id
        self.operations.append("createSubscription")
        if item["status"] == "stopped":
            await self.cancel(created.subscription_id)
        return None

    async def align(
        self, item: Row, sub: Row, differences: dict[str, Any]
    ) -> dict[str, Any] | None:
        there, here = item["status"], sub["status"]
        if there == "terminated":
            await self.terminate(sub["id"])
            return None
        if here == "terminated":
            revived = await self.subscriptions.revive(
                self.ctx, sub["id"], ReviveRequest(expiration_date=item["expires_at"])
            )
            self.operations.append("reviveSubscription")
            assert revived.replaced_by is not None
            self.subscription_id = revived.replaced_by.subscription_id
            if there == "stopped":
                await self.cancel(self.subscription_id)
            return None
        status = here
        if "expiresAt" in differences:
            later_by = item["expires_at"] - sub["date_to"]
            if there == "active" and later_by > self.work.row["tolerance_seconds"]:
                await self.subscriptions.renew(
                    self.ctx, sub["id"], RenewRequest(expires_at=item["expires_at"])
                )
                self.operations.append("renewSubscription")
                status = "active"  # a renew makes a stopped subscription active
            else:
                await self.subscriptions.update(
                    self.ctx, sub["id"], UpdateSubscriptionRequest(expires_at=item["expires_at"])
                )
                self.operations.append("updateSubscription")
        if there == "stopped" and status == "active":
            await self.cancel(sub["id"])
        elif there == "active" and status == "stopped":
            await self.subscriptions.activate(self.ctx, sub["id"])
            self.operations.append("activateSubscription")
        if not self.operations:
            return _action(
                "not_applied",
                [],
                "OFFER_DIFFERS",
                "the offer differs: switches are the store's to report, so it is not changed",
            )
        return None

    async def cancel(self, subscription_id: int) -> None:
        await self.subscriptions.cancel(
            self.ctx, subscription_id, CancelRequest(cancellation_reason=_CANCELLATION_REASON)
        )
        self.operations.append("cancelSubscription")

    async def terminate(self, subscription_id: int) -> None:
        await self.subscriptions.terminate(
            self.ctx, subscription_id, TerminateRequest(termination_type="publisherCancel")
        )
        self.operations.append("terminateSubscription")


def _report_item(row: Row) -> ReportItem:
    action = row["action"]
    return ReportItem(
        external_id=row["external_id"],
        outcome=row["outcome"],
        subscription_id=row["subscription_id"],
        differences=row["differences"] or {},
        action=msgspec.convert(action, ItemAction) if action is not None else None,
    )


def _resource(row: Any, items: list[ReportItem], next_offset: int | None) -> ReconciliationResource:
    return ReconciliationResource(
        id=row["id"],
        status=row["status"],
        payment_method_id=row["payment_method_id"],
        tolerance_seconds=row["tolerance_seconds"],
        apply=row["apply"],
        terminate_missing=row["terminate_missing"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        progress=Progress(total=row["total"], processed=row["processed"]),
        counts=msgspec.convert(row["counts"], Counts),
        items=items,
        next=next_offset,
    )
