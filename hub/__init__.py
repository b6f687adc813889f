"""TAC Hub: an event-sourced integration hub for the team around a child with SEND."""

__version__ = "0.1.0"
