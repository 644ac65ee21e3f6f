"""A whole lifecycle through HTTP, as the README walks it."""

from __future__ import annotations

from tests.conftest import YEARLY, Api


async def test_whole_lifecycle(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    sub = await api.subscription(jane, "apple-tx-1", offer_id=YEARLY)
    sid = sub["subscriptionId"]
    assert sub["status"] == "active" and sub["version"] == 1

    renewed = (await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)).json()
    assert renewed["renewalCycle"]["completed"] == 1 and renewed["dateTo"] > sub["dateTo"]

    cancelled = await api.call(
        "POST", f"/3.1/subscriptions/{sid}/cancel", {"cancellationReason": "user"}, expect=200
    )
    assert cancelled.json()["status"] == "stopped"
    activated = await api.call("POST", f"/3.1/subscriptions/{sid}/activate", expect=200)
    assert activated.json()["status"] == "active"

    moved = await api.call(
        "POST", f"/3.1/subscriptions/{sid}/transfer", {"customerId": john}, expect=200
    )
    source = moved.json()
    assert source["status"] == "terminated"
    new_id = source["replacedBy"]["subscriptionId"]
    copy = await api.get_subscription(new_id)
    assert copy["customerId"] == john
    assert copy["originatedFrom"] == {
        "subscriptionId": sid,
        "reason": "transfer",
        "date": source["replacedBy"]["date"],
    }

    await api.call(
        "POST",
        f"/3.1/subscriptions/{new_id}/terminate",
        {"terminationType": "userCancel"},
        expect=200,
    )
    revived = await api.call(
        "POST",
        f"/3.1/subscriptions/{new_id}/revive",
        {"expirationDate": copy["dateTo"] + 86400},
        expect=200,
    )
    assert revived.json()["replacedBy"]["reason"] == "revive"

    listed = await api.call("GET", "/3.1/subscriptions", params={"customerId": john}, expect=200)
    assert [s["status"] for s in listed.json()["data"]] == ["terminated", "active"]

    types = [op["type"] for op in await api.operations()]
    assert types[-6:] == [
        "createSubscription",
        "renewSubscription",
        "cancelSubscription",
        "activateSubscription",
        "transferSubscription",
        "terminateSubscription",
    ] or types[-7:] == [
        "createSubscription",
        "renewSubscription",
        "cancelSubscription",
        "activateSubscription",
        "transferSubscription",
        "terminateSubscription",
        "reviveSubscription",
    ]
