"""The two kinds of failure the pipeline distinguishes (STYLE.md, convention 6).

A `PermanentError` (bad input, unknown event type or schema version) goes straight to the
dead-letter log with its reason; a `TransientError` (a store or broker briefly
unreachable) is retried with backoff first. A consent refusal is neither: it is a decision.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of the hub's own errors."""


class PermanentError(HubError):
    """Retrying will not help: the input itself is wrong. `field` names what is wrong."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class NotFound(HubError):
    """No such child or plan within the caller's reach (the same answer for both, so an
    answer never reveals that a child is known). The API answers 404."""


class TransientError(HubError):
    """Retrying later may succeed (a store or broker briefly unavailable)."""


class InvalidQuery(HubError):
    """A query the caller asked cannot be answered as asked: `field` names the input
    (`nhs_number`, `query.cursor`), `rule` the rule it breaks (`nhs_number.check_digit`),
    `reason` says so in words, never echoing the value. The API answers 422."""

    def __init__(self, field: str, rule: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.rule = rule
        self.reason = reason
