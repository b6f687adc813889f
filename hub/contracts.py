"""Generated contracts: JSON Schemas of every event and of the inbound event form.

`python -m hub.contracts` rewrites `contracts/events/*.schema.json` and
`contracts/inbound/events.schema.json` from the code; tests fail when the checked-in
files drift from it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path


def packaged(*parts: str) -> Path:
    """A file of the contracts shipped inside the package. `hub/_contracts` is a symlink to
    the repository's `contracts/` (the one source of truth), so in a checkout this is that
    file, and in an installed wheel the copy the build took of it."""
    return Path(str(files("hub").joinpath("_contracts", *parts)))


CONTRACTS = packaged()


def inbound_events_schema() -> str:
    from hub.ingest.contract import InboundEvent

    schema = InboundEvent.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://tac-hub.example/contracts/inbound/events.schema.json"
    schema["title"] = "Inbound domain event (POST /ingest/events)"
    schema["description"] = (
        "One element of the `events` array of POST /ingest/events. `payload` is the payload "
        "of the named event type as in contracts/events/<event_type>.schema.json; `subject` "
        "names the child by a strong identifier (NHS number, UPN, or LA code + LA child id)."
    )
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def generated() -> dict[Path, str]:
    import hub.events  # noqa: F401 - registers every event type
    from hub.events.schemas import all_schemas

    out = {CONTRACTS / "events" / name: text for name, text in all_schemas().items()}
    out[CONTRACTS / "inbound" / "events.schema.json"] = inbound_events_schema()
    return out


def export() -> list[Path]:
    from hub.events.schemas import export as export_events

    written = export_events(CONTRACTS / "events")
    path = CONTRACTS / "inbound" / "events.schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(inbound_events_schema(), encoding="utf-8")
    return [*written, path]


if __name__ == "__main__":
    for p in export():
        print(p)  # noqa: T201 - a command-line entry point prints what it wrote
