"""The switch machine against CONTRACT §5, for every (status, event) pair."""

from __future__ import annotations

import itertools

import pytest

from state_machines import InvalidTransition
from state_machines import switch as machine

# CONTRACT §5: (status, event) -> destination. Every pair not listed is refused.
LEGAL: dict[tuple[str, str], str] = {
    ("inprogress", "finish"): "finished",
    ("inprogress", "cancel"): "cancelled",
}

# What a refusal names as allowed instead, in the table's event order.
ALLOWED: dict[str, list[str]] = {
    "inprogress": ["finish", "cancel"],
    "finished": [],
    "cancelled": [],
}

PAIRS = list(itertools.product(machine.STATES, machine.EVENTS))


def test_the_table_names_the_contract_states_and_events() -> None:
    assert machine.STATES == ["inprogress", "finished", "cancelled"]
    assert machine.EVENTS == ("finish", "cancel")
    assert machine.EVENT_FOR_STATUS == {"finished": "finish", "cancelled": "cancel"}
    assert len(PAIRS) == 6


@pytest.mark.parametrize(("status", "event"), PAIRS)
def test_fire_every_pair(status: str, event: str) -> None:
    destination = LEGAL.get((status, event))
    if destination is not None:
        assert machine.fire(status, event) == destination
        return
    with pytest.raises(InvalidTransition) as refused:
        machine.fire(status, event)
    error = refused.value
    assert (error.machine, error.status, error.event) == ("switch", status, event)
    assert error.allowed == ALLOWED[status]
    assert str(error) == f"Cannot {event} a switch in status '{status}'; allowed: none"


@pytest.mark.parametrize("status", machine.STATES)
def test_allowed_events_in_table_order(status: str) -> None:
    assert machine.allowed_events(status) == ALLOWED[status]
    assert machine.allowed_events(status) == [e for e in machine.EVENTS if (status, e) in LEGAL]


@pytest.mark.parametrize(("status", "event"), machine.EVENT_FOR_STATUS.items())
def test_each_patch_status_is_reached_by_its_event(status: str, event: str) -> None:
    assert machine.fire("inprogress", event) == status


@pytest.mark.parametrize(
    ("status", "event"),
    [("paused", "finish"), ("inprogress", "pause"), ("inprogress", "to_finished")],
)
def test_unknown_statuses_and_events_are_refused(status: str, event: str) -> None:
    with pytest.raises(InvalidTransition) as refused:
        machine.fire(status, event)
    assert refused.value.allowed == ALLOWED.get(status, [])


def test_auto_transitions_are_off() -> None:
    assert machine.MACHINE.auto_transitions is False
    assert list(machine.MACHINE.events) == list(machine.EVENTS)
    for status in machine.STATES:
        assert f"to_{status}" not in machine.MACHINE.events
        assert set(machine.MACHINE.get_triggers(status)) <= set(machine.EVENTS)
    assert machine.MACHINE.models == []  # a rule table, not bound to any switch
