"""After an erasure and `hub replay --all`, no byte of the embedded hub's files (logs and
store, with their write-ahead logs) holds a value from any of the erased child's payloads,
of any event type the hub takes: only what a type declares open (`open_fields`:
references and organisation codes) is left in the clear.

The event types come from the registry: every one the hub takes from agencies is sent
through `POST /ingest/events` with a distinctive value in every string field whose rule
admits one (the fill walks the payload model, nested models and lists included), and its
payload dates in years nothing else uses; a plan with an exception, a team meeting and the
family's views are also recorded through the coordinator's and the family's own routes.
Consent (recorded and withdrawn, the grantor seeded) and casework go through their
coordinator routes, and the hub writes the identity events itself: those and casework
declare every field open (ids, codes, the erasure's request reference). A new event type
that is none of these, or a governance type with sealed text not seeded here, fails
`test_every_event_type_is_covered`, naming it.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from hub.auth.keys import Publishing
from hub.consent.sealing import declared_open, personal_fields
from hub.events import EventPayload, registry
from hub.service_layer.submit_facts import GOVERNANCE_PREFIXES
from tests.e2e.test_erasure_residue import hub_cli
from tests.support.api import embedded, running_api

UPN = "H801200001001"
NHS = "9434765919"
DOB = "2011-03-02"
# every payload date is in 2011 or 2012, years no envelope time or other record uses: a
# payload date found in a file is one left in the clear
SUBJECT = {"upn": UPN, "nhs_number": NHS, "date_of_birth": DOB}
OCCURRED = "2024-09-03T10:00:00Z"

# the sender each family of event types comes from: (agency, sender kind, organisation)
SENDERS = {
    "education": ("zq-school", "education", "100001"),
    "health": ("zq-health", "health", "RR8"),
    "social_care": ("zq-council", "social_care", "999"),
    "safeguarding": ("zq-council", "social_care", "999"),
    "plan": ("zq-send", "local_authority", "998"),
    "team": ("zq-send", "local_authority", "998"),
    "family": ("zq-portal", "family", "997"),
}
PLAN_ID = "plan-zq-1"
GOVERNANCE = GOVERNANCE_PREFIXES
"""Consent and casework (recorded through the coordinator routes) and identity events
(written by the hub): not taken on `/ingest/events`."""
ROUTE_SEEDED = {"consent.recorded", "consent.withdrawn"}
"""Governance types with sealed string fields, seeded through their routes here."""
NOT_WRITTEN = {"consent.capacity_assessed": "no route or adapter of the hub records it yet"}

D = date.fromisoformat

# What each type needs beyond what the fill supplies: required values the fill cannot
# make (codes from a vocabulary, numbers, dates in order, identifiers that must be
# valid) and optional fields pinned to None where a rule forbids them together.
BASE: dict[str, dict[str, Any]] = {
    "education.sen_status_recorded": {"sen_provision": "K", "start_date": "2011-09-01",
                                      "needs": [{"type": "ASD", "rank": 1}]},
    "education.pupil_identified": {"upn": UPN, "former_upns": [], "date_of_birth": DOB,
                                   "gender": "F", "uln": None},
    "education.placement_recorded": {"estab": "2001", "la_code": "999", "urn": "100001",
                                     "entry_date": "2011-09-01", "leaving_reason": None},
    "education.attendance_recorded": {"academic_year": 2011, "estab": "2001",
                                      "sessions_possible": 300, "sessions_attended": 280,
                                      "sessions_authorised_absence": 10,
                                      "sessions_unauthorised_absence": 10},
    "education.exclusion_recorded": {"estab": "2001", "exclusion_category": "SUSP",
                                     "start_date": "2011-10-03", "reasons": ["PP"]},
    "social_care.child_identified": {"la_code": "999", "la_child_id": "ZqLaChild0001",
                                     "upn": UPN, "former_upn": None, "date_of_birth": DOB},
    "social_care.disability_recorded": {"disabilities": ["MOB"]},
    "social_care.cin_episode_recorded": {"referral_date": "2011-04-01"},
    "social_care.cin_plan_recorded": {"referral_date": "2011-04-01", "start_date": "2011-05-01"},
    "social_care.assessment_recorded": {"referral_date": "2011-04-01",
                                        "start_date": "2011-04-02", "factors": ["1A"]},
    "social_care.looked_after_episode_recorded": {
        "start_date": "2011-06-01", "reason_new_episode": "S", "legal_status": "C2",
        "category_of_need": "N1", "placement_type": "U1", "placement_urn": "SC654321"},
    "safeguarding.section47_recorded": {"referral_date": "2011-04-01",
                                        "start_date": "2011-04-03"},
    "safeguarding.cp_plan_recorded": {"referral_date": "2011-04-01", "start_date": "2011-04-10",
                                      "initial_category": "NEG", "latest_category": "EMO",
                                      "review_dates": ["2011-07-10"]},
    "health.patient_identified": {"nhs_number": NHS, "date_of_birth": DOB,
                                  "gp_practice_code": "Y00001",
                                  "managing_organisation_code": "RR8"},
    "health.condition_recorded": {"code": {}, "onset": "2011-05-06",
                                  "categories": [{}], "severity": {}},
    "health.encounter_recorded": {"status": "finished", "attendance": "attended",
                                  "start": "2011-05-07", "types": [{}], "reasons": [{}],
                                  "service_type": {}, "encounter_class": {}},
    "health.observation_recorded": {"status": "final", "code": {"codings": [{}]},
                                    "value": {"kind": "string"}, "effective": "2011-05-08",
                                    "components": [{"code": {}, "value": {"kind": "string"}}],
                                    "interpretation": [{}], "categories": [{}]},
    "health.care_plan_recorded": {"status": "active", "intent": "plan", "start": "2011-05-09",
                                  "categories": [{}], "activities": [{"code": {}}]},
    "health.document_recorded": {"status": "current", "dated": "2011-05-10T10:00:00+00:00",
                                 "type": {}, "categories": [{}],
                                 "attachments": [{"size": 10, "created": "2011-05-10"}]},
    "family.related_person_recorded": {"recorded_as": "related_person", "relationships": [{}],
                                       "contacts": [{}], "address": {}},
    "family.contact_recorded": {"parental_responsibility": True, "relationship": "PAM",
                                "contact_points": [{}], "address": {}},
    "family.views_recorded": {"whose": "child", "recorded_on": "2011-06-02"},
    "team.practitioner_joined": {"since": "2011-06-03"},
    "team.practitioner_left": {"until": "2011-12-03"},
    "team.key_worker_assigned": {"model": "single_person", "assigned_on": "2011-06-04",
                                 "family_member": None, "family_member_ref": None,
                                 "level": "high", "family_agreed_on": "2011-06-04"},
    "team.meeting_held": {"held_on": "2011-06-05", "kind": "tac",
                          "actions": [{"due_on": "2011-07-05"}]},
    "team.meeting_action_completed": {"completed_on": "2011-06-20"},
    "team.key_worker_handover_started": {"handed_over_on": "2011-08-01",
                                         "overlap_until": "2011-08-15"},
    "team.key_worker_cover_arranged": {"arranged_on": "2011-06-06", "until": "2011-09-06"},
    "team.key_working_ended": {"ended_on": "2011-11-30"},
    "plan.assessment_requested": {"requested_on": "2011-03-01", "received_on": "2011-03-02",
                                  "requested_by": "parent"},
    "plan.assessment_decided": {"decision": "assess", "decided_on": "2011-04-01",
                                "letter": {}},
    "plan.advice_requested": {"reg6_category": "educational", "requested_on": "2011-04-02"},
    "plan.advice_submitted": {"submitted_on": "2011-05-02", "document": {},
                              "advice_category": "education"},
    "plan.exception_recorded": {"kind": "missed_appointment", "starts_on": "2011-04-20",
                                "ends_on": "2011-04-21"},
    "plan.draft_issued": {"issued_on": "2011-06-01", "comments_by": "2011-06-20",
                          "document": {}},
    "plan.comments_received": {"received_on": "2011-06-10", "by": "parent",
                               "requested_placement": "ZqSchool01"},
    "plan.finalised": {"finalised_on": "2011-07-01", "placement": "ZqSchool02",
                       "document": {}},
    "plan.no_plan_decided": {"decided_on": "2011-07-02", "letter": {}},
    "plan.outcome_agreed": {"need_section": "B", "area": "cognition_and_learning",
                            "by_when": "2012-07-01", "agreed_on": "2011-07-01",
                            "priority": 1, "horizon": "short_term"},
    "plan.outcome_progress_recorded": {"recorded_on": "2011-12-01",
                                       "progress": "partly_achieved"},
    "plan.outcome_revised": {"revised_on": "2011-12-02", "by_when": "2012-12-01"},
    "plan.provision_agreed": {"section": "F", "provider": {},
                              "amount": {"quantity": "2", "unit": "hours",
                                         "frequency": "weekly"},
                              "agreed_on": "2011-07-01", "starts_on": "2011-09-01"},
    "plan.informal_support_recorded": {"kind": "community", "recorded_on": "2011-07-01"},
    "plan.personal_budget_requested": {"requested_on": "2011-06-01", "requested_by": "parent",
                                       "covers": ["education"]},
    "plan.personal_budget_indicated": {"indicated_on": "2011-06-05", "amount": "1200.50",
                                       "period": "annual"},
    "plan.personal_budget_agreed": {"amount": "1100.25", "period": "annual",
                                    "direct_payment": True, "covers": ["education"],
                                    "agreed_on": "2011-07-01"},
    "plan.personal_budget_audited": {"audited_on": "2011-12-01", "spent": "500.75",
                                     "finding": "underspent"},
    "plan.review_meeting_held": {"held_on": "2011-12-01", "kind": "annual"},
    "plan.review_report_sent": {"sent_on": "2011-12-08", "document": {}},
    "plan.review_decided": {"decision": "amend", "decided_on": "2011-12-20"},
    "plan.review_concluded": {"concluded_on": "2011-12-01", "next_review_on": "2012-11-01"},
    "plan.amendment_proposed": {"proposed_on": "2011-12-21", "comments_by": "2012-01-10"},
    "plan.amended": {"amended_on": "2012-02-01"},
    "plan.ceased": {"ceased_on": "2012-06-01", "reason": "other"},
}  # fmt: skip


# --------------------------------------------------------------------------- the fill


@dataclass
class Seeds:
    """The distinctive values placed, each with its event type and top-level field."""

    n: int = 0
    placed: list[tuple[str, str, str]] = field(default_factory=list)

    def token(self, pattern: str | None, max_length: int | None) -> str | None:
        self.n += 1
        for form in (
            f"Zq{self.n:04d}w",
            f"zq{self.n:04d}w",
            f"https://docs.example/Zq{self.n:04d}w",
        ):
            if pattern is not None and not re.fullmatch(pattern.strip("^$"), form):
                continue
            if max_length is not None and len(form) > max_length:
                continue
            return form
        return None  # the rule admits no distinctive value (digits only, a short code)

    def mark(self, event_type: str, top: str) -> str:
        """A distinctive value for a field a route's body fills."""
        value = self.token(None, None)
        assert value is not None
        self.placed.append((value, event_type, top))
        return value


@dataclass(frozen=True)
class Kind:
    """What a field holds, as far as the fill cares."""

    what: Literal["str", "literal", "model", "list", "other"]
    pattern: str | None = None
    max_length: int | None = None
    inner: Any = None


def kind_of(tp: Any, metadata: tuple[Any, ...] = ()) -> Kind:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return kind_of(base, (*metadata, *meta))
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        return kind_of(options[0], metadata) if len(options) == 1 else Kind("other")
    if origin is Literal:
        return Kind("literal")
    if origin is tuple:
        return Kind("list", inner=get_args(tp)[0])
    if tp is str:
        pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
        length = next((m.max_length for m in metadata if getattr(m, "max_length", None)), None)
        return Kind("str", pattern, length)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return Kind("model", inner=tp)
    return Kind("other")


def fill(
    cls: type[BaseModel], given: dict[str, Any], seeds: Seeds, event_type: str, top: str | None
) -> dict[str, Any]:
    """`given` with a distinctive value in every string field it leaves out (recursively:
    into the nested models and lists it gives, and optional nested models with nothing
    required beyond strings); what `given` pins stays as it is."""
    out = dict(given)
    for name, info in cls.model_fields.items():
        where = top or name
        kind = kind_of(info.annotation, tuple(info.metadata))
        if name in out:
            out[name] = _fill_given(kind, out[name], seeds, event_type, where)
            continue
        if kind.what == "str":
            value = seeds.token(kind.pattern, kind.max_length)
            if value is not None:
                out[name] = value
                seeds.placed.append((value, event_type, where))
        elif kind.what == "list":
            inner = kind_of(kind.inner)
            if inner.what == "str":
                value = seeds.token(inner.pattern, inner.max_length)
                if value is not None:
                    out[name] = [value]
                    seeds.placed.append((value, event_type, where))
        elif kind.what == "model" and _only_strings_required(kind.inner):
            out[name] = fill(kind.inner, {}, seeds, event_type, where)
    return out


def _fill_given(kind: Kind, value: Any, seeds: Seeds, event_type: str, where: str) -> Any:
    if kind.what == "model" and isinstance(value, dict):
        return fill(kind.inner, value, seeds, event_type, where)
    if kind.what == "list" and isinstance(value, list):
        inner = kind_of(kind.inner)
        return [_fill_given(inner, v, seeds, event_type, where) for v in value]
    if kind.what == "str" and isinstance(value, str) and len(value) >= 8:
        seeds.placed.append((value, event_type, where))  # a distinctive value given
    return value


def _has_strings(kind: Kind) -> bool:
    if kind.what == "str":
        return True
    if kind.what == "list":
        return _has_strings(kind_of(kind.inner))
    if kind.what == "model":
        return any(_has_strings(kind_of(i.annotation)) for i in kind.inner.model_fields.values())
    return False


def _only_strings_required(cls: type[BaseModel]) -> bool:
    return all(
        not info.is_required() or kind_of(info.annotation).what == "str"
        for info in cls.model_fields.values()
    )


# --------------------------------------------------------------------------- the events


def family_of(event_type: str) -> str:
    return event_type.split(".")[0]


def agency_types() -> list[type[EventPayload]]:
    return [c for c in registry if not c.event_type.startswith(GOVERNANCE)]


def inbound(cls: type[EventPayload], seeds: Seeds) -> dict[str, Any]:
    payload = fill(cls, BASE[cls.event_type], seeds, cls.event_type, None)
    cls.model_validate(payload)  # the sample itself is valid (else: fix BASE)
    agency, _, org = SENDERS[family_of(cls.event_type)]
    event: dict[str, Any] = {
        "event_type": cls.event_type,
        "schema_version": cls.schema_version,
        "subject": SUBJECT,
        "source": {"agency": agency, "organisation_code": org,
                   "message_id": f"msg-{cls.event_type}"},
        "occurred_at": OCCURRED,
        "payload": payload,
    }  # fmt: skip
    if cls.event_type.startswith("plan."):
        event["plan_id"] = PLAN_ID
    return event


def test_every_event_type_is_covered() -> None:
    for cls in registry:
        t = cls.event_type
        if t.startswith(GOVERNANCE):
            sealed = personal_fields(cls)
            strings = [f for f in (cls.model_fields if sealed is None else sealed)
                       if _has_strings(kind_of(cls.model_fields[f].annotation))]  # fmt: skip
            assert not strings or t in ROUTE_SEEDED or t in NOT_WRITTEN, (
                f"{t}: sealed string fields {strings}, but not seeded here"
            )
        else:
            assert t in BASE, f"{t}: not seeded by this test (add it to BASE)"
            assert family_of(t) in SENDERS, f"{t}: no sender for its family"


def test_the_fill_puts_a_distinctive_value_in_every_free_string_field() -> None:
    seeds = Seeds()
    for cls in agency_types():
        inbound(cls, seeds)
    seeded = {(t, f) for _, t, f in seeds.placed}
    assert ("health.condition_recorded", "notes") in seeded
    assert ("education.pupil_identified", "address") in seeded  # nested model, filled
    assert ("plan.advice_submitted", "document") in seeded
    assert ("team.meeting_held", "actions") in seeded  # a list of models
    assert ("family.related_person_recorded", "contacts") in seeded
    tokens = [v for v, _, _ in seeds.placed if "Zq" in v or "zq" in v]
    assert len(tokens) == len(set(tokens)) > 200  # one of its own for each field


def residue(data_dir: Path, values: set[str]) -> dict[str, set[str]]:
    """Each value found in the raw bytes of any file of the data directory."""
    found: dict[str, set[str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        for v in values:
            if v.encode() in blob:
                found.setdefault(v, set()).add(path.name)
    return found


def _dates(events: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
        elif isinstance(node, str) and re.fullmatch(r"201[12]-\d\d-\d\d(T.*)?", node):
            yield node[:10]

    for e in events:
        out.update(walk(e["payload"]))
    return out


async def test_after_erasure_and_replay_no_file_holds_a_value_of_any_payload(
    tmp_path: Path,
) -> None:
    seeds = Seeds()
    events = [inbound(cls, seeds) for cls in agency_types()]
    settings = embedded(tmp_path)
    data_dir = settings.data_dir
    async with running_api(settings, run_projector=True) as api:
        for agency, kind, org in set(SENDERS.values()):
            await api.key(agency, "agency", agency, publishing=Publishing(kind, (org,)))
        await api.key("ops", "admin")
        await api.key("casey", "coordinator")
        # the school names the child first; a consent lets the rest reach the views
        first = [e for e in events if e["event_type"] == "education.pupil_identified"]
        rest = [e for e in events if e not in first]
        child = await _send(api, first)
        assign = {"coordinator": "casey"}
        r = await api.client.post(
            f"/children/{child}/coordinators", json=assign, headers=api.auth("ops")
        )
        assert r.status_code == 200, r.text
        consent = {
            "consent": {
                "consent_id": "zq-consent-1", "decision": "permit",
                "grantor": {"reference": seeds.mark("consent.recorded", "grantor"),
                            "capacity": "parent_with_pr"},
                "given_on": "2024-09-01", "period": {"start": "2024-09-01"},
                "scope": {}, "capture_method": "form", "recorded_by": "ignored",
            },
            "child_date_of_birth": DOB,
        }  # fmt: skip
        r = await api.client.post(f"/children/{child}/consents", json=consent,
                                  headers=api.auth("casey"))  # fmt: skip
        assert r.status_code == 200, r.text
        for family in sorted({family_of(e["event_type"]) for e in rest}):
            batch = [e for e in rest if family_of(e["event_type"]) == family]
            assert await _send(api, batch) == child
        await _through_the_routes(api, child, seeds)
        # the facts open with the child's keys: the shared record shows a seeded value
        r = await api.client.get(f"/children/{child}/record", headers=api.auth("casey"))
        assert r.status_code == 200, r.text
        assert "Zq" in r.text

        r = await api.client.post(
            f"/children/{child}/erase", json={"reason": "ERQ-zq"}, headers=api.auth("ops")
        )
        assert r.status_code == 200, r.text

    replay = hub_cli("replay", "--all", data_dir=data_dir)
    assert replay.returncode == 0, replay.stderr

    open_values = {
        v for v, t, f in seeds.placed if f in (declared_open(registry.payload_class(t)) or ())
    }
    sealed_values = {v for v, _, _ in seeds.placed} - open_values
    found = residue(data_dir, sealed_values | open_values | _dates(events))
    left = {v: files for v, files in found.items() if v not in open_values}
    where = {v: (t, f) for v, t, f in seeds.placed}
    assert left == {}, {v: (where.get(v, "a payload date"), files) for v, files in left.items()}
    # the search finds what is left in the clear: the open references and codes
    assert open_values and set(found) >= {v for v in open_values if v.startswith("Zq")}


async def _send(api: Any, events: list[dict[str, Any]]) -> str:
    agency = events[0]["source"]["agency"]
    r = await api.client.post("/ingest/events", json={"events": events}, headers=api.auth(agency))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    bad = [(events[i]["event_type"], res) for i, res in enumerate(results)
           if res["status"] not in ("appended", "withheld")]  # fmt: skip
    assert not bad, bad
    children = {res["child_id"] for res in results}
    assert len(children) == 1, children
    return str(children.pop())


async def _through_the_routes(api: Any, child: str, seeds: Seeds) -> None:
    """What coordinators and families record through their own routes (hub-recorded
    facts, sealed by the same gate): a plan with an exception, a team meeting, the
    family's views."""
    casey = api.auth("casey")
    request = {"requested_on": "2011-03-01", "received_on": "2011-03-02", "requested_by": "parent"}
    r = await api.client.post(f"/children/{child}/plans", json=request, headers=casey)
    assert r.status_code == 201, r.text
    plan = r.json()["plan_id"]
    exception = {"kind": "missed_appointment", "starts_on": "2011-04-20", "ends_on": "2011-04-21",
                 "details": seeds.mark("plan.exception_recorded", "details")}  # fmt: skip
    r = await api.client.post(f"/plans/{plan}/exceptions", json=exception, headers=casey)
    assert r.status_code == 201, r.text
    meeting = {
        "held_on": "2011-06-05", "kind": "tac",
        "decisions": [seeds.mark("team.meeting_held", "decisions")],
        "actions": [{"text": seeds.mark("team.meeting_held", "actions"),
                     "owner_id": "zq-owner-1", "due_on": "2011-07-05"}],
    }  # fmt: skip
    r = await api.client.post(f"/children/{child}/meetings", json=meeting, headers=casey)
    assert r.status_code == 201, r.text
    r = await api.client.post(f"/children/{child}/invitations",
                              json={"capacity": "parent_with_pr"}, headers=casey)  # fmt: skip
    assert r.status_code == 201, r.text
    r = await api.client.post("/invitations/redeem", json={"code": r.json()["code"]})
    assert r.status_code == 200, r.text
    family = {"Authorization": f"Bearer {r.json()['token']}"}
    views = {
        "views": seeds.mark("family.views_recorded", "views"),
        "interests": [seeds.mark("family.views_recorded", "interests")],
        "aspirations": [seeds.mark("family.views_recorded", "aspirations")],
    }
    r = await api.client.post(f"/family/children/{child}/views", json=views, headers=family)
    assert r.status_code == 201, r.text
    assert r.json()["status"] in ("appended", "withheld")
    # a second consent, recorded and withdrawn
    grantor = {"reference": seeds.mark("consent.recorded", "grantor"), "capacity": "parent_with_pr"}
    consent = {"consent_id": "zq-consent-2", "decision": "deny", "grantor": grantor,
               "given_on": "2024-09-02", "period": {"start": "2024-09-02"},
               "scope": {"categories": ["safeguarding"]}, "capture_method": "form",
               "recorded_by": "ignored"}  # fmt: skip
    body = {"consent": consent, "child_date_of_birth": DOB}
    r = await api.client.post(f"/children/{child}/consents", json=body, headers=casey)
    assert r.status_code == 200, r.text
    withdrawal = {"withdrawn_by": {"reference": seeds.mark("consent.withdrawn", "withdrawn_by"),
                                   "capacity": "parent_with_pr"}}  # fmt: skip
    r = await api.client.post(f"/children/{child}/consents/zq-consent-2/withdraw",
                              json=withdrawal, headers=casey)  # fmt: skip
    assert r.status_code == 200, r.text
