"""Who may decide about sharing a child's information on a given date.

Until the end of compulsory school age — the last Friday of June of the school year
(1 September to 31 August) in which the child turns 16 — a parent with parental
responsibility decides. From that day the young person decides for themself (Children
and Families Act 2014 s.80), unless a recorded assessment says they lack capacity for
the decision, in which case the person it names (parent, deputy or representative)
decides. `check_grantor_authority()` raises `ConsentAuthorityError` with a plain-English
reason; reasons never contain dates or other personal data.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hub.consent.state import ConsentState
from hub.errors import HubError
from hub.events.consent import CapacityAssessed, GrantorCapacity

_FRIDAY = 4


class ConsentAuthorityError(HubError):
    """The grantor was not entitled to decide on that date; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def last_friday_of_june(year: int) -> date:
    june_30 = date(year, 6, 30)
    return june_30 - timedelta(days=(june_30.weekday() - _FRIDAY) % 7)


def compulsory_school_age_end(dob: date) -> date:
    """The last Friday of June of the school year in which the child turns 16.

    A child born from 1 September turns 16 in the school year that starts in September of
    (birth year + 16); one born on or before 31 August, in the school year that starts the
    September before. Only the birth month matters, so 29 February needs no special case.
    """
    turns_16_in_school_year_starting = dob.year + 16 if dob.month >= 9 else dob.year + 15
    return last_friday_of_june(turns_16_in_school_year_starting + 1)


def young_person_decides_from(dob: date) -> date:
    """The first day the young person (not their parent) decides: the end of compulsory
    school age itself."""
    return compulsory_school_age_end(dob)


def capacity_applies(record: CapacityAssessed | None, on_date: date) -> bool:
    """Whether `record` says the young person lacks capacity on `on_date`."""
    return record is not None and record.lacks_capacity and record.assessed_on <= on_date


def check_grantor_authority(
    dob: date,
    on_date: date,
    capacity: GrantorCapacity,
    capacity_record: CapacityAssessed | None = None,
    *,
    grantor_reference: str | None = None,
) -> None:
    """Raise `ConsentAuthorityError` unless a grantor of `capacity` may decide for the
    child born on `dob` on `on_date`.

    Below the end of compulsory school age only a parent with parental responsibility
    decides (a child's own view is recorded as a family view, not as consent; Gillick
    competence for a child's own health records is not modelled here). From that date
    only the young person decides — unless `capacity_record` (the latest assessment on or
    before `on_date`) says they lack capacity, when only the capacity it names decides
    (and, if the record names a person and `grantor_reference` is given, only that person).
    """
    if on_date < dob:
        raise ConsentAuthorityError("the consent date is before the child's date of birth")
    if on_date < compulsory_school_age_end(dob):
        if capacity == "parent_with_pr":
            return
        if capacity == "young_person":
            raise ConsentAuthorityError(
                "the child is below the end of compulsory school age on the consent date, "
                "so a parent with parental responsibility decides; the child cannot grant or "
                "refuse on their own"
            )
        raise ConsentAuthorityError(
            f"a {_CAPACITY_WORDS[capacity]} acts only for a young person over compulsory "
            "school age who lacks capacity; below that age a parent with parental "
            "responsibility decides"
        )
    if capacity_record is not None and capacity_applies(capacity_record, on_date):
        acting = capacity_record.acting_capacity
        if capacity != acting:
            raise ConsentAuthorityError(
                f"the young person lacks capacity for this decision (assessment "
                f"{capacity_record.assessment_id}), and that assessment names a "
                f"{_CAPACITY_WORDS[acting] if acting else 'nobody'} to act, not a "
                f"{_CAPACITY_WORDS[capacity]}"
            )
        if (
            grantor_reference is not None
            and capacity_record.acting_reference is not None
            and grantor_reference != capacity_record.acting_reference
        ):
            raise ConsentAuthorityError(
                f"the young person lacks capacity for this decision (assessment "
                f"{capacity_record.assessment_id}), and the grantor is not the person that "
                "assessment names to act"
            )
        return
    if capacity == "young_person":
        return
    raise ConsentAuthorityError(
        "the young person is over compulsory school age and decides for themself; a "
        f"{_CAPACITY_WORDS[capacity]} may decide only when a recorded assessment says the "
        "young person lacks capacity for this decision and names them"
    )


def lapsed_consents(state: ConsentState, dob: date, at: datetime) -> tuple[str, ...]:
    """Ids of the grants and refusals in force at `at` whose grantor could no longer give
    them on that day (a parent's, once the young person is over compulsory school age
    and not known to lack capacity; a deputy's, once capacity is regained). The caller
    records each as `consent.expired` with reason `grantor_authority_ended`."""
    on = at.date()
    record = state.capacity_at(on)
    lapsed: list[str] = []
    for consent in state.effective(at):
        grantor = consent.consent.grantor
        try:
            check_grantor_authority(dob, on, grantor.capacity, record)
        except ConsentAuthorityError:
            lapsed.append(consent.consent_id)
    return tuple(lapsed)


_CAPACITY_WORDS: dict[str, str] = {
    "parent_with_pr": "parent with parental responsibility",
    "young_person": "young person",
    "deputy": "deputy",
    "representative": "representative",
}
