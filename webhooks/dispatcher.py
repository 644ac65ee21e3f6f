"""Claims due deliveries, POSTs them signed, records each attempt and reschedules failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy import RowMapping, and_, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from webhooks import retry, signing
from webhooks.tables import attempts, deliveries, endpoints, events

log = logging.getLogger("webhooks.dispatcher")

EXCERPT_BYTES = 1024


class TransactionSource(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    event_id: str
    endpoint_id: str
    url: str
    body: bytes
    keys: tuple[bytes, ...]
    attempts: int
    max_attempts: int | None


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    attempted_at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None
    retry_after: float | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signing_keys(endpoint: RowMapping, now: float) -> tuple[bytes, ...]:
    """The keys to sign with: the shared secret, or the secret and, 24 h after a rotation,
    the previous one too."""
    if endpoint["shared_secret"]:
        return (signing.key_of(endpoint["shared_secret"]),)
    keys = [signing.key_of(endpoint["secret"])]
    until = endpoint["previous_secret_until"]
    if endpoint["previous_secret"] and until is not None and until > now:
        keys.append(signing.key_of(endpoint["previous_secret"]))
    return tuple(keys)


class Dispatcher:
    """Delivers the outbox; one endpoint's slowness only ever uses that endpoint's slots."""

    def __init__(
        self,
        db: TransactionSource,
        now: Callable[[], float],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        per_endpoint: int = 16,
        max_in_flight: int = 256,
        lease_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        poll_seconds: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.now = now
        self.transport = transport
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.lease_seconds = lease_seconds
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.rng = rng or random.Random()
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._in_flight: dict[str, int] = {}
        # deliveries being attempted by this process: never claimed twice, even when the
        # clock jumps past their lease
        self._attempting: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._wake = asyncio.Event()
        self._stopping = False

    # ---- driving ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due deliveries now (called after a commit that enqueued events)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped; the service runs this as a background task."""
        while not self._stopping:
            try:
                # record what finished first: a delivery's outcome is in the database before
                # it can be claimed again
                await self._flush()
                claimed = await self._claim()
                for item in claimed:
                    self._start(item)
                if not claimed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception:  # storage trouble: log, back off, keep going
                log.exception("dispatcher round failed")
                await asyncio.sleep(self.poll_seconds)

    async def run_once(self) -> int:
        """Deliver everything due now and record it; returns the attempts made (for tests)."""
        total = 0
        while True:
            await self._flush()
            claimed = await self._claim()
            if not claimed and not self._tasks:
                break
            for item in claimed:
                self._start(item)
            total += len(claimed)
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            await self._flush()
        return total

    async def stop(self) -> None:
        """Stop claiming, let in-flight attempts finish and record them, close clients."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout_seconds + 1)
        await self._flush()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def _start(self, item: Claimed) -> None:
        self._attempting.add(item.delivery_id)
        self._in_flight[item.endpoint_id] = self._in_flight.get(item.endpoint_id, 0) + 1
        task = asyncio.create_task(self._attempt(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- claiming ----------------------------------------------------------------------------

    async def _claim(self) -> list[Claimed]:
        free_total = self.max_in_flight - len(self._tasks)
        if free_total <= 0 or self._stopping:
            return []
        now = self.now()
        earlier = deliveries.alias("earlier")
        due = and_(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= now,
            (deliveries.c.lease_until.is_(None)) | (deliveries.c.lease_until <= now),
            endpoints.c.enabled.is_(True),
            deliveries.c.id.not_in(self._attempting),
            # one subscription's events reach one endpoint in commit order
            ~exists().where(
                earlier.c.endpoint_id == deliveries.c.endpoint_id,
                earlier.c.ordering_key == deliveries.c.ordering_key,
                earlier.c.status == "pending",
                earlier.c.event_seq < deliveries.c.event_seq,
            ),
        )
        joined = deliveries.join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
        async with self.db.transaction() as conn:
            endpoint_ids = (
                (
                    await conn.execute(
                        select(deliveries.c.endpoint_id).select_from(joined).where(due).distinct()
                    )
                )
                .scalars()
                .all()
            )
            rows: list[RowMapping] = []
            for endpoint_id in endpoint_ids:
                free = min(self.per_endpoint - self._in_flight.get(endpoint_id, 0), free_total)
                if free <= 0:
                    continue
                picked = (
                    (
                        await conn.execute(
                            select(deliveries)
                            .select_from(joined)
                            .where(due, deliveries.c.endpoint_id == endpoint_id)
                            .order_by(deliveries.c.event_seq)
                            .limit(free)
                        )
                    )
                    .mappings()
                    .all()
                )
                rows.extend(picked)
                free_total -= len(picked)
            if not rows:
                return []
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_([r["id"] for r in rows]))
                .values(lease_until=now + self.lease_seconds)
            )
            bodies = {
                seq: (event_id, body)
                for seq, event_id, body in (
                    await conn.execute(
                        select(events.c.seq, events.c.id, events.c.body).where(
                            events.c.seq.in_([r["event_seq"] for r in rows])
                        )
                    )
                ).all()
            }
            targets = {
                e["id"]: e
                for e in (
                    await conn.execute(
                        select(endpoints).where(
                            endpoints.c.id.in_({r["endpoint_id"] for r in rows})
                        )
                    )
                ).mappings()
            }
        claimed = []
        for row in rows:
            endpoint = targets[row["endpoint_id"]]
            event_id, body = bodies[row["event_seq"]]
            claimed.append(
                Claimed(
                    delivery_id=row["id"],
                    event_id=event_id,
                    endpoint_id=endpoint["id"],
                    url=endpoint["url"],
                    body=body,
                    keys=signing_keys(endpoint, now),
                    attempts=row["attempts"],
                    max_attempts=endpoint["max_attempts"],
                )
            )
        return claimed

    # ---- attempting ----------------------------------------------------------------------------

    def _client(self, endpoint_id: str) -> httpx.AsyncClient:
        # One pool per endpoint: a slow endpoint cannot take another's connections.
        client = self._clients.get(endpoint_id)
        if client is None:
            client = httpx.AsyncClient(
                transport=self.transport,
                timeout=self.timeout_seconds,
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=self.per_endpoint, max_keepalive_connections=self.per_endpoint
                ),
            )
            self._clients[endpoint_id] = client
        return client

    async def _attempt(self, item: Claimed) -> None:
        attempted_at = self.now()
        headers = signing.headers(list(item.keys), item.event_id, int(attempted_at), item.body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = "ems-connector-webhooks/1"
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        excerpt: str | None = None
        retry_after: float | None = None
        try:
            async with self._client(item.endpoint_id).stream(
                "POST", item.url, content=item.body, headers=headers
            ) as response:
                status_code = response.status_code
                retry_after = retry.parse_retry_after(response.headers.get("retry-after"))
                excerpt = await _read_excerpt(response)
        except httpx.TimeoutException:
            error = f"timed out after {self.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:512]
        finally:
            count = self._in_flight.get(item.endpoint_id, 1) - 1
            if count:
                self._in_flight[item.endpoint_id] = count
            else:
                self._in_flight.pop(item.endpoint_id, None)
        if status_code is not None and not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        self._outcomes.append(
            Outcome(
                claimed=item,
                attempted_at=attempted_at,
                status_code=status_code,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error,
                excerpt=excerpt,
                retry_after=retry_after,
            )
        )
        self._wake.set()

    # ---- recording ---------------------------------------------------------------------------

    async def _flush(self) -> None:
        """Record every finished attempt in one transaction."""
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        try:
            async with self.db.transaction() as conn:
                for outcome in batch:
                    await self._record(conn, outcome)
        except BaseException:
            # Not recorded: the leases expire and the deliveries are tried again (at least once).
            log.exception("could not record %d delivery attempts", len(batch))
            raise
        finally:
            self._attempting.difference_update(o.claimed.delivery_id for o in batch)

    async def _record(self, conn: AsyncConnection, outcome: Outcome) -> None:
        item = outcome.claimed
        now = outcome.attempted_at
        await conn.execute(
            insert(attempts).values(
                delivery_id=item.delivery_id,
                attempted_at=now,
                status_code=outcome.status_code,
                latency_ms=round(outcome.latency_ms, 3),
                error=outcome.error,
                response_excerpt=outcome.excerpt,
            )
        )
        values: dict[str, object] = {
            "attempts": item.attempts + 1,
            "lease_until": None,
            "last_attempt_at": now,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
        }
        if outcome.delivered:
            values.update(status="delivered", delivered_at=now)
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == item.endpoint_id, endpoints.c.failing_since.is_not(None))
                .values(failing_since=None)
            )
        else:
            delay = retry.next_delay(
                item.attempts + 1,
                retry_after=outcome.retry_after,
                max_attempts=item.max_attempts,
                rng=self.rng,
            )
            if delay is None:
                values["status"] = "failed"
            else:
                values["next_attempt_at"] = now + delay
            await self._note_failure(conn, item.endpoint_id, outcome)
        await conn.execute(
            update(deliveries).where(deliveries.c.id == item.delivery_id).values(**values)
        )

    async def _note_failure(
        self, conn: AsyncConnection, endpoint_id: str, outcome: Outcome
    ) -> None:
        endpoint = (
            (await conn.execute(select(endpoints).where(endpoints.c.id == endpoint_id)))
            .mappings()
            .first()
        )
        if endpoint is None:
            return
        now = outcome.attempted_at
        failing_since = endpoint["failing_since"] if endpoint["failing_since"] is not None else now
        changes: dict[str, object] = {"failing_since": failing_since}
        if outcome.status_code == 410:
            changes.update(enabled=False, disabled_reason="the endpoint answered 410 Gone")
        elif now - failing_since >= retry.DISABLE_AFTER_SECONDS:
            changes.update(enabled=False, disabled_reason="every attempt failed for 5 days")
        await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**changes))


async def _read_excerpt(response: httpx.Response) -> str:
    """At most EXCERPT_BYTES of the response body, for the delivery log."""
    collected = b""
    async for chunk in response.aiter_bytes():
        collected += chunk
        if len(collected) >= EXCERPT_BYTES:
            break
    return collected[:EXCERPT_BYTES].decode("utf-8", errors="replace")
