"""Webhook retries, giving up, disabling, ordering and isolation, driven by the test clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.receiver import DROP, Answer, Received, receiving
from tests.webhook_driver import DAY, Hooks
from webhooks.dispatcher import TRIP_AFTER
from webhooks.retry import JITTER, SCHEDULE

pytestmark = pytest.mark.still_clock


def answering(status: int) -> Answer:
    return lambda _request: (status, {})


def subscription_of(request: Received) -> int:
    return int(request.json["data"]["subscriptionId"])  # type: ignore[index]


def topic_of(request: Received) -> str:
    return str(request.json["topic"])


async def test_a_failing_delivery_follows_the_schedule_then_gives_up(hooks: Hooks) -> None:
    async with receiving(answering(500)) as receiver:
        await hooks.endpoint(receiver.url())
        await hooks.subscription()
        assert await hooks.deliver() == 1
        for attempt, delay in enumerate(SCHEDULE, start=1):
            delivery = await hooks.only_delivery()
            assert (delivery["status"], delivery["attemptCount"]) == ("pending", attempt)
            assert len(delivery["attempts"]) == attempt
            last = delivery["attempts"][-1]
            assert (last["statusCode"], last["error"], last["responseExcerpt"]) == (
                500,
                "HTTP 500",
                "ok",
            )
            assert last["latencyMs"] >= 0
            assert last["attemptedAt"] == await hooks.now()
            waited = delivery["nextAttemptAt"] - last["attemptedAt"]
            assert delay * (1 - JITTER) - 1 <= waited <= delay * (1 + JITTER), (attempt, waited)

            await hooks.move_to(delivery["nextAttemptAt"] - 1)
            assert await hooks.deliver() == 0, f"attempt {attempt + 1} came early"
            await hooks.move_to(delivery["nextAttemptAt"] + 1)
            assert await hooks.deliver() == 1, f"attempt {attempt + 1} did not come"

        delivery = await hooks.only_delivery()
        assert delivery["status"] == "failed"
        assert (delivery["attemptCount"], len(delivery["attempts"])) == (8, 8)
        assert (delivery["nextAttemptAt"], delivery["deliveredAt"]) == (None, None)
        await hooks.advance(10 * DAY)
        assert await hooks.deliver() == 0
        # every attempt carried the same webhook-id: the event's
        assert len(receiver.received) == 8
        assert {r.headers["webhook-id"] for r in receiver.received} == {delivery["eventId"]}


async def test_jitter_spreads_the_retries(hooks: Hooks) -> None:
    async with receiving(answering(500)) as receiver:
        await hooks.endpoint(receiver.url())
        for _ in range(8):
            await hooks.subscription()
        assert await hooks.deliver() == 8
        now = await hooks.now()
        waits = {d["nextAttemptAt"] - now for d in await hooks.deliveries()}
        assert len(waits) > 1, "every retry was scheduled at the same moment"
        assert all(SCHEDULE[0] * (1 - JITTER) - 1 <= w <= SCHEDULE[0] * (1 + JITTER) for w in waits)


async def configure_endpoint(hooks: Hooks, url: str, max_attempts: int) -> None:
    await hooks.endpoint(url, maxAttempts=max_attempts)


async def configure_topic(hooks: Hooks, url: str, max_attempts: int) -> None:
    body = [{"url": url, "retryPolicy": {"maxAttempts": max_attempts}}]
    path = "/3.1/webhook_subscriptions/subscriptionCreated"
    await hooks.api.call("PUT", path, body, expect=200)


@pytest.mark.parametrize(
    ("configure", "max_attempts"),
    [
        (configure_endpoint, 1),
        (configure_endpoint, 3),
        (configure_topic, 2),
        (configure_topic, 5),
    ],
)
async def test_max_attempts_cuts_the_schedule_short(
    hooks: Hooks, configure: Any, max_attempts: int
) -> None:
    async with receiving(answering(503)) as receiver:
        await configure(hooks, receiver.url(), max_attempts)
        await hooks.subscription()
        await hooks.deliver()
        while (delivery := await hooks.only_delivery())["status"] == "pending":
            await hooks.move_to(delivery["nextAttemptAt"] + 1)
            assert await hooks.deliver() == 1
        assert delivery["status"] == "failed"
        assert delivery["attemptCount"] == max_attempts
        assert len(receiver.received) == max_attempts
        await hooks.advance(10 * DAY)
        assert await hooks.deliver() == 0


@pytest.mark.parametrize(
    ("retry_after", "lowest", "highest"),
    [
        ("120", 120, 120),
        ("86400", 36000, 36000),  # believed up to 10 h, the schedule's longest wait
        ("Wed, 21 Oct 2015 07:28:00 GMT", 4, 6),  # the date form is not used: the schedule
        ("soon", 4, 6),
    ],
)
async def test_retry_after_replaces_the_scheduled_delay(
    hooks: Hooks, retry_after: str, lowest: int, highest: int
) -> None:
    answers = iter([(429, {"retry-after": retry_after})])
    async with receiving(lambda _request: next(answers, (200, {}))) as receiver:
        await hooks.endpoint(receiver.url())
        await hooks.subscription()
        assert await hooks.deliver() == 1
        delivery = await hooks.only_delivery()
        waited = delivery["nextAttemptAt"] - delivery["attempts"][0]["attemptedAt"]
        assert lowest <= waited <= highest
        await hooks.move_to(delivery["nextAttemptAt"] - 1)
        assert await hooks.deliver() == 0
        await hooks.move_to(delivery["nextAttemptAt"] + 1)
        assert await hooks.deliver() == 1
        assert (await hooks.only_delivery())["status"] == "delivered"
        assert len(receiver.received) == 2


@pytest.mark.parametrize(
    ("status", "status_code", "error"),
    [
        (500, 500, "HTTP 500"),
        (404, 404, "HTTP 404"),
        (301, 301, "HTTP 301"),  # a redirect is a failure, never followed
        (302, 302, "HTTP 302"),
        (307, 307, "HTTP 307"),
        (DROP, None, "ServerDisconnectedError"),
    ],
)
async def test_what_counts_as_a_failure(
    hooks: Hooks, status: int, status_code: int | None, error: str
) -> None:
    def answer(_request: Received) -> tuple[int, dict[str, str]]:
        return status, {"location": receiver.url("/elsewhere")}

    async with receiving(answer) as receiver:
        await hooks.endpoint(receiver.url())
        await hooks.subscription()
        assert await hooks.deliver() == 1
        delivery = await hooks.only_delivery()
        assert (delivery["status"], delivery["attemptCount"]) == ("pending", 1)
        (attempt,) = delivery["attempts"]
        assert attempt["statusCode"] == status_code
        assert error in attempt["error"]
        assert [r.path for r in receiver.received] == ["/hooks"]
        endpoint = (await hooks.api.call("GET", "/3.1/webhook_endpoints", expect=200)).json()
        assert endpoint["data"][0]["enabled"] is True


async def test_a_receiver_that_does_not_answer_in_time_is_a_failure(hooks: Hooks) -> None:
    release = asyncio.Event()
    async with receiving() as receiver:
        receiver.hold = release
        await hooks.endpoint(receiver.url())
        await hooks.subscription()
        hooks.dispatcher = hooks.new_dispatcher(timeout_seconds=0.2)
        assert await hooks.deliver() == 1
        delivery = await hooks.only_delivery()
        assert delivery["status"] == "pending"
        (attempt,) = delivery["attempts"]
        assert (attempt["statusCode"], attempt["error"]) == (None, "timed out after 0.2 s")

        release.set()
        await hooks.move_to(delivery["nextAttemptAt"] + 1)
        assert await hooks.deliver() == 1
        assert (await hooks.only_delivery())["status"] == "delivered"


async def test_a_2xx_other_than_200_is_a_success(hooks: Hooks) -> None:
    async with receiving(answering(204)) as receiver:
        await hooks.endpoint(receiver.url())
        await hooks.subscription()
        await hooks.deliver()
        delivery = await hooks.only_delivery()
        assert delivery["status"] == "delivered"
        assert delivery["deliveredAt"] == await hooks.now()
        assert delivery["nextAttemptAt"] is None


async def test_410_disables_the_endpoint_until_it_is_enabled_again(hooks: Hooks) -> None:
    gone = True
    async with receiving(lambda _request: (410 if gone else 200, {})) as receiver:
        endpoint = await hooks.endpoint(receiver.url())
        await hooks.subscription()
        assert await hooks.deliver() == 1
        disabled = await hooks.get_endpoint(endpoint["id"])
        assert disabled["enabled"] is False
        assert "410" in disabled["disabledReason"]

        # nothing more is sent: neither the retry nor a new event
        await hooks.subscription()
        await hooks.advance(DAY)
        assert await hooks.deliver() == 0
        assert len(receiver.received) == 1

        gone = False
        enabled = await hooks.set_enabled(endpoint["id"], True)
        assert (enabled["enabled"], enabled["disabledReason"]) == (True, None)
        assert await hooks.deliver() == 1  # the delivery it had, the same webhook-id
        assert (
            receiver.received[1].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
        )
        later = await hooks.subscription()
        assert await hooks.deliver() == 1
        assert subscription_of(receiver.received[2]) == later
        assert len(receiver.received) == 3


@pytest.mark.parametrize(
    ("answers", "disabled_on_day"),
    [
        ([500] * 6, 5),
        ([503, 500, 502, 500, 500, 500], 5),
        # a success on day 2 resets the streak: it starts again on day 3
        ([500, 500, 200, 500, 500, 500, 500, 500, 500], 8),
        ([200, 500, 500, 500, 500, 500, 500, 500], 6),
    ],
)
async def test_failing_for_five_days_disables_the_endpoint(
    hooks: Hooks, answers: list[int], disabled_on_day: int
) -> None:
    today = {"status": 500}
    async with receiving(lambda _request: (today["status"], {})) as receiver:
        endpoint = await hooks.endpoint(receiver.url())
        for day, status in enumerate(answers):
            today["status"] = status
            await hooks.subscription()  # a new event every day, and the retries that are due
            assert await hooks.deliver() >= 1
            current = await hooks.get_endpoint(endpoint["id"])
            assert current["enabled"] is (day < disabled_on_day), day
            if not current["enabled"]:
                assert "5 days" in current["disabledReason"]
                break
            await hooks.advance(DAY)
        else:
            pytest.fail("the endpoint was never disabled")
        arrived = len(receiver.received)
        await hooks.subscription()
        await hooks.advance(DAY)
        assert await hooks.deliver() == 0
        assert len(receiver.received) == arrived


async def test_a_later_event_waits_for_an_earlier_failing_one(hooks: Hooks) -> None:
    down: set[int] = set()

    def answer(request: Received) -> tuple[int, dict[str, str]]:
        return (500 if subscription_of(request) in down else 200), {}

    async with receiving(answer) as receiver:
        await hooks.endpoint(receiver.url())
        first = await hooks.subscription()
        down.add(first)
        assert await hooks.deliver() == 1  # subscriptionCreated fails
        await hooks.cancel(first)  # subscriptionCancelled must wait behind it
        other = await hooks.subscription()

        assert await hooks.deliver() == 1  # only the other subscription's event goes out
        assert [subscription_of(r) for r in receiver.received] == [first, other]

        created, _cancelled = await hooks.deliveries(subscriptionId=first)
        for _ in range(3):  # retries of the earlier event; the later one keeps waiting
            await hooks.move_to(created["nextAttemptAt"] + 1)
            assert await hooks.deliver() == 1
            created, cancelled = await hooks.deliveries(subscriptionId=first)
            assert (created["topic"], created["status"]) == ("subscriptionCreated", "pending")
            assert (cancelled["topic"], cancelled["status"]) == ("subscriptionCancelled", "pending")
            assert cancelled["attemptCount"] == 0

        down.clear()
        await hooks.move_to(created["nextAttemptAt"] + 1)
        assert await hooks.deliver() == 2
        tail = [topic_of(r) for r in receiver.received if subscription_of(r) == first][-2:]
        assert tail == ["subscriptionCreated", "subscriptionCancelled"]
        statuses = [d["status"] for d in await hooks.deliveries(subscriptionId=first)]
        assert statuses == ["delivered", "delivered"]


async def test_a_delivery_that_gave_up_no_longer_holds_later_ones(hooks: Hooks) -> None:
    failing = True
    async with receiving(lambda _request: (500 if failing else 200, {})) as receiver:
        await hooks.endpoint(receiver.url(), maxAttempts=1)
        sid = await hooks.subscription()
        assert await hooks.deliver() == 1
        failing = False
        await hooks.cancel(sid)
        assert await hooks.deliver() == 1
        assert [topic_of(r) for r in receiver.received] == [
            "subscriptionCreated",
            "subscriptionCancelled",
        ]
        statuses = [d["status"] for d in await hooks.deliveries(subscriptionId=sid)]
        assert statuses == ["failed", "delivered"]


@pytest.mark.parametrize(("per_endpoint", "max_in_flight"), [(2, 256), (3, 4)])
async def test_a_hanging_endpoint_does_not_hold_up_a_healthy_one(
    hooks: Hooks, per_endpoint: int, max_in_flight: int
) -> None:
    release = asyncio.Event()
    async with receiving() as slow, receiving() as healthy:
        slow.hold = release
        await hooks.endpoint(slow.url())
        await hooks.endpoint(healthy.url())
        options = {"per_endpoint": per_endpoint, "max_in_flight": max_in_flight}
        async with hooks.running(timeout_seconds=60, **options):
            try:
                first = [await hooks.subscription() for _ in range(5)]
                await healthy.wait_for(5, within=5)
                await slow.wait_for(per_endpoint, within=5)
                # the slow endpoint has its own slots full, and no more
                assert len(slow.received) == per_endpoint

                # changes made while those requests hang still reach the healthy endpoint
                later = [await hooks.subscription() for _ in range(3)]
                await healthy.wait_for(8, within=5)
                assert [subscription_of(r) for r in healthy.received] == first + later
                assert len(slow.received) == per_endpoint
                assert not release.is_set()
            finally:
                release.set()
            await slow.wait_for(8, within=10)
        assert sorted(subscription_of(r) for r in slow.received) == sorted(first + later)
        statuses = {d["status"] for d in await hooks.deliveries()}
        assert statuses == {"delivered"}


async def test_an_endpoint_that_keeps_failing_is_probed_one_delivery_at_a_time(
    hooks: Hooks,
) -> None:
    healthy = False

    def answer(_request: Received) -> tuple[int, dict[str, str]]:
        return (200 if healthy else 500), {}

    async with receiving(answer) as receiver:
        await hooks.endpoint(receiver.url())
        first = [await hooks.subscription() for _ in range(TRIP_AFTER)]
        assert await hooks.deliver() == TRIP_AFTER  # every one fails: the endpoint is probed

        later = [await hooks.subscription() for _ in range(3)]
        assert await hooks.deliver() == 0, "new events wait while the endpoint rests"

        # the retry time of the failed deliveries (5 s, +20 % at most) ends the rest
        await hooks.advance(SCHEDULE[0] * 2)
        assert await hooks.deliver() == 1, "one probe, not every due delivery"
        assert await hooks.deliver() == 0

        healthy = True
        await hooks.advance(SCHEDULE[1] * 2)
        # the probe succeeds and every other pending delivery follows in the same run
        assert await hooks.deliver() == TRIP_AFTER + 3
        pending = await hooks.deliveries(status="pending")
        assert pending == []
        delivered = {subscription_of(r) for r in receiver.received}
        assert delivered == set(first + later)


async def test_a_flaky_endpoint_is_not_probed(hooks: Hooks) -> None:
    answers = iter([500, 200] * 20)
    async with receiving(lambda _request: (next(answers), {})) as receiver:
        await hooks.endpoint(receiver.url())
        for _ in range(2 * TRIP_AFTER):
            await hooks.subscription()
        # failures never come TRIP_AFTER in a row: every due delivery is tried at once
        assert await hooks.deliver() == 2 * TRIP_AFTER
        assert len(receiver.received) == 2 * TRIP_AFTER
