"""The one error a state machine raises: the move is not in its table."""

from __future__ import annotations


class InvalidTransition(Exception):
    """`event` is not allowed from `status`; `allowed` lists what is."""

    def __init__(self, machine: str, status: str, event: str, allowed: list[str]) -> None:
        self.machine = machine
        self.status = status
        self.event = event
        self.allowed = allowed
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"Cannot {event} a {machine} in status '{status}'; allowed: {allowed_text}"
        )
