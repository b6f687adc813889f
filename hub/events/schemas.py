"""JSON Schemas of every registered event, exported to `contracts/events/`.

One file per event type, `<event_type>.schema.json`: the envelope with that type's payload,
its `event_type` and current `schema_version` pinned, and `x-open-fields`: the payload
fields that are not sealed with the child's key on the logs. A test regenerates them and fails on
drift; `python -m hub.events.schemas [DIR]` rewrites them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from hub.contracts import packaged
from hub.events.envelope import ConsentRef, Envelope, Source
from hub.events.registry import EventRegistry
from hub.events.registry import registry as default_registry

CONTRACTS_EVENTS = packaged("events")
SCHEMA_ID_BASE = "https://tac-hub.example/contracts/events/"


def schema_for(
    payload_cls: type[BaseModel], event_type: str, version: int, category: str
) -> dict[str, Any]:
    """The JSON Schema of one event type's envelope."""
    fields: dict[str, Any] = {}
    for name, info in Envelope.model_fields.items():
        if name == "payload":
            continue
        fields[name] = (info.annotation, info)
    model = create_model(
        "Event",
        __config__=ConfigDict(extra="ignore"),
        **fields,
        payload=(payload_cls, ...),
    )
    schema: dict[str, Any] = model.model_json_schema(mode="serialization")
    props = schema["properties"]
    props["event_type"] = {"const": event_type, "title": "Event Type", "type": "string"}
    props["schema_version"] = {"const": version, "title": "Schema Version", "type": "integer"}
    props["category"] = {
        "default": category,
        "title": "Category",
        "type": "string",
        "description": "Data category for the consent policy (defaults to the type's own)",
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_ID_BASE}{event_type}.schema.json"
    schema["title"] = event_type
    schema["description"] = (payload_cls.__doc__ or "").strip().split("\n\n")[0]
    open_fields = payload_cls.__dict__.get("open_fields")
    if open_fields is not None:
        # the payload fields on the logs in the clear; the rest travel sealed (`_SEALED` in
        # hub/contracts.py: the AsyncAPI document says how)
        schema["x-open-fields"] = list(open_fields)
    return schema


def all_schemas(registry: EventRegistry = default_registry) -> dict[str, str]:
    """File name -> schema text, for every registered event type."""
    out: dict[str, str] = {}
    for cls in registry:
        schema = schema_for(cls, cls.event_type, cls.schema_version, cls.category)
        out[f"{cls.event_type}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def export(directory: Path = CONTRACTS_EVENTS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = all_schemas()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, text in wanted.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


_ = (ConsentRef, Source)

if __name__ == "__main__":
    import hub.events  # noqa: F401 - registers every event type

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CONTRACTS_EVENTS
    for p in export(target):
        print(p)  # noqa: T201 - a command-line entry point prints what it wrote
