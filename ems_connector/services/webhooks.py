"""Webhook configuration and operations: endpoints, Cleeng's topic subscriptions, the
delivery log, manual retry, recovery, resync and per-subscription sync status (CONTRACT §9)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from ems_connector.clock import Clock
from ems_connector.context import RequestContext
from ems_connector.errors import BadRequest, NotFound, field_error
from ems_connector.persistence import customers as customers_repo
from ems_connector.persistence import subscriptions as subscriptions_repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from ems_connector.schemas.webhooks import (
    AttemptResource,
    CreateEndpointRequest,
    DeliveryPage,
    DeliveryResource,
    EndpointResource,
    EndpointSyncStatus,
    EndpointWithSecret,
    FiltersResource,
    RecoverResult,
    ResyncResult,
    SyncStatus,
    UpdateEndpointRequest,
    VerificationResource,
    WebhookSubscriptionItem,
    WebhookSubscriptionResource,
)
from ems_connector.services import cursors
from ems_connector.services.subscriptions import subscription_not_found
from prepared_sql import Row
from webhooks import signing, store, topics
from webhooks.payloads import SubscriptionEventData, iso

# A rotated-out secret keeps signing (as a second signature) for this long.
ROTATION_OVERLAP_SECONDS = 24 * 3600
RESYNC_CHUNK = 500
MAX_TOPIC_ENDPOINTS = 20
_CURSOR_KIND = "dl1"


def check_topics(names: list[str], field: str = "topics") -> list[str]:
    unknown = [name for name in names if name not in topics.SUBSCRIBABLE]
    if unknown:
        raise BadRequest(
            "UNKNOWN_TOPIC",
            f"Unknown topic {unknown[0]!r}; topics are: {', '.join(topics.SUBSCRIBABLE)}",
            {
                "fields": [
                    {"field": field, "message": f"unknown topic {name!r}"} for name in unknown
                ]
            },
        )
    return list(dict.fromkeys(names))


def check_url(url: str, field: str = "url") -> str:
    """What the schema's pattern lets through: no host (`https://:443/`, `https://?x`) or a
    port out of range."""
    try:
        parts = urlsplit(url)
        valid = bool(parts.hostname) and parts.port != 0  # `port` raises when out of range
    except ValueError:  # an odd IPv6 literal, a port out of range
        valid = False
    if not valid:
        raise field_error(field, "must be an http(s) URL with a host and a valid port")
    return url


def endpoint_not_found(endpoint_id: str) -> NotFound:
    return NotFound(
        "WEBHOOK_ENDPOINT_NOT_FOUND", f"Webhook endpoint with id: {endpoint_id} not found"
    )


def to_endpoint(row: Row) -> EndpointResource:
    return EndpointResource(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        topics=row["topics"],
        filters=FiltersResource(payment_method_id=row["payment_method_id"]),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        max_attempts=row["max_attempts"],
        origin=row["origin"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def with_secret(row: Row) -> EndpointWithSecret:
    return EndpointWithSecret(**msgspec.structs.asdict(to_endpoint(row)), secret=row["secret"])


def to_delivery(row: Row, attempt_rows: Sequence[Row]) -> DeliveryResource:
    return DeliveryResource(
        id=row["id"],
        event_id=row["event_id"],
        topic=row["topic"],
        endpoint_id=row["endpoint_id"],
        subscription_id=row["subscription_id"],
        subscription_version=row["subscription_version"],
        status=row["status"],
        attempt_count=row["attempts"],
        next_attempt_at=int(row["next_attempt_at"]) if row["status"] == "pending" else None,
        delivered_at=int(row["delivered_at"]) if row["delivered_at"] is not None else None,
        created_at=row["created_at"],
        attempts=[
            AttemptResource(
                attempted_at=int(a["attempted_at"]),
                status_code=a["status_code"],
                latency_ms=a["latency_ms"],
                error=a["error"],
                response_excerpt=a["response_excerpt"],
            )
            for a in attempt_rows
        ],
    )


class WebhookService:
    def __init__(self, db: Database, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.db = db
        self.uow = uow
        self.clock = clock

    # ---- endpoints -----------------------------------------------------------------------

    async def create_endpoint(
        self, ctx: RequestContext, req: CreateEndpointRequest
    ) -> EndpointWithSecret:
        names = check_topics(req.topics)
        check_url(req.url)
        async with self.uow(ctx) as uow:
            row = await store.insert_endpoint(
                uow.conn,
                self._new_endpoint(
                    uow,
                    url=req.url,
                    topics=names,
                    payment_method_id=req.filters.payment_method_id if req.filters else None,
                    description=req.description,
                    enabled=req.enabled,
                    max_attempts=req.max_attempts,
                    origin="api",
                ),
            )
            await uow.log("createWebhookEndpoint", _endpoint_payload(row))
            return with_secret(row)

    async def list_endpoints(self, ctx: RequestContext) -> list[EndpointResource]:
        async with self.db.read() as conn:
            return [to_endpoint(row) for row in await store.endpoints_of(conn, ctx.publisher_id)]

    async def get_endpoint(self, ctx: RequestContext, endpoint_id: str) -> EndpointResource:
        async with self.db.read() as conn:
            return to_endpoint(await self._endpoint(conn, ctx.publisher_id, endpoint_id))

    async def update_endpoint(
        self, ctx: RequestContext, endpoint_id: str, req: UpdateEndpointRequest
    ) -> EndpointResource:
        values: dict[str, Any] = {}
        if req.url is not msgspec.UNSET:
            values["url"] = check_url(req.url)
        if req.topics is not msgspec.UNSET:
            values["topics"] = check_topics(req.topics)
        if req.filters is not msgspec.UNSET:
            values["payment_method_id"] = req.filters.payment_method_id if req.filters else None
        if req.description is not msgspec.UNSET:
            values["description"] = req.description
        if req.max_attempts is not msgspec.UNSET:
            values["max_attempts"] = req.max_attempts
        if req.enabled is not msgspec.UNSET:
            values["enabled"] = req.enabled
            if req.enabled:  # re-enabling forgets why it was disabled and the failure streak
                values.update(disabled_reason=None, failing_since=None)
            else:
                values["disabled_reason"] = "disabled by the publisher"
        async with self.uow(ctx) as uow:
            row = await self._endpoint(uow.conn, ctx.publisher_id, endpoint_id)
            changed = {k: v for k, v in values.items() if row[k] != v}
            if not changed:
                return to_endpoint(row)
            row = await store.update_endpoint(
                uow.conn, endpoint_id, {**changed, "updated_at": uow.now}
            )
            await uow.log(
                "updateWebhookEndpoint", {**_endpoint_payload(row), "fields": sorted(changed)}
            )
            if changed.get("enabled"):
                # what waited while it was disabled goes out now, not at its retry time
                await store.due_now(uow.conn, endpoint_id, float(uow.now))
                uow.touch_outbox()
            return to_endpoint(row)

    async def delete_endpoint(self, ctx: RequestContext, endpoint_id: str) -> None:
        async with self.uow(ctx) as uow:
            row = await self._endpoint(uow.conn, ctx.publisher_id, endpoint_id)
            await store.delete_endpoint(uow.conn, endpoint_id)
            await uow.log("deleteWebhookEndpoint", _endpoint_payload(row))

    async def rotate_secret(self, ctx: RequestContext, endpoint_id: str) -> EndpointWithSecret:
        async with self.uow(ctx) as uow:
            row = await self._endpoint(uow.conn, ctx.publisher_id, endpoint_id)
            row = await store.update_endpoint(
                uow.conn,
                endpoint_id,
                {
                    "secret": signing.new_secret(),
                    "previous_secret": row["secret"],
                    "previous_secret_until": uow.now + ROTATION_OVERLAP_SECONDS,
                    "updated_at": uow.now,
                },
            )
            await uow.log("rotateWebhookSecret", _endpoint_payload(row))
            return with_secret(row)

    async def recover(self, ctx: RequestContext, endpoint_id: str, since: int) -> RecoverResult:
        """Send again every delivery to this endpoint that failed, from events since `since`."""
        async with self.uow(ctx) as uow:
            await self._endpoint(uow.conn, ctx.publisher_id, endpoint_id)
            ids = await store.failed_since(uow.conn, endpoint_id, since)
            count = await store.requeue(uow.conn, ids, float(uow.now))
            await uow.log(
                "recoverWebhookDeliveries",
                {"endpointId": endpoint_id, "since": since, "recovered": count},
            )
            uow.touch_outbox()
            return RecoverResult(endpoint_id=endpoint_id, recovered=count)

    async def resync(self, ctx: RequestContext, endpoint_id: str) -> ResyncResult:
        """Send the current state of every non-terminated subscription, topic
        `subscriptionSnapshot`, to this endpoint only; in chunks, one transaction each."""
        async with self.db.read() as conn:
            endpoint = await self._endpoint(conn, ctx.publisher_id, endpoint_id)
        after, total = 0, 0
        while True:
            async with self.uow(ctx) as uow:
                rows = await subscriptions_repo.live_page(
                    uow.conn, ctx.publisher_id, endpoint["payment_method_id"], after, RESYNC_CHUNK
                )
                emails = await customers_repo.emails_of(
                    uow.conn, {row["customer_id"] for row in rows}
                )
                for row in rows:
                    await uow.emit(
                        topics.SNAPSHOT,
                        _snapshot(row, emails.get(row["customer_id"], ""), uow.now),
                        subscription_id=row["id"],
                        subscription_version=row["version"],
                        payment_method_id=row["payment_method_id"],
                        endpoint_ids=[endpoint_id],
                    )
                total += len(rows)
                if len(rows) < RESYNC_CHUNK:
                    await uow.log(
                        "resyncWebhookEndpoint", {"endpointId": endpoint_id, "enqueued": total}
                    )
                    return ResyncResult(endpoint_id=endpoint_id, enqueued=total)
                after = rows[-1]["id"]

    # ---- Cleeng's webhook_subscriptions ------------------------------------------------------

    async def put_subscriptions(
        self, ctx: RequestContext, topic: str, items: list[WebhookSubscriptionItem]
    ) -> list[WebhookSubscriptionResource]:
        """Replace the endpoints of `topic` configured through this API with `items`."""
        check_topics([topic], field="topic")
        if len(items) > MAX_TOPIC_ENDPOINTS:
            raise field_error("body", f"at most {MAX_TOPIC_ENDPOINTS} endpoints per topic")
        for index, item in enumerate(items):
            check_url(item.url, f"[{index}].url")
        async with self.uow(ctx) as uow:
            for row in await store.endpoints_of(uow.conn, ctx.publisher_id, origin="subscription"):
                if row["topics"] == [topic]:
                    await store.delete_endpoint(uow.conn, row["id"])
            created = []
            for item in items:
                shared = item.verification.options.shared_secret if item.verification else None
                created.append(
                    await store.insert_endpoint(
                        uow.conn,
                        {
                            **self._new_endpoint(
                                uow,
                                url=item.url,
                                topics=[topic],
                                payment_method_id=(
                                    item.filters.payment_method_id if item.filters else None
                                ),
                                description=None,
                                enabled=True,
                                max_attempts=(
                                    item.retry_policy.max_attempts if item.retry_policy else None
                                ),
                                origin="subscription",
                            ),
                            "shared_secret": shared,
                        },
                    )
                )
            await uow.log(
                "configureWebhookSubscription",
                {"topic": topic, "urls": [item.url for item in items]},
            )
            return [_as_subscription(row) for row in created]

    async def list_subscriptions(self, ctx: RequestContext) -> list[WebhookSubscriptionResource]:
        async with self.db.read() as conn:
            rows = await store.endpoints_of(conn, ctx.publisher_id, origin="subscription")
        return [_as_subscription(row) for row in rows]

    # ---- deliveries ----------------------------------------------------------------------------

    async def deliveries(
        self,
        ctx: RequestContext,
        *,
        endpoint_id: str | None,
        status: str | None,
        subscription_id: int | None,
        limit: int,
        cursor: str | None,
    ) -> DeliveryPage:
        after = cursors.decode(_CURSOR_KIND, cursor) if cursor else 0
        async with self.db.read() as conn:
            rows = await store.deliveries_page(
                conn,
                ctx.publisher_id,
                endpoint_id=endpoint_id,
                status=status,
                subscription_id=subscription_id,
                after_seq=after,
                limit=limit + 1,
            )
            page = rows[:limit]
            attempt_rows = await store.attempts_of(conn, [row["id"] for row in page])
        return DeliveryPage(
            data=[to_delivery(row, attempt_rows.get(row["id"], [])) for row in page],
            next=cursors.encode(_CURSOR_KIND, page[-1]["seq"]) if len(rows) > limit else None,
        )

    async def retry_delivery(self, ctx: RequestContext, delivery_id: str) -> DeliveryResource:
        async with self.uow(ctx) as uow:
            row = await store.delivery(uow.conn, ctx.publisher_id, delivery_id)
            if row is None:
                raise NotFound(
                    "WEBHOOK_DELIVERY_NOT_FOUND",
                    f"Webhook delivery with id: {delivery_id} not found",
                )
            await store.requeue(uow.conn, [delivery_id], float(uow.now))
            await uow.log(
                "retryWebhookDelivery",
                {"deliveryId": delivery_id, "endpointId": row["endpoint_id"]},
                subscription_id=row["subscription_id"],
            )
            uow.touch_outbox()
            page = await store.deliveries_page(
                uow.conn,
                ctx.publisher_id,
                endpoint_id=row["endpoint_id"],
                status=None,
                subscription_id=None,
                after_seq=row["seq"] - 1,
                limit=1,
            )
            attempt_rows = await store.attempts_of(uow.conn, [delivery_id])
            return to_delivery(page[0], attempt_rows.get(delivery_id, []))

    # ---- sync status -----------------------------------------------------------------------------

    async def sync_status(self, ctx: RequestContext, subscription_id: int) -> SyncStatus:
        async with self.db.read() as conn:
            sub = await subscriptions_repo.get(conn, ctx.publisher_id, subscription_id)
            if sub is None:
                raise subscription_not_found(subscription_id)
            endpoint_rows = await store.endpoints_of(conn, ctx.publisher_id)
            state = await store.sync_rows(conn, ctx.publisher_id, subscription_id)
        result = []
        for endpoint in endpoint_rows:
            concerned = endpoint["id"] in state or (
                any(t in topics.SUBSCRIPTION_TOPICS for t in endpoint["topics"])
                and endpoint["payment_method_id"] in (None, sub["payment_method_id"])
            )
            if concerned:
                result.append(_endpoint_sync(endpoint, state.get(endpoint["id"]), sub["version"]))
        return SyncStatus(subscription_id=sub["id"], version=sub["version"], endpoints=result)

    # ---- helpers -----------------------------------------------------------------------------

    async def _endpoint(self, conn: Any, publisher_id: int, endpoint_id: str) -> Row:
        row = await store.endpoint(conn, publisher_id, endpoint_id)
        if row is None:
            raise endpoint_not_found(endpoint_id)
        return row

    def _new_endpoint(self, uow: UnitOfWork, **values: Any) -> dict[str, Any]:
        return {
            **values,
            "id": str(uuid.uuid4()),
            "publisher_id": uow.context.publisher_id,
            "disabled_reason": None,
            "secret": signing.new_secret(),
            "previous_secret": None,
            "previous_secret_until": None,
            "shared_secret": None,
            "failing_since": None,
            "created_at": uow.now,
            "updated_at": uow.now,
        }


def _endpoint_payload(row: Row) -> dict[str, Any]:
    """What the operations log keeps of an endpoint: never a secret."""
    return {
        "endpointId": row["id"],
        "url": row["url"],
        "topics": row["topics"],
        "enabled": row["enabled"],
    }


def _as_subscription(row: Row) -> WebhookSubscriptionResource:
    return WebhookSubscriptionResource(
        topic=row["topics"][0],
        url=row["url"],
        filters=FiltersResource(payment_method_id=row["payment_method_id"]),
        # the shared secret is never echoed
        verification=VerificationResource(name="HMAC") if row["shared_secret"] else None,
    )


def _endpoint_sync(endpoint: Row, state: dict[str, Any] | None, version: int) -> EndpointSyncStatus:
    delivered = state["delivered_version"] if state else None
    status: Literal["in_sync", "pending", "out_of_sync", "unreachable"]
    if not endpoint["enabled"]:
        status = "unreachable"
    elif delivered is not None and delivered >= version:
        status = "in_sync"
    elif state and state["undelivered"] and state["failed_attempts"] == 0:
        status = "pending"
    else:  # failed attempts, or the current version was never sent to it
        status = "out_of_sync"
    last_at = state["last_attempt_at"] if state else None
    return EndpointSyncStatus(
        endpoint_id=endpoint["id"],
        url=endpoint["url"],
        status=status,
        delivered_version=delivered,
        last_attempt_at=int(last_at) if last_at is not None else None,
        last_error=state["last_error"] if state else None,
    )


def _snapshot(row: Row, email: str, now: int) -> SubscriptionEventData:
    return SubscriptionEventData(
        subscription_id=row["id"],
        customer_id=row["customer_id"],
        customer_email=email,
        offer_id=row["offer_id"],
        status=row["status"],
        expires_at=iso(row["date_to"]),
        in_trial=row["in_trial"],
        external_id=row["external_id"],
        payment_method_id=row["payment_method_id"],
        version=row["version"],
        occurred_at=iso(now),
    )
