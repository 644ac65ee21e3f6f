"""The subscription lifecycle of CONTRACT §4 as one module-level `transitions` Machine."""

from __future__ import annotations

from typing import Final, Literal

from transitions import Machine

from state_machines.errors import InvalidTransition

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

# One Machine for all subscriptions, used as the rule table: building a Machine (or adding a
# model) per object costs 0.1-0.25 ms, too much for the request path.
MACHINE: Final = Machine(
    model=None,
    states=STATES,
    initial="new",
    auto_transitions=False,
    transitions=[
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


def _compile() -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    table: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    for event_name, event in MACHINE.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                conditions = tuple(str(c.func) for c in transition.conditions)
                table[(source, event_name)] = (transition.dest or source, conditions)
    return table


_TABLE: Final = _compile()


def _conditions_hold(conditions: tuple[str, ...], replaced: bool) -> bool:
    facts = {"not_replaced": not replaced}
    return all(facts[name] for name in conditions)


def allowed_events(status: str, *, replaced: bool = False) -> list[str]:
    """Events that may fire from `status`, in the table's order."""
    return [
        event
        for event in EVENTS
        if (rule := _TABLE.get((status, event))) is not None and _conditions_hold(rule[1], replaced)
    ]


def fire(status: str, event: str, *, replaced: bool = False) -> Status:
    """The status after `event`, or InvalidTransition naming what is allowed instead."""
    rule = _TABLE.get((status, event))
    if rule is None or not _conditions_hold(rule[1], replaced):
        raise InvalidTransition(
            "subscription", status, event, allowed_events(status, replaced=replaced)
        )
    dest: Status = rule[0]  # type: ignore[assignment]
    return dest
