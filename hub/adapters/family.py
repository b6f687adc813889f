"""Family adapter: the JSON form in which a family portal, or a coordinator on the family's
behalf, sends the child's, young person's and parents' own views for section A of the plan
("all about me") and the contact details of those with parental responsibility.
`FamilyMessage` is the contract (exported as JSON Schema 2020-12 to
contracts/inbound/family.schema.json, checked for drift by a test); `parse_family_json`
turns one message into `family.views_recorded` and `family.contact_recorded` facts about
the child it names. The sender's `message_id` is the idempotency key. A malformed message
or header is refused whole; a bad views entry or contact is reported by its JSON path
(`/views/1/recorded_on`) and the rest is taken. Nothing of a value is echoed in a reason.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from hub.adapters.xml_safety import (
    RULE_DATE_IN_FUTURE,
    build_payload,
    day_start,
    items_of,
    parse_json,
    validate_part,
)
from hub.contracts import packaged
from hub.errors import PermanentError
from hub.events.envelope import Source
from hub.events.family import (
    ContactPoint,
    ContactRecorded,
    ListItem,
    PostalAddress,
    ViewsOf,
    ViewsRecorded,
)
from hub.ingest.model import AdapterResult, InboundFact, NotTaken, Subject

SCHEMA_PATH = packaged("inbound", "family.schema.json")
SCHEMA_ID = "https://tac-hub.example/contracts/inbound/family.schema.json"
_CONFIG = ConfigDict(frozen=True, extra="ignore")


class ChildIn(BaseModel):
    """Who the message is about: the identifiers the family or coordinator holds, and the
    demographics a person may compare when no identifier links it (the match queue)."""

    model_config = _CONFIG

    hub_child_id: str | None = Field(
        default=None, max_length=64, description="The hub's id, when the portal knows it"
    )
    nhs_number: str | None = Field(default=None, max_length=32)
    upn: str | None = Field(default=None, max_length=32, description="Unique pupil number")
    la_code: str | None = Field(default=None, max_length=8)
    la_child_id: str | None = Field(default=None, max_length=64)
    given_name: str | None = Field(default=None, max_length=128)
    family_name: str | None = Field(default=None, max_length=128)
    date_of_birth: date | None = None
    postcode: str | None = Field(default=None, max_length=16)


class ViewsIn(BaseModel):
    """One person's views, in their own words."""

    model_config = _CONFIG

    whose: ViewsOf = Field(description="child, young_person, parent or carer")
    contributor_ref: str | None = Field(
        default=None, max_length=256, description="Which parent or carer (a reference, not a name)"
    )
    recorded_on: date
    recorded_by: str | None = Field(
        default=None, max_length=128, description="The practitioner who wrote them down, if any"
    )
    views: str = Field(min_length=1, max_length=20000)
    interests: list[ListItem] = Field(default_factory=list, max_length=50)
    aspirations: list[ListItem] = Field(default_factory=list, max_length=50)


class ContactIn(BaseModel):
    """A person with parental responsibility and how to reach them."""

    model_config = _CONFIG

    order: int | None = Field(default=None, ge=1, le=99, description="Priority among contacts")
    relationship: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="DfE code: PAM, PAF, CAF, CAM..."
    )
    parental_responsibility: bool
    court_order: bool | None = None
    lives_with_child: bool | None = None
    title: str | None = Field(default=None, max_length=32)
    surname: str | None = Field(default=None, max_length=128)
    forename: str | None = Field(default=None, max_length=128)
    address: PostalAddress | None = None
    phones: list[str] = Field(default_factory=list, max_length=10)
    email: str | None = Field(default=None, max_length=256)


EXAMPLE: dict[str, Any] = {
    "message_id": "portal-2024-10-01-0042",
    "sent_at": "2024-10-01T19:30:00+01:00",
    "system": "Example family portal 1.0",
    "submitted_by": "family",
    "child": {
        "upn": "A999200100001",
        "given_name": "Sam",
        "family_name": "Example",
        "date_of_birth": "2016-02-29",
    },
    "views": [
        {
            "whose": "child",
            "recorded_on": "2024-09-28",
            "views": "I like it when my day is the same. Loud rooms make my ears hurt.",
            "interests": ["trains", "drawing"],
            "aspirations": ["to drive a train"],
        },
        {
            "whose": "parent",
            "contributor_ref": "parent-1",
            "recorded_on": "2024-09-30",
            "views": "Sam is happiest with a visual timetable and a quiet space at lunch.",
        },
    ],
    "contacts": [
        {
            "order": 1,
            "relationship": "PAM",
            "parental_responsibility": True,
            "lives_with_child": True,
            "forename": "Alex",
            "surname": "Example",
            "phones": ["07700 900000"],
            "email": "alex@example.org",
        }
    ],
}


class FamilyMessage(BaseModel):
    """A family's message to the TAC hub: their views for section A of the EHC plan and
    the contact details of those with parental responsibility.

    Dates are ISO 8601 (yyyy-mm-dd); `sent_at` carries its UTC offset. The child is named
    by a strong identifier where the family or coordinator holds one; a message naming the
    child by demographics only waits in the match queue until a coordinator confirms who
    the child is."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="Family message",
        json_schema_extra={"examples": [EXAMPLE]},
    )

    message_id: str = Field(
        min_length=1, max_length=200, description="Unique per message: the idempotency key"
    )
    sent_at: AwareDatetime = Field(description="When the message was written")
    system: str | None = Field(default=None, max_length=128, description="Sending portal")
    submitted_by: Literal["family", "young_person", "coordinator"] = Field(
        default="family", description="Who entered the message"
    )
    child: ChildIn
    views: list[ViewsIn] = Field(default_factory=list, max_length=20)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=20)


def json_schema() -> dict[str, Any]:
    schema = FamilyMessage.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """The contract file's expected content."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_family_json(data: bytes, *, agency: str, now: datetime | None = None) -> AdapterResult:
    """Parse one family message. Raises `PermanentError` when it is not JSON or its message
    id, time or child is missing or invalid; otherwise each views entry and contact is
    read and every part not taken is explained by its JSON path. `now` (default: the
    current time) bounds dates that cannot lie in the future."""
    raw = parse_json(data, document="family message")
    if not isinstance(raw, dict):
        raise PermanentError("a family message is a JSON object", field="json")
    try:
        header = FamilyMessage.model_validate({**raw, "views": [], "contacts": []})
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise PermanentError(
            str(err["msg"]), field=".".join(map(str, err["loc"])) or "json"
        ) from None
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    child = header.child
    if child.date_of_birth is not None and child.date_of_birth > moment.date():
        raise PermanentError("the date of birth is in the future", field="child.date_of_birth")
    try:
        source = Source(agency=agency, system=header.system, message_id=header.message_id)
    except ValidationError:
        raise PermanentError("the agency name must be 1-64 characters", field="agency") from None
    subject = Subject(**child.model_dump())
    if not (
        subject.hub_child_id
        or subject.nhs_number
        or subject.upn
        or subject.la_child_id
        or (subject.given_name and subject.family_name and subject.date_of_birth)
    ):
        raise PermanentError(
            "name the child by a hub child id, NHS number, UPN or LA child id, or at least by "
            "given name, family name and date of birth",
            field="child",
        )
    result = AdapterResult(message_id=header.message_id)
    sent_at = min(header.sent_at.astimezone(UTC), moment)
    unknown: dict[str, str] = {
        f"/{k}": "unknown field: not read" for k in raw if k not in FamilyMessage.model_fields
    }
    nt = result.not_taken
    for i, item in enumerate(items_of(raw, "views", "", nt)):
        ref = f"/views/{i}"
        views = validate_part(ViewsIn, item, ref, nt, unknown=unknown, pattern="/views/*")
        if views is None:
            continue
        if views.recorded_on > moment.date():
            nt.append(
                NotTaken(
                    ref=f"{ref}/recorded_on",
                    reason="the date is in the future",
                    field="recorded_on",
                    rule=RULE_DATE_IN_FUTURE,
                )
            )
            continue
        payload = build_payload(
            ViewsRecorded,
            ref,
            nt,
            {
                **views.model_dump(exclude={"interests", "aspirations"}),
                "interests": tuple(views.interests),
                "aspirations": tuple(views.aspirations),
            },
        )
        if payload is not None:
            result.facts.append(
                InboundFact(
                    subject=subject,
                    payload=payload,
                    occurred_at=min(day_start(views.recorded_on), sent_at),
                    source=source,
                    ref=ref,
                )
            )
    for i, item in enumerate(items_of(raw, "contacts", "", nt)):
        ref = f"/contacts/{i}"
        contact = validate_part(ContactIn, item, ref, nt, unknown=unknown, pattern="/contacts/*")
        if contact is None:
            continue
        if not contact.parental_responsibility:
            nt.append(
                NotTaken(
                    ref=ref,
                    kind="unsupported",
                    field="parental_responsibility",
                    reason="the contact does not hold parental responsibility: the hub takes only "
                    "contacts who do (data minimisation)",
                    rule="hub.contact_without_parental_responsibility",
                )
            )
            continue
        points = [ContactPoint(system="phone", value=p) for p in contact.phones if p.strip()]
        if contact.email:
            points.append(ContactPoint(system="email", value=contact.email))
        payload_c = build_payload(
            ContactRecorded,
            ref,
            nt,
            {
                **contact.model_dump(exclude={"order", "phones", "email", "address"}),
                "contact_order": contact.order,
                "address": contact.address,
                "contact_points": tuple(points),
            },
        )
        if payload_c is not None:
            result.facts.append(
                InboundFact(
                    subject=subject, payload=payload_c, occurred_at=sent_at, source=source, ref=ref
                )
            )
    for ref, reason in unknown.items():
        nt.append(
            NotTaken(
                ref=ref,
                reason=reason,
                kind="unsupported",
                field=ref.rsplit("/", 1)[-1],
                rule="hub.not_read",
            )
        )
    return result


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    print(target)  # noqa: T201 - a command-line entry point prints what it wrote
