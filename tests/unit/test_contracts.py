"""The checked-in inbound contract matches the code (`python -m hub.contracts`)."""

from __future__ import annotations

from hub.contracts import CONTRACTS, inbound_events_schema


def test_inbound_events_schema_has_not_drifted() -> None:
    on_disk = (CONTRACTS / "inbound" / "events.schema.json").read_text(encoding="utf-8")
    assert on_disk == inbound_events_schema(), "run `python -m hub.contracts`"
