"""The subscription lifecycle of CONTRACT §4 as one module-level `transitions` Machine."""

from __future__ import annotations

from typing import Final, Literal, cast

from state_machines.table import RuleTable, machine

Status = Literal["active", "stopped", "terminated"]
Event = Literal["create", "cancel", "activate", "renew", "terminate", "transfer", "revive"]

# `new` is the state before a subscription exists, so `create` is a row of the table too.
STATES: Final = ["new", "active", "stopped", "terminated"]
EVENTS: Final[tuple[Event, ...]] = (
    "create",
    "cancel",
    "activate",
    "renew",
    "terminate",
    "transfer",
    "revive",
)

MACHINE: Final = machine(
    STATES,
    "new",
    [
        {"trigger": "create", "source": "new", "dest": "active"},
        {"trigger": "cancel", "source": "active", "dest": "stopped"},
        {"trigger": "activate", "source": "stopped", "dest": "active"},
        {"trigger": "renew", "source": ["active", "stopped"], "dest": "active"},
        {"trigger": "terminate", "source": ["active", "stopped"], "dest": "terminated"},
        {"trigger": "transfer", "source": ["active", "stopped"], "dest": "terminated"},
        # revive leaves the old subscription terminated and creates a new active copy
        {
            "trigger": "revive",
            "source": "terminated",
            "dest": "terminated",
            "conditions": ["not_replaced"],
        },
    ],
)
_TABLE: Final = RuleTable("subscription", MACHINE, EVENTS)


def allowed_events(status: str, *, replaced: bool = False) -> list[str]:
    """Events that may fire from `status`, in the table's order."""
    return _TABLE.allowed(status, {"not_replaced": not replaced})


def fire(status: str, event: str, *, replaced: bool = False) -> Status:
    """The status after `event`, or InvalidTransition naming what is allowed instead."""
    return cast(Status, _TABLE.fire(status, event, {"not_replaced": not replaced}))
