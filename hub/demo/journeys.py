"""Each demo child's EHC plan journey and team life, as dated steps to replay.
`plan_steps(child, today)` gives the history of the child's plan for its scenario, dated
back from `today` so the statutory clock shows what the scenario is about: a request just
received; a decision whether to assess now overdue (6 weeks, reg 5); advice requested and
on track; advice overdue (6 weeks from its own request, reg 8), with one adviser late and
two outstanding; a clock paused by recorded exceptions (a family away for a month, then a
child in hospital, regs 8(2) and 10(4)); a draft with the family's 15 days running; final
plans issued on time and late (20 weeks, reg 13(2)) with their outcomes (section E),
provision (F, G, H1) and, for child 0, a personal budget taken as a direct payment (J);
annual reviews due and overdue (12 months, CFA s.44); and children in Years 6 and 11
whose phase transfer reviews fall due this school year (reg 18). `team_steps` gives key
working (single-person and multi-person models, with the level of support and the
family's agreement), a cover contact for the key worker's absence, a key worker handing
over to the SEN casework officer with the overlap still running (children in review), and
a recent team meeting with its open actions. The loader turns each step into a
coordinator route call or an agency message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from hub.demo.cohort import Child, Practitioner, Scenario

StepKind = Literal[
    "request", "decision", "advice_request", "advice_answer", "exception", "draft", "comments",
    "final", "outcome", "provision", "budget", "review", "meeting", "key_worker",
    "key_worker_handover", "key_worker_cover", "progress", "conclusion",
]  # fmt: skip


@dataclass(frozen=True)
class PlanStep:
    """One dated step of a plan's (or a team's) history, with what its route needs."""

    kind: StepKind
    on: date
    data: dict[str, Any] = field(default_factory=dict)


TIMELINES: dict[Scenario, dict[str, int]] = {
    # days from today: request received, decision to assess, advice asked, draft, final
    "requested": {"received": -9},
    "decision_overdue": {"received": -50},
    "advice_on_track": {"received": -40, "decision": -14, "advice": -12},
    "advice_overdue": {"received": -91, "decision": -60, "advice": -58},
    "paused": {"received": -84, "decision": -52, "advice": -50},
    "draft": {"received": -118, "decision": -82, "advice": -80, "draft": -4},
    "final": {"received": -215, "decision": -180, "advice": -176, "draft": -100, "final": -78},
    "final_late": {"received": -236, "decision": -196, "advice": -190, "draft": -90, "final": -60},
    "review_due": {"received": -480, "decision": -445, "advice": -440, "draft": -372,
                   "final": -351},
    "review_overdue": {"received": -560, "decision": -525, "advice": -520, "draft": -452,
                       "final": -421},
    "phase_transfer": {"received": -900, "decision": -865, "advice": -860, "draft": -790,
                       "final": -770},
    "post16_transfer": {"received": -1000, "decision": -965, "advice": -960, "draft": -890,
                        "final": -870},
    "big_team": {"received": -480, "decision": -446, "advice": -441, "draft": -370,
                 "final": -346},
}  # fmt: skip


def final_date(child: Child, today: date) -> date | None:
    """The day the child's final EHC plan was issued, if it has one."""
    final = TIMELINES.get(child.scenario, {}).get("final")
    return None if final is None else today + timedelta(days=final)


def _advisers(child: Child) -> list[tuple[str, Practitioner | None]]:
    """(reg 6 category, adviser) for each piece of advice the LA seeks; the family's own
    advice (reg 6(1)(a)) has no practitioner."""
    out: list[tuple[str, Practitioner | None]] = [("parent_or_young_person", None)]
    for category, key in (
        ("educational", "senco"),
        ("medical", "paediatrician"),
        ("educational_psychologist", "educational_psychologist"),
        ("social_care", "social_worker"),
        ("other_appropriate", "speech_and_language_therapist"),
        ("other_appropriate", "physiotherapist"),
    ):
        adviser = child.member(key)
        if adviser is not None:
            out.append((category, adviser))
    if child.nc_year in ("9", "10", "11", "12", "13", "14"):
        out.append(("preparation_for_adulthood", child.member("la_sen_officer")))
    return out


def _answered_on(scenario: Scenario, k: int, asked: date, n_advisers: int) -> date | None:
    """When adviser `k` answered (None: not yet)."""
    due = asked + timedelta(days=42)
    if scenario in ("advice_on_track",):
        return asked + timedelta(days=8) if k == 0 else None
    if scenario == "advice_overdue":
        # the family's and the school's advice on time, the medical advice 4 days late,
        # the rest outstanding and overdue
        return {0: asked + timedelta(days=12), 1: asked + timedelta(days=25),
                2: due + timedelta(days=4)}.get(k)  # fmt: skip
    if scenario == "paused":
        # everyone but the last adviser, whose 6 weeks the family's absence excuses
        return asked + timedelta(days=18 + 4 * k) if k < n_advisers - 1 else None
    if scenario == "final_late" and k == 2:
        return due + timedelta(days=9)
    return asked + timedelta(days=20 + 3 * k)


def plan_steps(child: Child, today: date) -> list[PlanStep]:
    """The dated history of the child's EHC plan (empty without one), in order."""
    t = TIMELINES.get(child.scenario)
    if t is None:
        return []
    rng = random.Random(f"plan:{child.index}")  # noqa: S311 - synthetic data, not secrets

    def day(key: str) -> date:
        return today + timedelta(days=t[key])

    received = day("received")
    by = "parent" if child.index % 3 else ("school" if child.school else "health")
    steps = [
        PlanStep("request", received, {"requested_on": (received - timedelta(days=2)).isoformat(),
                                       "received_on": received.isoformat(), "requested_by": by})
    ]  # fmt: skip
    if "decision" not in t:
        return steps
    steps.append(PlanStep("decision", day("decision"), {"decision": "assess"}))
    asked = day("advice")
    advisers = _advisers(child)
    for k, (category, adviser) in enumerate(advisers):
        request_id = f"ar-{child.index:03d}-{k + 1}"
        data = {"advice_request_id": request_id, "reg6_category": category, "practitioner": adviser}
        steps.append(PlanStep("advice_request", asked, data))
        answered = _answered_on(child.scenario, k, asked, len(advisers))
        if answered is not None and answered < today:
            steps.append(PlanStep("advice_answer", answered, data))
    if child.scenario == "paused":
        steps += _exceptions(child, today, f"ar-{child.index:03d}-{len(advisers)}")
    if "draft" in t:
        draft = day("draft")
        comments_by = (draft + timedelta(days=15)).isoformat()
        steps.append(PlanStep("draft", draft, {"comments_by": comments_by}))
    if "final" not in t:
        return steps
    final = day("final")
    steps.append(PlanStep("comments", day("draft") + timedelta(days=10), {"by": "parent"}))
    steps.append(
        PlanStep("final", final, {"placement": child.school.urn if child.school else None})
    )
    steps += _contents(child, final, rng)
    if child.scenario in ("phase_transfer", "post16_transfer", "big_team"):
        last: date | None = None
        review = final + timedelta(days=350)
        while review < today - timedelta(days=30):
            steps.append(PlanStep("review", review, {
                "review_id": f"rv-{child.index:03d}-{review.isoformat()}", "kind": "annual",
                "report_sent_on": (review + timedelta(days=10)).isoformat(),
                "decision": "maintain", "decided_on": (review + timedelta(days=20)).isoformat(),
            }))  # fmt: skip
            last = review
            review += timedelta(days=350)
        if last is not None:
            steps += _learning(child, last)
    return steps


_PROGRESS = ("achieved", "partly_achieved", "not_yet_achieved")


def _learning(child: Child, review: date) -> list[PlanStep]:
    """What the latest annual review found: progress towards each section E outcome, and
    its conclusions with the next review agreed with the family."""
    review_id = f"rv-{child.index:03d}-{review.isoformat()}"
    steps = [
        PlanStep(
            "progress",
            review,
            {
                "outcome_id": f"oc-{child.index:03d}-{k}",
                "review_id": review_id,
                "progress": _PROGRESS[(child.index + k) % 3],
                "evidence": "Seen in the review report and the provider's records",
            },
        )
        for k, _ in enumerate(child.needs, start=1)
    ]
    steps.append(PlanStep("conclusion", review, {
        "review_id": review_id,
        "what_worked": ["Small-group sessions with a familiar adult"],
        "what_did_not_work": ["Homework set online"],
        "next_review_on": (review + timedelta(days=350)).isoformat(),
        "agreed_with_family": True,
    }))  # fmt: skip
    return steps


def _exceptions(child: Child, today: date, excused_request: str) -> list[PlanStep]:
    """A month the family were away (excusing one adviser too), then a hospital stay that
    still goes on: both recorded, both stop the clock."""
    away, back, ill = (today + timedelta(days=d) for d in (-45, -15, -6))
    return [
        PlanStep("exception", away, {
            "exception_id": f"ex-{child.index:03d}-1", "kind": "family_absent",
            "starts_on": away.isoformat(), "ends_on": back.isoformat(),
            "advice_request_ids": [excused_request],
            "details": "The family were abroad for a month caring for a relative.",
        }),
        PlanStep("exception", ill, {
            "exception_id": f"ex-{child.index:03d}-2", "kind": "exceptional_personal_circumstances",
            "starts_on": ill.isoformat(), "ends_on": None, "advice_request_ids": [],
            "details": f"{child.given} is in hospital after planned surgery.",
        }),
    ]  # fmt: skip


OUTCOMES: dict[str, tuple[str, str, str, str, str]] = {
    # need: (area, what, how measured, provision, provider post)
    "ASD": ("social_emotional_and_mental_health",
            "will use a visual timetable to move between activities without adult prompts",
            "termly observation against the baseline",
            "Daily small-group social communication sessions with a trained assistant", "senco"),
    "SLCN": ("communication_and_interaction", "will ask for help using a three-word sentence",
             "speech and language therapy review each term",
             "Speech and language therapy programme delivered in class",
             "speech_and_language_therapist"),
    "SEMH": ("social_emotional_and_mental_health",
             "will name their feelings and use a calm-down plan with an adult",
             "weekly check-ins recorded by the key adult", "Emotional literacy support sessions",
             "senco"),
    "MLD": ("cognition_and_learning", "will read and understand a short book at their level",
            "reading age assessed each term", "Daily precision teaching for reading", "teacher"),
    "SPLD": ("cognition_and_learning", "will write a paragraph independently with a laptop",
             "writing samples reviewed each half term",
             "Laptop with speech-to-text software and touch-typing lessons", "teacher"),
    "PD": ("sensory_and_physical", "will move around the school safely with their walker",
           "goal attainment scaling each term", "Physiotherapy programme and daily stretches",
           "physiotherapist"),
    "HI": ("sensory_and_physical", "will follow class discussions using a radio aid",
           "teacher of the deaf review each term",
           "Radio aid and visits from the teacher of the deaf", "teacher"),
    "VI": ("sensory_and_physical", "will read enlarged print materials independently",
           "qualified teacher of visual impairment review each term",
           "Modified large-print resources and mobility training", "teacher"),
    "SLD": ("communication_and_interaction", "will make choices using symbols or signs",
            "speech and language therapy review each term",
            "Makaton and symbol-supported communication throughout the day",
            "speech_and_language_therapist"),
    "PMLD": ("sensory_and_physical", "will indicate yes and no consistently with eye pointing",
             "multidisciplinary review each term",
             "Sensory curriculum and an eye-gaze communication aid", "occupational_therapist"),
}  # fmt: skip


def _contents(child: Child, final: date, rng: random.Random) -> list[PlanStep]:
    """Section E outcomes with the provision serving each (F, G, H1) and, for child 0, a
    personal budget taken as a direct payment (J)."""
    steps = []
    for k, need in enumerate(child.needs, start=1):
        area, what, how, provision, provider_key = OUTCOMES[need]
        outcome_id = f"oc-{child.index:03d}-{k}"
        steps.append(PlanStep("outcome", final, {
            "outcome_id": outcome_id, "need_section": "B", "area": area,
            "what": f"By the end of the key stage {child.given} {what}.",
            "by_when": (final + timedelta(days=365 + rng.randrange(200))).isoformat(),
            "how_measured": how,
        }))  # fmt: skip
        provider = child.member(provider_key) or child.member("senco")
        steps.append(PlanStep("provision", final, {
            "provision_id": f"pv-{child.index:03d}-{k}",
            "section": "G" if provider is not None and provider.agency == "health" else "F",
            "description": provision, "provider": provider, "outcome_ids": [outcome_id],
            "amount": {"quantity": str(rng.choice((1, 2, 3))), "unit": "hours",
                       "frequency": "weekly"},
        }))  # fmt: skip
    social_worker = child.member("social_worker")
    if social_worker is not None:
        outcome_id = f"oc-{child.index:03d}-sc"
        steps.append(PlanStep("outcome", final, {
            "outcome_id": outcome_id, "need_section": "D", "area": "community_participation",
            "what": f"{child.given} will take part in a community activity each week.",
            "by_when": (final + timedelta(days=365)).isoformat(),
            "how_measured": "short breaks review every six months",
        }))  # fmt: skip
        steps.append(PlanStep("provision", final, {
            "provision_id": f"pv-{child.index:03d}-sc", "section": "H1",
            "description": "Short breaks: one overnight stay a month and a supported youth club",
            "provider": social_worker, "outcome_ids": [outcome_id],
            "amount": {"quantity": "1", "unit": "days", "frequency": "monthly"},
        }))  # fmt: skip
    if child.scenario == "big_team":
        steps.append(PlanStep("budget", final, {
            "budget_id": f"pb-{child.index:03d}-1", "amount": "6240.00", "period": "annual",
            "direct_payment": True, "covers": ["social_care"],
            "description": "Direct payment for a personal assistant, six hours a week",
        }))  # fmt: skip
    return steps


def team_steps(child: Child, today: date) -> list[PlanStep]:
    """Key working — the multi-person model around child 0, a single key worker for others
    who have one — and, for some children, a recent team meeting with open actions."""
    steps: list[PlanStep] = []
    if child.scenario == "big_team":
        officer, social_worker = child.member("la_sen_officer"), child.member("social_worker")
        assert officer is not None and social_worker is not None
        since = today - timedelta(days=300)
        steps.append(
            PlanStep(
                "key_worker",
                since,
                {
                    "practitioner": officer,
                    "model": "multi_person",
                    "functions": [
                        "single_point_of_contact",
                        "coordinating_practitioners",
                        "facilitating_multi_agency_meetings",
                        "supporting_joint_assessment_and_planning",
                        "information_and_signposting",
                        "identifying_strengths_and_needs",
                    ],
                },
            )
        )
        steps.append(PlanStep("key_worker", since, {"practitioner": social_worker,
            "model": "multi_person",
            "functions": ["emotional_and_practical_support", "empowering_decisions", "advocacy",
                          "integrating_clinical_and_social_care"]}))  # fmt: skip
        steps.append(PlanStep("key_worker_cover", since + timedelta(days=7), {
            "key_worker": officer, "cover": social_worker,
            "cover_contact": "SEN team duty line 0113 496 0000"}))  # fmt: skip
    else:
        key_worker = child.member("key_worker")
        if key_worker is not None:
            data = {"practitioner": key_worker, "model": "single_person", "level": "moderate",
                    "family_agreed": True}  # fmt: skip
            steps.append(PlanStep("key_worker", today - timedelta(days=120), data))
            steps.append(PlanStep("key_worker_cover", today - timedelta(days=118), {
                "key_worker": key_worker,
                "cover_contact": "SEN team duty line 0113 496 0000"}))  # fmt: skip
            officer = child.member("la_sen_officer")
            if child.scenario == "review_due" and officer is not None:
                # the key worker moves on: both hold key working until the overlap ends
                steps.append(PlanStep("key_worker_handover", today - timedelta(days=10), {
                    "outgoing": key_worker, "incoming": officer, "level": "high",
                    "overlap_until": today + timedelta(days=4),
                    "reason": "The key worker moves to the early years team; the casework "
                              "officer knows the family from the last review."}))  # fmt: skip
    if child.scenario in ("big_team", "advice_overdue", "review_due", "paused"):
        held = today - timedelta(days=24 + child.index % 7)
        attendees = child.team[:8] if child.scenario == "big_team" else child.team[:4]
        first, second = attendees[0], attendees[min(3, len(attendees) - 1)]
        steps.append(PlanStep("meeting", held, {
            "meeting_id": f"mt-{child.index:03d}-1", "kind": "tac", "attendees": attendees,
            "family_attended": True,
            "decisions": ["One shared plan for mornings, at school and at home."],
            "actions": [
                {"action_id": f"act-{child.index:03d}-1", "owner": first,
                 "text": "Share the visual timetable with the family and the class team.",
                 "due_on": (held + timedelta(days=14)).isoformat()},
                {"action_id": f"act-{child.index:03d}-2", "owner": second,
                 "text": "Arrange a joint visit with the family before the review.",
                 "due_on": (today + timedelta(days=10)).isoformat()},
            ],
        }))  # fmt: skip
    return steps
