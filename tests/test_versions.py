"""Versions, ETag and If-Match on subscriptions and offers (CONTRACT §1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MONTHLY, Api

# (method, path after /3.1/subscriptions/{id}, body) of every write on one subscription
SUBSCRIPTION_WRITES: list[tuple[str, str, Any]] = [
    ("PATCH", "", {"externalProperties": {"plan": "family"}}),
    ("POST", "/cancel", {"cancellationReason": "moved abroad"}),
    ("POST", "/activate", None),
    ("POST", "/renew", {}),
    ("POST", "/terminate", {"terminationType": "userCancel"}),
]
WRITE_IDS = ["patch", "cancel", "activate", "renew", "terminate"]


def resource_of(method: str, body: dict[str, Any]) -> dict[str, Any]:
    """The subscription in a write's answer: PATCH wraps it in Cleeng's envelope."""
    return body["subscription"] if method == "PATCH" else body  # type: ignore[no-any-return]


async def subscription_ready_for(api: Api, suffix: str, external_id: str) -> dict[str, Any]:
    """A subscription on which the write at `suffix` is legal: active for cancel, else stopped."""
    customer = await api.customer(f"{external_id}@example.com")
    sub = await api.subscription(customer, external_id)
    if suffix == "/cancel":
        return sub
    await api.call(
        "POST",
        f"/3.1/subscriptions/{sub['subscriptionId']}/cancel",
        {"cancellationReason": "setup"},
        expect=200,
    )
    return await api.get_subscription(sub["subscriptionId"])


async def test_every_answer_carries_the_version_as_etag(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    created = await api.call(
        "POST",
        "/3.1/subscriptions",
        {
            "customerId": jane,
            "offerId": MONTHLY,
            "paymentMethodId": api.tenant.apple_method_id,
            "externalId": "etag-1",
        },
        expect=201,
    )
    assert created.headers["ETag"] == '"1"' and created.json()["version"] == 1
    sid = created.json()["subscriptionId"]
    fetched = await api.call("GET", f"/3.1/subscriptions/{sid}", expect=200)
    assert fetched.headers["ETag"] == '"1"'

    version = 1
    for method, suffix, body in SUBSCRIPTION_WRITES:
        response = await api.call(method, f"/3.1/subscriptions/{sid}{suffix}", body, expect=200)
        version += 1
        assert resource_of(method, response.json())["version"] == version, suffix
        assert response.headers["ETag"] == f'"{version}"', suffix

    revived = await api.call(
        "POST",
        f"/3.1/subscriptions/{sid}/revive",
        {"expirationDate": fetched.json()["dateTo"] + 86400},
        expect=200,
    )
    assert revived.headers["ETag"] == f'"{version + 1}"' == f'"{revived.json()["version"]}"'

    copy_id = revived.json()["replacedBy"]["subscriptionId"]
    moved = await api.call(
        "POST", f"/3.1/subscriptions/{copy_id}/transfer", {"customerId": john}, expect=200
    )
    assert moved.json()["version"] == 2 and moved.headers["ETag"] == '"2"'


async def test_a_status_patch_that_changes_nothing_keeps_the_version(api: Api) -> None:
    customer = await api.customer()
    sid = (await api.subscription(customer))["subscriptionId"]
    response = await api.call(
        "PATCH", f"/3.1/subscriptions/{sid}", {"status": "active"}, expect=200
    )
    assert response.headers["ETag"] == '"1"'
    assert response.json()["subscription"]["version"] == 1


@pytest.mark.parametrize("tag", ['"{}"', 'W/"{}"', "*"], ids=["strong", "weak", "any"])
@pytest.mark.parametrize(("method", "suffix", "body"), SUBSCRIPTION_WRITES, ids=WRITE_IDS)
async def test_if_match_with_the_current_version_lets_the_write_through(
    api: Api, method: str, suffix: str, body: Any, tag: str
) -> None:
    sub = await subscription_ready_for(api, suffix, "current")
    current = sub["version"]
    path = f"/3.1/subscriptions/{sub['subscriptionId']}{suffix}"

    response = await api.call(
        method, path, body, headers={"If-Match": tag.format(current)}, expect=200
    )

    assert resource_of(method, response.json())["version"] == current + 1
    assert response.headers["ETag"] == f'"{current + 1}"'


@pytest.mark.parametrize(("method", "suffix", "body"), SUBSCRIPTION_WRITES, ids=WRITE_IDS)
async def test_a_stale_if_match_is_refused_and_changes_nothing(
    api: Api, method: str, suffix: str, body: Any
) -> None:
    sid = (await subscription_ready_for(api, suffix, "stale"))["subscriptionId"]
    # move it past version 1 without changing its status
    await api.call("PATCH", f"/3.1/subscriptions/{sid}", {"inTrial": True}, expect=200)
    before = await api.get_subscription(sid)
    operations_before = await api.operations(subscriptionId=sid)

    response = await api.call(
        method, f"/3.1/subscriptions/{sid}{suffix}", body, headers={"If-Match": '"1"'}, expect=412
    )

    error = response.json()
    assert error["code"] == "VERSION_MISMATCH"
    assert error["details"] == {"currentVersion": before["version"]}
    if method == "PATCH":
        assert error["subscription"] is None
    assert await api.get_subscription(sid) == before
    assert await api.operations(subscriptionId=sid) == operations_before


async def test_a_stale_if_match_on_transfer_creates_no_copy(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    sid = (await api.subscription(jane))["subscriptionId"]
    await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)

    response = await api.call(
        "POST",
        f"/3.1/subscriptions/{sid}/transfer",
        {"customerId": john},
        headers={"If-Match": '"1"'},
        expect=412,
    )

    assert response.json()["details"] == {"currentVersion": 2}
    listed = await api.call("GET", "/3.1/subscriptions", params={"customerId": john}, expect=200)
    assert listed.json()["data"] == []


@pytest.mark.parametrize("tag", ['"abc"', "W/", '"-1"'])
async def test_an_if_match_that_is_no_etag_is_a_400(api: Api, tag: str) -> None:
    customer = await api.customer()
    sid = (await api.subscription(customer))["subscriptionId"]
    response = await api.call(
        "POST", f"/3.1/subscriptions/{sid}/renew", {}, headers={"If-Match": tag}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_IF_MATCH"
    assert (await api.get_subscription(sid))["version"] == 1


async def test_offers_answer_an_etag_and_honour_if_match(api: Api) -> None:
    path = f"/3.1/offers/{MONTHLY}"
    fetched = await api.call("GET", path, expect=200)
    version = fetched.json()["version"]
    assert fetched.headers["ETag"] == f'"{version}"'

    renamed = await api.call(
        "PATCH", path, {"title": "Sport"}, headers={"If-Match": f'"{version}"'}, expect=200
    )
    assert renamed.json()["version"] == version + 1
    assert renamed.headers["ETag"] == f'"{version + 1}"'

    stale = await api.call(
        "PATCH", path, {"title": "Stale"}, headers={"If-Match": f'"{version}"'}, expect=412
    )
    assert stale.json()["code"] == "VERSION_MISMATCH"
    assert stale.json()["details"] == {"currentVersion": version + 1}
    assert (await api.call("GET", path, expect=200)).json()["title"] == "Sport"

    weak = await api.call(
        "PATCH", path, {"title": "Weak"}, headers={"If-Match": f'W/"{version + 1}"'}, expect=200
    )
    assert weak.headers["ETag"] == f'"{version + 2}"'
    anything = await api.call(
        "PATCH", path, {"title": "Any"}, headers={"If-Match": "*"}, expect=200
    )
    assert anything.headers["ETag"] == f'"{version + 3}"'

    await api.call("POST", f"{path}/deactivate", headers={"If-Match": f'"{version}"'}, expect=412)
    deactivated = await api.call(
        "POST", f"{path}/deactivate", headers={"If-Match": f'"{version + 3}"'}, expect=200
    )
    assert deactivated.json()["active"] is False
    assert deactivated.headers["ETag"] == f'"{version + 4}"'
