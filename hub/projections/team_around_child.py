"""The team around the child: who is around one child, and how to reach the family.

The projection (`team_around_child`, table `tac_fact`) keeps every permitted fact the
team view is made of — practitioners joining and leaving, key working, meetings and
their actions, advice submitted (a practitioner's latest contribution), the child's
identity, setting and SEN status, and the family's people — sealed exactly as logged,
with the metadata the consent policy decides on (category, source agency and
organisation, purposes, claimed basis) and the practitioner it concerns. It decides
nothing: the query layer re-decides every fact for the caller at view time, opens only
the visible ones and folds them with `fold_team` into a `TeamView`; a member whose
joining fact the caller may not see (CAMHS, sexual health, safeguarding) is left out
with everything about them. Rows are dropped on `identity.child_erased` and, per
category, on `identity.category_erased`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.events.envelope import DEFAULT_PURPOSES, Envelope
from hub.events.identity import CategoryErased, ChildErased
from hub.log import LogName
from hub.projections.base import Applied, sharing_columns
from hub.store import Tx

TEAM_EVENT_TYPES = frozenset(
    {
        "team.practitioner_joined",
        "team.practitioner_left",
        "team.key_worker_assigned",
        "team.key_worker_handover_started",
        "team.key_worker_cover_arranged",
        "team.key_working_ended",
        "team.meeting_held",
        "team.meeting_action_completed",
        "plan.advice_submitted",
        "family.related_person_recorded",
        "family.contact_recorded",
        "education.pupil_identified",
        "education.placement_recorded",
        "education.sen_status_recorded",
        "health.patient_identified",
        "social_care.child_identified",
    }
)
"""The facts the team view is made of."""

DOB_EVENT_TYPES = frozenset(
    {"education.pupil_identified", "health.patient_identified", "social_care.child_identified"}
)
"""Facts that carry the child's date of birth."""

# --------------------------------------------------------------------------- stored facts

FACT_SELECT = (
    "event_id, child_id, event_type, category, agency, organisation, occurred_at,"
    " purposes, basis_claimed"
)


@dataclass(frozen=True, slots=True)
class SealedFact:
    """One stored fact: what the consent policy decides on, and the body as logged."""

    event_id: str
    child_id: str
    event_type: str
    category: str
    agency: str
    organisation: str | None
    occurred_at: str
    purposes: tuple[str, ...]
    basis_claimed: str | None
    body: bytes
    subject_ref: str | None = None
    plan_id: str | None = None

    @classmethod
    def from_row(
        cls, row: Sequence[Any], *, subject_ref: str | None = None, plan_id: str | None = None
    ) -> SealedFact:
        """From a row of `FACT_SELECT` followed by the body."""
        purposes = str(row[7]) if row[7] else ",".join(DEFAULT_PURPOSES)
        return cls(
            event_id=str(row[0]),
            child_id=str(row[1]),
            event_type=str(row[2]),
            category=str(row[3]),
            agency=str(row[4]),
            organisation=None if row[5] is None else str(row[5]),
            occurred_at=str(row[6]),
            purposes=tuple(purposes.split(",")),
            basis_claimed=None if row[8] is None else str(row[8]),
            body=bytes(row[9]),
            subject_ref=subject_ref,
            plan_id=plan_id,
        )


def fact_columns(a: Applied) -> tuple[Any, ...]:
    """The columns every sealed-fact table starts with (what a view-time decision needs),
    for one applied event."""
    env = a.envelope
    purposes, basis = sharing_columns(env)
    return (
        str(env.event_id),
        env.child_id,
        a.position.partition,
        a.position.offset,
        env.event_type,
        env.category,
        env.source.agency,
        env.source.organisation_code,
        env.occurred_at.isoformat(),
        purposes,
        basis,
    )


async def drop_on_tombstone(tx: Tx, table: str, a: Applied) -> bool:
    """Delete a child's rows (or one category's) on an erasure tombstone; True if it was one."""
    payload = a.envelope.payload
    if isinstance(payload, ChildErased):
        await tx.execute(f"DELETE FROM {table} WHERE child_id = ?", (a.envelope.child_id,))  # noqa: S608 - the projection's own table
        return True
    if isinstance(payload, CategoryErased):
        await tx.execute(
            f"DELETE FROM {table} WHERE child_id = ? AND category = ?",  # noqa: S608 - own table
            (a.envelope.child_id, payload.erased_category),
        )
        return True
    return False


def _subject_ref(env: Envelope) -> str | None:
    """The practitioner a fact is about (an opaque id, never a name)."""
    value = getattr(env.payload, "practitioner_id", None)
    return value if isinstance(value, str) else None


class TeamAroundChildProjection:
    name = "team_around_child"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("tac_fact",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows: list[tuple[Any, ...]] = []
        for a in events:
            if a.envelope.event_type.startswith("identity."):
                if rows:  # keep log order: earlier facts go in before a tombstone
                    await self._insert(tx, rows)
                    rows = []
                await drop_on_tombstone(tx, "tac_fact", a)
                continue
            if a.envelope.event_type in TEAM_EVENT_TYPES:
                rows.append((*fact_columns(a), _subject_ref(a.envelope), a.raw))
        await self._insert(tx, rows)

    @staticmethod
    async def _insert(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
        await tx.executemany(
            "INSERT INTO tac_fact (event_id, child_id, part, log_offset, event_type, category,"
            " agency, organisation, occurred_at, purposes, basis_claimed, subject_ref, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )


async def load_team_facts(store: Any, child_id: str) -> list[SealedFact]:
    """The child's stored team facts in log order (`store` is a `ReadStore`)."""
    rows = await store.fetchall(
        f"SELECT {FACT_SELECT}, body, subject_ref FROM tac_fact WHERE child_id = ?"  # noqa: S608 - constant columns
        " ORDER BY part, log_offset",
        (child_id,),
    )
    return [SealedFact.from_row(r, subject_ref=None if r[10] is None else str(r[10])) for r in rows]


NAMING_TYPES = ("education.pupil_identified", "health.patient_identified")
"""The facts that name the child (`name_after`)."""


async def load_naming_facts(store: Any, child_ids: Sequence[str]) -> dict[str, list[SealedFact]]:
    """Each child's stored facts that name them, in log order, 500 children a query."""
    out: dict[str, list[SealedFact]] = {c: [] for c in child_ids}
    for i in range(0, len(child_ids), 500):
        chunk = list(child_ids[i : i + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = await store.fetchall(
            f"SELECT {FACT_SELECT}, body, subject_ref FROM tac_fact"  # noqa: S608 - constant columns
            f" WHERE child_id IN ({marks}) AND event_type IN (?, ?) ORDER BY part, log_offset",
            [*chunk, *NAMING_TYPES],
        )
        for r in rows:
            fact = SealedFact.from_row(r, subject_ref=None if r[10] is None else str(r[10]))
            out[fact.child_id].append(fact)
    return out


NAMING_FIELDS = ("forename", "middle_names", "surname", "given_names", "family_name")
"""The payload fields `name_after` reads (of either naming type)."""


def name_after(event_type: str, payload: Any, name: str | None) -> str | None:
    """The child's name after one more fact: the school's latest pupil record wins;
    health's patient record names the child only where no school has. `payload` is the
    payload model, or a mapping of (some of) `NAMING_FIELDS` as stored."""

    def get(field: str) -> Any:
        return payload.get(field) if isinstance(payload, Mapping) else getattr(payload, field)

    if event_type == "education.pupil_identified":
        return _name(*(_text(get(f)) for f in ("forename", "middle_names", "surname"))) or name
    if event_type == "health.patient_identified":
        given = get("given_names") or ()
        parts = [_text(g) for g in given] if isinstance(given, list | tuple) else []
        return name or _name(*parts, _text(get("family_name")))
    return name


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


PRACTITIONER_NAMING_FIELDS = ("practitioner_id", "role", "name", "organisation_name")
"""The fields of `team.practitioner_joined` that say who a practitioner is
(`practitioner_names`): a view that only names people opens just these."""


@dataclass(frozen=True, slots=True)
class PractitionerNaming:
    """A practitioner in words: their name, role and organisation as their visible
    joining facts give them, and the ids of those facts (what a view that names them
    rests on)."""

    practitioner_id: str
    name: str
    role: str | None
    organisation_name: str | None
    event_ids: tuple[str, ...]

    def words(self, roles: RoleVocabulary) -> str:
        """'Dr Priya Shah, educational psychologist'."""
        return self.name if self.role is None else f"{self.name}, {role_words(self.role, roles)}"


def practitioner_names(
    joined: Iterable[tuple[str, Any]], hidden: frozenset[str] = frozenset()
) -> dict[str, PractitionerNaming]:
    """Each named practitioner from their joining facts, in log order: (event id, the
    payload model or a mapping of `PRACTITIONER_NAMING_FIELDS` as stored). A later
    fact's name, role and organisation replace earlier ones; a fact without a name
    keeps the one known. `hidden` practitioners are never named."""
    out: dict[str, PractitionerNaming] = {}
    for event_id, payload in joined:

        def get(field: str, payload: Any = payload) -> str | None:
            value = payload.get(field) if isinstance(payload, Mapping) else getattr(payload, field)
            return _text(value)

        pid = get("practitioner_id")
        if pid is None or pid in hidden:
            continue
        known = out.get(pid)
        name = get("name") or (known.name if known else None)
        if name is None:
            continue
        out[pid] = PractitionerNaming(
            practitioner_id=pid,
            name=name,
            role=get("role") or (known.role if known else None),
            organisation_name=get("organisation_name")
            or (known.organisation_name if known else None),
            event_ids=(*(known.event_ids if known else ()), event_id),
        )
    return out


def role_words(role: str, roles: RoleVocabulary) -> str:
    """A role as words in a sentence: its vocabulary description with a lower-case first
    letter ('Educational psychologist' -> 'educational psychologist'; 'LA SEN casework
    officer' keeps its capitals), or the code's words when it is not in the vocabulary."""
    known = roles.get(role)
    label = known[0] if known else role.replace("_", " ")
    if len(label) > 1 and label[0].isupper() and not label[1].isupper():
        label = label[0].lower() + label[1:]
    return label


def hidden_practitioners(
    facts: Iterable[SealedFact], sees: Callable[[SealedFact], bool]
) -> frozenset[str]:
    """Practitioners whose involvement the caller may not see: the fact that introduced
    them to the team (their first `team.practitioner_joined`) is not visible."""
    first: dict[str, SealedFact] = {}
    for f in facts:
        if f.event_type == "team.practitioner_joined" and f.subject_ref:
            first.setdefault(f.subject_ref, f)
    return frozenset(p for p, f in first.items() if not sees(f))


# --------------------------------------------------------------------------- the view


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class IdentifierOut(_Out):
    system: Literal["upn", "nhs_number", "la_child_id", "uln"]
    value: str
    source_agency: str


class SettingOut(_Out):
    """The placement that is open (no leaving date), latest entry first."""

    school_name: str | None = None
    urn: str | None = None
    la_code: str | None = None
    estab: str | None = None
    phase: str | None = None
    provision_type: str | None = None
    nc_year: str | None = None
    since: date


class SenNeedOut(_Out):
    type: str
    rank: int


class SenStatusOut(_Out):
    provision: str = Field(description="E EHC plan, K SEN support, N no SEN")
    provision_label: str
    needs: list[SenNeedOut] = []
    since: date
    source_agency: str


class ChildOut(_Out):
    child_id: str
    name: str | None = None
    preferred_name: str | None = None
    date_of_birth: date | None = None
    identifiers: list[IdentifierOut] = []
    current_setting: SettingOut | None = None
    sen_status: SenStatusOut | None = None


class ContactOut(_Out):
    system: str | None = None
    value: str
    use: str | None = None


class FamilyMemberOut(_Out):
    name: str | None = None
    relationships: list[str] = []
    parental_responsibility: bool | None = None
    lives_with_child: bool | None = None
    priority: int | None = None
    contacts: list[ContactOut] = []
    sources: list[str] = Field(default=[], description="Agencies that named this person")


class WhoDecidesOut(_Out):
    decides: Literal["parent_with_pr", "young_person", "deputy", "representative", "unknown"]
    summary: str
    consents_given_by: list[str] = Field(
        default=[], description="Who gave the grants and refusals in force (capacity, reference)"
    )


class FamilyOut(_Out):
    members: list[FamilyMemberOut] = []
    who_decides: WhoDecidesOut


class ContributionOut(_Out):
    kind: Literal["advice", "meeting", "action_completed"]
    on: date
    event_id: str
    plan_id: str | None = None


class MemberOut(_Out):
    practitioner_id: str
    role: str
    role_label: str
    in_vocabulary: bool
    organisation_code: str | None = None
    contact: str | None = Field(
        default=None, description="How to reach them, where a joining fact carries it"
    )
    name: str | None = Field(default=None, description="Their name, where a joining fact gives it")
    organisation_name: str | None = Field(
        default=None,
        description="Their organisation's name: from a joining fact, else the name of the "
        "school with that URN or DfE number in the child's placements",
    )
    since: date
    until: date | None = None
    current: bool
    last_contribution: ContributionOut | None = None
    key_working_functions: list[str] = []


class AgencyGroupOut(_Out):
    agency: str
    count: int
    current: int
    members: list[MemberOut]


class CoverOut(_Out):
    """Who to contact when the key worker is absent."""

    cover_practitioner_id: str | None = Field(
        default=None, description="A current member of the team who covers"
    )
    role: str | None = None
    role_label: str | None = None
    name: str | None = Field(default=None, description="The covering practitioner's name")
    organisation_name: str | None = None
    contact: str | None = Field(default=None, description="The covering practitioner's contact")
    cover_contact: str | None = Field(default=None, description="A work contact for absence")
    arranged_on: date
    until: date | None = None


class KeyWorkerOut(_Out):
    """A current key worker (the single point of contact, in `key_worker`): who holds
    which key working functions, since when, at what level, and who covers them."""

    practitioner_id: str | None = None
    role: str | None = None
    role_label: str | None = None
    organisation_code: str | None = None
    contact: str | None = None
    name: str | None = None
    organisation_name: str | None = None
    model: str
    functions: list[str]
    assigned_on: date
    key_worker_id: str | None = Field(
        default=None, description="The practitioner id, or `family:...` for a family member"
    )
    family_member: Literal["parent_carer", "young_person"] | None = Field(
        default=None, description="A parent or the young person as their own key worker"
    )
    family_member_name: str | None = Field(
        default=None, description="As the family section (or the child's record) names them"
    )
    level: str | None = Field(default=None, description="moderate, high or intensive")
    since: date | None = Field(default=None, description="The start of this key working period")
    family_agreed_on: date | None = None
    choice_reason: str | None = None
    handing_over_until: date | None = Field(
        default=None, description="Handing over to `handing_over_to`: their last day"
    )
    handing_over_to: str | None = None
    cover: CoverOut | None = None


class KeyWorkingPeriodOut(_Out):
    """One period of key working, current or past."""

    key_worker_id: str
    practitioner_id: str | None = None
    family_member: Literal["parent_carer", "young_person"] | None = None
    role_label: str | None = None
    model: str
    functions: list[str]
    level: str | None = None
    started_on: date
    family_agreed_on: date | None = None
    choice_reason: str | None = None
    ended_on: date | None = Field(default=None, description="The last day (none: open)")
    ended_because: Literal["left_the_team", "handed_over", "ended"] | None = None
    end_reason: str | None = Field(default=None, description="Why, where it was recorded")
    handed_over_to: str | None = None
    current: bool


class ActionOut(_Out):
    action_id: str
    meeting_id: str
    held_on: date
    text: str
    owner_id: str
    owner_role: str | None = None
    owner_name: str | None = None
    due_on: date
    overdue: bool


class TeamView(_Out):
    child_id: str
    as_of: date
    child: ChildOut
    family: FamilyOut
    key_worker: KeyWorkerOut | None = None
    key_working_model: str | None = None
    key_workers: list[KeyWorkerOut] = Field(
        default=[], description="Every current key worker: in a handover, both until it ends"
    )
    key_working_periods: list[KeyWorkingPeriodOut] = Field(
        default=[], description="Every key working period, oldest first"
    )
    member_count: int
    current_member_count: int
    agencies: list[AgencyGroupOut]
    open_actions: list[ActionOut]
    consent: list[str] = Field(description="The consent state in plain words")
    facts_shown: list[str] = Field(description="Ids of the facts this view rests on")


RoleVocabulary = Mapping[str, tuple[str, str | None]]
"""Role code -> (description, agency) from the policy's `roles`."""

_SEN_LABELS = {"E": "EHC plan", "K": "SEN support", "N": "no special educational need"}
_AGENCY_ORDER = ("local_authority", "education", "health", "social_care")
_RELATIONSHIP_WORDS = {
    "PAM": "mother",
    "PAF": "father",
    "CAM": "carer (female)",
    "CAF": "carer (male)",
    "STM": "step-mother",
    "STF": "step-father",
    "FOM": "foster mother",
    "FOF": "foster father",
    "GRM": "grandmother",
    "GRF": "grandfather",
    "OTH": "other",
    "REL": "other relative",
    "MTH": "mother",
    "FTH": "father",
    "GUARD": "guardian",
    "PRN": "parent",
}


@dataclass
class _Member:
    practitioner_id: str
    role: str
    agency: str
    organisation: str | None
    since: date
    until: date | None = None
    contact: str | None = None
    last: ContributionOut | None = None
    functions: tuple[str, ...] = ()
    name: str | None = None
    organisation_name: str | None = None


@dataclass
class _Family:
    name: str | None
    relationships: list[str]
    parental_responsibility: bool | None
    lives_with_child: bool | None
    priority: int | None
    contacts: list[ContactOut]
    sources: list[str]


def _name(*parts: str | None) -> str | None:
    text = " ".join(p.strip() for p in parts if p and p.strip())
    return text or None


def _later(current: ContributionOut | None, new: ContributionOut) -> ContributionOut:
    return new if current is None or new.on >= current.on else current


def fold_team(
    child_id: str,
    facts: Iterable[tuple[SealedFact, Envelope]],
    *,
    today: date,
    hidden: frozenset[str],
    roles: RoleVocabulary,
    who_decides: WhoDecidesOut,
    consent: Sequence[str],
) -> TeamView:
    """Fold the facts the caller may see (in log order, opened) into the team view.
    `hidden` practitioners are left out wherever they would appear."""
    members: dict[str, _Member] = {}
    key_working: dict[str, tuple[str, tuple[str, ...], date]] = {}
    actions: dict[str, ActionOut] = {}
    completed: set[str] = set()
    family: dict[str, _Family] = {}
    identifiers: dict[tuple[str, str], IdentifierOut] = {}
    name: str | None = None
    preferred: str | None = None
    dob: date | None = None
    settings: list[SettingOut] = []
    sen: SenStatusOut | None = None
    last_by: dict[str, ContributionOut] = {}
    shown: list[str] = []
    school_names: dict[str, str] = {}  # URN or DfE number -> school name, from placements
    book = KeyWorkingBook(hidden)
    family_refs: dict[str, str] = {}

    def ident(system: Any, value: str | None, agency: str) -> None:
        if value:
            identifiers.setdefault(
                (system, value), IdentifierOut(system=system, value=value, source_agency=agency)
            )

    def person(key: str, entry: _Family) -> None:
        known = family.get(key)
        if known is None:
            family[key] = entry
            return
        known.relationships.extend(r for r in entry.relationships if r not in known.relationships)
        known.contacts.extend(c for c in entry.contacts if c not in known.contacts)
        known.sources.extend(s for s in entry.sources if s not in known.sources)
        if entry.parental_responsibility is not None:
            known.parental_responsibility = bool(known.parental_responsibility) or (
                entry.parental_responsibility
            )
        known.name = known.name or entry.name
        known.lives_with_child = (
            entry.lives_with_child if entry.lives_with_child is not None else known.lives_with_child
        )
        known.priority = entry.priority or known.priority

    for row, env in facts:
        p: Any = env.payload
        t = env.event_type
        agency = env.source.agency
        if t == "team.practitioner_joined":
            if p.practitioner_id in hidden:
                continue
            book.joined(p.practitioner_id)
            m = members.get(p.practitioner_id)
            contact = getattr(p, "contact", None)
            if m is None:
                members[p.practitioner_id] = _Member(
                    p.practitioner_id,
                    p.role,
                    p.agency,
                    p.organisation_code,
                    p.since,
                    contact=contact if isinstance(contact, str) else None,
                    name=_text(getattr(p, "name", None)),
                    organisation_name=_text(getattr(p, "organisation_name", None)),
                )
            else:  # re-joined or changed role
                m.role, m.agency = p.role, p.agency
                m.organisation = p.organisation_code or m.organisation
                m.name = _text(getattr(p, "name", None)) or m.name
                m.organisation_name = (
                    _text(getattr(p, "organisation_name", None)) or m.organisation_name
                )
                if m.until is not None:
                    m.since, m.until = p.since, None
        elif t == "team.practitioner_left":
            if p.practitioner_id in hidden or p.practitioner_id not in members:
                continue
            members[p.practitioner_id].until = p.until
            book.left(p.practitioner_id, p.until)
        elif t in KEY_WORKING_TYPES:
            if not book.apply(p):
                continue
        elif t == "team.meeting_held":
            for attendee in p.attendee_ids:
                if attendee not in hidden:
                    last_by[attendee] = _later(
                        last_by.get(attendee),
                        ContributionOut(
                            kind="meeting", on=p.held_on, event_id=row.event_id, plan_id=env.plan_id
                        ),
                    )
            for action in p.actions:
                if action.owner_id in hidden:
                    continue
                actions[action.action_id] = ActionOut(
                    action_id=action.action_id,
                    meeting_id=p.meeting_id,
                    held_on=p.held_on,
                    text=action.text,
                    owner_id=action.owner_id,
                    due_on=action.due_on,
                    overdue=action.due_on < today,
                )
        elif t == "team.meeting_action_completed":
            completed.add(p.action_id)
            if p.completed_by and p.completed_by not in hidden:
                last_by[p.completed_by] = _later(
                    last_by.get(p.completed_by),
                    ContributionOut(
                        kind="action_completed",
                        on=p.completed_on,
                        event_id=row.event_id,
                        plan_id=env.plan_id,
                    ),
                )
        elif t == "plan.advice_submitted":
            if p.practitioner_id in hidden:
                continue
            last_by[p.practitioner_id] = _later(
                last_by.get(p.practitioner_id),
                ContributionOut(
                    kind="advice", on=p.submitted_on, event_id=row.event_id, plan_id=env.plan_id
                ),
            )
        elif t == "education.pupil_identified":
            name = name_after(t, p, name)
            preferred = _name(p.preferred_forename, p.preferred_surname) or preferred
            dob = p.date_of_birth or dob
            ident("upn", p.upn, agency)
            ident("uln", p.uln, agency)
        elif t == "health.patient_identified":
            name = name_after(t, p, name)
            dob = dob or p.date_of_birth
            ident("nhs_number", p.nhs_number, agency)
        elif t == "social_care.child_identified":
            dob = dob or p.date_of_birth
            ident(
                "la_child_id",
                f"{p.la_code}/{p.la_child_id}" if p.la_code else p.la_child_id,
                agency,
            )
            ident("upn", p.upn, agency)
        elif t == "education.placement_recorded":
            if p.school_name:
                for code in (p.urn, f"{p.la_code}{p.estab}" if p.la_code and p.estab else None):
                    if code:
                        school_names[code] = p.school_name
            if p.leaving_date is None or p.leaving_date >= today:
                settings.append(
                    SettingOut(
                        school_name=p.school_name,
                        urn=p.urn,
                        la_code=p.la_code,
                        estab=p.estab,
                        phase=p.phase,
                        provision_type=p.provision_type,
                        nc_year=p.nc_year,
                        since=p.entry_date,
                    )
                )
            else:
                settings = [
                    s
                    for s in settings
                    if not (s.since == p.entry_date and (s.urn, s.estab) == (p.urn, p.estab))
                ]
        elif t == "education.sen_status_recorded":
            if sen is None or p.start_date >= sen.since:
                sen = SenStatusOut(
                    provision=p.sen_provision,
                    provision_label=_SEN_LABELS.get(p.sen_provision, p.sen_provision),
                    needs=[
                        SenNeedOut(type=n.type, rank=n.rank)
                        for n in sorted(p.needs, key=lambda n: n.rank)
                    ],
                    since=p.start_date,
                    source_agency=agency,
                )
        elif t == "family.related_person_recorded":
            rels = [c.display or c.code or "" for c in p.relationships]
            rels = [_RELATIONSHIP_WORDS.get(r, r) for r in rels if r]
            given = p.given_names[0] if p.given_names else None
            key = _person_key(given, p.family_name) or f"{agency}|{p.related_person_ref}"
            family_refs.setdefault(p.related_person_ref, key)
            person(
                key,
                _Family(
                    name=_name(*p.given_names, p.family_name) or p.name_text,
                    relationships=rels,
                    parental_responsibility=None,
                    lives_with_child=None,
                    priority=None,
                    contacts=[
                        ContactOut(system=c.system, value=c.value, use=c.use) for c in p.contacts
                    ],
                    sources=[agency],
                ),
            )
        elif t == "family.contact_recorded":
            key = _person_key(p.forename, p.surname) or (
                f"{agency}|{env.source.organisation_code}|{p.contact_order}"
            )
            rel = _RELATIONSHIP_WORDS.get(p.relationship or "", p.relationship)
            person(
                key,
                _Family(
                    name=_name(p.title, p.forename, p.middle_names, p.surname),
                    relationships=[rel] if rel else [],
                    parental_responsibility=p.parental_responsibility,
                    lives_with_child=p.lives_with_child,
                    priority=p.contact_order,
                    contacts=[
                        ContactOut(system=c.system, value=c.value, use=c.use)
                        for c in p.contact_points
                    ],
                    sources=[agency],
                ),
            )
        else:
            continue
        shown.append(row.event_id)

    for m in members.values():  # a school is named by the child's placements there
        if m.organisation_name is None and m.organisation in school_names:
            m.organisation_name = school_names[m.organisation]

    key_working.update(book.practitioner_functions(today))
    view = _assemble(
        child_id,
        today,
        members,
        key_working,
        actions,
        completed,
        family,
        ChildOut(
            child_id=child_id,
            name=name,
            preferred_name=preferred,
            date_of_birth=dob,
            identifiers=sorted(identifiers.values(), key=lambda i: (i.system, i.value)),
            current_setting=max(settings, key=lambda s: s.since, default=None),
            sen_status=sen,
        ),
        last_by,
        roles,
        who_decides,
        consent,
        shown,
    )
    return _with_key_working(
        view,
        book,
        today,
        members,
        roles,
        {ref: family[key].name for ref, key in family_refs.items() if key in family},
    )


def _person_key(given: str | None, family_name: str | None) -> str | None:
    if not given or not family_name:
        return None
    return f"name|{given.strip().casefold()}|{family_name.strip().casefold()}"


def _assemble(
    child_id: str,
    today: date,
    members: dict[str, _Member],
    key_working: dict[str, tuple[str, tuple[str, ...], date]],
    actions: dict[str, ActionOut],
    completed: set[str],
    family: dict[str, _Family],
    child: ChildOut,
    last_by: dict[str, ContributionOut],
    roles: RoleVocabulary,
    who_decides: WhoDecidesOut,
    consent: Sequence[str],
    shown: list[str],
) -> TeamView:
    def label(role: str) -> tuple[str, bool]:
        known = roles.get(role)
        return (known[0], True) if known else (role.replace("_", " "), False)

    groups: dict[str, list[MemberOut]] = {}
    for m in members.values():
        role_label, in_vocab = label(m.role)
        kw = key_working.get(m.practitioner_id)
        groups.setdefault(m.agency, []).append(
            MemberOut(
                practitioner_id=m.practitioner_id,
                role=m.role,
                role_label=role_label,
                in_vocabulary=in_vocab,
                organisation_code=m.organisation,
                contact=m.contact,
                name=m.name,
                organisation_name=m.organisation_name,
                since=m.since,
                until=m.until,
                current=m.until is None or m.until >= today,
                last_contribution=last_by.get(m.practitioner_id),
                key_working_functions=list(kw[1]) if kw else [],
            )
        )
    agencies = [
        AgencyGroupOut(
            agency=agency,
            count=len(ms),
            current=sum(1 for x in ms if x.current),
            members=sorted(
                ms, key=lambda x: (not x.current, x.role_label, x.since, x.practitioner_id)
            ),
        )
        for agency, ms in sorted(
            groups.items(),
            key=lambda kv: (
                _AGENCY_ORDER.index(kv[0]) if kv[0] in _AGENCY_ORDER else len(_AGENCY_ORDER),
                kv[0],
            ),
        )
    ]

    key_worker: KeyWorkerOut | None = None
    holders = [(pid, kw) for pid, kw in key_working.items() if "single_point_of_contact" in kw[1]]
    if holders:
        pid, (model, functions, assigned_on) = max(holders, key=lambda h: (h[1][2], h[0]))
        holder = members.get(pid)
        key_worker = KeyWorkerOut(
            practitioner_id=pid,
            role=holder.role if holder else None,
            role_label=label(holder.role)[0] if holder else None,
            organisation_code=holder.organisation if holder else None,
            contact=holder.contact if holder else None,
            name=holder.name if holder else None,
            organisation_name=holder.organisation_name if holder else None,
            model=model,
            functions=list(functions),
            assigned_on=assigned_on,
        )
    latest = max(key_working.values(), key=lambda kw: kw[2], default=None)
    open_actions = sorted(
        (
            a.model_copy(
                update={
                    "owner_role": members[a.owner_id].role if a.owner_id in members else None,
                    "owner_name": members[a.owner_id].name if a.owner_id in members else None,
                }
            )
            for a in actions.values()
            if a.action_id not in completed
        ),
        key=lambda a: (a.due_on, a.action_id),
    )
    fam = sorted(
        family.values(),
        key=lambda f: (not f.parental_responsibility, f.priority or 99, f.name or ""),
    )
    return TeamView(
        child_id=child_id,
        as_of=today,
        child=child,
        family=FamilyOut(
            members=[
                FamilyMemberOut(
                    name=f.name,
                    relationships=f.relationships,
                    parental_responsibility=f.parental_responsibility,
                    lives_with_child=f.lives_with_child,
                    priority=f.priority,
                    contacts=f.contacts,
                    sources=f.sources,
                )
                for f in fam
            ],
            who_decides=who_decides,
        ),
        key_worker=key_worker,
        key_working_model=latest[0] if latest else None,
        member_count=len(members),
        current_member_count=sum(g.current for g in agencies),
        agencies=agencies,
        open_actions=open_actions,
        consent=list(consent),
        facts_shown=shown,
    )


# --------------------------------------------------------------------------- key working

KEY_WORKING_TYPES = frozenset(
    {
        "team.key_worker_assigned",
        "team.key_worker_handover_started",
        "team.key_worker_cover_arranged",
        "team.key_working_ended",
    }
)
"""The facts key working periods are folded from (with joining and leaving the team)."""

EndedBecause = Literal["left_the_team", "handed_over", "ended"]


@dataclass
class _Period:
    key_worker_id: str
    practitioner_id: str | None
    family_member: Literal["parent_carer", "young_person"] | None
    family_member_ref: str | None
    model: str
    functions: tuple[str, ...]
    started_on: date
    assigned_on: date
    level: str | None
    family_agreed_on: date | None
    choice_reason: str | None
    ended_on: date | None = None
    ended_because: EndedBecause | None = None
    end_reason: str | None = None
    handing_over_until: date | None = None
    handed_over_to: str | None = None

    def end(self, on: date, because: EndedBecause, reason: str | None = None) -> None:
        """End the period on `on` (its last day), unless it already ends earlier."""
        if self.ended_on is None or on < self.ended_on:
            self.ended_on, self.ended_because, self.end_reason = on, because, reason
            if because != "handed_over":
                self.handing_over_until = None


class KeyWorkingBook:
    """Key working periods as the facts the caller may see tell them, in log order.

    A period starts with a holder's assignment (a later one while it is open updates it)
    and ends — on its last day — when its holder leaves the team, when they hand over (at
    the end of the overlap, during which both key workers are current), or when key
    working ends for them or for the child. A period is current on a day between its
    start and its end, and never once its practitioner has left the team. `hidden`
    practitioners are left out: their periods, cover and handovers to them."""

    def __init__(self, hidden: frozenset[str]) -> None:
        self.hidden = hidden
        self.periods: list[_Period] = []
        self.covers: dict[str, Any] = {}
        self._member_until: dict[str, date | None] = {}

    def joined(self, practitioner_id: str) -> None:
        self._member_until[practitioner_id] = None

    def left(self, practitioner_id: str, until: date) -> None:
        if practitioner_id not in self._member_until:
            return
        self._member_until[practitioner_id] = until
        for period in self._open(practitioner_id, also_ending=True):
            period.end(until, "left_the_team")

    def apply(self, p: Any) -> bool:
        """Fold one key working fact (payload model); False if it is about a hidden
        practitioner and left out."""
        t = p.event_type
        if t == "team.key_worker_assigned":
            if p.practitioner_id in self.hidden:
                return False
            self._assign(p)
        elif t == "team.key_worker_handover_started":
            if p.outgoing_id in self.hidden:
                return False
            for period in self._open(p.outgoing_id):
                period.end(p.overlap_until, "handed_over", p.reason)
                period.handing_over_until = p.overlap_until
                period.handed_over_to = None if p.incoming_id in self.hidden else p.incoming_id
        elif t == "team.key_worker_cover_arranged":
            if p.key_worker_id in self.hidden:
                return False
            self.covers[p.key_worker_id] = p
        elif t == "team.key_working_ended":
            if p.key_worker_id in self.hidden:
                return False
            for period in self.periods:
                if p.key_worker_id in (None, period.key_worker_id) and (
                    period.ended_on is None or period.ended_on > p.ended_on
                ):
                    period.end(p.ended_on, "ended", p.reason)
        return True

    def _assign(self, p: Any) -> None:
        kw_id = p.key_worker_id
        fields = {
            "model": p.model,
            "functions": tuple(p.functions),
            "assigned_on": p.assigned_on,
            "level": p.level,
            "family_agreed_on": p.family_agreed_on,
            "choice_reason": p.choice_reason,
        }
        for period in self._open(kw_id):
            for name, value in fields.items():
                if value is not None:
                    setattr(period, name, value)
            return
        self.periods.append(
            _Period(
                key_worker_id=kw_id,
                practitioner_id=p.practitioner_id,
                family_member=p.family_member,
                family_member_ref=p.family_member_ref,
                started_on=p.assigned_on,
                **fields,
            )
        )

    def _open(self, kw_id: str, *, also_ending: bool = False) -> list[_Period]:
        return [
            x
            for x in self.periods
            if x.key_worker_id == kw_id and (x.ended_on is None or also_ending)
        ]

    def is_current(self, period: _Period, today: date) -> bool:
        if period.started_on > today or (period.ended_on is not None and period.ended_on < today):
            return False
        until = self._member_until.get(period.practitioner_id or "")
        return until is None or until >= today

    def current(self, today: date) -> list[_Period]:
        return [x for x in self.periods if self.is_current(x, today)]

    def practitioner_functions(self, today: date) -> dict[str, tuple[str, tuple[str, ...], date]]:
        """Each current practitioner key worker's (model, functions, assigned_on)."""
        return {
            x.practitioner_id: (x.model, x.functions, x.assigned_on)
            for x in self.current(today)
            if x.practitioner_id is not None
        }

    def single_point_of_contact(self, today: date) -> _Period | None:
        """The current holder of the single point of contact function: not one handing
        over where another holds it, else the latest to start."""
        holders = [x for x in self.current(today) if "single_point_of_contact" in x.functions]
        return max(
            holders,
            key=lambda x: (x.handing_over_until is None, x.started_on, x.key_worker_id),
            default=None,
        )


def _with_key_working(
    view: TeamView,
    book: KeyWorkingBook,
    today: date,
    members: Mapping[str, _Member],
    roles: RoleVocabulary,
    family_names: Mapping[str, str | None],
) -> TeamView:
    """The view with its key workers (current, with cover and handover), the single point
    of contact and the history of key working periods."""

    def role_label(practitioner_id: str | None) -> tuple[str | None, str | None]:
        m = members.get(practitioner_id or "")
        if m is None:
            return None, None
        known = roles.get(m.role)
        return m.role, known[0] if known else m.role.replace("_", " ")

    def present(practitioner_id: str) -> _Member | None:
        m = members.get(practitioner_id)
        return m if m is not None and (m.until is None or m.until >= today) else None

    def cover_of(kw_id: str) -> CoverOut | None:
        c = book.covers.get(kw_id)
        if c is None or c.arranged_on > today or (c.until is not None and c.until < today):
            return None
        cover_by = present(c.cover_practitioner_id) if c.cover_practitioner_id else None
        if cover_by is None and c.cover_contact is None:
            return None  # the covering practitioner has left, and there is no other contact
        role, label = role_label(cover_by.practitioner_id if cover_by else None)
        return CoverOut(
            cover_practitioner_id=cover_by.practitioner_id if cover_by else None,
            role=role,
            role_label=label,
            name=cover_by.name if cover_by else None,
            organisation_name=cover_by.organisation_name if cover_by else None,
            contact=cover_by.contact if cover_by else None,
            cover_contact=c.cover_contact,
            arranged_on=c.arranged_on,
            until=c.until,
        )

    def family_name(x: _Period) -> str | None:
        if x.family_member == "young_person":
            return view.child.preferred_name or view.child.name
        return family_names.get(x.family_member_ref or "")

    def out(x: _Period) -> KeyWorkerOut:
        m = members.get(x.practitioner_id or "")
        role, label = role_label(x.practitioner_id)
        return KeyWorkerOut(
            practitioner_id=x.practitioner_id,
            role=role,
            role_label=label,
            organisation_code=m.organisation if m else None,
            contact=m.contact if m else None,
            name=m.name if m else None,
            organisation_name=m.organisation_name if m else None,
            model=x.model,
            functions=list(x.functions),
            assigned_on=x.assigned_on,
            key_worker_id=x.key_worker_id,
            family_member=x.family_member,
            family_member_name=family_name(x) if x.family_member else None,
            level=x.level,
            since=x.started_on,
            family_agreed_on=x.family_agreed_on,
            choice_reason=x.choice_reason,
            handing_over_until=x.handing_over_until,
            handing_over_to=x.handed_over_to if x.handing_over_until else None,
            cover=cover_of(x.key_worker_id),
        )

    current = book.current(today)
    spoc = book.single_point_of_contact(today)
    latest = max(current, key=lambda x: (x.assigned_on, x.key_worker_id), default=None)
    return view.model_copy(
        update={
            "key_worker": out(spoc) if spoc else None,
            "key_working_model": latest.model if latest else None,
            "key_workers": [
                out(x)
                for x in sorted(
                    current,
                    key=lambda x: (x.handing_over_until is not None, x.started_on, x.key_worker_id),
                )
            ],
            "key_working_periods": [
                KeyWorkingPeriodOut(
                    key_worker_id=x.key_worker_id,
                    practitioner_id=x.practitioner_id,
                    family_member=x.family_member,
                    role_label=role_label(x.practitioner_id)[1],
                    model=x.model,
                    functions=list(x.functions),
                    level=x.level,
                    started_on=x.started_on,
                    family_agreed_on=x.family_agreed_on,
                    choice_reason=x.choice_reason,
                    ended_on=x.ended_on,
                    ended_because=x.ended_because,
                    end_reason=x.end_reason,
                    handed_over_to=x.handed_over_to,
                    current=book.is_current(x, today),
                )
                for x in sorted(book.periods, key=lambda x: (x.started_on, x.key_worker_id))
            ],
        }
    )


KEY_WORKING_FACT_TYPES = (
    "team.practitioner_joined",
    "team.practitioner_left",
    *sorted(KEY_WORKING_TYPES),
)
"""The stored facts `single_points_of_contact` reads."""


async def load_key_working_facts(
    store: Any, child_ids: Sequence[str]
) -> dict[str, list[SealedFact]]:
    """Each child's stored joining, leaving and key working facts, in log order, 500
    children a query."""
    out: dict[str, list[SealedFact]] = {c: [] for c in child_ids}
    types = ", ".join("?" for _ in KEY_WORKING_FACT_TYPES)
    for i in range(0, len(child_ids), 500):
        chunk = list(child_ids[i : i + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = await store.fetchall(
            f"SELECT {FACT_SELECT}, body, subject_ref FROM tac_fact"  # noqa: S608 - constant columns
            f" WHERE child_id IN ({marks}) AND event_type IN ({types}) ORDER BY part, log_offset",
            [*chunk, *KEY_WORKING_FACT_TYPES],
        )
        for r in rows:
            fact = SealedFact.from_row(r, subject_ref=None if r[10] is None else str(r[10]))
            out[fact.child_id].append(fact)
    return out


def single_point_of_contact(
    facts: Iterable[SealedFact],
    opened: Mapping[str, Envelope],
    *,
    hidden: frozenset[str],
    today: date,
) -> str | None:
    """The key worker id of the child's current single point of contact, as the team
    view would name it, from the caller's visible joining, leaving and key working facts
    (`facts`, log order); `opened` holds the leaving and key working ones by event id
    (a joining fact is read from its stored practitioner id, unopened)."""
    book = KeyWorkingBook(hidden)
    for f in facts:
        if f.event_type == "team.practitioner_joined":
            if f.subject_ref and f.subject_ref not in hidden:
                book.joined(f.subject_ref)
            continue
        env = opened.get(f.event_id)
        if env is None:
            continue
        p: Any = env.payload
        if f.event_type == "team.practitioner_left":
            if p.practitioner_id not in hidden:
                book.left(p.practitioner_id, p.until)
        else:
            book.apply(p)
    spoc = book.single_point_of_contact(today)
    return spoc.key_worker_id if spoc else None
