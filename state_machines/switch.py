"""The subscription switch of CONTRACT §5: inprogress -> finished | cancelled, both final."""

from __future__ import annotations

from typing import Final, Literal, cast

from state_machines.table import RuleTable, machine

Status = Literal["inprogress", "finished", "cancelled"]
Event = Literal["finish", "cancel"]

STATES: Final = ["inprogress", "finished", "cancelled"]
EVENTS: Final[tuple[Event, ...]] = ("finish", "cancel")
# PATCH `status` values and the event each one fires.
EVENT_FOR_STATUS: Final[dict[str, Event]] = {"finished": "finish", "cancelled": "cancel"}

MACHINE: Final = machine(
    STATES,
    "inprogress",
    [
        {"trigger": "finish", "source": "inprogress", "dest": "finished"},
        {"trigger": "cancel", "source": "inprogress", "dest": "cancelled"},
    ],
)
_TABLE: Final = RuleTable("switch", MACHINE, EVENTS)


def allowed_events(status: str) -> list[str]:
    return _TABLE.allowed(status)


def fire(status: str, event: str) -> Status:
    """The status after `event`, or InvalidTransition (finished and cancelled are final)."""
    return cast(Status, _TABLE.fire(status, event))
