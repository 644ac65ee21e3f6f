"""Pure lifecycle rules on `transitions`: no I/O, nothing of the service imported."""

from state_machines.errors import InvalidTransition

__all__ = ["InvalidTransition"]
