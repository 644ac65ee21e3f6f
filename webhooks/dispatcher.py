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
from typing import Any, Protocol

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from sqlalchemy import and_, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from webhooks import retry, signing
from webhooks.tables import attempts, deliveries, endpoints, events

log = logging.getLogger("webhooks.dispatcher")

EXCERPT_BYTES = 1024
TRIP_AFTER = 10  # failed attempts in a row that make an endpoint "probed" (see Dispatcher)


def _due(now: Any) -> Any:
    earlier = deliveries.alias("earlier")
    return and_(
        deliveries.c.status == "pending",
        deliveries.c.next_attempt_at <= now,
        (deliveries.c.lease_until.is_(None)) | (deliveries.c.lease_until <= now),
        # one subscription's events reach one endpoint in commit order
        ~exists().where(
            earlier.c.endpoint_id == deliveries.c.endpoint_id,
            earlier.c.ordering_key == deliveries.c.ordering_key,
            earlier.c.status == "pending",
            earlier.c.event_seq < deliveries.c.event_seq,
        ),
    )


# enabled endpoints with anything pending: one index probe each
_ENDPOINTS_WITH_PENDING = prepared_sql.Prepared(
    select(endpoints).where(
        endpoints.c.enabled.is_(True),
        exists().where(
            deliveries.c.endpoint_id == endpoints.c.id, deliveries.c.status == "pending"
        ),
    )
)
# One endpoint's due deliveries, longest due first, up to a limit. The pick index walks only
# the due rows and stops at the limit: no sort, and the retries a dead endpoint has scheduled
# for later are never read. Ties go by delivery seq, i.e. by commit. On PostgreSQL, where
# several dispatchers may claim at once, each skips the rows another is claiming (they are
# leased when it commits); SQLite has one writer at a time and no such clause.
_PICK = prepared_sql.Prepared(
    select(
        deliveries.c.id,
        deliveries.c.attempts,
        events.c.id.label("event_id"),
        events.c.body,
    )
    .select_from(deliveries.join(events, events.c.seq == deliveries.c.event_seq))
    .where(
        deliveries.c.endpoint_id == bindparam("endpoint_id"),
        _due(bindparam("now")),
    )
    .order_by(deliveries.c.next_attempt_at, deliveries.c.seq)
    .limit(bindparam("limit"))
    .with_for_update(of=deliveries, skip_locked=True)
)
_LEASE = prepared_sql.Prepared(
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(lease_until=bindparam("b_lease_until"))
)
_INSERT_ATTEMPT = prepared_sql.Prepared(
    insert(attempts).values(
        prepared_sql.inputs(
            [
                "delivery_id",
                "attempted_at",
                "status_code",
                "latency_ms",
                "error",
                "response_excerpt",
            ]
        )
    )
)
_DELIVERED = prepared_sql.Prepared(
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        status="delivered",
        delivered_at=bindparam("b_at"),
        attempts=bindparam("b_attempts"),
        lease_until=None,
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_status_code"),
        last_error=None,
    )
)
_FAILED = prepared_sql.Prepared(
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        lease_until=None,
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        # a delivery that failed for good keeps the next_attempt_at it had
        next_attempt_at=func.coalesce(bindparam("b_next_attempt_at"), deliveries.c.next_attempt_at),
    )
)
_RECOVERED = prepared_sql.Prepared(
    update(endpoints)
    .where(endpoints.c.id == bindparam("b_id"), endpoints.c.failing_since.is_not(None))
    .values(failing_since=None)
)
_ENDPOINT = prepared_sql.Prepared(select(endpoints).where(endpoints.c.id == bindparam("id")))


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


def signing_keys(endpoint: prepared_sql.Row, now: float) -> tuple[bytes, ...]:
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
        # Endpoints whose last TRIP_AFTER attempts all failed are probed: one delivery at a
        # time, at that delivery's retry time; the rest wait until a probe succeeds. A dead
        # receiver then costs one attempt per retry interval instead of one per event, and
        # takes no CPU from the healthy endpoints.
        self._failures_in_a_row: dict[str, int] = {}
        self._probe_at: dict[str, float] = {}
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
        claimed: list[Claimed] = []
        async with self.db.transaction() as conn:
            due_endpoints = await prepared_sql.rows(conn, _ENDPOINTS_WITH_PENDING)
            for endpoint in due_endpoints:
                endpoint_id = endpoint["id"]
                in_flight = self._in_flight.get(endpoint_id, 0)
                probe_at = self._probe_at.get(endpoint_id)
                if probe_at is None:
                    free = min(self.per_endpoint - in_flight, free_total)
                elif in_flight or probe_at > now:
                    continue
                else:
                    free = 1  # a probe: the longest-due delivery, alone
                if free <= 0:
                    continue
                picked = [
                    row
                    for row in await prepared_sql.rows(
                        conn,
                        _PICK,
                        {
                            "now": now,
                            "endpoint_id": endpoint_id,
                            "limit": free + len(self._attempting),
                        },
                    )
                    if row["id"] not in self._attempting
                ][:free]
                if not picked:
                    continue
                free_total -= len(picked)
                keys = signing_keys(endpoint, now)
                claimed.extend(
                    Claimed(
                        delivery_id=row["id"],
                        event_id=row["event_id"],
                        endpoint_id=endpoint_id,
                        url=endpoint["url"],
                        body=row["body"],
                        keys=keys,
                        attempts=row["attempts"],
                        max_attempts=endpoint["max_attempts"],
                    )
                    for row in picked
                )
            await prepared_sql.execute_many(
                conn,
                _LEASE,
                [
                    {"b_id": c.delivery_id, "b_lease_until": now + self.lease_seconds}
                    for c in claimed
                ],
            )
        return claimed

    # ---- attempting ----------------------------------------------------------------------------

    def _client(self, endpoint_id: str) -> httpx.AsyncClient:
        # One pool per endpoint: a slow endpoint cannot take another's connections.
        client = self._clients.get(endpoint_id)
        if client is None:
            limits = httpx.Limits(
                max_connections=self.per_endpoint, max_keepalive_connections=self.per_endpoint
            )
            client = httpx.AsyncClient(
                # aiohttp under the httpx API: httpx's own pool costs about 3x the CPU per
                # request (bench/README.md)
                transport=self.transport or AiohttpTransport(limits=limits),
                timeout=self.timeout_seconds,
                follow_redirects=False,
                limits=limits,
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
            # the whole exchange, not just each read: a receiver that drips bytes times out too
            async with (
                asyncio.timeout(self.timeout_seconds),
                self._client(item.endpoint_id).stream(
                    "POST", item.url, content=item.body, headers=headers
                ) as response,
            ):
                status_code = response.status_code
                retry_after = retry.parse_retry_after(response.headers.get("retry-after"))
                excerpt = await _read_excerpt(response)
        except (httpx.HTTPError, TimeoutError) as exc:
            if _timed_out(exc):
                status_code = None
                error = f"timed out after {self.timeout_seconds:g} s"
            else:
                cause = exc.__cause__ or exc  # the aiohttp error, where the transport mapped one
                error = f"{type(cause).__name__}: {cause}"[:512]
        except Exception as exc:  # what the transport left unmapped (a malformed answer)
            # still a recorded, retried failure: an outcome must never go missing
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
                await self._record(conn, batch)
        except BaseException:
            # Not recorded: the leases expire and the deliveries are tried again (at least once).
            log.exception("could not record %d delivery attempts", len(batch))
            raise
        finally:
            self._attempting.difference_update(o.claimed.delivery_id for o in batch)

    async def _record(self, conn: AsyncConnection, batch: list[Outcome]) -> None:
        await prepared_sql.execute_many(
            conn,
            _INSERT_ATTEMPT,
            [
                {
                    "delivery_id": o.claimed.delivery_id,
                    "attempted_at": o.attempted_at,
                    "status_code": o.status_code,
                    "latency_ms": round(o.latency_ms, 3),
                    "error": o.error,
                    "response_excerpt": o.excerpt,
                }
                for o in batch
            ],
        )
        delivered = [o for o in batch if o.delivered]
        await prepared_sql.execute_many(
            conn,
            _DELIVERED,
            [
                {
                    "b_id": o.claimed.delivery_id,
                    "b_attempts": o.claimed.attempts + 1,
                    "b_at": o.attempted_at,
                    "b_status_code": o.status_code,
                }
                for o in delivered
            ],
        )
        failed = []
        for o in batch:
            if o.delivered:
                continue
            delay = retry.next_delay(
                o.claimed.attempts + 1,
                retry_after=o.retry_after,
                max_attempts=o.claimed.max_attempts,
                rng=self.rng,
            )
            self._count_failure(o, delay)
            failed.append(
                {
                    "b_id": o.claimed.delivery_id,
                    "b_attempts": o.claimed.attempts + 1,
                    "b_at": o.attempted_at,
                    "b_status_code": o.status_code,
                    "b_error": o.error,
                    "b_status": "failed" if delay is None else "pending",
                    "b_next_attempt_at": None if delay is None else o.attempted_at + delay,
                }
            )
        await prepared_sql.execute_many(conn, _FAILED, failed)
        recovered = {o.claimed.endpoint_id for o in delivered}
        for endpoint_id in recovered:
            self._failures_in_a_row.pop(endpoint_id, None)
            self._probe_at.pop(endpoint_id, None)
        await prepared_sql.execute_many(conn, _RECOVERED, [{"b_id": e} for e in recovered])
        for outcome in batch:
            if outcome.delivered:
                continue
            if outcome.claimed.endpoint_id not in recovered or outcome.status_code == 410:
                await self._note_failure(conn, outcome.claimed.endpoint_id, outcome)

    def _count_failure(self, outcome: Outcome, delay: float | None) -> None:
        endpoint_id = outcome.claimed.endpoint_id
        count = self._failures_in_a_row.get(endpoint_id, 0) + 1
        self._failures_in_a_row[endpoint_id] = count
        if count >= TRIP_AFTER:
            self._probe_at[endpoint_id] = outcome.attempted_at + (
                delay if delay is not None else retry.SCHEDULE[0]
            )

    async def _note_failure(
        self, conn: AsyncConnection, endpoint_id: str, outcome: Outcome
    ) -> None:
        endpoint = await prepared_sql.first(conn, _ENDPOINT, {"id": endpoint_id})
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


def _timed_out(exc: BaseException) -> bool:
    """A timeout, as opposed to a refused or dropped connection (httpx-aiohttp maps every
    aiohttp connection error to httpx.ConnectTimeout, so the cause decides)."""
    if isinstance(exc, TimeoutError):
        return True
    cause = exc.__cause__
    if cause is None:
        return isinstance(exc, httpx.TimeoutException)
    return isinstance(cause, TimeoutError | aiohttp.ServerTimeoutError)


async def _read_excerpt(response: httpx.Response) -> str:
    """At most EXCERPT_BYTES of the response body, for the delivery log."""
    collected = b""
    async for chunk in response.aiter_bytes():
        collected += chunk
        if len(collected) >= EXCERPT_BYTES:
            break
    return collected[:EXCERPT_BYTES].decode("utf-8", errors="replace")
