"""Who may decide for a child on a date: the end of compulsory school age, and the
grantor-authority rule (parent below it; the young person from it, unless a recorded
lack of capacity names who acts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.consent.authority import (
    ConsentAuthorityError,
    check_grantor_authority,
    compulsory_school_age_end,
    lapsed_consents,
    last_friday_of_june,
)
from hub.consent.state import ConsentState
from hub.events.consent import ActingCapacity, CapacityAssessed, ConsentRecorded


@pytest.mark.parametrize(
    ("dob", "expected"),
    [
        # born 1 September: turns 16 on the first day of the 2024/25 school year
        (date(2008, 9, 1), date(2025, 6, 27)),
        # born 31 August: turns 16 on the last day of the 2024/25 school year
        (date(2009, 8, 31), date(2025, 6, 27)),
        # one day later, the next school year
        (date(2009, 9, 1), date(2026, 6, 26)),
        (date(2008, 8, 31), date(2024, 6, 28)),
        # month ends and the turn of the calendar year stay in one school year
        (date(2008, 12, 31), date(2025, 6, 27)),
        (date(2009, 1, 1), date(2025, 6, 27)),
        (date(2009, 4, 30), date(2025, 6, 27)),
        # leap-day births: the school year is what counts
        (date(2008, 2, 29), date(2024, 6, 28)),
        (date(2012, 2, 29), date(2028, 6, 30)),  # 30 June 2028 is itself a Friday
        (date(2000, 2, 29), date(2016, 6, 24)),
        (date(2084, 2, 29), date(2100, 6, 25)),  # 2100 is not a leap year
    ],
)
def test_compulsory_school_age_ends_on_the_last_friday_of_june(dob: date, expected: date) -> None:
    assert compulsory_school_age_end(dob) == expected
    assert expected.weekday() == 4


def test_last_friday_of_june() -> None:
    assert last_friday_of_june(2024) == date(2024, 6, 28)
    assert last_friday_of_june(2028) == date(2028, 6, 30)
    assert last_friday_of_june(2025) == date(2025, 6, 27)


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)))
def test_school_age_end_falls_in_the_school_year_of_the_sixteenth_birthday(dob: date) -> None:
    end = compulsory_school_age_end(dob)
    assert end.month == 6 and end.weekday() == 4 and end.day >= 24
    # the sixteenth birthday (1 March for a 29 February birth in a common year)
    try:
        sixteenth = dob.replace(year=dob.year + 16)
    except ValueError:
        sixteenth = date(dob.year + 16, 3, 1)
    school_year_start = date(end.year - 1, 9, 1)
    school_year_end = date(end.year, 8, 31)
    assert school_year_start <= sixteenth <= school_year_end


DOB = date(2008, 9, 1)  # compulsory school age ends 2025-06-27
CSA_END = date(2025, 6, 27)


def lacks(
    acting: ActingCapacity, on: date = date(2025, 1, 10), ref: str | None = None
) -> CapacityAssessed:
    return CapacityAssessed(
        assessment_id="cap-1",
        lacks_capacity=True,
        acting_capacity=acting,
        acting_reference=ref,
        assessed_on=on,
        assessed_by="sw-1",
    )


HAS_CAPACITY = CapacityAssessed(
    assessment_id="cap-2", lacks_capacity=False, assessed_on=date(2025, 1, 10), assessed_by="sw-1"
)

DAY_BEFORE = CSA_END - timedelta(days=1)


@pytest.mark.parametrize(
    ("on_date", "capacity", "record", "allowed"),
    [
        # below the end of compulsory school age: a parent with PR decides
        (date(2020, 1, 1), "parent_with_pr", None, True),
        (DAY_BEFORE, "parent_with_pr", None, True),
        (DAY_BEFORE, "young_person", None, False),
        (DAY_BEFORE, "deputy", None, False),
        (DAY_BEFORE, "representative", None, False),
        (DAY_BEFORE, "deputy", lacks("deputy"), False),
        # from that day the young person decides
        (CSA_END, "young_person", None, True),
        (CSA_END, "parent_with_pr", None, False),
        (date(2030, 1, 1), "parent_with_pr", None, False),
        (date(2030, 1, 1), "deputy", None, False),
        (date(2030, 1, 1), "young_person", HAS_CAPACITY, True),
        (date(2030, 1, 1), "parent_with_pr", HAS_CAPACITY, False),
        # ... unless a recorded lack of capacity names who acts
        (date(2026, 1, 1), "deputy", lacks("deputy"), True),
        (date(2026, 1, 1), "representative", lacks("representative"), True),
        (date(2026, 1, 1), "parent_with_pr", lacks("parent_with_pr"), True),
        (date(2026, 1, 1), "young_person", lacks("deputy"), False),
        (date(2026, 1, 1), "parent_with_pr", lacks("deputy"), False),
        # an assessment made after the consent date does not apply to it
        (date(2026, 1, 1), "deputy", lacks("deputy", on=date(2026, 2, 1)), False),
        (date(2026, 1, 1), "young_person", lacks("deputy", on=date(2026, 2, 1)), True),
    ],
)
def test_grantor_authority_table(
    on_date: date, capacity: str, record: CapacityAssessed | None, allowed: bool
) -> None:
    if allowed:
        check_grantor_authority(DOB, on_date, capacity, record)  # type: ignore[arg-type]
    else:
        with pytest.raises(ConsentAuthorityError) as err:
            check_grantor_authority(DOB, on_date, capacity, record)  # type: ignore[arg-type]
        assert err.value.reason


def test_a_parent_granting_for_a_young_person_over_school_age_is_rejected_with_a_reason() -> None:
    with pytest.raises(ConsentAuthorityError) as err:
        check_grantor_authority(DOB, date(2025, 9, 1), "parent_with_pr", None)
    reason = err.value.reason
    assert "over compulsory school age" in reason
    assert "decides for themself" in reason
    assert "lacks capacity" in reason
    # no personal data: no dates in the reason
    assert "2008" not in reason and "2025" not in reason


def test_a_child_below_school_age_cannot_grant_alone() -> None:
    with pytest.raises(ConsentAuthorityError, match="parent with parental responsibility"):
        check_grantor_authority(DOB, date(2024, 1, 1), "young_person", None)


def test_the_capacity_record_names_the_person_who_acts() -> None:
    record = lacks("deputy", ref="deputy-7")
    check_grantor_authority(DOB, date(2026, 1, 1), "deputy", record, grantor_reference="deputy-7")
    with pytest.raises(ConsentAuthorityError, match="not the person that assessment names"):
        check_grantor_authority(
            DOB, date(2026, 1, 1), "deputy", record, grantor_reference="deputy-8"
        )


def test_a_capacity_mismatch_names_the_assessment_and_who_may_act() -> None:
    with pytest.raises(ConsentAuthorityError) as err:
        check_grantor_authority(DOB, date(2026, 1, 1), "young_person", lacks("representative"))
    assert "cap-1" in err.value.reason
    assert "representative" in err.value.reason


def test_a_consent_date_before_birth_is_rejected() -> None:
    with pytest.raises(ConsentAuthorityError, match="before the child's date of birth"):
        check_grantor_authority(DOB, date(2008, 1, 1), "parent_with_pr", None)


@pytest.mark.parametrize(
    ("dob", "first_young_person_day"),
    [
        (date(2008, 2, 29), date(2024, 6, 28)),
        (date(2009, 8, 31), date(2025, 6, 27)),
        (date(2009, 9, 1), date(2026, 6, 26)),
    ],
)
def test_the_switch_happens_on_the_last_friday_itself(
    dob: date, first_young_person_day: date
) -> None:
    day_before = first_young_person_day - timedelta(days=1)
    check_grantor_authority(dob, day_before, "parent_with_pr")
    with pytest.raises(ConsentAuthorityError):
        check_grantor_authority(dob, day_before, "young_person")
    check_grantor_authority(dob, first_young_person_day, "young_person")
    with pytest.raises(ConsentAuthorityError):
        check_grantor_authority(dob, first_young_person_day, "parent_with_pr")


def _grant(cid: str, capacity: str, given_on: date) -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": cid,
            "decision": "permit",
            "grantor": {"reference": "g-1", "capacity": capacity},
            "given_on": given_on,
            "scope": {"categories": ["health"]},
            "period": {"start": given_on},
            "capture_method": "form",
            "recorded_by": "coord-1",
        }
    )


def test_a_parents_consent_lapses_when_the_young_person_takes_over() -> None:
    at_recording = datetime(2024, 1, 1, tzinfo=UTC)
    state = (
        ConsentState("child-1")
        .apply(_grant("parent-grant", "parent_with_pr", date(2024, 1, 1)), at=at_recording)
        .apply(_grant("yp-grant", "young_person", date(2025, 7, 1)), at=at_recording)
    )
    assert lapsed_consents(state, DOB, datetime(2025, 6, 26, 12, tzinfo=UTC)) == ()
    assert lapsed_consents(state, DOB, datetime(2025, 7, 2, 12, tzinfo=UTC)) == ("parent-grant",)
    # unless an assessment says the young person lacks capacity and names the parent
    state = state.apply(lacks("parent_with_pr", on=date(2025, 6, 1)), at=at_recording)
    assert lapsed_consents(state, DOB, datetime(2025, 7, 2, 12, tzinfo=UTC)) == ("yp-grant",)
