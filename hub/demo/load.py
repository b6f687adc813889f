"""Loading the demo cohort into a running hub, through its public routes only.
`load_cohort(client, keys, cohort)` plays every system around the hub against an
`httpx.AsyncClient` (in-process over ASGI, or over HTTP): the LA's SEN case system names
each child by all their identifiers and allocates a SEN officer (`POST /ingest/events`);
the admin puts every child on the demo coordinator's caseload; the coordinator records
what each family decided about sharing (granted; health refused; the young person's own)
on the consent routes; the three schools send their CTF files and staff lists, the two
NHS trusts their FHIR bundles, children's services a CIN census return and a case-system
message, the family portal each family's own views (section A); the LA, schools, short
breaks and the voluntary sector add the members only their systems know; the coordinator
records key working, team meetings and each plan's journey on the plan routes while the
advisers' systems answer the advice requests (health advice as FHIR DocumentReferences);
and last, families withdraw a consent. Nothing is written to the log directly: every fact
passes an adapter or a route and the consent gate, like any other. `create_demo_keys`
issues the API keys it uses; `open_in_process` runs an app's lifespan with an ASGI client.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from hub.auth.keys import ApiKeys, Publishing
from hub.consent.policy import SharingPolicy
from hub.demo.cohort import (
    ACUTE_TRUST,
    AGENCIES,
    CARERS_CENTRE,
    CHILDRENS_SERVICES,
    COMMUNITY_TRUST,
    FAMILY_PORTAL,
    GP_PRACTICES,
    PUBLISHERS,
    SCHOOLS,
    SEN_SERVICE,
    UPN_LA,
    Agency,
    Child,
    Cohort,
    Practitioner,
    School,
)
from hub.demo.journeys import PlanStep, final_date, plan_steps, team_steps
from hub.demo.messages import (
    advice_bundle,
    cin_census_message,
    ctf_message,
    family_views,
    health_bundle,
    inbound_event,
    joined_event,
    social_care_message,
    staff_message,
)

COORDINATOR = "demo-coordinator"
IG_AUDITOR = "demo-ig-auditor"
ADMIN = "demo-admin"
PRACTITIONER = "demo-practitioner"
"""The SENCo on the big team child's team, as a practitioner key."""
PARENT = "demo-parent"
"""A parent of the big team child, from a redeemed invitation."""
PURPOSES = ["ehc_assessment", "plan_delivery", "review", "direct_care"]

Progress = Callable[[str], None]
Publisher = Agency | School


class DemoLoadError(Exception):
    """A route answered the loader with something it cannot go on from."""


@dataclass
class DemoKeys:
    """The demo's API tokens, by principal name."""

    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def coordinator(self) -> str:
        return self.tokens[COORDINATOR]

    @property
    def ig_auditor(self) -> str:
        return self.tokens[IG_AUDITOR]

    @property
    def admin(self) -> str:
        return self.tokens[ADMIN]


@dataclass
class DemoResult:
    """What the load did: the hub ids of the children and plans, and the fact counts."""

    keys: DemoKeys
    child_ids: dict[int, str] = field(default_factory=dict)
    plan_ids: dict[int, str] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    seconds: float = 0.0

    def child_id(self, child: Child) -> str:
        return self.child_ids[child.index]


def principal_of(publisher: Publisher) -> str:
    """The principal (API key name) a publishing system uses."""
    return f"{publisher.agency}-system"


async def create_demo_keys(keys: ApiKeys) -> DemoKeys:
    """Issue the demo's API keys: coordinator, IG auditor, admin and one per system."""
    out = DemoKeys()
    for name, role in ((COORDINATOR, "coordinator"), (IG_AUDITOR, "ig_auditor"), (ADMIN, "admin")):
        _, out.tokens[name] = await keys.create(role, name, None)
    systems: tuple[Publisher, ...] = (*SCHOOLS, *AGENCIES)
    for system in systems:
        name = principal_of(system)
        _, out.tokens[name] = await keys.create(
            "agency", name, system.agency, publishing=publishing_of(system)
        )
    return out


def publishing_of(system: Publisher) -> Publishing:
    """What each demo system may claim: its kind of sender in the policy and the
    organisation codes its messages name (a school's URN and DfE number; a trust's ODS
    code and the GP practices whose records it sends; the LA's code)."""
    if isinstance(system, School):
        return Publishing("education", (system.urn, f"{UPN_LA}{system.estab}"))
    kinds = {
        COMMUNITY_TRUST.agency: "health", ACUTE_TRUST.agency: "health",
        CHILDRENS_SERVICES.agency: "social_care", SEN_SERVICE.agency: "local_authority",
        FAMILY_PORTAL.agency: "family", CARERS_CENTRE.agency: "voluntary",
    }  # fmt: skip
    kind = kinds[system.agency]
    codes = (system.organisation_code, *(GP_PRACTICES if kind == "health" else ()))
    return Publishing(kind, codes)


async def create_team_keys(
    client: httpx.AsyncClient, api_keys: ApiKeys, policy: SharingPolicy, keys: DemoKeys,
    child: Child, child_id: str,
) -> str | None:  # fmt: skip
    """A practitioner key for the child's SENCo and a parent's key from an invitation the
    coordinator issues and the parent redeems, as a family would; returns the practitioner
    id (None when the child has no SENCo)."""
    from hub.auth.keys import Identity

    senco = child.member("senco")
    if senco is not None:
        agency, identity = Identity.practitioner(
            policy, senco.practitioner_id, senco.role, senco.organisation_code
        )
        _, keys.tokens[PRACTITIONER] = await api_keys.create(
            "practitioner", PRACTITIONER, agency, identity
        )
    coordinator = {"Authorization": f"Bearer {keys.coordinator}"}
    r = await client.post(
        f"/children/{child_id}/invitations",
        json={"capacity": "parent_with_pr"},
        headers=coordinator,
    )
    if r.status_code != 201:
        raise DemoLoadError(f"inviting the parent answered {r.status_code}: {r.text[:200]}")
    r = await client.post("/invitations/redeem", json={"code": r.json()["code"]})
    if r.status_code != 200:
        raise DemoLoadError(f"redeeming the invitation answered {r.status_code}: {r.text[:200]}")
    keys.tokens[PARENT] = r.json()["token"]
    return None if senco is None else senco.practitioner_id


@asynccontextmanager
async def open_in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and yield a client that calls it in-process (no port)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tac-hub.demo", timeout=120
        ) as client:
            yield client


STATUSES = ("appended", "withheld", "queued", "duplicate", "rejected")
NOT_TAKEN = "not_taken"


def words(counts: Counter[str]) -> str:
    """'120 facts appended, 12 withheld; 9 parts not taken, each with its reason'."""
    parts = [f"{counts[k]} {k}" for k in STATUSES if counts.get(k)]
    if parts:
        n, status = parts[0].split(" ", 1)
        parts[0] = f"{n} {'fact' if n == '1' else 'facts'} {status}"
    text = ", ".join(parts) or "no facts"
    if counts.get(NOT_TAKEN):
        text += f"; {counts[NOT_TAKEN]} parts not taken, each with its reason"
    return text


class _Loader:
    def __init__(
        self, client: httpx.AsyncClient, keys: DemoKeys, cohort: Cohort, progress: Progress
    ) -> None:
        self.client = client
        self.keys = keys
        self.cohort = cohort
        self.today = cohort.today
        self.say = progress
        self.result = DemoResult(keys)

    # -- HTTP -------------------------------------------------------------------------
    async def call(
        self,
        who: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: Iterable[int] = (200, 201, 202),
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.keys.tokens[who]}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await self.client.post(path, json=json, content=content, headers=headers)
        self.result.requests += 1
        if response.status_code not in set(ok):
            raise DemoLoadError(
                f"POST {path} as {who} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    async def ingest(
        self, publisher: Publisher, path: str, body: bytes, media: str
    ) -> Counter[str]:
        answer = await self.call(principal_of(publisher), path, content=body, content_type=media)
        return self.count(answer)

    async def events(self, publisher: Publisher, events: list[dict[str, Any]]) -> Any:
        """Send events in the inbound form; the answer's per-event results, in order."""
        results: list[dict[str, Any]] = []
        counts: Counter[str] = Counter()
        for i in range(0, len(events), 1000):
            answer = await self.call(
                principal_of(publisher), "/ingest/events", json={"events": events[i : i + 1000]}
            )
            results += answer["results"]
            counts += self.count(answer)
        return results, counts

    def count(self, answer: Any) -> Counter[str]:
        """Facts per outcome in an ingest answer (its `summary`, else its per-fact
        results), plus the parts of the message the adapter did not take."""
        counts: Counter[str] = Counter()
        if isinstance(answer, dict):
            summary = answer.get("summary")
            if isinstance(summary, dict) and summary:
                counts.update({k: int(summary.get(k) or 0) for k in STATUSES})
            else:
                counts.update(str(r.get("status")) for r in answer.get("results") or [])
            self.result.outcomes += counts
            counts[NOT_TAKEN] += len(answer.get("not_taken") or [])
        return counts

    def child_id(self, child: Child) -> str:
        return self.result.child_ids[child.index]

    # -- the story ---------------------------------------------------------------------
    async def run(self) -> DemoResult:
        started = time.perf_counter()
        await self.name_children()
        await self.caseload_and_consents()
        await self.schools()
        await self.health()
        await self.social_care()
        await self.family()
        await self.team()
        await self.plans()
        await self.withdrawals()
        self.result.seconds = time.perf_counter() - started
        return self.result

    async def name_children(self) -> None:
        """The SEN case system names each child by every identifier it holds (UPN, NHS
        number, date of birth) and allocates their SEN casework officer: the hub links
        what schools, health and social care later send to one child."""
        events = []
        for child in self.cohort.children:
            officer = child.member("la_sen_officer")
            assert officer is not None  # every child has one
            since = min(self.today - timedelta(days=30), child.sen_start)
            events.append(joined_event(child, officer, since, SEN_SERVICE))
        results, counts = await self.events(SEN_SERVICE, events)
        for child, outcome in zip(self.cohort.children, results, strict=True):
            if not outcome.get("child_id"):
                raise DemoLoadError(f"{child.reference} was not linked: {outcome.get('reason')}")
            self.result.child_ids[child.index] = str(outcome["child_id"])
        self.say(
            f"LA SEND service named {len(events)} children by UPN and NHS number, each with a "
            f"SEN officer ({words(counts)} until the families' consent is recorded)"
        )

    async def caseload_and_consents(self) -> None:
        for child in self.cohort.children:
            await self.call(
                ADMIN, f"/children/{self.child_id(child)}/coordinators",
                json={"coordinator": COORDINATOR},
            )  # fmt: skip
        for child in self.cohort.children:
            for consent in consents_of(child, self.today):
                await self.call(
                    COORDINATOR, f"/children/{self.child_id(child)}/consents",
                    json={"consent": consent,
                          "child_date_of_birth": child.date_of_birth.isoformat()},
                )  # fmt: skip
        stories = Counter(c.consent for c in self.cohort.children)
        self.say(
            f"{len(self.cohort.children)} children on {COORDINATOR}'s caseload; consents recorded: "
            f"{stories['granted'] + stories['withdrawn_social_care']} families granted sharing, "
            f"{stories['refused_health']} refused health sharing, {stories['young_person']} young "
            f"person decided for themself, {stories['none']} family not yet asked"
        )

    async def schools(self) -> None:
        finals = {c.index: d for c in self.cohort.children if (d := final_date(c, self.today))}
        counts: Counter[str] = Counter()
        for school in SCHOOLS:
            ctf = ctf_message(self.cohort, school, finals)
            counts += await self.ingest(school, "/ingest/school-mis", ctf, "application/xml")
            staff = staff_message(self.cohort, school)
            counts += await self.ingest(school, "/ingest/school-mis", staff, "application/json")
        self.say(f"loaded {len(SCHOOLS)} schools' CTF files and staff lists: {words(counts)}")

    async def health(self) -> None:
        counts: Counter[str] = Counter()
        for trust in (COMMUNITY_TRUST, ACUTE_TRUST):
            bundle = health_bundle(self.cohort, trust)
            counts += await self.ingest(trust, "/ingest/fhir", bundle, "application/fhir+json")
        self.say(
            "loaded 2 NHS trusts' FHIR bundles (patients, conditions, encounters, care teams): "
            + words(counts)
        )

    async def social_care(self) -> None:
        counts: Counter[str] = Counter()
        for years_back in (1, 0):  # last year's return, then this year's restating it
            census = cin_census_message(self.cohort, years_back)
            counts += await self.ingest(
                CHILDRENS_SERVICES, "/ingest/social-care", census, "application/xml"
            )
        case = social_care_message(self.cohort)
        counts += await self.ingest(
            CHILDRENS_SERVICES, "/ingest/social-care", case, "application/json"
        )
        self.say(
            "loaded children's services' CIN census returns of two years (the later one "
            "restating and closing the episodes the earlier reported open) and case-system "
            "message: " + words(counts)
        )

    async def family(self) -> None:
        counts: Counter[str] = Counter()
        families = [
            c for c in self.cohort.children if plan_steps(c, self.today) and c.consent != "none"
        ]
        for child in families:
            message = orjson.dumps(family_message(child, self.today))
            counts += await self.ingest(
                FAMILY_PORTAL, "/ingest/family", message, "application/json"
            )
        self.say(f"loaded {len(families)} families' own views (plan section A): {words(counts)}")

    async def team(self) -> None:
        """Members only the publisher's own system knows (the LA's staff, head teachers,
        short breaks, the voluntary sector), then key working and team meetings."""
        batches: dict[str, list[dict[str, Any]]] = {}
        for child in self.cohort.children:
            start = max(child.sen_start, self.today - timedelta(days=700))
            for k, p in enumerate(child.members("events")):
                if p.key != "la_sen_officer":  # allocated when the child was first named
                    since = start + timedelta(days=5 * k)
                    event = joined_event(child, p, since, PUBLISHERS[p.publisher])
                    batches.setdefault(p.publisher, []).append(event)
        counts: Counter[str] = Counter()
        for publisher, events in batches.items():
            counts += (await self.events(PUBLISHERS[publisher], events))[1]
        self.say(
            "loaded team members known to the LA, schools, short breaks and the voluntary "
            f"sector: {words(counts)}"
        )
        meetings = key_workers = handovers = covers = 0
        for child in self.cohort.children:
            for step in team_steps(child, self.today):
                cid = self.child_id(child)
                if step.kind == "key_worker":
                    await self.call(
                        COORDINATOR, f"/children/{cid}/key-worker", json=key_worker_body(step)
                    )
                    key_workers += 1
                elif step.kind == "key_worker_handover":
                    await self.call(
                        COORDINATOR,
                        f"/children/{cid}/key-worker/handover",
                        json=handover_body(step),
                    )
                    handovers += 1
                elif step.kind == "key_worker_cover":
                    await self.call(
                        COORDINATOR, f"/children/{cid}/key-worker/cover", json=cover_body(step)
                    )
                    covers += 1
                else:
                    await self.call(
                        COORDINATOR, f"/children/{cid}/meetings", json=meeting_body(step)
                    )
                    meetings += 1
        self.say(
            f"recorded {key_workers} key working assignments, {handovers} handovers between "
            f"key workers, {covers} cover contacts and {meetings} team meetings with their "
            "actions"
        )

    async def plans(self) -> None:
        """Each plan's journey in date order: the coordinator's steps up to the requests for
        advice (and any exceptions), the advisers' answers from their own systems, the
        draft, the family's comments, the final plan and its reviews; then the contents of
        the final plans (outcomes, provision, budgets) from the SEN case system."""
        histories = {c.index: plan_steps(c, self.today) for c in self.cohort.children}
        later = {"advice_answer", "comments", "draft", "final", "review"}
        contents = {"outcome", "provision", "budget"}
        learning = {"progress", "conclusion"}
        for child in self.cohort.children:
            for step in histories[child.index]:
                if step.kind not in later | contents | learning:
                    await self.plan_step(child, step)
        answers = [
            (c, s) for c in self.cohort.children for s in histories[c.index]
            if s.kind == "advice_answer"
        ]  # fmt: skip
        counts = await self.advice_answers(answers)
        for child in self.cohort.children:
            for step in histories[child.index]:
                if step.kind in later - {"advice_answer"}:
                    await self.plan_step(child, step)
        events = [
            plan_content_event(c, s, self.result.plan_ids[c.index])
            for c in self.cohort.children for s in histories[c.index] if s.kind in contents
        ]  # fmt: skip
        results, content_counts = await self.events(SEN_SERVICE, events)
        if content_counts.get("rejected"):
            raise DemoLoadError(f"plan contents rejected: {results}")
        agreed = {  # an outcome kept back (no consent covers it) is not on the plan yet
            e["payload"]["outcome_id"]
            for e, r in zip(events, results, strict=True)
            if e["event_type"] == "plan.outcome_agreed" and r.get("status") == "appended"
        }
        learnt = 0
        for child in self.cohort.children:
            for step in histories[child.index]:
                if step.kind == "conclusion" or (
                    step.kind == "progress" and step.data["outcome_id"] in agreed
                ):
                    await self.plan_step(child, step)
                    learnt += step.kind == "conclusion"
        stages = Counter(c.scenario for c in self.cohort.children if histories[c.index])
        self.say(
            f"recorded {sum(stages.values())} EHC plans at every stage, from a request received "
            f"this month to annual reviews and phase transfers; {len(answers)} pieces of advice "
            f"answered ({words(counts)}); {len(events)} outcomes, provisions and budgets agreed; "
            f"{learnt} annual reviews concluded with progress towards each outcome"
        )

    async def plan_step(self, child: Child, step: PlanStep) -> None:
        if step.kind == "request":
            answer = await self.call(COORDINATOR, f"/children/{self.child_id(child)}/plans",
                                     json=dict(step.data))  # fmt: skip
            plan_id = answer.get("plan_id") if isinstance(answer, dict) else None
            if not plan_id:
                raise DemoLoadError(f"POST /children/{{id}}/plans answered no plan_id: {answer}")
            self.result.plan_ids[child.index] = str(plan_id)
            return
        plan_id = self.result.plan_ids[child.index]
        if step.kind == "comments":
            event = plan_content_event(child, step, plan_id)
            results, counts = await self.events(SEN_SERVICE, [event])
            if counts.get("rejected"):
                raise DemoLoadError(f"{event['event_type']} of {child.reference}: {results}")
            return
        path, body = plan_route(step, plan_id)
        await self.call(COORDINATOR, path, json=body)

    async def advice_answers(self, answers: list[tuple[Child, PlanStep]]) -> Counter[str]:
        counts: Counter[str] = Counter()
        health: list[tuple[Child, str, str, Practitioner, date]] = []
        batches: dict[str, list[dict[str, Any]]] = {}
        for child, step in answers:
            plan_id = self.result.plan_ids[child.index]
            adviser: Practitioner | None = step.data["practitioner"]
            request_id: str = step.data["advice_request_id"]
            if adviser is not None and adviser.channel == "fhir":
                health.append((child, plan_id, request_id, adviser, step.on))
                continue
            publisher = PUBLISHERS[adviser.publisher] if adviser is not None else SEN_SERVICE
            batches.setdefault(publisher.agency, []).append(
                advice_event(child, step, plan_id, publisher)
            )
        if health:
            bundle = advice_bundle(health, today=self.today, tag=str(self.cohort.seed))
            counts += await self.ingest(
                COMMUNITY_TRUST, "/ingest/fhir", bundle, "application/fhir+json"
            )
        for name, events in batches.items():
            counts += (await self.events(PUBLISHERS[name], events))[1]
        return counts

    async def withdrawals(self) -> None:
        withdrawing = [c for c in self.cohort.children if c.consent == "withdrawn_social_care"]
        for child in withdrawing:
            await self.call(
                COORDINATOR, f"/consents/consent-{child.index:03d}-social-care/withdraw",
                json={"withdrawn_by": {"reference": child.parents[0].ref,
                                       "capacity": "parent_with_pr"},
                      "reason": "family_request"},
            )  # fmt: skip
        self.say(
            f"{len(withdrawing)} families withdrew their consent to share social care records: "
            "those facts are hidden again"
        )


# --------------------------------------------------------------------------- bodies


def consents_of(child: Child, today: date) -> list[dict[str, Any]]:
    """The family's decisions about sharing, as `consent.recorded` payloads."""
    if child.consent == "none":
        return []
    given = max(today - timedelta(days=200), child.sen_start).isoformat()
    if child.consent == "young_person":
        grantor = {"reference": f"yp-{child.index:03d}", "capacity": "young_person"}
    else:
        grantor = {"reference": child.parents[0].ref, "capacity": "parent_with_pr"}

    def consent(suffix: str, decision: str, categories: list[str]) -> dict[str, Any]:
        return {
            "consent_id": f"consent-{child.index:03d}-{suffix}", "decision": decision,
            "grantor": grantor, "given_on": given,
            "scope": {"categories": categories, "purposes": PURPOSES},
            "period": {"start": given}, "capture_method": "form", "recorded_by": COORDINATOR,
        }  # fmt: skip

    if child.consent == "refused_health":
        return [
            consent("share", "permit", ["identity", "education", "social_care", "family_views"]),
            consent("health", "deny", ["health"]),
        ]
    if child.consent == "withdrawn_social_care":
        return [
            consent("share", "permit", ["identity", "education", "health", "family_views"]),
            consent("social-care", "permit", ["social_care"]),
        ]
    return [consent("share", "permit", ["identity", "education", "health", "social_care",
                                        "family_views"])]  # fmt: skip


def family_message(child: Child, today: date) -> dict[str, Any]:
    """The family portal's message: the child by their identifiers, with the child's (or
    young person's) and a parent's views for section A."""
    return {
        "message_id": f"family-{child.reference}-{today.isoformat()}",
        "sent_at": f"{today.isoformat()}T07:30:00+00:00",
        "system": FAMILY_PORTAL.system,
        "submitted_by": "young_person" if child.consent == "young_person" else "family",
        "child": child.subject,
        "views": family_views(child, today),
    }


def key_worker_body(step: PlanStep) -> dict[str, Any]:
    practitioner: Practitioner = step.data["practitioner"]
    body: dict[str, Any] = {
        "practitioner_id": practitioner.practitioner_id,
        "model": step.data["model"],
        "assigned_on": step.on.isoformat(),
    }
    if "functions" in step.data:
        body["functions"] = step.data["functions"]
    if "level" in step.data:
        body["level"] = step.data["level"]
    if step.data.get("family_agreed"):
        body["family_agreed_on"] = step.on.isoformat()
    return body


def handover_body(step: PlanStep) -> dict[str, Any]:
    outgoing: Practitioner = step.data["outgoing"]
    incoming: Practitioner = step.data["incoming"]
    return {
        "outgoing_id": outgoing.practitioner_id,
        "incoming": {
            "practitioner_id": incoming.practitioner_id,
            "model": "single_person",
            "level": step.data["level"],
            "family_agreed_on": step.on.isoformat(),
        },
        "handed_over_on": step.on.isoformat(),
        "overlap_until": step.data["overlap_until"].isoformat(),
        "reason": step.data["reason"],
    }


def cover_body(step: PlanStep) -> dict[str, Any]:
    key_worker: Practitioner = step.data["key_worker"]
    cover: Practitioner | None = step.data.get("cover")
    body: dict[str, Any] = {
        "key_worker_id": key_worker.practitioner_id,
        "arranged_on": step.on.isoformat(),
        "cover_contact": step.data["cover_contact"],
    }
    if cover is not None:
        body["cover_practitioner_id"] = cover.practitioner_id
    return body


def meeting_body(step: PlanStep) -> dict[str, Any]:
    d = step.data
    return {
        "meeting_id": d["meeting_id"], "held_on": step.on.isoformat(), "kind": d["kind"],
        "attendee_ids": [p.practitioner_id for p in d["attendees"]],
        "family_attended": d["family_attended"], "decisions": d["decisions"],
        "actions": [
            {"action_id": a["action_id"], "text": a["text"],
             "owner_id": a["owner"].practitioner_id, "due_on": a["due_on"]}
            for a in d["actions"]
        ],
    }  # fmt: skip


def plan_route(step: PlanStep, plan_id: str) -> tuple[str, dict[str, Any]]:
    """(path, body) of the coordinator route that records `step` on plan `plan_id`."""
    d, on, base = step.data, step.on.isoformat(), f"/plans/{plan_id}"
    if step.kind == "decision":
        return f"{base}/decision", {"decision": d["decision"], "decided_on": on}
    if step.kind == "advice_request":
        adviser: Practitioner | None = d["practitioner"]
        body: dict[str, Any] = {
            "advice_request_id": d["advice_request_id"],
            "reg6_category": d["reg6_category"],
            "requested_on": on,
        }
        if adviser is None:
            body["agency"] = "family"
        else:
            body.update(practitioner_id=adviser.practitioner_id, agency=adviser.agency,
                        organisation_code=adviser.organisation_code)  # fmt: skip
        return f"{base}/advice-requests", body
    if step.kind == "exception":
        return f"{base}/exceptions", {k: v for k, v in d.items() if v not in (None, [])}
    if step.kind == "draft":
        return f"{base}/draft", {"issued_on": on, "comments_by": d["comments_by"]}
    if step.kind == "final":
        placement = {"placement": d["placement"]} if d["placement"] else {}
        return f"{base}/final", {"finalised_on": on, **placement}
    if step.kind == "review":
        decision = {"decision": d["decision"], "decided_on": d["decided_on"]}
        return f"{base}/reviews", {
            "review_id": d["review_id"], "held_on": on, "kind": d["kind"],
            "family_attended": True, "report_sent_on": d["report_sent_on"], "decision": decision,
        }  # fmt: skip
    if step.kind == "progress":
        body = {k: v for k, v in d.items() if k != "outcome_id"} | {"recorded_on": on}
        return f"{base}/outcomes/{d['outcome_id']}/progress", body
    if step.kind == "conclusion":
        body = {k: v for k, v in d.items() if k != "review_id"} | {"concluded_on": on}
        return f"{base}/reviews/{d['review_id']}/conclusion", body
    raise ValueError(f"no coordinator route records a {step.kind} step")


def plan_content_event(child: Child, step: PlanStep, plan_id: str) -> dict[str, Any]:
    """Outcomes, provision, the personal budget and the family's comments on the draft, as
    the LA's SEN case system records them (`POST /ingest/events`)."""
    d, on = step.data, step.on.isoformat()
    key = d.get("outcome_id") or d.get("provision_id") or d.get("budget_id") or "comments"
    common: dict[str, Any] = {"message_id": f"plan:{plan_id}:{step.kind}:{key}", "plan_id": plan_id}
    if step.kind == "outcome":
        fields = ("outcome_id", "need_section", "area", "what", "by_when", "how_measured")
        payload = {k: d[k] for k in fields} | {"agreed_on": on}
        return inbound_event("plan.outcome_agreed", child, SEN_SERVICE, step.on, payload,
                             purposes=("plan_delivery",), **common)  # fmt: skip
    if step.kind == "provision":
        p: Practitioner | None = d["provider"]
        provider = {"agency": "local_authority"} if p is None else {
            "agency": p.agency, "organisation_code": p.organisation_code,
            "practitioner_id": p.practitioner_id, "role": p.role}  # fmt: skip
        payload = {"provision_id": d["provision_id"], "section": d["section"],
                   "description": d["description"], "provider": provider, "amount": d["amount"],
                   "outcome_ids": d["outcome_ids"], "agreed_on": on, "starts_on": on}  # fmt: skip
        category = {"F": "education", "G": "health"}.get(d["section"], "social_care")
        return inbound_event("plan.provision_agreed", child, SEN_SERVICE, step.on, payload,
                             category=category, purposes=("plan_delivery",), **common)  # fmt: skip
    if step.kind == "budget":
        fields = ("budget_id", "amount", "period", "direct_payment", "covers", "description")
        payload = {k: d[k] for k in fields} | {"agreed_on": on, "starts_on": on}
        return inbound_event("plan.personal_budget_agreed", child, SEN_SERVICE, step.on,
                             payload, category=d["covers"][0], purposes=("plan_delivery",),
                             **common)  # fmt: skip
    if step.kind == "comments":
        summary = "We agree with the draft and ask for the current school to be named."
        payload = {"received_on": on, "by": d["by"], "summary": summary}
        return inbound_event(
            "plan.comments_received", child, SEN_SERVICE, step.on, payload, **common
        )
    raise ValueError(f"the SEN case system does not record a {step.kind} step")


def advice_event(
    child: Child, step: PlanStep, plan_id: str, publisher: Publisher
) -> dict[str, Any]:
    """`plan.advice_submitted` from the adviser's own system: the school's, the LA's,
    children's services', or the family's own advice through the SEN service."""
    adviser: Practitioner | None = step.data["practitioner"]
    request_id: str = step.data["advice_request_id"]
    if adviser is None:
        who, agency, category = child.parents[0].ref, "family", "family_views"
    else:
        who, agency = adviser.practitioner_id, adviser.agency
        category = "social_care" if adviser.agency == "social_care" else "education"
    payload = {
        "advice_request_id": request_id, "practitioner_id": who, "agency": agency,
        "submitted_on": step.on.isoformat(), "advice_category": category,
        "document": {"document_id": f"advice-{request_id}", "system": publisher.system,
                     "url": f"https://documents.example.org/ehc-advice/{request_id}.pdf",
                     "title": "Advice for the EHC needs assessment"},
    }  # fmt: skip
    basis = "reg6_ehc_advice" if category in ("education", "social_care") else None
    return inbound_event("plan.advice_submitted", child, publisher, step.on, payload,
                         message_id=f"advice:{request_id}", plan_id=plan_id, category=category,
                         purposes=("ehc_assessment",), statutory_basis=basis)  # fmt: skip


async def load_cohort(
    client: httpx.AsyncClient, keys: DemoKeys, cohort: Cohort, progress: Progress = print
) -> DemoResult:
    """Load `cohort` into the hub behind `client`, as every agency and the coordinator."""
    return await _Loader(client, keys, cohort, progress).run()
