"""Registry from `event_type` to its payload model, and the upcaster chains.

Old stored versions are never rewritten: they are upcast on read by pure functions
`upcast(payload_dict) -> payload_dict`, one per version step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hub.errors import PermanentError
from hub.events.envelope import EventPayload

P = TypeVar("P", bound=type[EventPayload])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    """Knows every event type, its current schema version and how to upcast old ones."""

    def __init__(self) -> None:
        self._types: dict[str, type[EventPayload]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: P) -> P:
        event_type = cls.event_type
        if event_type in self._types and self._types[event_type] is not cls:
            raise ValueError(f"event type {event_type!r} is registered twice")
        if not getattr(cls, "category", None):
            raise ValueError(f"event type {event_type!r} declares no data category")
        self._types[event_type] = cls
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register `fn` as the step from `from_version` to `from_version + 1`."""

        def decorate(fn: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise ValueError(f"two upcasters for {event_type} v{from_version}")
            self._upcasters[key] = fn
            return fn

        return decorate

    def payload_class(self, event_type: str) -> type[EventPayload]:
        try:
            return self._types[event_type]
        except KeyError:
            raise PermanentError(f"unknown event type {event_type!r}", field="event_type") from None

    def upcast(self, event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Bring a stored payload of `version` up to the current version of its type."""
        current = self.payload_class(event_type).schema_version
        if version > current:
            raise PermanentError(
                f"schema_version {version} of {event_type!r} is newer than this hub "
                f"understands (at most {current})",
                field="schema_version",
            )
        while version < current:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise PermanentError(
                    f"no upcaster for {event_type!r} from version {version}",
                    field="schema_version",
                )
            payload = step(dict(payload))
            version += 1
        return payload

    def __iter__(self) -> Iterator[type[EventPayload]]:
        return iter(sorted(self._types.values(), key=lambda c: c.event_type))

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._types


registry = EventRegistry()
"""The hub's registry. Modules under `hub.events` register their payloads on import;
import `hub.events` (not a submodule) to get them all."""
