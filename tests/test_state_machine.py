"""The subscription machine against CONTRACT §4, for every (status, event) pair."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from transitions import Machine

from state_machines import InvalidTransition
from state_machines import subscription as machine

# CONTRACT §4, row by row: (status, event) -> destination. Every pair not listed is refused.
# `revive` is legal only while the terminated subscription has not been replaced.
LEGAL: dict[tuple[str, str, bool], str] = {
    ("new", "create", False): "active",
    ("active", "cancel", False): "stopped",
    ("stopped", "activate", False): "active",
    ("active", "renew", False): "active",
    ("stopped", "renew", False): "active",
    ("active", "terminate", False): "terminated",
    ("stopped", "terminate", False): "terminated",
    ("active", "transfer", False): "terminated",
    ("stopped", "transfer", False): "terminated",
    ("terminated", "revive", False): "terminated",
}

# What a refusal names as allowed instead, per (status, replaced), in the table's event order.
ALLOWED: dict[tuple[str, bool], list[str]] = {
    ("new", False): ["create"],
    ("active", False): ["cancel", "renew", "terminate", "transfer"],
    ("stopped", False): ["activate", "renew", "terminate", "transfer"],
    ("terminated", False): ["revive"],
    ("terminated", True): [],
}


def _expected(status: str, event: str, replaced: bool) -> str | None:
    # `replaced` is a fact about terminated subscriptions only; elsewhere it changes nothing.
    key_replaced = replaced if status == "terminated" else False
    return LEGAL.get((status, event, key_replaced))


def _allowed(status: str, replaced: bool) -> list[str]:
    return ALLOWED[(status, replaced if status == "terminated" else False)]


PAIRS = list(itertools.product(machine.STATES, machine.EVENTS, [False, True]))


def test_the_table_names_the_contract_states_and_events() -> None:
    assert machine.STATES == ["new", "active", "stopped", "terminated"]
    assert machine.EVENTS == (
        "create",
        "cancel",
        "activate",
        "renew",
        "terminate",
        "transfer",
        "revive",
    )


@pytest.mark.parametrize(("status", "event", "replaced"), PAIRS)
def test_fire_every_pair(status: str, event: str, replaced: bool) -> None:
    destination = _expected(status, event, replaced)
    if destination is not None:
        assert machine.fire(status, event, replaced=replaced) == destination
        return
    with pytest.raises(InvalidTransition) as refused:
        machine.fire(status, event, replaced=replaced)
    error = refused.value
    assert (error.machine, error.status, error.event) == ("subscription", status, event)
    assert error.allowed == _allowed(status, replaced)
    assert f"'{status}'" in str(error)
    allowed_text = ", ".join(error.allowed) if error.allowed else "none"
    assert str(error).endswith(f"allowed: {allowed_text}")


@pytest.mark.parametrize("replaced", [False, True])
@pytest.mark.parametrize("status", machine.STATES)
def test_allowed_events_in_table_order(status: str, replaced: bool) -> None:
    allowed = machine.allowed_events(status, replaced=replaced)
    assert allowed == _allowed(status, replaced)
    assert allowed == [e for e in machine.EVENTS if _expected(status, e, replaced) is not None]
    assert allowed == sorted(allowed, key=machine.EVENTS.index)


def test_replaced_defaults_to_false() -> None:
    assert machine.fire("terminated", "revive") == "terminated"
    assert machine.allowed_events("terminated") == ["revive"]


def test_an_unknown_status_allows_nothing() -> None:
    with pytest.raises(InvalidTransition) as refused:
        machine.fire("paused", "cancel")
    assert refused.value.allowed == []
    assert machine.allowed_events("paused") == []


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(InvalidTransition) as refused:
        machine.fire("active", "pause")
    assert refused.value.allowed == ALLOWED[("active", False)]


def test_auto_transitions_are_off() -> None:
    assert machine.MACHINE.auto_transitions is False
    assert list(machine.MACHINE.events) == list(machine.EVENTS)
    assert not any(name.startswith("to_") for name in machine.MACHINE.events)
    for status in machine.STATES:
        assert f"to_{status}" not in machine.MACHINE.events
        assert set(machine.MACHINE.get_triggers(status)) <= set(machine.EVENTS)
    with pytest.raises(InvalidTransition):
        machine.fire("stopped", "to_active")


def test_one_machine_serves_every_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(machine.MACHINE, Machine)
    assert machine.MACHINE.models == []  # a rule table, not bound to any object

    def no_new_machines(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a Machine was built while firing")

    monkeypatch.setattr(Machine, "__init__", no_new_machines)
    for status, event, replaced in PAIRS:
        machine.allowed_events(status, replaced=replaced)
        try:
            machine.fire(status, event, replaced=replaced)
        except InvalidTransition:
            pass
    assert machine.MACHINE.models == []
