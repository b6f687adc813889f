"""A child's consent state: which grants and refusals were in force at any time, with
history kept so a past decision can be replayed exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.consent.state import ConsentState
from hub.events import Envelope, Source
from hub.events.consent import (
    CapacityAssessed,
    ConsentExpired,
    ConsentRecorded,
    ConsentWithdrawn,
)
from hub.events.education import SenStatusRecorded

CHILD = "child-1"


def recorded(cid: str = "c-1", **overrides: Any) -> ConsentRecorded:
    data: dict[str, Any] = {
        "consent_id": cid,
        "decision": "permit",
        "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
        "given_on": "2024-03-01",
        "scope": {"categories": ["health"]},
        "period": {"start": "2024-03-01"},
        "capture_method": "form",
        "recorded_by": "coord-1",
    }
    data.update(overrides)
    return ConsentRecorded.model_validate(data)


def t(day: int, hour: int = 12, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


def test_an_empty_state_has_nothing_in_force() -> None:
    state = ConsentState(CHILD)
    assert state.version == 0
    assert state.effective(t(1)) == ()
    assert state.records == ()


def test_apply_returns_a_new_state_and_leaves_the_old_one_alone() -> None:
    s0 = ConsentState(CHILD)
    s1 = s0.apply(recorded(), at=t(1))
    assert s0.version == 0 and s0.records == ()
    assert s1.version == 1 and [r.consent_id for r in s1.records] == ["c-1"]


def test_a_grant_is_in_force_from_the_first_to_the_last_day_of_its_period() -> None:
    state = ConsentState(CHILD).apply(
        recorded(period={"start": "2024-03-05", "end": "2024-03-10"}), at=t(1)
    )
    assert state.effective(datetime(2024, 3, 4, 23, 59, 59, tzinfo=UTC)) == ()
    assert len(state.effective(datetime(2024, 3, 5, 0, 0, tzinfo=UTC))) == 1
    assert len(state.effective(datetime(2024, 3, 10, 23, 59, 59, tzinfo=UTC))) == 1
    assert state.effective(datetime(2024, 3, 11, 0, 0, tzinfo=UTC)) == ()
    record = state.records[0]
    assert record.status_at(t(4)) == "not_yet_started"
    assert record.status_at(t(11)) == "period_ended"


def test_a_withdrawal_ends_the_record_from_its_time_and_keeps_history() -> None:
    state = (
        ConsentState(CHILD)
        .apply(recorded(), at=t(1))
        .apply(ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"), at=t(20, 9))
    )
    assert len(state.effective(t(20, 8))) == 1  # before the withdrawal: in force
    assert state.effective(t(20, 9)) == ()  # from the withdrawal: not
    record = state.record("c-1")
    assert record is not None
    assert record.ended_by == "withdrawn" and record.ended_at == t(20, 9)
    assert record.status_at(t(25)) == "withdrawn"


def test_an_expiry_ends_the_record_from_its_time() -> None:
    state = (
        ConsentState(CHILD)
        .apply(recorded(), at=t(1))
        .apply(ConsentExpired(consent_id="c-1", reason="grantor_authority_ended"), at=t(15))
    )
    assert state.effective(t(15)) == ()
    assert len(state.effective(t(14))) == 1
    assert state.records[0].status_at(t(16)) == "expired"


def test_refusals_are_records_too_and_can_be_withdrawn() -> None:
    state = ConsentState(CHILD).apply(recorded("r-1", decision="deny"), at=t(1))
    assert [r.decision for r in state.effective(t(2))] == ["deny"]
    state = state.apply(ConsentWithdrawn(consent_id="r-1", recorded_by="coord-1"), at=t(3))
    assert state.effective(t(4)) == ()


def test_anomalies_change_nothing_and_are_listed() -> None:
    state = (
        ConsentState(CHILD)
        .apply(recorded(), at=t(1))
        .apply(recorded(scope={"categories": ["education"]}), at=t(2))
        .apply(ConsentWithdrawn(consent_id="nope", recorded_by="coord-1"), at=t(3))
        .apply(ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"), at=t(4))
        .apply(ConsentExpired(consent_id="c-1"), at=t(5))
    )
    assert state.version == 5
    assert state.records[0].consent.scope.categories == ("health",)
    assert state.records[0].ended_by == "withdrawn"
    assert len(state.anomalies) == 3
    assert "recorded again" in state.anomalies[0]
    assert "never recorded" in state.anomalies[1]
    assert "already been withdrawn" in state.anomalies[2]


def test_a_late_arriving_earlier_withdrawal_wins_over_a_later_expiry() -> None:
    state = (
        ConsentState(CHILD)
        .apply(recorded(), at=t(1))
        .apply(ConsentExpired(consent_id="c-1"), at=t(20))
        .apply(ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"), at=t(10))
    )
    record = state.records[0]
    assert record.ended_by == "withdrawn" and record.ended_at == t(10)


def test_at_version_replays_what_the_hub_knew_then() -> None:
    state = (
        ConsentState(CHILD)
        .apply(recorded(), at=t(1))
        .apply(ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"), at=t(5))
    )
    # decided at t(10) with version 1: the withdrawal was not yet known
    then = state.at_version(1)
    assert then.version == 1
    assert len(then.effective(t(10))) == 1
    assert state.effective(t(10)) == ()
    assert state.at_version(0).records == ()
    with pytest.raises(ValueError, match="outside"):
        state.at_version(3)


def test_capacity_at_picks_the_latest_assessment_on_or_before_the_day() -> None:
    lacks = CapacityAssessed(
        assessment_id="a-1",
        lacks_capacity=True,
        acting_capacity="deputy",
        assessed_on=date(2024, 1, 10),
        assessed_by="sw-1",
    )
    regained = CapacityAssessed(
        assessment_id="a-2", lacks_capacity=False, assessed_on=date(2024, 6, 1), assessed_by="sw-1"
    )
    state = ConsentState(CHILD).apply(lacks, at=t(1)).apply(regained, at=t(2))
    assert state.capacity_at(date(2024, 1, 9)) is None
    assert state.capacity_at(date(2024, 1, 10)) == lacks
    assert state.capacity_at(date(2024, 5, 31)) == lacks
    assert state.capacity_at(date(2024, 6, 1)) == regained


def _env(payload: Any, at: datetime, child: str = CHILD) -> Envelope:
    return Envelope.wrap(payload, child_id=child, source=Source(agency="hub"), occurred_at=at)


def test_fold_takes_a_childs_envelopes_and_skips_other_events() -> None:
    sen = SenStatusRecorded(sen_provision="K", start_date=date(2024, 1, 1))
    envs = [_env(recorded(), t(1)), _env(sen, t(2)), _env(recorded("c-2"), t(3))]
    state = ConsentState.fold(CHILD, envs)
    assert state.version == 2
    assert state.records[0].event_id == envs[0].event_id
    with pytest.raises(ValueError, match="another child"):
        state.apply_envelope(_env(recorded("c-3"), t(4), child="child-2"))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ConsentState(CHILD).apply(recorded(), at=datetime(2024, 1, 1))


def test_describe_says_the_state_in_plain_words() -> None:
    state = (
        ConsentState(CHILD)
        .apply(
            recorded(
                scope={"categories": ["health"], "purposes": ["ehc_assessment"], "roles": ["gp"]},
                exceptions=[{"decision": "deny", "scope": {"purposes": ["ehc_assessment"]}}],
            ),
            at=t(1),
        )
        .apply(
            recorded(
                "r-1", decision="deny", grantor={"reference": "yp-1", "capacity": "young_person"}
            ),
            at=t(2),
        )
        .apply(ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"), at=t(3))
    )
    lines = state.describe(t(4))
    assert lines[0] == (
        "Consent c-1: a parent with parental responsibility permits sharing health for ehc "
        "assessment with gp, with 1 exception — withdrawn"
    )
    assert lines[1].startswith("Consent r-1: the young person refuses sharing health")
    assert lines[1].endswith("— in force")


# --------------------------------------------------------------------------- properties

OPS = st.lists(
    st.tuples(
        st.sampled_from(["record", "withdraw", "expire"]),
        st.sampled_from(["c-1", "c-2", "c-3"]),
        st.integers(min_value=0, max_value=60),  # event day offset
        st.integers(min_value=0, max_value=40),  # period start offset
        st.one_of(st.none(), st.integers(min_value=0, max_value=30)),  # period length
    ),
    max_size=12,
)
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def _build(ops: list[tuple[str, str, int, int, int | None]]) -> list[tuple[Any, datetime]]:
    events: list[tuple[Any, datetime]] = []
    for kind, cid, day, start, length in ops:
        at = BASE + timedelta(days=day, hours=7)
        if kind == "record":
            start_day = (BASE + timedelta(days=start)).date()
            end = None if length is None else start_day + timedelta(days=length)
            events.append((recorded(cid, period={"start": start_day, "end": end}), at))
        elif kind == "withdraw":
            events.append((ConsentWithdrawn(consent_id=cid, recorded_by="coord-1"), at))
        else:
            events.append((ConsentExpired(consent_id=cid), at))
    return events


def _oracle(events: list[tuple[Any, datetime]], at: datetime) -> set[str]:
    """Brute force: a record is in force if first recorded, in its period, and not ended
    (withdrawn or expired) at or before `at`."""
    first: dict[str, ConsentRecorded] = {}
    ends: dict[str, list[datetime]] = {}
    for payload, when in events:
        if isinstance(payload, ConsentRecorded):
            first.setdefault(payload.consent_id, payload)
        elif payload.consent_id in first:
            ends.setdefault(payload.consent_id, []).append(when)
    out: set[str] = set()
    for cid, c in first.items():
        start = datetime.combine(c.period.start, datetime.min.time(), tzinfo=UTC)
        if at < start:
            continue
        if c.period.end is not None and at >= datetime.combine(
            c.period.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC
        ):
            continue
        if any(e <= at for e in ends.get(cid, [])):
            continue
        out.add(cid)
    return out


@settings(max_examples=200, deadline=None)
@given(OPS, st.integers(min_value=0, max_value=90), st.integers(min_value=0, max_value=23))
def test_effective_matches_a_brute_force_reading_of_the_events(
    ops: list[tuple[str, str, int, int, int | None]], day: int, hour: int
) -> None:
    events = _build(ops)
    state = ConsentState(CHILD)
    for payload, at in events:
        state = state.apply(payload, at=at, event_id=uuid.uuid4())
    at = BASE + timedelta(days=day, hours=hour)
    assert {r.consent_id for r in state.effective(at)} == _oracle(events, at)
    # and every prefix replays to the state folded from that prefix
    for n in range(state.version + 1):
        prefix = state.at_version(n)
        assert {r.consent_id for r in prefix.effective(at)} == _oracle(events[:n], at)
