"""School MIS adapter for the hub's own JSON message form, for MIS APIs that do not export
CTF: `SchoolMisMessage` is the contract (exported as JSON Schema 2020-12 to
contracts/inbound/school-mis.schema.json, checked for drift by a test) and
`parse_school_mis_json` turns one message into the same facts the CTF adapter yields, plus
the school staff who work with each pupil (`team.practitioner_joined`). The sender's
`message_id` is the message's idempotency key. A malformed message or header is refused
whole; a bad pupil, or a bad item within a pupil, is reported by its JSON path (e.g.
`/pupils/3/sen_history/0`) and the rest is taken.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

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
from hub.events.education import (
    AttendanceRecorded,
    EstabNumber,
    ExclusionCategory,
    ExclusionRecorded,
    LaCode,
    NcYear,
    Phase,
    PlacementRecorded,
    PostalAddress,
    ProvisionType,
    PupilIdentified,
    SchoolUrn,
    SenNeedRanked,
    SenProvision,
    SenStatusRecorded,
)
from hub.events.envelope import EventPayload, Source
from hub.events.family import ContactPoint, ContactRecorded
from hub.events.family import PostalAddress as ContactAddress
from hub.events.social_care import DisabilityCode, DisabilityRecorded
from hub.events.team import PractitionerJoined
from hub.ingest.model import AdapterResult, InboundFact, NotTaken, Subject

SCHEMA_PATH = packaged("inbound", "school-mis.schema.json")
SCHEMA_ID = "https://tac-hub.example/contracts/inbound/school-mis.schema.json"
_CONFIG = ConfigDict(frozen=True, extra="ignore")


class SchoolIn(BaseModel):
    """The school sending the message."""

    model_config = _CONFIG

    la_code: LaCode = Field(description="DfE 3-digit local authority code")
    estab: EstabNumber | None = Field(default=None, description="DfE 4-digit establishment number")
    urn: SchoolUrn | None = Field(default=None, description="Unique reference number of the school")
    name: str | None = Field(default=None, max_length=200)


class SenNeedIn(BaseModel):
    """One SEN need, ranked (1 = primary)."""

    model_config = _CONFIG

    type: Literal[
        "SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"
    ] = Field(description="DfE SEN type code")  # fmt: skip
    rank: int = Field(ge=1, le=9)


class SenRecordIn(BaseModel):
    """One period of SEN provision with the needs recorded for it."""

    model_config = _CONFIG

    provision: SenProvision = Field(description="E EHC plan, K SEN support, N no SEN")
    start_date: date
    end_date: date | None = None
    needs: list[SenNeedIn] = Field(default_factory=list, max_length=9)


class AttendanceIn(BaseModel):
    """Attendance over one academic year at one school, in sessions (half days)."""

    model_config = _CONFIG

    academic_year: int = Field(ge=1990, le=2100, description="Year the academic year starts")
    la_code: LaCode | None = None
    estab: EstabNumber | None = None
    urn: SchoolUrn | None = None
    school_name: str | None = Field(default=None, max_length=200)
    sessions_possible: int = Field(ge=0, le=1000)
    sessions_attended: int = Field(ge=0, le=1000)
    sessions_authorised_absence: int = Field(ge=0, le=1000)
    sessions_unauthorised_absence: int = Field(ge=0, le=1000)


class ExclusionIn(BaseModel):
    """A suspension or exclusion."""

    model_config = _CONFIG

    category: ExclusionCategory = Field(
        description="FIXD/SUSP suspension, PERM permanent, LNCH lunchtime"
    )
    start_date: date
    end_date: date | None = None
    sessions: int | None = Field(default=None, ge=0, le=1000)
    reasons: list[str] = Field(default_factory=list, max_length=3, description="DfE reason codes")
    la_code: LaCode | None = None
    estab: EstabNumber | None = None
    urn: SchoolUrn | None = None


class PlacementIn(BaseModel):
    """A school the pupil is or was on the roll of."""

    model_config = _CONFIG

    la_code: LaCode | None = None
    estab: EstabNumber | None = None
    urn: SchoolUrn | None = None
    school_name: str | None = Field(default=None, max_length=200)
    phase: Phase | None = None
    provision_type: ProvisionType | None = None
    entry_date: date
    leaving_date: date | None = None
    leaving_reason: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,4}$")
    nc_year: NcYear | None = None
    enrolment_status: Literal["C", "M", "S", "G", "O"] | None = None


class PhoneIn(BaseModel):
    model_config = _CONFIG

    use: Literal["home", "mobile", "work"] | None = None
    number: str = Field(min_length=1, max_length=32)


def _blank_is_none(value: object) -> object:
    """MIS exports often send "" for a value they do not hold: read it as absent."""
    return None if isinstance(value, str) and not value.strip() else value


class ContactIn(BaseModel):
    """A contact for the pupil. Only contacts with parental responsibility are taken."""

    model_config = _CONFIG

    _blanks = field_validator("*", mode="before")(_blank_is_none)

    order: int | None = Field(default=None, ge=1, le=99, description="Priority among contacts")
    relationship: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="DfE code: PAM, PAF, CAF..."
    )
    parental_responsibility: bool
    court_order: bool | None = None
    lives_with_child: bool | None = None
    title: str | None = Field(default=None, max_length=32)
    surname: str | None = Field(default=None, max_length=128)
    forename: str | None = Field(default=None, max_length=128)
    middle_names: str | None = Field(default=None, max_length=128)
    address: PostalAddress | None = None
    phones: list[PhoneIn] = Field(default_factory=list, max_length=10)
    email: str | None = Field(default=None, max_length=256)


class StaffIn(BaseModel):
    """A member of school staff who works with the pupil."""

    model_config = _CONFIG

    staff_id: str = Field(
        min_length=1, max_length=64, description="The school's own staff reference"
    )
    role: Literal["senco", "teacher", "educational_psychologist"] = Field(
        description="Role vocabulary code"
    )
    since: date
    contact: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="How to reach them at work: a work phone or email",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Their name as the school gives it (e.g. 'Mrs J Patel'): sealed on the "
        "hub's log with the child's key",
    )


class PupilIn(BaseModel):
    """One pupil: identity, then what the school records about them."""

    model_config = _CONFIG

    _blanks = field_validator("*", mode="before")(_blank_is_none)

    upn: str | None = Field(default=None, max_length=32, description="Unique pupil number")
    former_upns: list[str] = Field(default_factory=list, max_length=10)
    uln: str | None = Field(default=None, max_length=16, description="Unique learner number")
    surname: str | None = Field(default=None, max_length=128)
    forename: str | None = Field(default=None, max_length=128)
    middle_names: str | None = Field(default=None, max_length=128)
    preferred_surname: str | None = Field(default=None, max_length=128)
    preferred_forename: str | None = Field(default=None, max_length=128)
    date_of_birth: date | None = None
    gender: Literal["M", "F", "U"] | None = None
    address: PostalAddress | None = None
    disabilities: list[DisabilityCode] = Field(default_factory=list, max_length=13)
    sen_history: list[SenRecordIn] = Field(default_factory=list)
    attendance: list[AttendanceIn] = Field(default_factory=list)
    exclusions: list[ExclusionIn] = Field(default_factory=list)
    placements: list[PlacementIn] = Field(default_factory=list)
    contacts: list[ContactIn] = Field(default_factory=list)
    staff: list[StaffIn] = Field(default_factory=list)


PUPIL_LISTS = ("sen_history", "attendance", "exclusions", "placements", "contacts", "staff")

EXAMPLE: dict[str, Any] = {
    "message_id": "mis-2024-09-30-000123",
    "sent_at": "2024-09-30T16:05:00+01:00",
    "system": "Example MIS 4.2",
    "school": {
        "la_code": "999",
        "estab": "2001",
        "urn": "100001",
        "name": "Example Primary School",
    },
    "pupils": [
        {
            "upn": "A999200100001",
            "surname": "Example",
            "forename": "Sam",
            "date_of_birth": "2016-02-29",
            "gender": "F",
            "address": {"lines": ["1 Test Street"], "town": "Exampleton", "postcode": "ZZ99 9ZZ"},
            "sen_history": [
                {
                    "provision": "K",
                    "start_date": "2022-09-05",
                    "needs": [{"type": "SLCN", "rank": 1}],
                }
            ],
            "attendance": [
                {
                    "academic_year": 2023,
                    "sessions_possible": 380,
                    "sessions_attended": 360,
                    "sessions_authorised_absence": 16,
                    "sessions_unauthorised_absence": 4,
                }
            ],
            "placements": [
                {"estab": "2001", "entry_date": "2020-09-02", "phase": "primary", "nc_year": "4"}
            ],
            "contacts": [
                {
                    "order": 1,
                    "relationship": "PAM",
                    "parental_responsibility": True,
                    "surname": "Example",
                    "forename": "Alex",
                    "lives_with_child": True,
                    "phones": [{"use": "mobile", "number": "07700 900000"}],
                }
            ],
            "staff": [
                {
                    "staff_id": "T042",
                    "role": "senco",
                    "since": "2022-09-05",
                    "contact": "senco@example.org, 0113 496 0042",
                    "name": "Ms Jo Example",
                }
            ],
        }
    ],
}


class SchoolMisMessage(BaseModel):
    """A school MIS message to the TAC hub: the school, then facts about its pupils.

    Dates are ISO 8601 (yyyy-mm-dd); `sent_at` carries its UTC offset. Codes are the DfE
    code sets the CTF uses. Identifiers are sent as held; the hub validates them."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="School MIS message",
        json_schema_extra={"examples": [EXAMPLE]},
    )

    message_id: str = Field(
        min_length=1, max_length=200, description="Unique per message: the idempotency key"
    )
    sent_at: AwareDatetime = Field(description="When the MIS produced the message")
    system: str | None = Field(default=None, max_length=128, description="Sending MIS and version")
    school: SchoolIn
    pupils: list[PupilIn] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    schema = SchoolMisMessage.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """The contract file's expected content."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_school_mis_json(
    data: bytes, *, agency: str, now: datetime | None = None
) -> AdapterResult:
    """Parse one school MIS JSON message. Raises `PermanentError` when it is not JSON or its
    message id, time or school is missing or invalid; otherwise each pupil is read and every
    part not taken is explained by its JSON path. `now` (default: the current time) bounds
    dates that cannot be in the future, such as a date of birth."""
    raw = parse_json(data, document="school MIS message")
    if not isinstance(raw, dict):
        raise PermanentError("a school MIS message is a JSON object", field="json")
    try:
        header = SchoolMisMessage.model_validate({**raw, "pupils": []})
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "json"
        raise PermanentError(str(err["msg"]), field=field) from None
    result = AdapterResult(message_id=header.message_id)
    school = header.school
    try:
        source = Source(
            agency=agency,
            organisation_code=school.urn
            or (f"{school.la_code}{school.estab}" if school.estab else school.la_code),
            system=header.system,
            message_id=header.message_id,
        )
    except ValidationError:
        raise PermanentError("the agency name must be 1-64 characters", field="agency") from None
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    sent_at = min(header.sent_at.astimezone(UTC), moment)
    reader = _PupilReader(result, source, sent_at, sent_at.date(), school.name)
    unknown: dict[str, str] = {}
    for key in raw:
        if key not in SchoolMisMessage.model_fields:
            unknown[f"/{key}"] = "unknown field: not read"
    for i, pupil_raw in enumerate(items_of(raw, "pupils", "", result.not_taken)):
        reader.read(pupil_raw, f"/pupils/{i}", unknown)
    for ref, reason in unknown.items():
        result.not_taken.append(
            NotTaken(
                ref=ref,
                reason=reason,
                kind="unsupported",
                field=ref.rsplit("/", 1)[-1],
                rule="hub.not_read",
            )
        )
    return result


class _PupilReader:
    def __init__(
        self,
        result: AdapterResult,
        source: Source,
        sent_at: datetime,
        today: date,
        school_name: str | None = None,
    ) -> None:
        self.result = result
        self.source = source
        self.sent_at = sent_at
        self.today = today
        self.school_name = (school_name or "").strip() or None
        """The sending school's name: the organisation its staff join the team for."""

    def fact(
        self,
        subject: Subject,
        payload: EventPayload | None,
        when: datetime,
        ref: str,
        category: str | None = None,
    ) -> None:
        if payload is not None:
            self.result.facts.append(
                InboundFact(
                    subject=subject,
                    payload=payload,
                    occurred_at=when,
                    source=self.source,
                    ref=ref,
                    category=category,
                )
            )

    def read(self, raw: object, ref: str, unknown: dict[str, str]) -> None:
        nt = self.result.not_taken
        pupil = validate_part(
            PupilIn, raw, ref, nt, lists=PUPIL_LISTS, unknown=unknown, pattern="/pupils/*"
        )
        if pupil is None:
            return
        if pupil.date_of_birth is not None and pupil.date_of_birth > self.today:
            nt.append(
                NotTaken(
                    ref=f"{ref}/date_of_birth",
                    reason="the date of birth is after the message was sent",
                    field="date_of_birth",
                    rule=RULE_DATE_IN_FUTURE,
                )
            )
            pupil = pupil.model_copy(update={"date_of_birth": None})
        try:
            subject = Subject(
                upn=pupil.upn,
                former_upn=pupil.former_upns[0] if pupil.former_upns else None,
                given_name=pupil.forename,
                family_name=pupil.surname,
                date_of_birth=pupil.date_of_birth,
                postcode=pupil.address.postcode if pupil.address else None,
            )
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                nt.append(
                    NotTaken(
                        ref=ref,
                        reason=str(err["msg"]),
                        field=".".join(map(str, err["loc"])),
                        rule="hub.subject",
                    )
                )
            return
        identity = build_payload(
            PupilIdentified,
            ref,
            nt,
            {
                **pupil.model_dump(
                    include=set(PupilIdentified.model_fields) - {"former_upns", "address"}
                ),
                "former_upns": tuple(pupil.former_upns),
                "address": pupil.address,
            },
        )
        self.fact(subject, identity, self.sent_at, ref)
        if pupil.disabilities:
            payload: EventPayload | None = build_payload(
                DisabilityRecorded,
                f"{ref}/disabilities",
                nt,
                {"disabilities": tuple(pupil.disabilities)},
            )
            self.fact(subject, payload, self.sent_at, f"{ref}/disabilities", category="education")
        sub = f"{ref}/" + "{}/{}"
        for j, item in enumerate(items_of(raw, "sen_history", ref, nt)):
            sen = validate_part(
                SenRecordIn,
                item,
                sub.format("sen_history", j),
                nt,
                unknown=unknown,
                pattern="/pupils/*/sen_history/*",
            )
            if sen is not None:
                status = build_payload(
                    SenStatusRecorded,
                    sub.format("sen_history", j),
                    nt,
                    {
                        "sen_provision": sen.provision,
                        "start_date": sen.start_date,
                        "end_date": sen.end_date,
                        "needs": tuple(SenNeedRanked(type=n.type, rank=n.rank) for n in sen.needs),
                    },
                )
                self.fact(
                    subject,
                    status,
                    day_start(sen.end_date or sen.start_date),
                    sub.format("sen_history", j),
                )
        for j, item in enumerate(items_of(raw, "attendance", ref, nt)):
            year = validate_part(
                AttendanceIn,
                item,
                sub.format("attendance", j),
                nt,
                unknown=unknown,
                pattern="/pupils/*/attendance/*",
            )
            if year is not None:
                payload = build_payload(
                    AttendanceRecorded, sub.format("attendance", j), nt, year.model_dump()
                )
                when = min(day_start(date(year.academic_year + 1, 8, 31)), self.sent_at)
                self.fact(subject, payload, when, sub.format("attendance", j))
        for j, item in enumerate(items_of(raw, "exclusions", ref, nt)):
            ex = validate_part(
                ExclusionIn,
                item,
                sub.format("exclusions", j),
                nt,
                unknown=unknown,
                pattern="/pupils/*/exclusions/*",
            )
            if ex is not None:
                values = ex.model_dump(exclude={"category", "reasons"})
                values.update(exclusion_category=ex.category, reasons=tuple(ex.reasons))
                payload = build_payload(ExclusionRecorded, sub.format("exclusions", j), nt, values)
                self.fact(subject, payload, day_start(ex.start_date), sub.format("exclusions", j))
        for j, item in enumerate(items_of(raw, "placements", ref, nt)):
            place = validate_part(
                PlacementIn,
                item,
                sub.format("placements", j),
                nt,
                unknown=unknown,
                pattern="/pupils/*/placements/*",
            )
            if place is not None:
                payload = build_payload(
                    PlacementRecorded, sub.format("placements", j), nt, place.model_dump()
                )
                self.fact(
                    subject,
                    payload,
                    day_start(place.leaving_date or place.entry_date),
                    sub.format("placements", j),
                )
        for j, item in enumerate(items_of(raw, "contacts", ref, nt)):
            self.read_contact(item, subject, sub.format("contacts", j), unknown)
        org = self.source.organisation_code
        for j, item in enumerate(items_of(raw, "staff", ref, nt)):
            staff = validate_part(
                StaffIn,
                item,
                sub.format("staff", j),
                nt,
                unknown=unknown,
                pattern="/pupils/*/staff/*",
            )
            if staff is not None:
                payload = build_payload(
                    PractitionerJoined,
                    sub.format("staff", j),
                    nt,
                    {
                        "practitioner_id": f"school:{org}:{staff.staff_id}",
                        "role": staff.role,
                        "agency": "education",
                        "organisation_code": org,
                        "since": staff.since,
                        "contact": staff.contact,
                        "name": staff.name,
                        "organisation_name": self.school_name,
                    },
                )
                self.fact(subject, payload, day_start(staff.since), sub.format("staff", j))

    def read_contact(
        self, item: object, subject: Subject, ref: str, unknown: dict[str, str]
    ) -> None:
        nt = self.result.not_taken
        contact = validate_part(
            ContactIn, item, ref, nt, unknown=unknown, pattern="/pupils/*/contacts/*"
        )
        if contact is None:
            return
        if not contact.parental_responsibility:
            nt.append(
                NotTaken(
                    ref=ref,
                    reason="the contact does not hold parental responsibility: the hub takes only "
                    "contacts who do (data minimisation)",
                    kind="unsupported",
                    field="parental_responsibility",
                    rule="hub.contact_without_parental_responsibility",
                )
            )
            return
        points = [ContactPoint(system="phone", value=p.number, use=p.use) for p in contact.phones]
        if contact.email:
            points.append(ContactPoint(system="email", value=contact.email))
        address = None
        if contact.address is not None:
            a = contact.address
            address = ContactAddress(
                lines=(*a.lines, *([a.county] if a.county else [])),
                city=a.town,
                postcode=a.postcode,
            )
        payload = build_payload(
            ContactRecorded,
            ref,
            nt,
            {
                **contact.model_dump(exclude={"order", "address", "phones", "email"}),
                "contact_order": contact.order,
                "address": address,
                "contact_points": tuple(points),
            },
        )
        self.fact(subject, payload, self.sent_at, ref)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    print(target)  # noqa: T201 - a command-line entry point prints what it wrote
