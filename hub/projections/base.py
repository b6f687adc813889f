"""What a projection is: a named read model built by applying events in log order.

A projection owns its tables (created by the store's migrations, `hub.store.schema`),
applies a batch of decoded events inside the runner's transaction, and can drop its rows
for a rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hub.events import Envelope, Sharing
from hub.log import LogName, Position
from hub.store import Tx


@dataclass(frozen=True, slots=True)
class Applied:
    """One decoded event and where it sits in its log."""

    envelope: Envelope
    log: LogName
    position: Position
    raw: bytes = b""
    """The record as stored (payload personal fields still sealed)."""
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


RAW_ONLY = Envelope.model_construct(event_type="hub.raw", child_id="-")  # type: ignore[call-arg]
"""Stands in for the envelope when a projection reads raw records (`raw_records = True`)."""


@runtime_checkable
class Projection(Protocol):
    name: str
    logs: tuple[LogName, ...]
    tables: tuple[str, ...]

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        """Apply the events (in log order per partition) to the read model."""
        ...


def sharing_columns(env: Envelope) -> tuple[str, str | None]:
    """The envelope's sharing context as the views store it: comma-separated purposes,
    and the claimed basis (upcast from a version 1 record's headers by the runner)."""
    sharing = env.sharing or _DEFAULT_SHARING
    return ",".join(sharing.purposes), sharing.basis_claimed


_DEFAULT_SHARING = Sharing()
