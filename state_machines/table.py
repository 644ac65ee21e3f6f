"""Turns a module-level `transitions` Machine into a fast rule table with a typed `fire`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transitions import Machine

from state_machines.errors import InvalidTransition

Rule = tuple[str, tuple[str, ...]]  # destination, names of the conditions that must hold


class RuleTable:
    """The (state, event) -> destination table of one Machine, used for every object.

    Building a Machine (or adding a model) per object costs 0.1-0.25 ms, too much for the
    request path, so one Machine holds the rules and this table answers from them.
    """

    def __init__(self, name: str, machine: Machine, events: Sequence[str]) -> None:
        self.name = name
        self.machine = machine
        self.events = tuple(events)
        self._rules: dict[tuple[str, str], Rule] = {}
        for event_name, event in machine.events.items():
            for source, transitions in event.transitions.items():
                for transition in transitions:
                    conditions = tuple(str(c.func) for c in transition.conditions)
                    self._rules[(source, event_name)] = (transition.dest or source, conditions)

    def allowed(self, state: str, facts: Mapping[str, bool] | None = None) -> list[str]:
        """Events that may fire from `state`, in the table's order."""
        return [event for event in self.events if self._rule(state, event, facts) is not None]

    def fire(self, state: str, event: str, facts: Mapping[str, bool] | None = None) -> str:
        """The state after `event`, or InvalidTransition naming what is allowed instead."""
        rule = self._rule(state, event, facts)
        if rule is None:
            raise InvalidTransition(self.name, state, event, self.allowed(state, facts))
        return rule[0]

    def _rule(self, state: str, event: str, facts: Mapping[str, bool] | None) -> Rule | None:
        rule = self._rules.get((state, event))
        if rule is None:
            return None
        known = facts or {}
        return rule if all(known.get(name, False) for name in rule[1]) else None


def machine(
    states: Sequence[str], initial: str, transitions: Sequence[dict[str, object]]
) -> Machine:
    """A model-less Machine with auto transitions off: only the listed moves exist."""
    return Machine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        transitions=list(transitions),
    )
