"""The joined view at scale: projection catch-up and the latency of the coordinator's views.

`python -m bench --only views [--children 10000 --events 1000000] [--views-on sqlite,postgres]`
(not in the default set: on 2 cores it writes ~4k facts/s and rebuilds all projections
together at ~2-3.4k log records/s per backend, so the full 10,000 / 1M takes 21-25 min on
SQLite and PostgreSQL). `--requests` child-view requests are
measured per route (a fifth as many, at least 20, for the caseload), after `--warm`.

**The dataset.** The demo's synthetic cohort (`hub.demo.cohort.build_cohort`, its plan and
team journeys in `hub.demo.journeys`, its consent stories in `hub.demo.load.consents_of`)
gives each child a school, needs, parents, a team (child 0: the thirty of a big TAC), a
consent story and a plan scenario at some stage of the EHC journey. Each child becomes the
facts its agencies would send: SEN officer and coordinator (one of up to 20, each with
~500 children: `CASELOAD`), consents, identifiers linked, the school's pupil, placement,
SEN history, attendance and contacts, health's patient, conditions and related person,
social care's child and disabilities, every team member joining (a CAMHS clinician, in
`mental_health`, for one child in ten: withheld, left out of the team), key working, TAC
meetings every eight weeks with their actions (most completed), the family's views, every
plan step with the advice asked and answered, exceptions, drafts, finals, outcomes,
provision and reviews, and — to reach the event count asked for — the child's health
appointments (`health.encounter_recorded`). Families with the `withdrawn_social_care`
story withdraw that consent last. Facts are appended in chunks of children, each chunk's
facts ordered by when they happened, so a child's rows are spread over the log as they
would be in real life.

**What is bypassed.** Sending 1M facts through the consent gate (~1.6k facts/s) is too
slow, so each fact is written to the log as `SubmitFacts._one` writes it: the same
envelope (`Envelope.wrap`, with the fact's category and sharing context), the same
header (`x-dedupe-key`), the same sharing decision (`decide_sharing` against the
child's consent state folded from its consent events, at ingest time), the consent
reference on a permitted fact, every fact sealed with the child's data key for its
category as its type declares (`seal_envelope`; casework and identity facts are all open;
keys created and wrapped by the hub's master key as `SqlKeyStore.create` does, inserted
in bulk), permitted facts on `hub.events` and withheld ones on `hub.withheld`. Bypassed:
identity resolution (children are created in the person index directly, with their date
of birth and hashed identifiers), the idempotency check (every fact is new), transition
checks of the plan routes (the demo's journeys are valid), releases after consent changes
(consents are recorded before a child's facts, as the demo does), and the audit trail's
decision records (`hub.audit` holds only what the gate and the reads below write).
To show that the views answer as they would for gate-ingested data, a few children of
the cohort (the big team, each consent story, a paused clock) are also sent through the
real gate (`SubmitFacts`) as twins with the same facts; after the catch-up the
team, plans and timeline of each original and its twin must be identical but for ids.

**Catch-up.** Every projection is rebuilt from offset 0 in one pass over the logs
(`rebuild_together`, what `hub replay --all` runs: each batch read once and decoded once
per mode), with the time spent decoding and each projection's time applying; beside it, in
the same run, the raw read rate of the log (`EventLog.read` in batches of the projector's
size) and the rate of reading and opening each record (decrypt and validate).

**Latency.** The real app in-process (httpx ASGITransport, the app's lifespan around the
already-open hub, no background projector): GET /children/{id}/team and
GET /plans/{id}/timeline over random children of one coordinator's caseload, and
GET /caseload for that coordinator; the first `warm` requests of each are discarded.
Then a stage breakdown (mean ms per request, by wrapping the route's steps) and a cProfile
of a few requests say what bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from hub.bootstrap import Hub, load_master_key, open_hub
from hub.consent.crypto import new_data_key
from hub.consent.decision import Fact, decide_sharing, decision_id_for
from hub.consent.opener import data_key_id
from hub.consent.sealing import personal_fields, seal_envelope
from hub.consent.state import ConsentState
from hub.demo.cohort import (
    CHILDRENS_SERVICES,
    COMMUNITY_TRUST,
    FAMILY_PORTAL,
    LA_CODE,
    PUBLISHERS,
    SEN_SERVICE,
    TOWN,
    Agency,
    Child,
    Cohort,
    Practitioner,
    School,
    build_cohort,
)
from hub.demo.journeys import PlanStep, final_date, plan_steps, team_steps
from hub.demo.load import consents_of, cover_body, handover_body
from hub.demo.messages import entry_date, family_views, sen_history
from hub.events import DEFAULT_PURPOSES, Envelope, Sharing, Source, encode
from hub.events.casework import CoordinatorAssigned
from hub.events.consent import ConsentRecorded, ConsentWithdrawn
from hub.events.education import (
    AttendanceRecorded,
    PlacementRecorded,
    PupilIdentified,
    SenNeedRanked,
    SenStatusRecorded,
)
from hub.events.education import PostalAddress as SchoolAddress
from hub.events.envelope import ConsentRef, EventPayload
from hub.events.family import ContactPoint, ContactRecorded, RelatedPersonRecorded, ViewsRecorded
from hub.events.health import (
    Coding,
    Concept,
    ConditionRecorded,
    EncounterRecorded,
    PatientIdentified,
)
from hub.events.identity import IdentifierLinked
from hub.events.plan import (
    AdviceRequested,
    AdviceSubmitted,
    Amount,
    AssessmentDecided,
    AssessmentRequested,
    CommentsReceived,
    DocumentRef,
    DraftIssued,
    ExceptionRecorded,
    Finalised,
    OutcomeAgreed,
    PersonalBudgetAgreed,
    Provider,
    ProvisionAgreed,
    ReviewDecided,
    ReviewMeetingHeld,
    ReviewReportSent,
)
from hub.events.social_care import ChildIdentified, DisabilityRecorded
from hub.events.team import (
    KeyWorkerAssigned,
    KeyWorkerCoverArranged,
    KeyWorkerHandoverStarted,
    MeetingAction,
    MeetingActionCompleted,
    MeetingHeld,
    PractitionerJoined,
)
from hub.identity.identifiers import Identifier, IdSystem
from hub.ingest.model import InboundFact, Subject
from hub.log import EventLog, LogName, NewRecord
from hub.projections.caseload_view import PlanSummary
from hub.projections.gate_views import DEDUPE_HEADER
from hub.settings import Settings

MAX_COORDINATORS = 20
CASELOAD = 500
"""Children per coordinator: 20 coordinators of ~500 at 10,000 children; fewer at smaller
sizes, so that a caseload stays ~500 children whatever the size."""
TWIN_COORDINATOR = "bench-twins"
GOVERNANCE = ("consent.", "casework.", "identity.")
SNOMED = "http://snomed.info/sct"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CHUNK = 250
"""Children generated, sealed and appended together (their facts interleaved by date)."""
APPEND_BATCH = 5000


def coordinators_for(n_children: int) -> int:
    return max(1, min(MAX_COORDINATORS, round(n_children / CASELOAD)))


def coordinator_of(index: int, coordinators: int) -> str:
    return f"coord-{index % coordinators:02d}"


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class Raw:
    """One fact as an agency (or a coordinator route) hands it to the gate."""

    payload: EventPayload
    at: datetime
    source: Source
    ref: str
    plan_id: str | None = None
    category: str | None = None
    purposes: tuple[str, ...] = ()
    basis: str | None = None

    def inbound(self, child_id: str) -> InboundFact:
        return InboundFact(
            subject=Subject(hub_child_id=child_id),
            payload=self.payload,
            occurred_at=self.at,
            source=self.source,
            ref=self.ref,
            plan_id=self.plan_id,
            category=self.category,
            purposes=self.purposes,
            statutory_basis=self.basis,
        )


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _src(publisher: Agency | School | None, message_id: str) -> Source:
    if publisher is None:  # a coordinator route / the admin: the LA in the hub itself
        return Source(agency="local_authority", system="tac-hub", message_id=message_id)
    return Source(
        agency=publisher.agency,
        organisation_code=publisher.organisation_code,
        system=publisher.system,
        message_id=message_id,
    )


@dataclass
class Story:
    """One child's facts: governance first, then the body (by date), then withdrawals."""

    child: Child
    child_id: str
    plan_id: str | None
    coordinator: str
    first: list[Raw] = field(default_factory=list)
    body: list[Raw] = field(default_factory=list)
    last: list[Raw] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.first) + len(self.body) + len(self.last)


_ROUTE_PURPOSES: dict[type[EventPayload], tuple[str, ...]] = {
    ReviewMeetingHeld: ("review",), ReviewReportSent: ("review",), ReviewDecided: ("review",),
    MeetingHeld: ("plan_delivery", "review"), KeyWorkerAssigned: ("plan_delivery",),
    KeyWorkerHandoverStarted: ("plan_delivery",), KeyWorkerCoverArranged: ("plan_delivery",),
}  # fmt: skip


def _route_fact(
    payload: EventPayload, day: date, message_id: str, ref: str, plan_id: str | None
) -> Raw:
    """As `hub.api.routes_plans.append_steps` builds a coordinator's step."""
    data_category = getattr(payload, "data_category", None)
    category = str(data_category()) if callable(data_category) else type(payload).category
    basis = None
    if category == "education":
        basis = "ehc_statutory_record"
    elif isinstance(payload, AdviceRequested) and category in ("health", "social_care"):
        basis = "reg6_ehc_advice"
    return Raw(
        payload,
        _at(day),
        _src(None, message_id),
        ref,
        plan_id,
        category,
        _ROUTE_PURPOSES.get(type(payload), ("ehc_assessment",)),
        basis,
    )


def story(
    child: Child,
    today: date,
    *,
    child_id: str,
    plan_id: str | None,
    coordinator: str,
    tag: str,
    target: int,
) -> Story:
    """Every fact about `child` (see the module docstring); `tag` keeps message and
    consent ids of a twin apart from its original's; `target` is the number of facts to
    reach with health appointments."""
    s = Story(child, child_id, plan_id, coordinator)
    i = child.index
    ref = f"{tag}{child.reference}"
    rng = random.Random(f"bench-views:{i}")
    dob = child.date_of_birth
    start = max(child.sen_start, today - timedelta(days=700))
    # -- governance: caseload, consents (the demo records them before the facts)
    s.first.append(
        Raw(
            CoordinatorAssigned(coordinator=coordinator),
            _at(start),
            _src(None, f"{ref}:casework"),
            f"casework:{ref}",
        )
    )
    consents = consents_of(child, today)
    for c in consents:
        c = {**c, "consent_id": f"{tag}{c['consent_id']}"}
        s.first.append(
            Raw(
                ConsentRecorded.model_validate(c),
                _at(date.fromisoformat(c["given_on"])),
                _src(None, f"{ref}:consent"),
                f"consent:{c['consent_id']}",
            )
        )
    if child.consent == "withdrawn_social_care":
        s.last.append(
            Raw(
                ConsentWithdrawn(
                    consent_id=f"{tag}consent-{i:03d}-social-care",
                    reason="family_request",
                    recorded_by="demo-coordinator",
                ),
                _at(today, 8),
                _src(None, f"{ref}:withdraw"),
                f"withdraw:{ref}",
            )
        )
    body = s.body
    # -- identifiers the SEN case system linked on first sight
    for system in ("upn", "nhs_number", "la_child_id"):
        known = {"upn": child.upn, "nhs_number": child.nhs_number, "la_child_id": child.la_child_id}
        if not known[system]:
            continue
        body.append(
            Raw(
                IdentifierLinked(system=system, reason="first seen on an inbound fact"),
                _at(start),
                _src(SEN_SERVICE, f"{ref}:named"),
                f"linked:{system}",
            )
        )
    # -- the school's CTF: pupil, placement, SEN history, attendance, contacts
    school = child.school
    if school is not None:
        msg = f"{ref}:ctf:{school.agency}"
        entered = entry_date(child, school, today)
        body.append(
            Raw(
                PupilIdentified(
                    upn=child.upn,
                    forename=child.given,
                    surname=child.family,
                    date_of_birth=dob,
                    gender=child.sex,
                    address=SchoolAddress(
                        lines=(f"{child.house} {child.street}",), town=TOWN, postcode=child.postcode
                    ),
                ),
                _at(entered),
                _src(school, msg),
                "Pupil",
            )
        )
        special = school.estab.startswith("7")
        body.append(
            Raw(
                PlacementRecorded(
                    la_code=LA_CODE,
                    estab=school.estab,
                    urn=school.urn,
                    school_name=school.name,
                    phase="secondary" if school.nc_years[0] == "7" else "primary",
                    provision_type="special" if special else "mainstream",
                    entry_date=entered,
                    nc_year=child.nc_year,
                    enrolment_status="C",
                ),
                _at(entered),
                _src(school, msg),
                "Pupil/SchoolHistory[1]",
            )
        )
        for k, (provision, begun, ended) in enumerate(sen_history(child, final_date(child, today))):
            body.append(
                Raw(
                    SenStatusRecorded(
                        sen_provision=provision,
                        start_date=begun,
                        end_date=ended,
                        needs=tuple(
                            SenNeedRanked(type=n, rank=r + 1) for r, n in enumerate(child.needs)
                        ),
                    ),
                    _at(begun),
                    _src(school, msg),
                    f"Pupil/SENhistory[{k + 1}]",
                )
            )
        for year in range(max(entered.year, today.year - 3), today.year + 1):
            ends = date(year + 1, 7, 20)
            if ends > today:
                continue
            possible = 380
            attended = possible - rng.randrange(8, 60)
            unauthorised = rng.randrange(0, 6)
            body.append(
                Raw(
                    AttendanceRecorded(
                        academic_year=year,
                        la_code=LA_CODE,
                        estab=school.estab,
                        urn=school.urn,
                        school_name=school.name,
                        sessions_possible=possible,
                        sessions_attended=attended,
                        sessions_authorised_absence=possible - attended - unauthorised,
                        sessions_unauthorised_absence=unauthorised,
                    ),
                    _at(ends),
                    _src(school, f"{msg}:{year}"),
                    f"Pupil/Attendance/{year}",
                )
            )
        for k, parent in enumerate(child.parents, start=1):
            body.append(
                Raw(
                    ContactRecorded(
                        contact_order=k,
                        relationship=parent.relationship,
                        parental_responsibility=True,
                        lives_with_child=True,
                        title=parent.title,
                        surname=parent.surname,
                        forename=parent.forename,
                        contact_points=(
                            ContactPoint(system="phone", value=parent.phone, use="mobile"),
                            ContactPoint(system="email", value=parent.email),
                        ),
                    ),
                    _at(entered),
                    _src(school, msg),
                    f"Pupil/Contacts/Contact[{k}]",
                )
            )
    # -- health: patient, conditions, a related person
    msg = f"{ref}:fhir:{COMMUNITY_TRUST.agency}"
    seen = child.sen_start - timedelta(days=60)
    body.append(
        Raw(
            PatientIdentified(
                patient_ref=f"Patient/{i}",
                nhs_number=child.nhs_number,
                given_names=(child.given,),
                family_name=child.family,
                date_of_birth=dob,
                gender="female" if child.sex == "F" else "male",
                postcode=child.postcode,
                gp_practice_code="Y99901",
            ),
            _at(seen),
            _src(COMMUNITY_TRUST, msg),
            f"Patient/{i}",
            category="identity",
        )
    )
    for k, condition in enumerate(child.conditions):
        body.append(
            Raw(
                ConditionRecorded(
                    condition_ref=f"Condition/{i}-{k}",
                    clinical_status="active",
                    verification_status="confirmed",
                    onset=seen,
                    code=Concept(
                        codings=(
                            Coding(system=SNOMED, code=condition.snomed, display=condition.display),
                        ),
                        text=condition.display,
                    ),
                ),
                _at(seen),
                _src(COMMUNITY_TRUST, msg),
                f"Condition/{i}-{k}",
                category="health",
            )
        )
    parent = child.parents[0]
    body.append(
        Raw(
            RelatedPersonRecorded(
                related_person_ref=f"RelatedPerson/{i}-1",
                recorded_as="related_person",
                relationships=(
                    Coding(
                        system=ROLE_CODE,
                        code="MTH" if parent.relationship in ("PAM", "CAM") else "FTH",
                    ),
                ),
                given_names=(parent.forename,),
                family_name=parent.surname,
                contacts=(ContactPoint(system="phone", value=parent.phone),),
            ),
            _at(seen),
            _src(COMMUNITY_TRUST, msg),
            f"RelatedPerson/{i}-1",
            category="identity",
        )
    )
    # -- social care
    if child.social_care != "none" and child.la_child_id:
        msg = f"{ref}:social-care"
        body.append(
            Raw(
                ChildIdentified(
                    la_code=LA_CODE,
                    la_child_id=child.la_child_id,
                    upn=child.upn,
                    date_of_birth=dob,
                    sex=child.sex,
                ),
                _at(start),
                _src(CHILDRENS_SERVICES, msg),
                "Child",
            )
        )
        if child.disabilities:
            body.append(
                Raw(
                    DisabilityRecorded(disabilities=tuple(child.disabilities)),
                    _at(start),
                    _src(CHILDRENS_SERVICES, msg),
                    "Child/Disabilities",
                )
            )
    # -- the team: every member joins from its own system
    for k, p in enumerate(child.team):
        since = (
            min(today - timedelta(days=30), child.sen_start)
            if p.key == "la_sen_officer"
            else start + timedelta(days=5 * k)
        )
        category = {"social_care": "social_care", "health": "health"}.get(p.agency)
        body.append(
            Raw(
                PractitionerJoined(
                    practitioner_id=p.practitioner_id,
                    role=p.role,
                    agency=p.agency,
                    organisation_code=p.organisation_code,
                    since=since,
                    contact=p.contact,
                ),
                _at(since),
                _src(PUBLISHERS[p.publisher], f"{ref}:joined:{p.practitioner_id}"),
                "event",
                category=category,
            )
        )
    if i % 10 == 7:  # CAMHS: the involvement itself is mental health (named consent only)
        body.append(
            Raw(
                PractitionerJoined(
                    practitioner_id=f"camhs:CX{i % 5:04d}",
                    role="camhs_clinician",
                    agency="health",
                    organisation_code=COMMUNITY_TRUST.organisation_code,
                    since=start,
                ),
                _at(start),
                _src(COMMUNITY_TRUST, f"{ref}:camhs"),
                "CareTeam/camhs",
                category="mental_health",
            )
        )
    # -- key working and the demo's recent meeting (coordinator routes)
    for k, step in enumerate(team_steps(child, today)):
        d = step.data
        if step.kind == "key_worker":
            kw: dict[str, Any] = {
                "practitioner_id": d["practitioner"].practitioner_id,
                "model": d["model"],
                "assigned_on": step.on,
            }
            if "functions" in d:
                kw["functions"] = tuple(d["functions"])
            body.append(
                _route_fact(
                    KeyWorkerAssigned(**kw),
                    step.on,
                    f"{ref}:kw:{k}",
                    f"{child_id}:-:key-worker:0",
                    None,
                )
            )
        elif step.kind in ("key_worker_handover", "key_worker_cover"):
            # as the demo's loader sends them (`hub.demo.load`), through the same models
            handover = step.kind == "key_worker_handover"
            made = handover_body(step) if handover else cover_body(step)
            payloads: list[EventPayload] = (
                [
                    KeyWorkerAssigned(**made["incoming"], assigned_on=step.on),
                    KeyWorkerHandoverStarted(
                        outgoing_id=made["outgoing_id"],
                        incoming_id=made["incoming"]["practitioner_id"],
                        handed_over_on=step.on,
                        overlap_until=made["overlap_until"],
                        reason=made["reason"],
                    ),
                ]
                if handover
                else [KeyWorkerCoverArranged(**made)]
            )
            for n, payload in enumerate(payloads):
                body.append(
                    _route_fact(
                        payload,
                        step.on,
                        f"{ref}:{step.kind}:{k}:{n}",
                        f"{child_id}:-:{step.kind}:{n}",
                        None,
                    )
                )
        else:
            body.append(
                _route_fact(
                    _meeting(step), step.on, f"{ref}:meeting:{k}", f"{child_id}:-:meeting:0", None
                )
            )
    # -- TAC meetings every eight weeks over the last two years, actions mostly done
    steps = plan_steps(child, today)
    if steps and child.team:
        day = max(steps[0].on, today - timedelta(days=730)) + timedelta(days=21)
        k = 0
        while day < today - timedelta(days=14):
            k += 1
            owners = [child.team[(k + j) % len(child.team)] for j in (0, 1)]
            actions = [
                MeetingAction(
                    action_id=f"act-{i}-p{k}-{j}",
                    owner_id=o.practitioner_id,
                    text="Update the team on progress against the outcomes.",
                    due_on=day + timedelta(days=14 * (j + 1)),
                )
                for j, o in enumerate(owners)
            ]
            attendees = tuple(dict.fromkeys(p.practitioner_id for p in child.team[:4]))
            body.append(
                _route_fact(
                    MeetingHeld(
                        meeting_id=f"mt-{i}-p{k}",
                        held_on=day,
                        kind="tac",
                        attendee_ids=attendees,
                        family_attended=True,
                        decisions=("Carry on with the agreed plan.",),
                        actions=tuple(actions),
                    ),
                    day,
                    f"{ref}:tac:{k}",
                    f"{child_id}:-:meeting:0",
                    None,
                )
            )
            for a in actions:
                if a.due_on < today - timedelta(days=7) and rng.random() < 0.85:
                    done = a.due_on - timedelta(days=2)
                    body.append(
                        Raw(
                            MeetingActionCompleted(
                                action_id=a.action_id,
                                meeting_id=f"mt-{i}-p{k}",
                                completed_on=done,
                                completed_by=a.owner_id,
                            ),
                            _at(done),
                            _src(SEN_SERVICE, f"{ref}:done:{a.action_id}"),
                            "event",
                        )
                    )
            day += timedelta(days=56)
    # -- the family's own views (section A)
    if steps and child.consent != "none":
        for k, v in enumerate(family_views(child, today)):
            body.append(
                Raw(
                    ViewsRecorded.model_validate(v),
                    _at(date.fromisoformat(v["recorded_on"])),
                    _src(FAMILY_PORTAL, f"{ref}:family"),
                    f"views[{k}]",
                )
            )
    # -- the plan's journey
    for k, step in enumerate(steps):
        body.extend(_plan_facts(child, step, plan_id, f"{ref}:plan:{k}", child_id))
    # -- health appointments up to the target
    clinicians: list[Practitioner | None] = [p for p in child.team if p.channel == "fhir"]
    clinicians = clinicians or [None]
    for k in range(max(0, target - s.count)):
        day = today - timedelta(days=rng.randrange(14, 1100))
        clinician = clinicians[k % len(clinicians)]
        dna = rng.random() < 0.08
        body.append(
            Raw(
                EncounterRecorded(
                    encounter_ref=f"Encounter/{i}-{k}",
                    status="cancelled" if dna else "finished",
                    attendance="did_not_attend" if dna else "attended",
                    encounter_class=Coding(
                        system="http://terminology.hl7.org/CodeSystem/v3-ActCode", code="AMB"
                    ),
                    types=(
                        Concept(
                            codings=(
                                Coding(system=SNOMED, code="185389009", display="Follow-up visit"),
                            )
                        ),
                    ),
                    start=_at(day, 10),
                    end=_at(day, 11),
                    service_provider_code=clinician.organisation_code
                    if clinician
                    else COMMUNITY_TRUST.organisation_code,
                ),
                _at(day, 10),
                _src(COMMUNITY_TRUST, f"{ref}:appointments:{k // 50}"),
                f"Encounter/{i}-{k}",
                category="health",
            )
        )
    body.sort(key=lambda r: r.at)
    return s


def _meeting(step: PlanStep) -> MeetingHeld:
    d = step.data
    return MeetingHeld(
        meeting_id=d["meeting_id"],
        held_on=step.on,
        kind=d["kind"],
        attendee_ids=tuple(p.practitioner_id for p in d["attendees"]),
        family_attended=d["family_attended"],
        decisions=tuple(d["decisions"]),
        actions=tuple(
            MeetingAction(
                action_id=a["action_id"],
                text=a["text"],
                owner_id=a["owner"].practitioner_id,
                due_on=a["due_on"],
            )
            for a in d["actions"]
        ),
    )


def _plan_facts(
    child: Child, step: PlanStep, plan_id: str | None, msg: str, child_id: str
) -> list[Raw]:
    """One step of the demo's journey as the coordinator route, the adviser's system or
    the SEN case system would send it."""
    assert plan_id is not None
    d, on = step.data, step.on
    ref = f"{child_id}:{plan_id}:{step.kind}:0"

    def route(payload: EventPayload, day: date = on, n: int = 0) -> Raw:
        return _route_fact(payload, day, msg, f"{child_id}:{plan_id}:{step.kind}:{n}", plan_id)

    def case_system(payload: EventPayload, category: str | None = None) -> Raw:
        return Raw(
            payload,
            _at(on),
            _src(SEN_SERVICE, msg),
            "event",
            plan_id,
            category,
            ("plan_delivery",) if step.kind in ("outcome", "provision", "budget") else (),
        )

    k = step.kind
    if k == "request":
        return [
            route(
                AssessmentRequested(
                    requested_on=d["requested_on"],
                    received_on=d["received_on"],
                    requested_by=d["requested_by"],
                )
            )
        ]
    if k == "decision":
        return [route(AssessmentDecided(decision=d["decision"], decided_on=on))]
    if k == "advice_request":
        p = d["practitioner"]
        who: dict[str, Any] = (
            {"agency": "family"}
            if p is None
            else {
                "practitioner_id": p.practitioner_id,
                "agency": p.agency,
                "organisation_code": p.organisation_code,
            }
        )
        return [
            route(
                AdviceRequested(
                    advice_request_id=d["advice_request_id"],
                    reg6_category=d["reg6_category"],
                    requested_on=on,
                    **who,
                )
            )
        ]
    if k == "advice_answer":
        p = d["practitioner"]
        request_id = d["advice_request_id"]
        if p is None:
            publisher: Agency | School = SEN_SERVICE
            author, agency, category, basis = child.parents[0].ref, "family", "family_views", None
        elif p.channel == "fhir":
            publisher = COMMUNITY_TRUST
            author, agency, category = p.practitioner_id, "health", "health"
            basis = "reg6_ehc_advice"
        else:
            publisher = PUBLISHERS[p.publisher]
            category = "social_care" if p.agency == "social_care" else "education"
            author, agency, basis = p.practitioner_id, p.agency, "reg6_ehc_advice"
        payload = AdviceSubmitted(
            advice_request_id=request_id,
            practitioner_id=author,
            agency=agency,
            submitted_on=on,
            advice_category=category,
            document=DocumentRef(
                document_id=f"advice-{request_id}",
                system=publisher.system,
                url=f"https://documents.example.org/ehc-advice/{request_id}.pdf",
                title="Advice for the EHC needs assessment",
            ),
        )
        return [
            Raw(
                payload,
                _at(on),
                _src(publisher, f"{msg}:advice"),
                "event",
                plan_id,
                category,
                ("ehc_assessment",),
                basis,
            )
        ]
    if k == "exception":
        return [
            route(
                ExceptionRecorded.model_validate(
                    {key: v for key, v in d.items() if v not in (None, [])}
                )
            )
        ]
    if k == "draft":
        return [route(DraftIssued(issued_on=on, comments_by=d["comments_by"]))]
    if k == "comments":
        return [
            case_system(
                CommentsReceived(
                    received_on=on,
                    by=d["by"],
                    summary="We agree with the draft and ask for the current school to be named.",
                )
            )
        ]
    if k == "final":
        return [route(Finalised(finalised_on=on, placement=d["placement"]))]
    if k == "outcome":
        return [
            case_system(
                OutcomeAgreed(
                    outcome_id=d["outcome_id"],
                    need_section=d["need_section"],
                    area=d["area"],
                    what=d["what"],
                    by_when=d["by_when"],
                    how_measured=d["how_measured"],
                    agreed_on=on,
                )
            )
        ]
    if k == "provision":
        p = d["provider"]
        provider = (
            Provider(agency="local_authority")
            if p is None
            else Provider(
                agency=p.agency,
                organisation_code=p.organisation_code,
                practitioner_id=p.practitioner_id,
                role=p.role,
            )
        )
        category = {"F": "education", "G": "health"}.get(d["section"], "social_care")
        return [
            case_system(
                ProvisionAgreed(
                    provision_id=d["provision_id"],
                    section=d["section"],
                    description=d["description"],
                    provider=provider,
                    amount=Amount(**d["amount"]),
                    outcome_ids=tuple(d["outcome_ids"]),
                    agreed_on=on,
                    starts_on=on,
                ),
                category,
            )
        ]
    if k == "budget":
        return [
            case_system(
                PersonalBudgetAgreed(
                    budget_id=d["budget_id"],
                    amount=Decimal(d["amount"]),
                    period=d["period"],
                    direct_payment=d["direct_payment"],
                    covers=tuple(d["covers"]),
                    description=d["description"],
                    agreed_on=on,
                    starts_on=on,
                ),
                d["covers"][0],
            )
        ]
    if k == "review":
        sent, decided = date.fromisoformat(d["report_sent_on"]), date.fromisoformat(d["decided_on"])
        return [
            route(
                ReviewMeetingHeld(
                    review_id=d["review_id"], held_on=on, kind=d["kind"], family_attended=True
                )
            ),
            route(ReviewReportSent(review_id=d["review_id"], sent_on=sent), sent, 1),
            route(
                ReviewDecided(review_id=d["review_id"], decision=d["decision"], decided_on=decided),
                decided,
                2,
            ),
        ]
    if k in ("progress", "conclusion"):  # what a review found: not in this dataset
        return []
    raise ValueError(f"no fact for a {k} step ({ref})")


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class _EventId:
    """All `decision_id_for` reads of a fact."""

    event_id: uuid.UUID


class DirectWriter:
    """Writes facts onto the log as the consent gate would (see the module docstring)."""

    def __init__(self, the_hub: Hub) -> None:
        self.hub = the_hub
        self.policy = the_hub.policy
        self.master = load_master_key(the_hub.settings)
        self.now = datetime.now(UTC)
        self.keys: dict[str, bytes] = {}
        self.new_keys: list[tuple[str, bytes, str]] = []
        self.persons: list[tuple[str, str, str]] = []
        self.identifiers: list[tuple[str, str, str]] = []
        self.events: list[NewRecord] = []
        self.withheld: list[NewRecord] = []
        self.counts = {"events": 0, "withheld": 0}
        self._signatures: dict[str, tuple[str, ...]] = {}
        self._decisions: dict[tuple[Any, ...], tuple[bool, str]] = {}

    def _key(self, child_id: str, category: str) -> bytes:
        kid = data_key_id(child_id, category)
        key = self.keys.get(kid)
        if key is None:
            key = self.keys[kid] = new_data_key()
            self.new_keys.append((kid, self.master.wrap(key, kid), self.now.isoformat()))
        return key

    def person(self, s: Story) -> None:
        c = s.child
        self.persons.append((s.child_id, c.date_of_birth.isoformat(), self.now.isoformat()))
        persons = self.hub.persons
        for system, value in (
            (IdSystem.NHS_NUMBER, c.nhs_number),
            (IdSystem.UPN, c.upn),
            (IdSystem.LA_CHILD_ID, f"{LA_CODE}:{c.la_child_id}" if c.la_child_id else None),
        ):
            if value:
                h = persons._hash(Identifier(system, value))
                self.identifiers.append((h, system.value, s.child_id))

    def state_of(self, s: Story) -> ConsentState:
        envs = [
            self._envelope(s.child_id, r) for r in s.first if isinstance(r.payload, ConsentRecorded)
        ]
        return ConsentState.fold(s.child_id, envs)

    @staticmethod
    def _envelope(child_id: str, r: Raw) -> Envelope:
        return Envelope.wrap(
            r.payload,
            child_id=child_id,
            source=r.source,
            occurred_at=r.at,
            plan_id=r.plan_id,
            sharing=Sharing.of(r.purposes, r.basis),
            **({"category": r.category} if r.category else {}),
        )

    def write(self, child_id: str, r: Raw, state: ConsentState) -> None:
        env = self._envelope(child_id, r)
        key = f"{r.source.agency}|{r.source.message_id or '-'}|{r.ref or env.event_type}"
        headers = ((DEDUPE_HEADER, key.encode()),)
        if env.event_type.startswith(GOVERNANCE):  # permitted, sealed where about the child
            self.events.append(NewRecord(child_id, self._sealed(child_id, env), headers))
            return
        permitted, basis = self._decide(env, r, state)
        if permitted:
            ref = ConsentRef(
                decision_id=decision_id_for(_EventId(env.event_id), state, self.policy, self.now),  # type: ignore[arg-type]
                lawful_basis=basis,
            )
            env = env.model_copy(update={"consent": ref})
        value = self._sealed(child_id, env)
        (self.events if permitted else self.withheld).append(NewRecord(child_id, value, headers))

    def _sealed(self, child_id: str, env: Envelope) -> bytes:
        if personal_fields(type(env.payload)) == ():
            return encode(env)
        return orjson.dumps(
            seal_envelope(orjson.loads(encode(env)), self._key(child_id, env.category))
        )

    def _decide(self, env: Envelope, r: Raw, state: ConsentState) -> tuple[bool, str]:
        """`decide_sharing`'s outcome and lawful basis, made once per (consents in force,
        fact key): a decision depends on the fact's category, source, purposes and claimed
        basis and on the consents in force, never on its content or date (the joined view's
        `Viewer` caches it the same way). Consent ids are part of the key: the lawful basis
        on the envelope names the consent."""
        signature = self._signatures.get(state.child_id)
        if signature is None:
            signature = self._signatures[state.child_id] = tuple(
                rec.consent.model_dump_json(
                    include={"consent_id", "decision", "scope", "exceptions"}
                )
                for rec in state.effective(self.now)
            )
        purposes = r.purposes or DEFAULT_PURPOSES
        key = (
            signature,
            env.category,
            env.source.agency,
            env.source.organisation_code,
            purposes,
            r.basis,
        )
        known = self._decisions.get(key)
        if known is None:
            decision = decide_sharing(
                Fact.of(env),
                state,
                self.policy,
                at=self.now,
            )
            known = self._decisions[key] = (decision.permitted, decision.lawful_basis)
        return known

    async def flush(self) -> None:
        store = self.hub.store
        async with store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO data_key (child_id, wrapped, created_at) VALUES (?, ?, ?)",
                self.new_keys,
            )
            await tx.executemany(
                "INSERT INTO person (child_id, date_of_birth, created_at) VALUES (?, ?, ?)",
                self.persons,
            )
            await tx.executemany(
                "INSERT INTO person_identifier (id_hash, system, child_id) VALUES (?, ?, ?)"
                " ON CONFLICT (id_hash) DO NOTHING",
                self.identifiers,
            )
        for log_name, records in ((LogName.EVENTS, self.events), (LogName.WITHHELD, self.withheld)):
            for i in range(0, len(records), APPEND_BATCH):
                await self.hub.log.append(log_name, records[i : i + APPEND_BATCH])
        self.counts["events"] += len(self.events)
        self.counts["withheld"] += len(self.withheld)
        self.new_keys, self.persons, self.identifiers = [], [], []
        self.events, self.withheld = [], []


@dataclass
class Dataset:
    cohort: Cohort
    stories: dict[int, Story]
    """By cohort index: only what the latency runs need (child id, plan id, coordinator)."""
    twins: list[tuple[Story, Story]]
    counts: dict[str, int]
    seconds: float
    coordinators: int


def _slim(s: Story) -> Story:
    return Story(s.child, s.child_id, s.plan_id, s.coordinator)


def _new_id() -> str:
    from hub.identity.person_index import new_child_id

    return new_child_id()


def _twin_indices(cohort: Cohort) -> list[int]:
    """The big team, one child of each consent story, and a paused clock."""
    wanted: list[Callable[[Child], bool]] = [
        lambda c: c.index == 0,
        lambda c: c.consent == "withdrawn_social_care" and c.scenario == "review_due",
        lambda c: c.consent == "refused_health" and c.scenario not in ("no_plan", "requested"),
        lambda c: c.consent == "none" and c.scenario != "no_plan",
        lambda c: c.consent == "young_person" and c.scenario not in ("no_plan",),
        lambda c: c.scenario == "paused",
        lambda c: c.scenario == "advice_overdue",
    ]
    out: list[int] = []
    for pred in wanted:
        found = next((c.index for c in cohort.children if pred(c) and c.index not in out), None)
        if found is not None:
            out.append(found)
    return out


async def build_dataset(
    the_hub: Hub, n_children: int, n_events: int, say: Callable[[str], None]
) -> Dataset:
    gate = the_hub
    t0 = time.perf_counter()
    cohort = build_cohort(n_children, seed=7)
    today = cohort.today
    coordinators = coordinators_for(n_children)
    per_child = max(1, n_events // n_children)
    # -- twins through the real gate first (the log is still small: their catch-ups are cheap)
    twins: list[tuple[Story, Story]] = []
    for index in _twin_indices(cohort):
        child = cohort.children[index]
        twin_id = _new_id()
        twin = story(
            child,
            today,
            child_id=twin_id,
            plan_id=_new_id().replace("hc-", "plan-"),
            coordinator=TWIN_COORDINATOR,
            tag="twin-",
            target=per_child,
        )
        await gate.persons.ensure(twin_id)
        await gate.persons.set_date_of_birth(twin_id, child.date_of_birth)
        for part in (twin.first, twin.body, twin.last):
            for o in await gate.handlers.submit_facts(
                [r.inbound(twin_id) for r in part], actor="bench:twin"
            ):
                if o.status not in ("appended", "withheld"):
                    raise RuntimeError(f"twin of child {index}: {o}")
        twins.append((twin, twin))  # the original is filled in below
    say(
        f"sent {len(twins)} twins through the consent gate ({sum(t.count for t, _ in twins)} facts)"
    )
    twin_of = {t.child.index: k for k, (t, _) in enumerate(twins)}
    # -- the cohort, written as the gate would
    writer = DirectWriter(the_hub)
    stories: dict[int, Story] = {}
    generated = 0
    for lo in range(0, n_children, CHUNK):
        chunk: list[Story] = []
        for child in cohort.children[lo : lo + CHUNK]:
            weight = 0.6 + 0.1 * (child.index % 9)  # 0.6 .. 1.4, mean 1
            target = per_child * 3 if child.index == 0 else int(per_child * weight + 0.999)
            has_plan = bool(plan_steps(child, today))
            s = story(
                child,
                today,
                child_id=_new_id(),
                plan_id=_new_id().replace("hc-", "plan-") if has_plan else None,
                coordinator=coordinator_of(child.index, coordinators),
                tag="",
                target=target,
            )
            chunk.append(s)
            writer.person(s)
            stories[child.index] = _slim(s)
            if child.index in twin_of:
                k = twin_of[child.index]
                twins[k] = (twins[k][0], _slim(s))
        states = {s.child_id: writer.state_of(s) for s in chunk}
        for s in chunk:
            for r in s.first:
                writer.write(s.child_id, r, states[s.child_id])
        merged = sorted(
            ((r.at, n, s.child_id, r) for s in chunk for n, r in enumerate(s.body)),
            key=lambda t: t[0],
        )
        for _, _, child_id, r in merged:
            writer.write(child_id, r, states[child_id])
        for s in chunk:
            for r in s.last:
                writer.write(s.child_id, r, states[s.child_id])
        generated += sum(s.count for s in chunk)
        await writer.flush()
        if (lo // CHUNK) % 8 == 7 or lo + CHUNK >= n_children:
            elapsed = time.perf_counter() - t0
            say(
                f"  {min(lo + CHUNK, n_children):,} children, {generated:,} facts written "
                f"({generated / elapsed:,.0f} facts/s)"
            )
    counts = dict(writer.counts)
    counts["facts"] = generated
    return Dataset(cohort, stories, twins, counts, time.perf_counter() - t0, coordinators)


# --------------------------------------------------------------------------- catch-up


async def raw_read(log: EventLog, batch: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    total = 0
    for p in range(log.partitions(LogName.EVENTS)):
        off = 0
        while records := await log.read(LogName.EVENTS, p, off, batch):
            total += len(records)
            off = records[-1].offset + 1
    return total, time.perf_counter() - t0


async def read_and_open(the_hub: Hub, batch: int) -> tuple[int, float]:
    """Read every record and open it (decrypt and validate), as each runner does first."""
    opener = the_hub.opener
    t0 = time.perf_counter()
    total = 0
    for p in range(the_hub.log.partitions(LogName.EVENTS)):
        off = 0
        while records := await the_hub.log.read(LogName.EVENTS, p, off, batch):
            await opener.open_records(records)
            total += len(records)
            off = records[-1].offset + 1
    return total, time.perf_counter() - t0


@dataclass
class CatchUp:
    label: str
    log_events: int
    raw_rate: float
    open_rate: float
    records_read: int
    seconds: float
    decode_seconds: float
    per_projection: list[tuple[str, int, float]]

    def lines(self) -> list[str]:
        out = [
            f"catch-up ({self.label}): every projection rebuilt from offset 0 in one pass "
            f"(`hub replay --all`: each batch read once and decoded once per mode for all "
            f"of them): {self.records_read:,} log records ({self.log_events:,} on hub.events) "
            f"in {self.seconds:,.1f} s = {self.records_read / self.seconds:,.0f} records/s "
            f"({self.records_read / self.seconds / self.raw_rate:4.2f} x raw read)",
            f"    raw log read (EventLog.read, batch 500): {self.raw_rate:,.0f} records/s;"
            f" read + open (decrypt, validate): {self.open_rate:,.0f} records/s",
            f"    of which decoding (shared): {self.decode_seconds:7.1f} s",
        ]
        for name, n, t in self.per_projection:
            out.append(
                f"    {name:<20} {n:>10,} records applied in {t:7.1f} s"
                f" = {n / t if t else 0:>9,.0f} records/s"
            )
        return out


async def catch_up(the_hub: Hub, label: str) -> CatchUp:
    """Raw read and read+open rates, then the joint rebuild with the time each runner
    spends applying (its transaction) and the shared decoding, by wrapping them."""
    from hub.projections import runner as runner_module

    batch = the_hub.settings.projector_batch
    n_raw, t_raw = await raw_read(the_hub.log, batch)
    n_open, t_open = await read_and_open(the_hub, batch)
    spent: dict[str, float] = {r.name: 0.0 for r in the_hub.runners}
    decode_spent = [0.0]
    real_decode = runner_module.decode_records

    async def timed_decode(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await real_decode(*args)
        finally:
            decode_spent[0] += time.perf_counter() - t0

    def timing(runner: Any) -> Callable[..., Awaitable[None]]:
        real = runner.process

        async def process(records: Any, decoded: Any = None) -> None:
            t0 = time.perf_counter()
            try:
                await real(records, decoded)
            finally:
                spent[runner.name] += time.perf_counter() - t0

        return process

    originals = {r.name: r.process for r in the_hub.runners}
    runner_module.decode_records = timed_decode  # type: ignore[assignment]
    for r in the_hub.runners:
        r.process = timing(r)  # type: ignore[method-assign]
        r.stats = runner_module.RunnerStats()
    try:
        t0 = time.perf_counter()
        read = await runner_module.rebuild_together(the_hub.runners)
        took = time.perf_counter() - t0
    finally:
        runner_module.decode_records = real_decode
        for r in the_hub.runners:
            r.process = originals[r.name]  # type: ignore[method-assign]
    per = [(r.name, r.stats.applied, spent[r.name]) for r in the_hub.runners]
    n_raw2, t_raw2 = await raw_read(the_hub.log, batch)  # again after: the mean of both
    return CatchUp(
        label,
        n_raw,
        statistics.mean([n_raw / t_raw, n_raw2 / t_raw2]),
        n_open / t_open,
        read,
        took,
        decode_spent[0],
        per,
    )


# --------------------------------------------------------------------------- latency


UUIDISH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _normalised(body: Any, replace: dict[str, str]) -> Any:
    text = json.dumps(body, sort_keys=True)
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(UUIDISH.sub("<event-id>", text.replace("twin-", "")))


class Stages:
    """Time spent in the route's steps (outermost call only), per request."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.depth = 0

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        stages = self

        if asyncio.iscoroutinefunction(fn):

            async def awrapped(*args: Any, **kwargs: Any) -> Any:
                if stages.depth:
                    return await fn(*args, **kwargs)
                stages.depth += 1
                t0 = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    stages.depth -= 1
                    stages.totals[name] = stages.totals.get(name, 0.0) + time.perf_counter() - t0

            return awrapped

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if stages.depth:
                return fn(*args, **kwargs)
            stages.depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stages.depth -= 1
                stages.totals[name] = stages.totals.get(name, 0.0) + time.perf_counter() - t0

        return wrapped


STAGES = {
    "auth (API key lookup)": None,
    "caseload check": "require_on_caseload",
    "plan -> child + caseload check": "plan_on_caseload",
    "catch-up (every partition)": None,
    "consent states": "viewer_for",
    "decide (each fact, at view time)": "Viewer.sees",
    "load team facts": "load_team_facts",
    "load plan facts": "load_plan_facts",
    "load clock facts": "load_clock_facts",
    "decide (hidden practitioners)": "hidden_practitioners",
    "open (decrypt + validate)": "open_facts",
    "who decides": "who_decides",
    "fold team": "fold_team",
    "build timeline": "build_timeline",
    "caseload standings": "standings",
    "audit append": "audit_reads",
    "caseload entries": "_entry",
    "fast-path checks": "fast_path",
}


@contextlib.contextmanager
def staged(app: Any, the_hub: Hub, stages: Stages) -> Iterator[None]:
    from hub.consent.viewer import Viewer
    from hub.queries import joined as routes_joined  # where the joined view's steps run

    saved: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, name: str) -> None:
        if not hasattr(obj, attr):  # a step the route no longer has (renamed): not staged
            return
        saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, stages.wrap(name, getattr(obj, attr)))

    for name, target in STAGES.items():
        if target is None:
            continue
        if target.startswith("Viewer."):
            patch(Viewer, target.removeprefix("Viewer."), name)
        else:
            patch(routes_joined, target, name)
    import fastapi.routing

    patch(the_hub.views, "catch_up", "catch-up (child's partition)")
    patch(the_hub.views, "catch_up_partitions", "catch-up (every partition)")
    patch(app.state.auth, "authenticate", "auth (API key lookup)")
    patch(the_hub.store, "fetchall", "other SQL in the route")
    patch(the_hub.store, "fetchone", "other SQL in the route")
    patch(fastapi.routing, "serialize_response", "response validation + JSON (FastAPI)")
    patch(ConsentState, "describe", "consent in words")

    class Summaries:  # the route's `PlanSummary.model_validate_json`, timed
        model_validate_json = stages.wrap(
            "plan summaries (JSON -> model)", PlanSummary.model_validate_json
        )

    saved.append((routes_joined, "PlanSummary", PlanSummary))
    setattr(routes_joined, "PlanSummary", Summaries)  # noqa: B010 - a module's global
    instances = (the_hub.views, app.state.auth, the_hub.store)
    try:
        yield
    finally:
        for obj, attr, original in reversed(saved):
            if any(obj is i for i in instances):
                delattr(obj, attr)  # back to the class's method
            else:
                setattr(obj, attr, original)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def latency(
    the_hub: Hub,
    data: Dataset,
    label: str,
    *,
    requests: int,
    warm: int,
    profile: int,
    say: Callable[[str], None],
) -> list[str]:
    import httpx

    from hub.api.app import create_app

    app = create_app(the_hub.settings, run_projector=False, hub=the_hub)
    lines: list[str] = []
    rng = random.Random(11)
    coordinator = coordinator_of(1, data.coordinators)
    mine = [s for s in data.stories.values() if s.coordinator == coordinator]
    planned = [s for s in mine if s.plan_id]
    async with app.router.lifespan_context(app):
        keys = the_hub.api_keys
        tokens = {}
        for who in (*{s.coordinator for s in data.stories.values()}, TWIN_COORDINATOR):
            _, tokens[who] = await keys.create("coordinator", who, None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub.bench", timeout=600
        ) as client:

            async def get(path: str, who: str = coordinator) -> Any:
                r = await client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
                if r.status_code != 200:
                    raise RuntimeError(f"GET {path} as {who}: {r.status_code} {r.text[:300]}")
                return r.json()

            lines += await check_views(get, data)
            routes: dict[str, Callable[[], str]] = {
                "GET /children/{id}/team": lambda: f"/children/{rng.choice(mine).child_id}/team",
                "GET /plans/{id}/timeline": lambda: (
                    f"/plans/{rng.choice(planned).plan_id}/timeline"
                ),
                "GET /caseload": lambda: "/caseload",
            }
            results: dict[str, list[float]] = {}
            sizes: dict[str, list[int]] = {}
            auth = {"Authorization": f"Bearer {tokens[coordinator]}"}
            for route, path in routes.items():
                n = requests if route != "GET /caseload" else max(20, requests // 5)
                times: list[float] = []
                for k in range(warm + n):
                    p = path()
                    t0 = time.perf_counter()
                    r = await client.get(p, headers=auth)
                    elapsed = time.perf_counter() - t0
                    if r.status_code != 200:
                        raise RuntimeError(f"GET {p}: {r.status_code} {r.text[:300]}")
                    if k >= warm:
                        times.append(elapsed * 1000)
                        sizes.setdefault(route, []).append(len(r.content))
                results[route] = times
                say(f"  {label}: {route} measured")
            for route, times in results.items():
                goal = (
                    ""
                    if route == "GET /caseload"
                    else (f"  goal p95 <= 20 ms {'MET' if pct(times, 95) <= 20 else 'MISSED'}")
                )
                lines.append(
                    f"latency ({label}) {route:<26} n={len(times):>4}  p50 {pct(times, 50):7.1f} ms"
                    f"  p95 {pct(times, 95):7.1f} ms  max {max(times):7.1f} ms"
                    f"  (mean response {statistics.mean(sizes[route]) / 1024:,.1f} KiB){goal}"
                )
            # -- what bounds it: stages over fresh requests, then cProfile
            floor: list[float] = []
            for _ in range(warm + 100):
                t0 = time.perf_counter()
                await client.get("/healthz")
                floor.append((time.perf_counter() - t0) * 1000)
            floor = floor[warm:]
            lines.append(
                f"  floor ({label}): GET /healthz (no auth, no I/O) p50 "
                f"{pct(floor, 50):.1f} ms, p95 {pct(floor, 95):.1f} ms: httpx + ASGI +"
                " FastAPI alone"
            )
            for route, path in routes.items():
                stages = Stages()
                n = max(10, min(100, requests // 3)) if route != "GET /caseload" else 10
                t0 = time.perf_counter()
                with staged(app, the_hub, stages):
                    for _ in range(n):
                        await get(path())
                total = (time.perf_counter() - t0) * 1000 / n
                parts = sorted(stages.totals.items(), key=lambda kv: -kv[1])
                shown = ", ".join(
                    f"{k} {v * 1000 / n:.1f}" for k, v in parts if v * 1000 / n >= 0.05
                )
                rest = total - sum(stages.totals.values()) * 1000 / n
                lines.append(
                    f"  stages ({label}) {route}: mean {total:.1f} ms per request = "
                    f"{shown}, rest (ASGI, routing, the route's own code) {rest:.1f}"
                    " [ms]"
                )
            if profile:
                for route, path in routes.items():
                    prof = cProfile.Profile()
                    n = profile if route != "GET /caseload" else max(3, profile // 5)
                    prof.enable()
                    for _ in range(n):
                        await get(path())
                    prof.disable()
                    buf = io.StringIO()
                    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(8)
                    lines.append(f"  cProfile ({label}) {route}, {n} requests, top by own time:")
                    lines += ["    " + ln for ln in _profile_rows(buf.getvalue())]
                    buf = io.StringIO()
                    pstats.Stats(prof, stream=buf).sort_stats("cumtime").print_stats(
                        r"/hub/(consent|projections|queries|events|store|log|plans)", 12
                    )
                    lines.append(f"  cProfile ({label}) {route}: hub functions by cumulative time:")
                    lines += ["    " + ln for ln in _profile_rows(buf.getvalue())]
    return lines


def _profile_rows(text: str) -> list[str]:
    rows = text.splitlines()
    start = next((i for i, r in enumerate(rows) if r.strip().startswith("ncalls")), None)
    if start is None:
        return rows[-10:]
    out = [rows[start]]
    for r in rows[start + 1 :]:
        if r.strip():
            out.append(r.replace(str(Path.cwd()) + "/", "")[:160])
    return out


async def check_views(get: Callable[..., Awaitable[Any]], data: Dataset) -> list[str]:
    """Each original (written as the gate would) answers as its twin (through the gate)."""
    lines = []
    compared = 0
    for twin, original in data.twins:
        replace = {original.child_id: "<child>", twin.child_id: "<child>"}
        if original.plan_id and twin.plan_id:
            replace |= {original.plan_id: "<plan>", twin.plan_id: "<plan>"}
        views = [("/children/{}/team", "child_id"), ("/children/{}/plans", "child_id")]
        if original.plan_id:
            views.append(("/plans/{}/timeline", "plan_id"))
        for path, attr in views:
            a = await get(path.format(getattr(original, attr)), original.coordinator)
            b = await get(path.format(getattr(twin, attr)), TWIN_COORDINATOR)
            if _normalised(a, replace) != _normalised(b, replace):
                raise AssertionError(
                    f"{path} of child {original.child.index} differs from its gate-ingested twin:"
                    f"\n{json.dumps(_normalised(a, replace), sort_keys=True)[:3000]}"
                    f"\n{json.dumps(_normalised(b, replace), sort_keys=True)[:3000]}"
                )
            compared += 1
    big = data.stories[0]
    team = await get(f"/children/{big.child_id}/team", big.coordinator)
    if team["member_count"] != 30:
        raise AssertionError(f"the big team lists {team['member_count']} members, not 30")
    first = coordinator_of(0, data.coordinators)
    caseload = await get("/caseload", first)
    expected = sum(1 for s in data.stories.values() if s.coordinator == first)
    if caseload["total"] != expected:
        raise AssertionError(f"caseload total {caseload['total']}, expected {expected}")
    overdue = sum(1 for e in caseload["children"] if e["overdue_count"])
    lines.append(
        f"check: {compared} views of {len(data.twins)} children written as the gate would equal "
        f"their gate-ingested twins' (but for ids); the big team lists 30 members; "
        f"{first}'s caseload lists {expected} children, {overdue} with something overdue"
    )
    return lines


# --------------------------------------------------------------------------- the run


async def copy_gate_tables(src: Hub, dst: Hub) -> None:
    """The gate's own tables a store needs to read the log: data keys and the person index."""
    for table, cols in (
        ("data_key", "child_id, wrapped, created_at, erased_at"),
        ("person", "child_id, date_of_birth, created_at, erased_at"),
        ("person_identifier", "id_hash, system, child_id"),
    ):
        rows = await src.store.fetchall(f"SELECT {cols} FROM {table}")  # noqa: S608 - constants
        marks = ", ".join("?" for _ in cols.split(","))
        for i in range(0, len(rows), 5000):
            async with dst.store.transaction() as tx:
                await tx.executemany(
                    f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608
                    [
                        tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                        for r in rows[i : i + 5000]
                    ],
                )


async def copy_log(src: EventLog, dst: EventLog) -> int:
    total = 0
    for log_name in (LogName.EVENTS, LogName.WITHHELD, LogName.AUDIT):
        for p in range(src.partitions(log_name)):
            off = 0
            while records := await src.read(log_name, p, off, APPEND_BATCH):
                await dst.append(log_name, [NewRecord(r.key, r.value, r.headers) for r in records])
                total += len(records)
                off = records[-1].offset + 1
    return total


async def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def autovacuum_settled(dsn: str, limit: float = 600.0) -> tuple[int, float]:
    """Wait until no autovacuum worker runs (a rebuild inserts a million rows, and
    PostgreSQL's insert-triggered autovacuum then works through them for minutes, on the
    same two cores as the requests measured next). Returns (workers first seen, seconds
    waited); polls every second, for at most `limit` seconds."""
    import asyncpg

    query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        first = running = int(await conn.fetchval(query))
        while running and time.perf_counter() - t0 < limit:
            await asyncio.sleep(1.0)
            running = int(await conn.fetchval(query))
        return first, time.perf_counter() - t0
    finally:
        await conn.close()


BACKENDS = ("sqlite", "postgres", "kafka")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(
    n_children: int,
    n_events: int,
    kafka_bootstrap: str | None,
    pg_dsn: str | None,
    *,
    requests: int = 300,
    warm: int = 30,
    profile: int = 20,
    backends: Sequence[str] = BACKENDS,
) -> list[str]:
    """Build the dataset on the embedded default, then measure catch-up and latency on each
    of `backends`: `sqlite` (SQLite log + store), `postgres` (the same SQLite log, a
    PostgreSQL store), `kafka` (the log copied onto Kafka, a PostgreSQL store). Returns
    the report lines (also printed as they come)."""
    from hub.observability import configure_logging

    configure_logging("WARNING")  # the hub's info lines (keys created...) are not figures
    lines: list[str] = []
    started = time.perf_counter()

    def say(text: str) -> None:
        print(text, flush=True)

    def report(new: list[str]) -> None:
        for ln in new:
            say(ln)
        lines.extend(new)

    report(
        [
            f"views: {n_children:,} children, >= {n_events:,} events, on "
            f"{', '.join(backends)}; load average {_load()}"
        ]
    )

    async def measure(the_hub: Hub, data: Dataset, label: str, *, views: bool = True) -> None:
        cu = await catch_up(the_hub, label)
        report(cu.lines())
        if views and pg_dsn is not None and the_hub.settings.store_backend == "postgres":
            workers, waited = await autovacuum_settled(pg_dsn)
            report([f"  (autovacuum: {workers} worker(s) running after the catch-up; waited "
                    f"{waited:,.0f} s for them to finish before measuring)"])  # fmt: skip
        if views:
            report(
                await latency(
                    the_hub, data, label, requests=requests, warm=warm, profile=profile, say=say
                )
            )
        report(
            [f"  ({label}: done at {time.perf_counter() - started:,.0f} s; load average {_load()})"]
        )

    async def on_postgres(
        settings: Settings, data: Dataset, label: str, *, copy: bool = False
    ) -> None:
        assert pg_dsn is not None
        try:
            src = await open_hub(embedded)
            try:
                the_hub = await open_hub(settings)
                try:
                    await copy_gate_tables(src, the_hub)
                    if copy:
                        t0 = time.perf_counter()
                        n = await copy_log(src.log, the_hub.log)
                        took = time.perf_counter() - t0
                        say(f"  copied {n:,} records onto Kafka in {took:,.0f} s")
                    await src.close()
                    await measure(the_hub, data, label)
                finally:
                    await the_hub.close()
            finally:
                await src.close()
        finally:
            await drop_schema(pg_dsn, settings.postgres_schema)

    async def main() -> None:
        the_hub = await open_hub(embedded)
        try:
            data = await build_dataset(the_hub, n_children, n_events, say)
            c = data.counts
            report(
                [
                    f"dataset: {c['facts']:,} facts about {n_children:,} children written in "
                    f"{data.seconds:,.0f} s ({c['facts'] / data.seconds:,.0f} facts/s): "
                    f"{c['events']:,} on hub.events, {c['withheld']:,} withheld; "
                    f"{data.coordinators} coordinator(s) of ~{n_children // data.coordinators:,}"
                    " children each"
                ]
            )
            if "sqlite" in backends:
                await measure(the_hub, data, "SQLite log + SQLite store (embedded default)")
        finally:
            await the_hub.close()
        if "postgres" in backends:
            if pg_dsn is None:
                say("(views on PostgreSQL skipped: no PostgreSQL)")
            else:
                await on_postgres(
                    settings(
                        store_backend="postgres",
                        postgres_dsn=pg_dsn,
                        postgres_schema=f"bench_views_{uuid.uuid4().hex[:8]}",
                    ),
                    data,
                    "SQLite log + PostgreSQL store",
                )
        if "kafka" in backends:
            if pg_dsn is None or kafka_bootstrap is None:
                say("(views on Kafka skipped: no PostgreSQL or no broker)")
            else:
                await on_postgres(
                    settings(
                        store_backend="postgres",
                        postgres_dsn=pg_dsn,
                        postgres_schema=f"bench_views_{uuid.uuid4().hex[:8]}",
                        log_backend="kafka",
                        kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_prefix=f"bench.views.{uuid.uuid4().hex[:6]}.",
                        kafka_enable_idempotence=False,
                    ),
                    data,
                    "Kafka log (Tansu) + PostgreSQL store",
                    copy=True,
                )
        report([f"views: done in {time.perf_counter() - started:,.0f} s"])

    with tempfile.TemporaryDirectory(prefix="bench-views-") as d:

        def settings(**options: Any) -> Settings:
            return Settings(data_dir=Path(d) / "data", _env_file=None, **options)

        embedded = settings()
        asyncio.run(main())
    return lines
