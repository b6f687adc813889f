"""Preparation for adulthood: from Year 9 an EHC plan turns to adult life (SEND Code of
Practice 8.9-8.12), and an assessment seeks advice on it (SEND Regulations 2014 reg
6(1)(g)). Pure: the school year from the date of birth, and what the plan lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from hub.events.plan import (
    AdviceRequested,
    AssessmentDecided,
    Finalised,
    OutcomeAgreed,
    PlanEvent,
)

PFA_FROM_YEAR = 9
PFA_AREAS = frozenset({"employment", "independent_living", "community_participation", "health"})
"""The four preparation for adulthood outcomes (Code of Practice 8.5)."""


def school_year(date_of_birth: date, today: date) -> int:
    """The national curriculum year a child of this age is in on `today` (0 is
    Reception, below 0 the early years): their age on the 31 August that began the school
    year, less 4."""
    start = today.year if (today.month, today.day) >= (9, 1) else today.year - 1
    cutoff = date(start, 8, 31)
    age = (
        cutoff.year
        - date_of_birth.year
        - ((cutoff.month, cutoff.day) < (date_of_birth.month, date_of_birth.day))
    )
    return age - 4


def adulthood_prompts(
    date_of_birth: date | None,
    today: date,
    outcomes: Sequence[OutcomeAgreed],
    events: Sequence[PlanEvent],
) -> list[tuple[str, str]]:
    """(rule, words) for what a plan of a child in Year 9 or above lacks: advice on
    preparing for adulthood while being assessed, outcomes for adult life once written."""
    if date_of_birth is None or school_year(date_of_birth, today) < PFA_FROM_YEAR:
        return []
    out: list[tuple[str, str]] = []
    assessing = any(isinstance(e, AssessmentDecided) and e.decision == "assess" for e in events)
    finalised = any(isinstance(e, Finalised) for e in events)
    asked = any(
        isinstance(e, AdviceRequested) and e.reg6_category == "preparation_for_adulthood"
        for e in events
    )
    if assessing and not finalised and not asked:
        out.append(
            (
                "pfa_advice_from_year_9",
                "The child is in Year 9 or above: ask for advice on preparing for adulthood "
                "and independent living (SEND Regulations 2014, regulation 6(1)(g)).",
            )
        )
    if (finalised or outcomes) and not any(o.area in PFA_AREAS for o in outcomes):
        out.append(
            (
                "pfa_outcomes_from_year_9",
                "The child is in Year 9 or above: the plan should have outcomes for adult "
                "life: employment, independent living, community participation and good "
                "health (SEND Code of Practice 8.9-8.12).",
            )
        )
    return out
