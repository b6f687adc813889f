"""Key working that lasts: periods with a start and an end, handover with an overlap,
cover for absence, a family member as their own key worker, and ending key working —
folded into the team view (`fold_team`) so that a departed practitioner is never named
as key worker; and the events' own rules, each refusal naming its field."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub.consent.sealing import personal_fields
from hub.events import Envelope, Source, decode
from hub.events.envelope import EventPayload
from hub.events.family import RelatedPersonRecorded
from hub.events.team import (
    KeyWorkerAssigned,
    KeyWorkerCoverArranged,
    KeyWorkerHandoverStarted,
    KeyWorkingEnded,
    PractitionerJoined,
    PractitionerLeft,
    upcast_key_worker_v1_v2,
)
from hub.projections.team_around_child import (
    SealedFact,
    TeamView,
    WhoDecidesOut,
    fold_team,
    single_point_of_contact,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
D = date
ROLES = {"key_worker": ("Key worker", "local_authority"), "senco": ("SENCO", "education")}
SRC = Source(agency="local_authority", system="tac-hub")
JAN1 = D(2024, 1, 1)


def facts(*payloads: EventPayload) -> list[tuple[SealedFact, Envelope]]:
    out = []
    for i, p in enumerate(payloads):
        env = Envelope.wrap(
            p, child_id="hc-1", source=SRC, occurred_at=datetime(2024, 1, 1, tzinfo=UTC)
        )
        out.append(
            (
                SealedFact(
                    event_id=f"ev-{i}",
                    child_id="hc-1",
                    event_type=env.event_type,
                    category=env.category,
                    agency="local_authority",
                    organisation=None,
                    occurred_at=env.occurred_at.isoformat(),
                    purposes=("plan_delivery",),
                    basis_claimed=None,
                    body=b"",
                    subject_ref=getattr(p, "practitioner_id", None),
                ),
                env,
            )
        )
    return out


def team(*payloads: EventPayload, today: date, hidden: frozenset[str] = frozenset()) -> TeamView:
    return fold_team(
        "hc-1",
        facts(*payloads),
        today=today,
        hidden=hidden,
        roles=ROLES,
        who_decides=WhoDecidesOut(decides="parent_with_pr", summary="a parent decides"),
        consent=[],
    )


def joined(pid: str, since: date = JAN1, **extra: Any) -> PractitionerJoined:
    return PractitionerJoined(
        practitioner_id=pid, role="key_worker", agency="local_authority", since=since, **extra
    )


def assigned(pid: str | None, on: date, **extra: Any) -> KeyWorkerAssigned:
    extra.setdefault("model", "single_person")
    return KeyWorkerAssigned(practitioner_id=pid, assigned_on=on, **extra)


# --------------------------------------------------------------------------- the fold


def test_a_key_worker_who_left_the_team_is_never_named_as_key_worker() -> None:
    events = (
        joined("kw-1", contact="01632 960001"),
        assigned("kw-1", D(2024, 1, 10), level="high"),
        PractitionerLeft(practitioner_id="kw-1", until=D(2024, 3, 31)),
    )
    before = team(*events, today=D(2024, 3, 31))  # the last day is still theirs
    assert before.key_worker is not None and before.key_worker.practitioner_id == "kw-1"
    assert before.key_worker.contact == "01632 960001" and before.key_worker.level == "high"
    after = team(*events, today=D(2024, 4, 1))
    assert after.key_worker is None and after.key_workers == []
    assert after.key_working_model is None
    [period] = after.key_working_periods
    assert (period.ended_on, period.ended_because, period.current) == (
        D(2024, 3, 31),
        "left_the_team",
        False,
    )
    [member] = after.agencies[0].members
    assert member.key_working_functions == []  # no longer holds any function


def test_rejoining_does_not_restore_an_ended_key_working_period() -> None:
    view = team(
        joined("kw-1"),
        assigned("kw-1", D(2024, 1, 10)),
        PractitionerLeft(practitioner_id="kw-1", until=D(2024, 2, 1)),
        joined("kw-1", since=D(2024, 5, 1)),
        today=D(2024, 6, 1),
    )
    assert view.key_worker is None
    assert view.agencies[0].members[0].current is True


def test_a_handover_shows_both_key_workers_during_the_overlap_then_only_the_new_one() -> None:
    events = (
        joined("kw-1"),
        joined("kw-2"),
        assigned("kw-1", D(2024, 1, 10), level="moderate"),
        assigned("kw-2", D(2024, 4, 1), level="intensive", family_agreed_on=D(2024, 3, 28)),
        KeyWorkerHandoverStarted(
            outgoing_id="kw-1",
            incoming_id="kw-2",
            handed_over_on=D(2024, 4, 1),
            overlap_until=D(2024, 4, 14),
            reason="Moving to the 0-5 team",
        ),
    )
    during = team(*events, today=D(2024, 4, 10))
    assert during.key_worker is not None and during.key_worker.practitioner_id == "kw-2"
    assert (during.key_worker.level, during.key_worker.since) == ("intensive", D(2024, 4, 1))
    assert during.key_worker.family_agreed_on == D(2024, 3, 28)
    assert [
        (k.practitioner_id, k.handing_over_until, k.handing_over_to) for k in during.key_workers
    ] == [
        ("kw-2", None, None),
        ("kw-1", D(2024, 4, 14), "kw-2"),
    ]
    after = team(*events, today=D(2024, 4, 15))
    assert [k.practitioner_id for k in after.key_workers] == ["kw-2"]
    assert "kw-1" not in after.key_worker.model_dump_json()  # type: ignore[union-attr]
    first, second = after.key_working_periods
    assert (first.key_worker_id, first.ended_on, first.ended_because) == (
        "kw-1",
        D(2024, 4, 14),
        "handed_over",
    )
    assert (first.handed_over_to, first.end_reason, first.current) == (
        "kw-2",
        "Moving to the 0-5 team",
        False,
    )
    assert (second.key_worker_id, second.started_on, second.current) == (
        "kw-2",
        D(2024, 4, 1),
        True,
    )


def test_an_outgoing_key_worker_who_leaves_during_the_overlap_is_gone_at_once() -> None:
    view = team(
        joined("kw-1"),
        joined("kw-2"),
        assigned("kw-1", D(2024, 1, 10)),
        assigned("kw-2", D(2024, 4, 1)),
        KeyWorkerHandoverStarted(
            outgoing_id="kw-1",
            incoming_id="kw-2",
            handed_over_on=D(2024, 4, 1),
            overlap_until=D(2024, 4, 30),
        ),
        PractitionerLeft(practitioner_id="kw-1", until=D(2024, 4, 5)),
        today=D(2024, 4, 10),
    )
    assert [k.practitioner_id for k in view.key_workers] == ["kw-2"]
    assert view.key_working_periods[0].ended_because == "left_the_team"


def test_cover_names_a_current_practitioner_or_a_work_contact_never_a_departed_one() -> None:
    base = (
        joined("kw-1"),
        PractitionerJoined(
            practitioner_id="senco-1",
            role="senco",
            agency="education",
            since=D(2024, 1, 1),
            contact="senco@oak.example",
        ),
        assigned("kw-1", D(2024, 1, 10)),
        KeyWorkerCoverArranged(
            key_worker_id="kw-1",
            cover_practitioner_id="senco-1",
            cover_contact="SEN duty line 01632 960999",
            arranged_on=D(2024, 2, 1),
        ),
    )
    view = team(*base, today=D(2024, 3, 1))
    cover = view.key_worker.cover  # type: ignore[union-attr]
    assert cover is not None
    assert (cover.cover_practitioner_id, cover.role_label, cover.contact) == (
        "senco-1",
        "SENCO",
        "senco@oak.example",
    )
    assert cover.cover_contact == "SEN duty line 01632 960999"
    gone = team(
        *base,
        PractitionerLeft(practitioner_id="senco-1", until=D(2024, 2, 20)),
        today=D(2024, 3, 1),
    )
    cover = gone.key_worker.cover  # type: ignore[union-attr]
    assert cover is not None and cover.cover_practitioner_id is None
    assert cover.cover_contact == "SEN duty line 01632 960999"
    # a later arrangement replaces the earlier one, and an expired one is not shown
    expired = team(
        *base,
        KeyWorkerCoverArranged(
            key_worker_id="kw-1",
            cover_contact="01632 960123",
            arranged_on=D(2024, 2, 5),
            until=D(2024, 2, 25),
        ),
        today=D(2024, 3, 1),
    )
    assert expired.key_worker is not None and expired.key_worker.cover is None


def test_a_parent_can_be_their_own_key_worker_referenced_without_a_name() -> None:
    parent = assigned(
        None,
        D(2024, 2, 1),
        family_member="parent_carer",
        family_member_ref="rp-77",
        choice_reason="Mum coordinates already and asked to",
        family_agreed_on=D(2024, 2, 1),
    )
    assert parent.key_worker_id == "family:parent_carer:rp-77"
    view = team(
        RelatedPersonRecorded(
            related_person_ref="rp-77",
            recorded_as="related_person",
            given_names=("Alex",),
            family_name="Example",
        ),
        parent,
        today=D(2024, 3, 1),
    )
    kw = view.key_worker
    assert kw is not None and kw.practitioner_id is None
    assert (kw.key_worker_id, kw.family_member, kw.family_member_name) == (
        "family:parent_carer:rp-77",
        "parent_carer",
        "Alex Example",
    )
    assert kw.choice_reason == "Mum coordinates already and asked to"
    assert view.member_count == 0  # a family member is not a practitioner on the team


def test_the_young_person_as_their_own_key_worker_can_end_it() -> None:
    events = (
        assigned(None, D(2024, 2, 1), family_member="young_person"),
        KeyWorkingEnded(
            key_worker_id="family:young_person", ended_on=D(2024, 6, 30), reason="Moved to adult"
        ),
    )
    assert team(*events, today=D(2024, 6, 1)).key_worker.family_member == "young_person"  # type: ignore[union-attr]
    view = team(*events, today=D(2024, 7, 1))
    assert view.key_worker is None
    [period] = view.key_working_periods
    assert (period.ended_on, period.ended_because, period.end_reason) == (
        D(2024, 6, 30),
        "ended",
        "Moved to adult",
    )


def test_ending_key_working_for_the_child_ends_every_period() -> None:
    functions_a = ("single_point_of_contact", "coordinating_practitioners")
    view = team(
        joined("kw-1"),
        joined("kw-2"),
        assigned("kw-1", D(2024, 1, 10), model="multi_person", functions=functions_a),
        assigned("kw-2", D(2024, 1, 10), model="multi_person", functions=("advocacy",)),
        KeyWorkingEnded(ended_on=D(2024, 5, 1), reason="Needs met at SEN support"),
        today=D(2024, 5, 2),
    )
    assert view.key_worker is None and view.key_workers == []
    assert [p.ended_because for p in view.key_working_periods] == ["ended", "ended"]


def test_reassigning_an_open_period_updates_it_and_keeps_its_start() -> None:
    view = team(
        joined("kw-1"),
        assigned("kw-1", D(2024, 1, 10), level="moderate"),
        assigned("kw-1", D(2024, 3, 1), level="intensive"),
        today=D(2024, 3, 2),
    )
    [period] = view.key_working_periods
    assert (period.started_on, period.level) == (D(2024, 1, 10), "intensive")
    assert view.key_worker is not None and view.key_worker.assigned_on == D(2024, 3, 1)


def test_a_hidden_practitioner_is_not_named_in_key_working_or_handover() -> None:
    view = team(
        joined("kw-1"),
        joined("camhs-7"),
        assigned("kw-1", D(2024, 1, 10)),
        assigned("camhs-7", D(2024, 4, 1)),
        KeyWorkerHandoverStarted(
            outgoing_id="kw-1",
            incoming_id="camhs-7",
            handed_over_on=D(2024, 4, 1),
            overlap_until=D(2024, 4, 30),
        ),
        today=D(2024, 4, 10),
        hidden=frozenset({"camhs-7"}),
    )
    assert "camhs-7" not in view.model_dump_json()
    assert view.key_worker is not None and view.key_worker.practitioner_id == "kw-1"


def test_the_caseload_reads_the_single_point_of_contact_as_the_team_view_does() -> None:
    events = facts(
        joined("kw-1"),
        assigned("kw-1", D(2024, 1, 10)),
        PractitionerLeft(practitioner_id="kw-1", until=D(2024, 3, 31)),
    )
    rows = [f for f, _ in events]
    opened = {f.event_id: env for f, env in events if f.event_type != "team.practitioner_joined"}
    spoc = single_point_of_contact
    assert spoc(rows, opened, hidden=frozenset(), today=D(2024, 3, 1)) == "kw-1"
    assert spoc(rows, opened, hidden=frozenset(), today=D(2024, 4, 1)) is None
    assert spoc(rows, opened, hidden=frozenset({"kw-1"}), today=D(2024, 3, 1)) is None


# --------------------------------------------------------------------------- the events


@pytest.mark.parametrize(
    ("cls", "data", "field"),
    [
        (
            KeyWorkerHandoverStarted,
            {
                "outgoing_id": "kw-1",
                "incoming_id": "kw-2",
                "handed_over_on": "2024-04-10",
                "overlap_until": "2024-04-01",
            },
            "overlap_until",
        ),
        (
            KeyWorkerHandoverStarted,
            {
                "outgoing_id": "kw-1",
                "incoming_id": "kw-1",
                "handed_over_on": "2024-04-10",
                "overlap_until": "2024-04-11",
            },
            "incoming_id",
        ),
        (
            KeyWorkerCoverArranged,
            {"key_worker_id": "kw-1", "arranged_on": "2024-04-10"},
            "cover_practitioner_id",
        ),
        (
            KeyWorkerCoverArranged,
            {
                "key_worker_id": "kw-1",
                "cover_contact": "duty line",
                "arranged_on": "2024-04-10",
                "until": "2024-04-01",
            },
            "until",
        ),
        (
            KeyWorkerAssigned,
            {"model": "single_person", "assigned_on": "2024-01-01"},
            "practitioner_id",
        ),
        (
            KeyWorkerAssigned,
            {
                "practitioner_id": "kw-1",
                "family_member": "young_person",
                "model": "single_person",
                "assigned_on": "2024-01-01",
            },
            "practitioner_id",
        ),
        (
            KeyWorkerAssigned,
            {
                "family_member": "young_person",
                "family_member_ref": "rp-1",
                "model": "single_person",
                "assigned_on": "2024-01-01",
            },
            "family_member_ref",
        ),
        (
            KeyWorkerAssigned,
            {
                "practitioner_id": "kw-1",
                "model": "single_person",
                "assigned_on": "2024-01-01",
                "level": "extreme",
            },
            "level",
        ),
        (
            KeyWorkerAssigned,
            {
                "family_member": "parent_carer",
                "family_member_ref": "Alex Example",
                "model": "single_person",
                "assigned_on": "2024-01-01",
            },
            "family_member_ref",
        ),
    ],
)
def test_bad_key_working_events_name_the_field(
    cls: type[EventPayload], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        cls.model_validate(data)
    err = exc.value.errors()[0]
    named = (
        ".".join(str(p) for p in err["loc"])
        or str(err["msg"]).removeprefix("Value error, ").split(":")[0]
    )
    assert named == field, err


def test_reasons_about_the_child_are_sealed_and_only_ids_are_open() -> None:
    assert "choice_reason" in (personal_fields(KeyWorkerAssigned) or ())
    assert "reason" in (personal_fields(KeyWorkerHandoverStarted) or ())
    assert "reason" in (personal_fields(KeyWorkingEnded) or ())
    assert "cover_contact" in (personal_fields(KeyWorkerCoverArranged) or ())  # free text
    assert KeyWorkerCoverArranged.open_fields == ("key_worker_id", "cover_practitioner_id")


def test_a_stored_v1_key_worker_assignment_upcasts_to_v2() -> None:
    raw = (FIXTURES / "team.key_worker_assigned.v1.json").read_bytes()
    env = decode(raw)
    assert env.schema_version == 2
    assert isinstance(env.payload, KeyWorkerAssigned)
    assert env.payload.key_worker_id == "kw-1"
    assert (env.payload.family_member, env.payload.level, env.payload.choice_reason) == (
        None,
        None,
        None,
    )
    assert json.loads(raw)["payload"] == {
        k: v for k, v in upcast_key_worker_v1_v2(json.loads(raw)["payload"]).items() if v
    }
