"""Generated contracts: JSON Schemas of every event and of the inbound event form.

`python -m hub.contracts` rewrites `contracts/events/*.schema.json` and
`contracts/inbound/events.schema.json` from the code; tests fail when the checked-in
files drift from it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any


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


# -- AsyncAPI: the topics the hub writes ----------------------------------------------------
_KAFKA_KEY = {"type": "string", "description": "The hub child id (the partition key)"}
_SEALED = (
    "Every payload field about the child is sealed: the payload keeps only the fields its "
    "event type's schema lists in `x-open-fields` (references, organisation codes), and "
    'holds the rest as one field `sealed`, the object `{"enc": "v1", "nonce": <base64>, '
    '"ct": <base64>}`: AES-GCM under the child\'s data key over the JSON object of those '
    "fields (in records written by earlier versions, each sealed field holds such an "
    "object in place of its value). Erasing the child deletes the key (crypto-shredding)."
)
_WRITTEN: dict[str, tuple[str, str]] = {
    "hub.events": (
        "events",
        "Every fact the hub took, as the envelope of its event type "
        "(contracts/events/<event_type>.schema.json), keyed by the hub child id, in the "
        "order the hub took them per child. " + _SEALED,
    ),
    "hub.withheld": (
        "events",
        "Facts the consent gate held back (no consent or statutory basis yet), as the same "
        "envelopes; released to hub.events, in order, when consent or a basis arrives. " + _SEALED,
    ),
    "hub.audit": (
        "audit",
        "The hash-chained audit trail: one record per read of a child's record, per "
        "consent decision and per change, per chain (a child's, or the hub's own), ids "
        "only. `hub audit verify` checks the chains.",
    ),
    "hub.deadletter": (
        "deadletter",
        "What could not be taken: the original value and headers as received, plus the "
        "`x-dlq-*` headers saying why (field and rule, never the value), from where "
        "(topic, partition, offset), by which consumer, when and after how many attempts. "
        "`hub deadletter replay` sends them back.",
    ),
}
_DLQ_HEADERS = (
    "x-dlq-reason",
    "x-dlq-exception-type",
    "x-dlq-source-topic",
    "x-dlq-source-partition",
    "x-dlq-source-offset",
    "x-dlq-attempts",
    "x-dlq-id",
    "x-dlq-consumer",
    "x-dlq-at",
)


def _payload(kind: str) -> dict[str, object]:
    if kind == "events":
        import hub.events  # noqa: F401 - registers every event type
        from hub.events.schemas import all_schemas

        return {"oneOf": [{"$ref": f"./events/{name}"} for name in sorted(all_schemas())]}
    if kind == "audit":
        return {"$ref": "#/components/schemas/AuditRecord"}
    return {"type": "string", "format": "binary", "description": "The original value"}


def add_written_topics(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (the inbound app's AsyncAPI 3 document) with a channel, message and `send`
    operation for each topic the hub writes. Topic names carry `HUB_KAFKA_TOPIC_PREFIX`."""
    from hub.consent.audit_chain import AuditRecord

    channels = doc.setdefault("channels", {})
    operations = doc.setdefault("operations", {})
    components = doc.setdefault("components", {})
    messages = components.setdefault("messages", {})
    schemas = components.setdefault("schemas", {})
    audit = AuditRecord.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(audit.pop("$defs", {}))
    schemas["AuditRecord"] = audit
    for topic, (kind, description) in _WRITTEN.items():
        message: dict[str, Any] = {
            "name": topic,
            "title": f"A record of {topic}",
            "contentType": "application/octet-stream" if kind == "deadletter" else
            "application/json",
            "payload": _payload(kind),
            "bindings": {"kafka": {"key": _KAFKA_KEY, "bindingVersion": "0.5.0"}},
        }  # fmt: skip
        if kind == "deadletter":
            message["headers"] = {
                "type": "object",
                "properties": {h: {"type": "string"} for h in _DLQ_HEADERS},
                "required": ["x-dlq-reason", "x-dlq-source-topic", "x-dlq-id"],
            }
        messages[f"{topic}:record"] = message
        channels[topic] = {
            "address": topic,
            "description": description,
            "servers": [{"$ref": "#/servers/development"}],
            "messages": {"record": {"$ref": f"#/components/messages/{topic}:record"}},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
        }
        operations[f"{topic}:write"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "messages": [{"$ref": f"#/channels/{topic}/messages/record"}],
        }
    return doc
