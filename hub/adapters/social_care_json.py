"""Social care adapter for the hub's own JSON message form, for case-management systems
(Liquidlogic, Mosaic, Eclipse ...) sending as events happen rather than as census
returns: `SocialCareMessage` is the contract (exported as JSON Schema 2020-12 to
contracts/inbound/social-care.schema.json, checked for drift by a test) and
`parse_social_care_json` turns one message into the facts the CIN census and SSDA903
adapters yield, plus each allocated social worker (`team.practitioner_joined`, filed under
`social_care`: that a child has a social worker is itself sensitive). The CIN census rules
on dates within an episode are applied with the same codes and messages; the sender's
`message_id` is the idempotency key; a bad part is reported by its JSON path and the rest
is taken.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from hub.adapters.cin import RULES as CIN_RULES
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
from hub.events.envelope import EventPayload, Source
from hub.events.safeguarding import CategoryOfAbuse, ChildProtectionPlanRecorded, Section47Recorded
from hub.events.social_care import (
    AssessmentFactor,
    AssessmentRecorded,
    ChildIdentified,
    CinEpisodeRecorded,
    CinPlanRecorded,
    ClosureReason,
    DisabilityCode,
    DisabilityRecorded,
    LegalStatus,
    LookedAfterEpisodeRecorded,
    LookedAfterNeed,
    PlacementProvider,
    PlacementType,
    PrimaryNeed,
    ReasonEpisodeCeased,
    ReasonNewEpisode,
    ReasonPlaceChange,
    ReferralSource,
    UpnUnknownReason,
)
from hub.events.team import PractitionerJoined
from hub.ingest.model import AdapterResult, InboundFact, NotTaken, Subject

SCHEMA_PATH = packaged("inbound", "social-care.schema.json")
SCHEMA_ID = "https://tac-hub.example/contracts/inbound/social-care.schema.json"
_CONFIG = ConfigDict(frozen=True, extra="ignore")


class AssessmentIn(BaseModel):
    """A child and family assessment within the episode."""

    model_config = _CONFIG

    start_date: date
    internal_review_date: date | None = None
    authorisation_date: date | None = None
    factors: list[AssessmentFactor] = Field(
        default_factory=list, description="CIN census factor codes"
    )


class CinPlanIn(BaseModel):
    """A child-in-need plan within the episode."""

    model_config = _CONFIG

    start_date: date
    end_date: date | None = None


class Section47In(BaseModel):
    """A section 47 enquiry within the episode."""

    model_config = _CONFIG

    start_date: date
    initial_cpc_target: date | None = None
    initial_cpc_date: date | None = None
    icpc_not_required: bool = False


class CpPlanIn(BaseModel):
    """A child protection plan within the episode."""

    model_config = _CONFIG

    start_date: date
    end_date: date | None = None
    initial_category: CategoryOfAbuse
    latest_category: CategoryOfAbuse
    previous_plans: int | None = Field(default=None, ge=0, le=99)
    review_dates: list[date] = Field(default_factory=list)


class CinEpisodeIn(BaseModel):
    """A children-in-need episode and what happened in it (CIN census code sets)."""

    model_config = _CONFIG

    referral_date: date
    referral_source: ReferralSource | None = None
    primary_need: PrimaryNeed | None = None
    referral_nfa: bool | None = None
    initial_cpc_date: date | None = None
    closure_date: date | None = None
    closure_reason: ClosureReason | None = None
    assessments: list[AssessmentIn] = Field(default_factory=list)
    cin_plans: list[CinPlanIn] = Field(default_factory=list)
    section47_enquiries: list[Section47In] = Field(default_factory=list)
    cp_plans: list[CpPlanIn] = Field(default_factory=list)


class LookedAfterEpisodeIn(BaseModel):
    """An episode of being looked after (SSDA903 code sets)."""

    model_config = _CONFIG

    start_date: date
    reason_new_episode: ReasonNewEpisode
    legal_status: LegalStatus
    category_of_need: LookedAfterNeed
    placement_type: PlacementType
    placement_provider: PlacementProvider | None = None
    end_date: date | None = None
    reason_ceased: ReasonEpisodeCeased | None = None
    reason_place_change: ReasonPlaceChange | None = None
    placement_urn: str | None = Field(default=None, pattern=r"^(SC)?[0-9]{6,7}$")


class WorkerIn(BaseModel):
    """A practitioner allocated to the child."""

    model_config = _CONFIG

    worker_id: str = Field(
        min_length=1, max_length=64, description="The case system's own worker reference"
    )
    role: Literal["social_worker", "occupational_therapist", "key_worker"] = "social_worker"
    since: date
    contact: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="How to reach them at work: a work phone, email or duty team line",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Their name as the case system gives it: sealed on the hub's log with the "
        "child's key",
    )


class ChildIn(BaseModel):
    """One child: identifiers, then what children's social care records about them."""

    model_config = _CONFIG

    la_child_id: str = Field(min_length=1, max_length=64, description="The LA's own child id")
    upn: str | None = Field(default=None, max_length=32)
    former_upn: str | None = Field(default=None, max_length=32)
    upn_unknown_reason: UpnUnknownReason | None = None
    nhs_number: str | None = Field(default=None, max_length=32)
    date_of_birth: date | None = None
    expected_date_of_birth: date | None = None
    date_of_death: date | None = None
    sex: Literal["M", "F", "U"] | None = None
    disabilities: list[DisabilityCode] = Field(default_factory=list, max_length=13)
    cin_episodes: list[CinEpisodeIn] = Field(default_factory=list)
    looked_after_episodes: list[LookedAfterEpisodeIn] = Field(default_factory=list)
    allocated_workers: list[WorkerIn] = Field(default_factory=list)


CHILD_LISTS = ("cin_episodes", "looked_after_episodes", "allocated_workers")
EPISODE_LISTS = ("assessments", "cin_plans", "section47_enquiries", "cp_plans")

EXAMPLE: dict[str, Any] = {
    "message_id": "csc-000000-42",
    "sent_at": "2024-10-01T09:30:00Z",
    "la_code": "999",
    "la_name": "Example County Council",
    "system": "Example case system 7",
    "children": [
        {
            "la_child_id": "C0001",
            "upn": "A999200100001",
            "date_of_birth": "2016-02-29",
            "sex": "F",
            "disabilities": ["COMM", "LD"],
            "cin_episodes": [
                {
                    "referral_date": "2024-01-10",
                    "referral_source": "2A",
                    "primary_need": "N2",
                    "referral_nfa": False,
                    "assessments": [
                        {
                            "start_date": "2024-01-12",
                            "authorisation_date": "2024-02-20",
                            "factors": ["5A", "6A"],
                        }
                    ],
                    "cin_plans": [{"start_date": "2024-03-01"}],
                }
            ],
            "allocated_workers": [
                {
                    "worker_id": "SW17",
                    "role": "social_worker",
                    "since": "2024-01-12",
                    "contact": "Duty team, 0113 496 0017",
                    "name": "Sam Example",
                }
            ],
        }
    ],
}


class SocialCareMessage(BaseModel):
    """A children's social care message to the TAC hub: the LA, then facts about children.

    Dates are ISO 8601 (yyyy-mm-dd); `sent_at` carries its UTC offset. Codes are the DfE CIN
    census and SSDA903 code sets. Identifiers are sent as held; the hub validates them."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="Social care message",
        json_schema_extra={"examples": [EXAMPLE]},
    )

    message_id: str = Field(
        min_length=1, max_length=200, description="Unique per message: the idempotency key"
    )
    sent_at: AwareDatetime = Field(description="When the case system produced the message")
    la_code: str = Field(
        pattern=r"^[0-9]{3}$", description="DfE 3-digit code of the LA whose child ids these are"
    )
    la_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The LA's name (e.g. 'Example County Council'): the organisation its "
        "allocated workers join the team for",
    )
    system: str | None = Field(
        default=None, max_length=128, description="Sending system and version"
    )
    children: list[ChildIn] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    schema = SocialCareMessage.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """The contract file's expected content."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_social_care_json(
    data: bytes, *, agency: str, now: datetime | None = None
) -> AdapterResult:
    """Parse one social care JSON message. Raises `PermanentError` when it is not JSON or its
    message id, time or LA code is missing or invalid; otherwise each child is read and every
    part not taken is explained by its JSON path. `now` bounds dates that cannot be future."""
    raw = parse_json(data, document="social care message")
    if not isinstance(raw, dict):
        raise PermanentError("a social care message is a JSON object", field="json")
    try:
        header = SocialCareMessage.model_validate({**raw, "children": []})
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "json"
        raise PermanentError(str(err["msg"]), field=field) from None
    result = AdapterResult(message_id=header.message_id)
    try:
        source = Source(
            agency=agency,
            organisation_code=header.la_code,
            system=header.system,
            message_id=header.message_id,
        )
    except ValidationError:
        raise PermanentError("the agency name must be 1-64 characters", field="agency") from None
    reader = _ChildReader(result, source, header, (now or datetime.now(UTC)).astimezone(UTC))
    for key in raw:
        if key not in SocialCareMessage.model_fields:
            reader.unknown[f"/{key}"] = "unknown field: not read"
    for i, child in enumerate(items_of(raw, "children", "", result.not_taken)):
        reader.read_child(child, f"/children/{i}")
    for ref, reason in reader.unknown.items():
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


class _ChildReader:
    def __init__(
        self, result: AdapterResult, source: Source, header: SocialCareMessage, now: datetime
    ) -> None:
        self.result = result
        self.nt = result.not_taken
        self.source = source
        self.la_code = header.la_code
        self.la_name = (header.la_name or "").strip() or None
        self.sent_at = min(header.sent_at.astimezone(UTC), now)
        self.today = self.sent_at.date()
        """Latest date anything in the message can have: when it was sent (never after now)."""
        """Latest date anything in the message can have: when it was sent (never after now)."""
        self.unknown: dict[str, str] = {}

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

    def part(
        self, model: type[Any], raw: object, ref: str, pattern: str, lists: tuple[str, ...] = ()
    ) -> Any:
        return validate_part(
            model, raw, ref, self.nt, lists=lists, unknown=self.unknown, pattern=pattern
        )

    def rules(self, ref: str, broken: list[tuple[str, str]]) -> bool:
        """Report catalogue rules broken at `ref`; True when none were."""
        for code, field in broken:
            self.nt.append(NotTaken(ref=ref, reason=CIN_RULES[code], field=field, rule=code))
        return not broken

    def future(self, ref: str, **dates: date | None) -> bool:
        """Report dates after the message was sent; True when none are."""
        late = [name for name, value in dates.items() if value is not None and value > self.today]
        for name in late:
            self.nt.append(
                NotTaken(
                    ref=ref,
                    reason=f"{name} is later than the message was sent",
                    field=name,
                    rule=RULE_DATE_IN_FUTURE,
                )
            )
        return not late

    def read_child(self, raw: object, ref: str) -> None:
        child: ChildIn | None = self.part(ChildIn, raw, ref, "/children/*", CHILD_LISTS)
        if child is None:
            return
        identity_ok = self.future(
            ref, date_of_birth=child.date_of_birth, date_of_death=child.date_of_death
        )
        dob = child.date_of_birth if identity_ok else None
        try:
            subject = Subject(
                la_code=self.la_code,
                la_child_id=child.la_child_id,
                upn=child.upn,
                former_upn=child.former_upn,
                nhs_number=child.nhs_number,
                date_of_birth=dob,
            )
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                self.nt.append(
                    NotTaken(
                        ref=ref,
                        reason=str(err["msg"]),
                        field=".".join(map(str, err["loc"])),
                        rule="hub.subject",
                    )
                )
            return
        if identity_ok:
            values = child.model_dump(include=set(ChildIdentified.model_fields))
            values["la_code"] = self.la_code
            self.fact(
                subject, build_payload(ChildIdentified, ref, self.nt, values), self.sent_at, ref
            )
        if child.disabilities:
            payload: EventPayload | None = build_payload(
                DisabilityRecorded,
                f"{ref}/disabilities",
                self.nt,
                {"disabilities": tuple(child.disabilities)},
            )
            self.fact(subject, payload, self.sent_at, f"{ref}/disabilities")
        for j, item in enumerate(items_of(raw, "cin_episodes", ref, self.nt)):
            self.read_episode(item, subject, f"{ref}/cin_episodes/{j}")
        for j, item in enumerate(items_of(raw, "looked_after_episodes", ref, self.nt)):
            la_ref = f"{ref}/looked_after_episodes/{j}"
            episode = self.part(
                LookedAfterEpisodeIn, item, la_ref, "/children/*/looked_after_episodes/*"
            )
            if episode is not None and self.future(
                la_ref, start_date=episode.start_date, end_date=episode.end_date
            ):
                payload = build_payload(
                    LookedAfterEpisodeRecorded, la_ref, self.nt, episode.model_dump()
                )
                self.fact(
                    subject, payload, day_start(episode.end_date or episode.start_date), la_ref
                )
        for j, item in enumerate(items_of(raw, "allocated_workers", ref, self.nt)):
            w_ref = f"{ref}/allocated_workers/{j}"
            worker = self.part(WorkerIn, item, w_ref, "/children/*/allocated_workers/*")
            if worker is not None:
                payload = build_payload(
                    PractitionerJoined,
                    w_ref,
                    self.nt,
                    {
                        "practitioner_id": f"la:{self.la_code}:{worker.worker_id}",
                        "role": worker.role,
                        "agency": "social_care",
                        "organisation_code": self.la_code,
                        "since": worker.since,
                        "contact": worker.contact,
                        "name": worker.name,
                        "organisation_name": self.la_name,
                    },
                )
                self.fact(subject, payload, day_start(worker.since), w_ref, category="social_care")

    def read_episode(self, raw: object, subject: Subject, ref: str) -> None:
        pattern = "/children/*/cin_episodes/*"
        ep: CinEpisodeIn | None = self.part(CinEpisodeIn, raw, ref, pattern, EPISODE_LISTS)
        if ep is None:
            return
        referral, closure = ep.referral_date, ep.closure_date
        broken: list[tuple[str, str]] = []
        if closure is not None and closure < referral:
            broken.append(("8630", "closure_date"))
        if closure is not None and ep.closure_reason is None:
            broken.append(("8805", "closure_reason"))
        if ep.closure_reason is not None and closure is None:
            broken.append(("8810", "closure_date"))
        if ep.initial_cpc_date is not None and ep.initial_cpc_date < referral:
            broken.append(("1104", "initial_cpc_date"))
        ok = self.future(
            ref, referral_date=referral, closure_date=closure, initial_cpc_date=ep.initial_cpc_date
        )
        if self.rules(ref, broken) and ok:
            values = ep.model_dump(exclude=set(EPISODE_LISTS))
            self.fact(
                subject,
                build_payload(CinEpisodeRecorded, ref, self.nt, values),
                day_start(closure or referral),
                ref,
            )

        def after_closure(**dates: date | None) -> list[tuple[str, str]]:
            """Rule 8565 against each field dated after the episode closed (the late one)."""
            if closure is None:
                return []
            return [("8565", name) for name, d in dates.items() if d is not None and d > closure]

        for k, item in enumerate(items_of(raw, "assessments", ref, self.nt)):
            a_ref = f"{ref}/assessments/{k}"
            a: AssessmentIn | None = self.part(
                AssessmentIn, item, a_ref, f"{pattern}/assessments/*"
            )
            if a is None:
                continue
            broken = []
            if a.start_date < referral:
                broken.append(("1103", "start_date"))
            if a.authorisation_date is not None and a.authorisation_date < a.start_date:
                broken.append(("8608", "authorisation_date"))
            broken += after_closure(
                start_date=a.start_date, authorisation_date=a.authorisation_date
            )
            if "21" in a.factors and len(set(a.factors)) > 1:
                broken.append(("8869", "factors"))
            ok = self.future(
                a_ref, start_date=a.start_date, authorisation_date=a.authorisation_date
            )
            if self.rules(a_ref, broken) and ok:
                values = {
                    **a.model_dump(),
                    "referral_date": referral,
                    "factors": tuple(dict.fromkeys(a.factors)),
                }
                payload: EventPayload | None = build_payload(
                    AssessmentRecorded, a_ref, self.nt, values
                )
                self.fact(subject, payload, day_start(a.authorisation_date or a.start_date), a_ref)
        for k, item in enumerate(items_of(raw, "cin_plans", ref, self.nt)):
            p_ref = f"{ref}/cin_plans/{k}"
            plan: CinPlanIn | None = self.part(CinPlanIn, item, p_ref, f"{pattern}/cin_plans/*")
            if plan is None:
                continue
            broken = []
            if plan.end_date is not None and plan.end_date < plan.start_date:
                broken.append(("4011", "end_date"))
            if plan.start_date < referral:
                broken.append(("4015", "start_date"))
            broken += after_closure(start_date=plan.start_date, end_date=plan.end_date)
            ok = self.future(p_ref, start_date=plan.start_date, end_date=plan.end_date)
            if self.rules(p_ref, broken) and ok:
                payload = build_payload(
                    CinPlanRecorded,
                    p_ref,
                    self.nt,
                    {**plan.model_dump(), "referral_date": referral},
                )
                self.fact(subject, payload, day_start(plan.end_date or plan.start_date), p_ref)
        for k, item in enumerate(items_of(raw, "section47_enquiries", ref, self.nt)):
            s_ref = f"{ref}/section47_enquiries/{k}"
            s47: Section47In | None = self.part(
                Section47In, item, s_ref, f"{pattern}/section47_enquiries/*"
            )
            if s47 is None:
                continue
            broken = []
            if s47.initial_cpc_date is not None and s47.initial_cpc_date < s47.start_date:
                broken.append(("8615", "initial_cpc_date"))
            if s47.start_date < referral:
                broken.append(("2889", "start_date"))
            if s47.initial_cpc_date is not None and s47.initial_cpc_date < referral:
                broken.append(("1104", "initial_cpc_date"))
            broken += after_closure(
                start_date=s47.start_date, initial_cpc_date=s47.initial_cpc_date
            )
            ok = self.future(
                s_ref, start_date=s47.start_date, initial_cpc_date=s47.initial_cpc_date
            )
            if self.rules(s_ref, broken) and ok:
                payload = build_payload(
                    Section47Recorded,
                    s_ref,
                    self.nt,
                    {**s47.model_dump(), "referral_date": referral},
                )
                self.fact(
                    subject, payload, day_start(s47.initial_cpc_date or s47.start_date), s_ref
                )
        for k, item in enumerate(items_of(raw, "cp_plans", ref, self.nt)):
            c_ref = f"{ref}/cp_plans/{k}"
            cpp: CpPlanIn | None = self.part(CpPlanIn, item, c_ref, f"{pattern}/cp_plans/*")
            if cpp is None:
                continue
            broken = []
            if cpp.start_date < referral:
                broken.append(("1105", "start_date"))
            if cpp.end_date is not None and cpp.end_date < cpp.start_date:
                broken.append(("8925", "end_date"))
            elif cpp.end_date is not None and cpp.end_date == cpp.start_date:
                broken.append(("8840", "end_date"))
            if any(r <= cpp.start_date for r in cpp.review_dates):
                broken.append(("8841", "review_dates"))
            broken += after_closure(end_date=cpp.end_date)
            ok = self.future(c_ref, start_date=cpp.start_date, end_date=cpp.end_date)
            if self.rules(c_ref, broken) and ok:
                values = {
                    **cpp.model_dump(),
                    "referral_date": referral,
                    "review_dates": tuple(sorted(set(cpp.review_dates))),
                }
                payload = build_payload(ChildProtectionPlanRecorded, c_ref, self.nt, values)
                self.fact(subject, payload, day_start(cpp.end_date or cpp.start_date), c_ref)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    print(target)  # noqa: T201 - a command-line entry point prints what it wrote
