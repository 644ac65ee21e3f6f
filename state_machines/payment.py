"""An EMS payment's status (CONTRACT §6): a captured payment may be refunded or rejected."""

from __future__ import annotations

from typing import Final, Literal, cast

from state_machines.table import RuleTable, machine

Status = Literal["captured", "rejected", "refunded"]
Event = Literal["refund", "reject"]

STATES: Final = ["captured", "rejected", "refunded"]
EVENTS: Final[tuple[Event, ...]] = ("refund", "reject")
# PATCH `status` values and the event each one fires.
EVENT_FOR_STATUS: Final[dict[str, Event]] = {"refunded": "refund", "rejected": "reject"}

MACHINE: Final = machine(
    STATES,
    "captured",
    [
        {"trigger": "refund", "source": "captured", "dest": "refunded"},
        # a chargeback, or a capture the store later reports as failed
        {"trigger": "reject", "source": "captured", "dest": "rejected"},
    ],
)
_TABLE: Final = RuleTable("payment", MACHINE, EVENTS)


def allowed_events(status: str) -> list[str]:
    return _TABLE.allowed(status)


def fire(status: str, event: str) -> Status:
    return cast(Status, _TABLE.fire(status, event))
