"""`decide_sharing`: the gate's pure decision, specified by tables of cases and by
properties over random consents, facts and viewers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.consent.decision import (
    Decision,
    DecisionMemo,
    Fact,
    decide_sharing,
    visible_now,
    visible_to,
)
from hub.consent.policy import SharingPolicy, load_policy
from hub.consent.state import ConsentState
from hub.events import Envelope, Sharing, Source
from hub.events.consent import ConsentExpired, ConsentRecorded, ConsentWithdrawn
from hub.events.education import SenStatusRecorded
from hub.events.envelope import Purpose

POLICY = load_policy(Path(__file__).resolve().parents[2] / "contracts" / "consent-policy.yaml")
CHILD = "child-1"
RECORDED_AT = datetime(2024, 3, 1, 9, tzinfo=UTC)
AT = datetime(2024, 6, 1, 12, tzinfo=UTC)
EVENT_ID = uuid.UUID("01900000-0000-7000-8000-000000000001")


def consent(
    cid: str,
    decision: str = "permit",
    *,
    categories: tuple[str, ...] = ("health",),
    purposes: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
    agencies: tuple[str, ...] = (),
    organisations: tuple[str, ...] = (),
    start: str = "2024-01-01",
    end: str | None = None,
    exceptions: tuple[dict[str, Any], ...] = (),
    capacity: str = "parent_with_pr",
) -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": cid,
            "decision": decision,
            "grantor": {"reference": "grantor-1", "capacity": capacity},
            "given_on": start,
            "scope": {
                "categories": categories,
                "purposes": purposes,
                "roles": roles,
                "agencies": agencies,
                "organisations": organisations,
            },
            "period": {"start": start, "end": end},
            "capture_method": "form",
            "recorded_by": "coord-1",
            "exceptions": exceptions,
        }
    )


def exc(decision: str, *nested: dict[str, Any], **scope: Any) -> dict[str, Any]:
    return {"decision": decision, "scope": scope, "exceptions": list(nested)}


def state_of(*consents: ConsentRecorded) -> ConsentState:
    state = ConsentState(CHILD)
    for c in consents:
        state = state.apply(c, at=RECORDED_AT)
    return state


def fact(
    category: str = "health",
    purposes: tuple[Purpose, ...] = ("ehc_assessment",),
    basis: str | None = None,
) -> Fact:
    return Fact(
        event_id=EVENT_ID,
        child_id=CHILD,
        category=category,
        source_agency="health",
        purposes=purposes,
        occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
        basis_claimed=basis,
    )


def decide(f: Fact, *consents: ConsentRecorded, at: datetime = AT) -> Decision:
    return decide_sharing(f, state_of(*consents), POLICY, at=at)


Viewer = tuple[str, str | None, str | None]
COORD: Viewer = ("coordinator", None, None)
PAED: Viewer = ("paediatrician", "health", None)
SENCO: Viewer = ("senco", "education", None)
GP: Viewer = ("gp", "health", None)
LEAD: Viewer = ("safeguarding_lead", None, None)
AUDITOR: Viewer = ("ig_auditor", None, None)
ADMIN: Viewer = ("admin", None, None)
AGENCY: Viewer = ("agency", "health", None)

# name, consents, fact, outcome, relied_on, may see, may not see, reason fragment
CASES: list[
    tuple[str, tuple[ConsentRecorded, ...], Fact, str, str | None, list[Viewer], list[Viewer], str]
] = [
    (
        "no consent: fail closed",
        (),
        fact(),
        "withhold",
        None,
        [],
        [COORD, PAED],
        "withheld: no consent covers health for ehc_assessment",
    ),
    (
        "a grant for health lets every role that may ever see health see it",
        (consent("c1"),),
        fact(),
        "permit",
        "c1",
        [COORD, PAED, SENCO, GP, LEAD],
        [AUDITOR, ADMIN, AGENCY, ("teacher", "education", None)],
        "permitted: consent c1 (given by a parent with parental responsibility) covers health",
    ),
    (
        "a grant for another category does not cover",
        (consent("c1", categories=("education",)),),
        fact(),
        "withhold",
        None,
        [],
        [COORD],
        "no consent covers health",
    ),
    (
        "a grant for another purpose does not cover",
        (consent("c1", purposes=("review",)),),
        fact(),
        "withhold",
        None,
        [],
        [COORD],
        "no consent covers health for ehc_assessment",
    ),
    (
        "roles in the grant narrow the audience",
        (consent("c1", roles=("coordinator",)),),
        fact(),
        "permit",
        "c1",
        [COORD],
        [PAED, GP],
        "visible to coordinator",
    ),
    (
        "agencies in the grant narrow the audience",
        (consent("c1", roles=("paediatrician", "senco"), agencies=("health",)),),
        fact(),
        "permit",
        "c1",
        [PAED],
        [("paediatrician", "education", None), ("paediatrician", None, None), SENCO, COORD],
        "some only within particular agencies",
    ),
    (
        "organisations in the grant narrow the audience",
        (consent("c1", organisations=("RR8",)),),
        fact(),
        "permit",
        "c1",
        [("gp", "health", "RR8"), ("coordinator", None, "RR8")],
        [GP, ("gp", "health", "X99")],
        "visible to",
    ),
    (
        "a grant naming only roles that may never see the category withholds",
        (consent("c1", roles=("ig_auditor", "teacher")),),
        fact(),
        "withhold",
        None,
        [],
        [AUDITOR, ("teacher", "education", None)],
        "allows none of the roles that may ever see health",
    ),
    (
        "a refusal beats a grant",
        (consent("c1"), consent("r1", "deny")),
        fact(),
        "withhold",
        None,
        [],
        [COORD, PAED],
        "refusal r1 covers health for ehc_assessment for every viewer that c1 would allow",
    ),
    (
        "a refusal alone withholds",
        (consent("r1", "deny"),),
        fact(),
        "withhold",
        None,
        [],
        [COORD],
        "no consent covers health for ehc_assessment; refusal r1 also covers it",
    ),
    (
        "a refusal for some roles only keeps it from those roles",
        (consent("c1"), consent("r1", "deny", roles=("paediatrician",))),
        fact(),
        "permit",
        "c1",
        [COORD, GP],
        [PAED],
        "refusal r1 keeps it from the viewers it covers",
    ),
    (
        "a refusal for another purpose does not cover",
        (consent("c1"), consent("r1", "deny", purposes=("review",))),
        fact(),
        "permit",
        "c1",
        [COORD],
        [],
        "permitted",
    ),
    (
        "a blanket refusal (no categories) covers every category",
        (consent("c1", categories=("sexual_health",)), consent("r1", "deny", categories=())),
        fact("sexual_health"),
        "withhold",
        None,
        [],
        [COORD],
        "refusal r1",
    ),
    (
        "safeguarding overrides a refusal and narrows the audience",
        (consent("c1"), consent("r1", "deny")),
        fact(basis="safeguarding"),
        "permit",
        "safeguarding",
        [COORD, LEAD],
        [PAED, GP, AUDITOR],
        "it overrides refusal r1; visible only to coordinator, safeguarding_lead",
    ),
    (
        "safeguarding without any consent",
        (),
        fact("safeguarding", purposes=("direct_care",), basis="safeguarding"),
        "permit",
        "safeguarding",
        [COORD, LEAD],
        [("social_worker", "social_care", None)],
        "statutory basis safeguarding",
    ),
    (
        "safeguarding narrows even a wide grant",
        (consent("c1"),),
        fact(basis="safeguarding"),
        "permit",
        "safeguarding",
        [COORD, LEAD],
        [PAED],
        "visible only to",
    ),
    (
        "reg 6 advice without consent goes to the coordinators",
        (),
        fact(basis="reg6_ehc_advice"),
        "permit",
        "reg6_ehc_advice",
        [COORD],
        [PAED, LEAD],
        "statutory basis reg6_ehc_advice",
    ),
    (
        "reg 6 advice and a grant: both grounds, the basis first",
        (consent("c1", roles=("paediatrician",)),),
        fact(basis="reg6_ehc_advice"),
        "permit",
        "reg6_ehc_advice",
        [COORD, PAED],
        [GP],
        "also covered by c1",
    ),
    (
        "reg 6 does not override a refusal",
        (consent("r1", "deny"),),
        fact(basis="reg6_ehc_advice"),
        "withhold",
        None,
        [],
        [COORD],
        "a refusal beats a grant; no claimed basis that overrides a refusal applies",
    ),
    (
        "reg 6 covers only ehc_assessment",
        (),
        fact(purposes=("direct_care",), basis="reg6_ehc_advice"),
        "withhold",
        None,
        [],
        [COORD],
        "the claimed basis reg6_ehc_advice does not cover direct_care",
    ),
    (
        "reg 6 does not cover mental health",
        (),
        fact("mental_health", basis="reg6_ehc_advice"),
        "withhold",
        None,
        [],
        [COORD],
        "the claimed basis reg6_ehc_advice does not cover mental_health",
    ),
    (
        "an unknown claimed basis is ignored",
        (),
        fact(basis="because_i_said_so"),
        "withhold",
        None,
        [],
        [COORD],
        "the claimed basis 'because_i_said_so' is not in the policy",
    ),
    (
        "a blanket grant does not reach a category that must be named",
        (consent("c1", categories=()),),
        fact("sexual_health"),
        "withhold",
        None,
        [],
        [COORD],
        "c1 does not name sexual_health, which only a consent naming it can cover",
    ),
    (
        "a blanket grant reaches standard and special categories",
        (consent("c1", categories=()),),
        fact("health"),
        "permit",
        "c1",
        [COORD],
        [],
        "permitted",
    ),
    (
        "a grant naming the sensitive category covers it",
        (consent("c1", categories=("sexual_health",)),),
        fact("sexual_health"),
        "permit",
        "c1",
        [COORD, ("school_nurse", "health", None)],
        [PAED],
        "permitted",
    ),
    (
        "an exception carves a category out of a grant",
        (
            consent(
                "c1",
                categories=("health", "mental_health"),
                exceptions=(exc("deny", categories=("mental_health",)),),
            ),
        ),
        fact("mental_health"),
        "withhold",
        None,
        [],
        [COORD],
        "c1 covers mental_health for ehc_assessment, but allows none",
    ),
    (
        "... and leaves the rest of the grant alone",
        (
            consent(
                "c1",
                categories=("health", "mental_health"),
                exceptions=(exc("deny", categories=("mental_health",)),),
            ),
        ),
        fact("health"),
        "permit",
        "c1",
        [COORD, PAED],
        [],
        "permitted",
    ),
    (
        "an exception carves a role out of a grant",
        (consent("c1", exceptions=(exc("deny", roles=("senco",)),)),),
        fact(),
        "permit",
        "c1",
        [COORD, PAED],
        [SENCO],
        "permitted",
    ),
    (
        "a refusal of everything except education",
        (
            consent(
                "r1", "deny", categories=(), exceptions=(exc("permit", categories=("education",)),)
            ),
        ),
        fact("education"),
        "permit",
        "r1",
        [COORD, SENCO],
        [],
        "permitted: consent r1",
    ),
    (
        "... still refuses health",
        (
            consent(
                "r1", "deny", categories=(), exceptions=(exc("permit", categories=("education",)),)
            ),
        ),
        fact("health"),
        "withhold",
        None,
        [],
        [COORD],
        "refusal r1",
    ),
    (
        "three levels: health, not for paediatricians, but yes for their assessment advice",
        (
            consent(
                "c1",
                exceptions=(
                    exc(
                        "deny",
                        exc("permit", purposes=("ehc_assessment",)),
                        roles=("paediatrician",),
                    ),
                ),
            ),
        ),
        fact(purposes=("ehc_assessment",)),
        "permit",
        "c1",
        [COORD, PAED],
        [],
        "permitted",
    ),
    (
        "three levels, other purpose",
        (
            consent(
                "c1",
                exceptions=(
                    exc(
                        "deny",
                        exc("permit", purposes=("ehc_assessment",)),
                        roles=("paediatrician",),
                    ),
                ),
            ),
        ),
        fact(purposes=("review",)),
        "permit",
        "c1",
        [COORD],
        [PAED],
        "permitted",
    ),
    (
        "an unknown category is withheld",
        (consent("c1", categories=()),),
        fact("astrology"),
        "withhold",
        None,
        [],
        [COORD],
        "data category 'astrology' is not in the sharing policy (fail closed)",
    ),
    (
        "a grant not yet in force does not cover",
        (consent("c1", start="2024-07-01"),),
        fact(),
        "withhold",
        None,
        [],
        [COORD],
        "no consent covers",
    ),
    (
        "a grant whose period is over does not cover",
        (consent("c1", end="2024-05-31"),),
        fact(),
        "withhold",
        None,
        [],
        [COORD],
        "no consent covers",
    ),
    (
        "a grant is in force on the last day of its period",
        (consent("c1", end="2024-06-01"),),
        fact(),
        "permit",
        "c1",
        [COORD],
        [],
        "permitted",
    ),
    (
        "a fact for two purposes needs only one covered",
        (consent("c1", purposes=("review",)),),
        fact(purposes=("ehc_assessment", "review")),
        "permit",
        "c1",
        [COORD],
        [],
        "covers health for ehc_assessment or review",
    ),
    (
        "a refusal of either purpose keeps it back",
        (consent("c1", purposes=("review",)), consent("r1", "deny", purposes=("ehc_assessment",))),
        fact(purposes=("ehc_assessment", "review")),
        "withhold",
        None,
        [],
        [COORD],
        "refusal r1",
    ),
    (
        "two grants: the audience is their union",
        (consent("c1", roles=("coordinator",)), consent("c2", roles=("gp",))),
        fact(),
        "permit",
        "c1",
        [COORD, GP],
        [PAED],
        "also covered by c2",
    ),
    (
        "education is not special category data",
        (consent("c1", categories=("education",)),),
        fact("education"),
        "permit",
        "c1",
        [COORD, SENCO],
        [],
        "permitted",
    ),
]


@pytest.mark.parametrize(
    ("consents", "f", "outcome", "relied_on", "allowed", "denied", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decision_table(
    consents: tuple[ConsentRecorded, ...],
    f: Fact,
    outcome: str,
    relied_on: str | None,
    allowed: list[Viewer],
    denied: list[Viewer],
    fragment: str,
) -> None:
    d = decide(f, *consents)
    assert d.outcome == outcome, d.reason
    assert d.relied_on == relied_on
    assert fragment in d.reason, d.reason
    for viewer in allowed:
        assert d.allows(*viewer), (viewer, d.reason)
        assert visible_to(d, *viewer)
    for viewer in denied:
        assert not d.allows(*viewer), (viewer, d.reason)
    if outcome == "withhold":
        assert d.art6 is None and d.art9 is None and d.confidentiality is None
        assert d.grounds == () and d.audience.allowed_roles() == ()
    else:
        assert d.art6 is not None and d.confidentiality is not None
        assert d.grounds[0].name == relied_on


def test_citations_for_a_consent_on_special_category_data() -> None:
    d = decide(fact(), consent("c1"))
    assert d.relied_on_kind == "consent"
    assert d.art6 == POLICY.categories["health"].consent_basis.art6
    assert d.art9 is not None and "9(2)(h)" in d.art9
    assert d.confidentiality is not None and d.confidentiality.startswith("consent")
    assert d.lawful_basis == "consent:c1"


def test_a_claimed_basis_that_does_not_apply_is_noted_on_a_permit_too() -> None:
    d = decide(
        fact("mental_health", basis="reg6_ehc_advice"), consent("c1", categories=("mental_health",))
    )
    assert d.outcome == "permit" and d.relied_on == "c1"
    assert d.reason.endswith("; the claimed basis reg6_ehc_advice does not cover mental_health")


def test_citations_for_a_consent_on_education_have_no_art9_condition() -> None:
    d = decide(fact("education"), consent("c1", categories=("education",)))
    assert d.art9 is None


def test_citations_for_reg6_advice() -> None:
    d = decide(fact(basis="reg6_ehc_advice"))
    assert d.relied_on_kind == "statutory_basis"
    assert d.art6 is not None and "6(1)(c)" in d.art6
    assert d.art9 is not None
    assert d.confidentiality is not None and "legal duty" in d.confidentiality
    assert d.lawful_basis == "statutory_basis:reg6_ehc_advice"
    # education advice under reg 6 is not special category data
    assert decide(fact("education", basis="reg6_ehc_advice")).art9 is None


def test_citations_for_safeguarding_over_a_refusal() -> None:
    d = decide(fact(basis="safeguarding"), consent("r1", "deny"))
    assert d.refusals == ("r1",)
    assert d.refusal_overridden_by == "safeguarding"
    assert d.art9 is not None and "para 18" in d.art9


def test_the_ground_for_each_viewer_is_named() -> None:
    d = decide(
        fact(basis="reg6_ehc_advice"),
        consent("c1", roles=("paediatrician",)),
        consent("c2", roles=("gp",)),
    )
    assert [g.name for g in d.grounds] == ["reg6_ehc_advice", "c1", "c2"]
    coord = d.ground_for(*COORD)
    paed = d.ground_for(*PAED)
    gp = d.ground_for(*GP)
    assert coord is not None and coord.name == "reg6_ehc_advice"
    assert paed is not None and paed.name == "c1" and paed.confidentiality.startswith("consent")
    assert gp is not None and gp.name == "c2"
    assert d.ground_for(*SENCO) is None


def test_decisions_are_deterministic_and_their_id_names_the_inputs() -> None:
    state = state_of(consent("c1"))
    a = decide_sharing(fact(), state, POLICY, at=AT)
    b = decide_sharing(fact(), state, POLICY, at=AT)
    assert a == b
    assert a.decision_id.version == 5
    # another time, another state version or another fact: another decision id
    assert (
        decide_sharing(fact(), state, POLICY, at=AT + timedelta(seconds=1)).decision_id
        != a.decision_id
    )
    later = state.apply(consent("c2", categories=("education",)), at=RECORDED_AT)
    assert decide_sharing(fact(), later, POLICY, at=AT).decision_id != a.decision_id
    other = fact().model_copy(update={"event_id": uuid.uuid4()})
    assert decide_sharing(other, state, POLICY, at=AT).decision_id != a.decision_id
    # the same instant in another timezone is the same decision
    from datetime import timezone

    bst = AT.astimezone(timezone(timedelta(hours=1)))
    assert decide_sharing(fact(), state, POLICY, at=bst).decision_id == a.decision_id


def test_a_decision_id_can_be_passed_in() -> None:
    given_id = uuid.uuid4()
    d = decide_sharing(fact(), state_of(), POLICY, at=AT, decision_id=given_id)
    assert d.decision_id == given_id


def test_the_decision_records_what_it_was_made_from() -> None:
    d = decide(fact(), consent("c1"))
    assert d.event_id == EVENT_ID and d.child_id == CHILD and d.category == "health"
    assert d.consent_state_version == 1
    assert d.policy_version == POLICY.policy_version and d.policy_digest == POLICY.digest
    assert d.decided_at == AT


def test_a_fact_about_another_child_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="another child"):
        decide_sharing(fact(), ConsentState("child-2"), POLICY, at=AT)


def test_consent_ref_for_the_envelope() -> None:
    d = decide(fact(), consent("c1"))
    ref = d.consent_ref()
    assert ref.decision_id == d.decision_id and ref.lawful_basis == "consent:c1"
    with pytest.raises(ValueError, match="withheld"):
        decide(fact()).consent_ref()


def test_withdrawal_hides_from_that_moment_when_re_decided() -> None:
    state = state_of(consent("c1"))
    withdrawn_at = datetime(2024, 6, 10, 15, tzinfo=UTC)
    state = state.apply(ConsentWithdrawn(consent_id="c1", recorded_by="coord-1"), at=withdrawn_at)
    before = withdrawn_at - timedelta(seconds=1)
    assert visible_now(fact(), state, POLICY, at=before, role="coordinator")
    assert not visible_now(fact(), state, POLICY, at=withdrawn_at, role="coordinator")
    d = decide_sharing(fact(), state, POLICY, at=withdrawn_at)
    assert d.outcome == "withhold" and "no consent covers" in d.reason


def test_withdrawal_leaves_reg6_advice_with_the_coordinators() -> None:
    state = state_of(consent("c1")).apply(
        ConsentWithdrawn(consent_id="c1", recorded_by="coord-1"), at=AT - timedelta(days=1)
    )
    d = decide_sharing(fact(basis="reg6_ehc_advice"), state, POLICY, at=AT)
    assert d.outcome == "permit" and d.relied_on == "reg6_ehc_advice"
    assert d.allows(*COORD) and not d.allows(*PAED)


def test_expiry_hides_like_withdrawal() -> None:
    state = state_of(consent("c1")).apply(ConsentExpired(consent_id="c1"), at=AT)
    assert not visible_now(fact(), state, POLICY, at=AT, role="coordinator")


def test_a_later_refusal_hides_what_an_earlier_grant_showed() -> None:
    state = state_of(consent("c1"))
    assert visible_now(fact(), state, POLICY, at=AT, role="coordinator")
    state = state.apply(consent("r1", "deny"), at=AT)
    assert not visible_now(fact(), state, POLICY, at=AT, role="coordinator")


def test_a_past_decision_can_be_replayed_from_the_state_version_it_names() -> None:
    state = state_of(consent("c1"))
    original = decide_sharing(fact(), state, POLICY, at=AT)
    state = state.apply(ConsentWithdrawn(consent_id="c1", recorded_by="coord-1"), at=AT)
    replayed = decide_sharing(
        fact(), state.at_version(original.consent_state_version), POLICY, at=AT
    )
    assert replayed == original


def test_fact_of_envelope() -> None:
    env = Envelope.wrap(
        SenStatusRecorded(sen_provision="E", start_date=date(2024, 1, 1)),
        child_id=CHILD,
        source=Source(agency="education", organisation_code="123456"),
        occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
        sharing=Sharing.of(["ehc_assessment"], "reg6_ehc_advice"),
    )
    f = Fact.of(env)
    assert f.event_id == env.event_id and f.category == "education"
    assert f.source_agency == "education" and f.source_organisation == "123456"
    assert decide_sharing(f, state_of(), POLICY, at=AT).relied_on == "reg6_ehc_advice"


# --------------------------------------------------------------------------- properties
#
# An independent, recursive reading of the same rules is the oracle: a provision applies
# to (fact, viewer) if every non-empty axis matches and its ancestors apply; the deepest
# applying provision decides; a permit never reaches a named-only category it (or an
# ancestor) does not name.

CATS = ["health", "education", "mental_health", "sexual_health", "safeguarding", "social_care"]
PURPOSES: list[Purpose] = ["ehc_assessment", "plan_delivery", "review", "direct_care"]
ROLES = ["coordinator", "paediatrician", "senco", "safeguarding_lead", "gp", "ig_auditor"]
AGENCIES = ["health", "education"]
ORGS = ["RR8", "X1"]
VIEW_ROLES = [*ROLES, "admin", "school_nurse", "social_worker"]
BASES = [None, None, "reg6_ehc_advice", "safeguarding", "bogus"]


def _subset(universe: Sequence[str], parent: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    pool = list(parent) or universe
    return st.lists(st.sampled_from(pool), unique=True, max_size=len(pool)).map(tuple)


@st.composite
def scopes(
    draw: st.DrawFn, parent: dict[str, tuple[str, ...]] | None = None
) -> dict[str, tuple[str, ...]]:
    parent = parent or {
        k: () for k in ("categories", "purposes", "roles", "agencies", "organisations")
    }
    return {
        "categories": draw(_subset(CATS, parent["categories"])),
        "purposes": draw(_subset(PURPOSES, parent["purposes"])),
        "roles": draw(_subset(ROLES, parent["roles"])),
        "agencies": draw(_subset(AGENCIES, parent["agencies"])),
        "organisations": draw(_subset(ORGS, parent["organisations"])),
    }


@st.composite
def exceptions(
    draw: st.DrawFn, parent_decision: str, parent_scope: dict[str, tuple[str, ...]], depth: int
) -> list[dict[str, Any]]:
    if depth >= 3:
        return []
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=2 if depth == 0 else 1))):
        decision = "deny" if parent_decision == "permit" else "permit"
        scope = draw(scopes(parent_scope))
        nested = draw(
            exceptions(decision, {k: v or parent_scope[k] for k, v in scope.items()}, depth + 1)
        )
        out.append({"decision": decision, "scope": scope, "exceptions": nested})
    return out


@st.composite
def consents(draw: st.DrawFn, cid: str) -> ConsentRecorded:
    decision = draw(st.sampled_from(["permit", "permit", "deny"]))
    scope = draw(scopes())
    start = date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 200)))
    length = draw(st.one_of(st.none(), st.integers(0, 200)))
    return ConsentRecorded.model_validate(
        {
            "consent_id": cid,
            "decision": decision,
            "grantor": {"reference": "g-1", "capacity": "parent_with_pr"},
            "given_on": start,
            "scope": scope,
            "period": {
                "start": start,
                "end": None if length is None else start + timedelta(days=length),
            },
            "capture_method": "form",
            "recorded_by": "coord-1",
            "exceptions": draw(exceptions(decision, scope, 0)),
        }
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[ConsentState, list[tuple[Any, datetime]]]:
    """A random consent history: grants/refusals, some withdrawn or expired later."""
    n = draw(st.integers(min_value=0, max_value=4))
    events: list[tuple[Any, datetime]] = []
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(n):
        c = draw(consents(f"c{i}"))
        events.append((c, base + timedelta(days=draw(st.integers(0, 300)))))
        if draw(st.booleans()):
            end_cls = draw(st.sampled_from([ConsentWithdrawn, ConsentExpired]))
            payload = (
                ConsentWithdrawn(consent_id=c.consent_id, recorded_by="coord-1")
                if end_cls is ConsentWithdrawn
                else ConsentExpired(consent_id=c.consent_id)
            )
            events.append((payload, base + timedelta(days=draw(st.integers(0, 400)))))
    state = ConsentState(CHILD)
    for payload, at in events:
        state = state.apply(payload, at=at)
    return state, events


facts = st.builds(
    lambda cat, purposes, basis: fact(cat, tuple(purposes), basis),
    st.sampled_from([*CATS, "family_views", "identity", "astrology"]),
    st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True),
    st.sampled_from(BASES),
)
viewers = st.tuples(
    st.sampled_from(VIEW_ROLES),
    st.sampled_from([None, *AGENCIES, "social_care"]),
    st.sampled_from([None, *ORGS, "Z9"]),
)
times = st.integers(min_value=0, max_value=450).map(
    lambda d: datetime(2024, 1, 1, 12, tzinfo=UTC) + timedelta(days=d)
)


def _evaluate(
    node: dict[str, Any] | ConsentRecorded,
    category: str,
    purpose: str,
    viewer: Viewer,
    named: bool,
    named_only: bool,
) -> str | None:
    if isinstance(node, ConsentRecorded):
        decision, scope, children = (
            node.decision,
            node.scope.model_dump(),
            [e.model_dump() for e in node.exceptions],
        )
    else:
        decision, scope, children = node["decision"], node["scope"], node["exceptions"]
    role, agency, org = viewer
    if scope["categories"]:
        if category not in scope["categories"]:
            return None
        named = True
    if scope["purposes"] and purpose not in scope["purposes"]:
        return None
    if scope["roles"] and role not in scope["roles"]:
        return None
    if scope["agencies"] and agency not in scope["agencies"]:
        return None
    if scope["organisations"] and org not in scope["organisations"]:
        return None
    if decision == "permit" and named_only and not named:
        return None
    result: str | None = decision
    for child in children:
        inner = _evaluate(child, category, purpose, viewer, named, named_only)
        if inner is not None:
            result = inner
    return result


def oracle(
    f: Fact, state: ConsentState, policy: SharingPolicy, at: datetime, viewer: Viewer
) -> bool:
    cat = policy.categories.get(f.category)
    if cat is None or viewer[0] not in cat.visible_to:
        return False
    basis = policy.statutory_bases.get(f.basis_claimed or "")
    applies = (
        basis is not None
        and f.category in basis.categories
        and bool(set(f.purposes) & set(basis.purposes))
    )
    in_basis_audience = (
        basis is not None
        and viewer[0] in basis.audience.roles
        and (not basis.audience.agencies or viewer[1] in basis.audience.agencies)
    )
    if applies and basis is not None and basis.overrides_refusal:
        return in_basis_audience
    effects = [
        (r.decision, _evaluate(r.consent, f.category, p, viewer, False, cat.named_consent_only))
        for r in state.effective(at)
        for p in f.purposes
    ]
    refused = any(root == "deny" and eff == "deny" for root, eff in effects)
    granted = any(eff == "permit" for _, eff in effects) or (applies and in_basis_audience)
    return granted and not refused


@settings(max_examples=300, deadline=None)
@given(histories(), facts, times, st.lists(viewers, min_size=1, max_size=6))
def test_visibility_matches_an_independent_reading_of_the_rules(
    history: tuple[ConsentState, list[Any]], f: Fact, at: datetime, viewer_list: list[Viewer]
) -> None:
    state, _ = history
    d = decide_sharing(f, state, POLICY, at=at)
    for viewer in viewer_list:
        assert d.allows(*viewer) == oracle(f, state, POLICY, at, viewer), (viewer, d.reason)
    # and over every role the decision claims someone may see it in
    for role in d.audience.allowed_roles():
        assert any(
            oracle(f, state, POLICY, at, (role, a, o))
            for a in [None, *AGENCIES, "social_care"]
            for o in [None, *ORGS]
        )


@settings(max_examples=100, deadline=None)
@given(histories(), facts, times)
def test_decisions_are_deterministic(
    history: tuple[ConsentState, list[Any]], f: Fact, at: datetime
) -> None:
    state, events = history
    rebuilt = ConsentState(CHILD)
    for payload, when in events:
        rebuilt = rebuilt.apply(payload, at=when)
    assert decide_sharing(f, state, POLICY, at=at) == decide_sharing(f, rebuilt, POLICY, at=at)


@settings(max_examples=200, deadline=None)
@given(histories(), facts, times)
def test_no_permit_without_a_covering_consent_or_basis(
    history: tuple[ConsentState, list[Any]], f: Fact, at: datetime
) -> None:
    state, _ = history
    d = decide_sharing(f, state, POLICY, at=at)
    if d.outcome == "withhold":
        assert d.relied_on is None and d.audience.allowed_roles() == ()
        return
    assert d.relied_on is not None and d.grounds
    cat = POLICY.categories[f.category]
    for ground in d.grounds:
        if ground.kind == "statutory_basis":
            assert ground.name == f.basis_claimed
            basis = POLICY.statutory_bases[ground.name]
            assert f.category in basis.categories
        else:
            record = state.record(ground.name)
            assert record is not None and record.effective_at(at)
            assert any(
                _evaluate(
                    record.consent, f.category, p, (role, a, o), False, cat.named_consent_only
                )
                == "permit"
                for p in f.purposes
                for role in cat.visible_to
                for a in [None, *AGENCIES]
                for o in [None, *ORGS]
            )
    assert set(d.audience.allowed_roles()) <= set(cat.visible_to)
    assert (d.art9 is None) is (not cat.special)


@settings(max_examples=150, deadline=None)
@given(histories(), facts, times, st.sampled_from(PURPOSES))
def test_a_refusal_is_never_overridden_except_by_safeguarding(
    history: tuple[ConsentState, list[Any]], f: Fact, at: datetime, purpose: str
) -> None:
    state, _ = history
    refusal = consent(
        "r-blanket",
        "deny",
        categories=(f.category,) if f.category in CATS else (),
        purposes=(purpose,),
    )
    state = state.apply(refusal, at=RECORDED_AT)
    f = f.model_copy(update={"purposes": (purpose, *[p for p in f.purposes if p != purpose])})
    d = decide_sharing(f, state, POLICY, at=at)
    if d.outcome == "permit":
        assert f.basis_claimed == "safeguarding"
        assert d.relied_on == "safeguarding"
        assert d.refusal_overridden_by == "safeguarding"
        assert set(d.audience.allowed_roles()) <= {"coordinator", "safeguarding_lead"}


@settings(max_examples=300, deadline=None)
@given(
    scopes(),
    st.sampled_from(CATS),
    st.sampled_from(PURPOSES),
    st.integers(min_value=0, max_value=5),
)
def test_withdrawing_the_covering_consent_flips_permit_to_withhold(
    scope: dict[str, tuple[str, ...]], category: str, purpose: Purpose, minutes: int
) -> None:
    cat = POLICY.categories[category]
    scope = {
        **scope,
        "categories": tuple(dict.fromkeys((*scope["categories"], category)))
        if scope["categories"] or cat.named_consent_only
        else (),
        "purposes": tuple(dict.fromkeys((*scope["purposes"], purpose)))
        if scope["purposes"]
        else (),
    }
    assume(not scope["roles"] or set(scope["roles"]) & set(cat.visible_to))
    c = consent("c1", **cast(dict[str, Any], scope))
    state = state_of(c)
    f = fact(category, (purpose,))
    d = decide_sharing(f, state, POLICY, at=AT)
    assert d.outcome == "permit", d.reason
    withdrawn_at = AT - timedelta(minutes=minutes)
    state = state.apply(ConsentWithdrawn(consent_id="c1", recorded_by="coord-1"), at=withdrawn_at)
    after = decide_sharing(f, state, POLICY, at=AT)
    assert after.outcome == "withhold"
    assert not any(after.allows(role) for role in VIEW_ROLES)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(histories(), min_size=1, max_size=4), st.lists(facts, min_size=1, max_size=8), times
)
def test_a_batch_memo_gives_exactly_the_decisions_decide_sharing_gives(
    histories_: list[tuple[ConsentState, list[Any]]], fs: list[Fact], at: datetime
) -> None:
    """Several children (histories that may say the same or differ), several facts each,
    each fact with its own id: the memo's decision equals a fresh `decide_sharing`."""
    memo = DecisionMemo(POLICY, at)
    for n, (history, _) in enumerate(histories_):
        state = _as_child(history, f"child-{n}", rename=n % 2 == 1)
        for i, f in enumerate(fs):
            own = f.model_copy(
                update={"child_id": state.child_id, "event_id": uuid.UUID(int=n * 100 + i + 1)}
            )
            assert memo.decide(own, state) == decide_sharing(own, state, POLICY, at=at)


def _as_child(state: ConsentState, child_id: str, *, rename: bool) -> ConsentState:
    """The same consent history, folded for another child (`rename`: under other consent
    ids, which a decision's reason and grounds name)."""
    out = ConsentState(child_id)
    for event in state.events:
        payload = event.payload
        if rename:
            payload = payload.model_copy(update={"consent_id": f"{payload.consent_id}-b"})
        out = out.apply(payload, at=event.at)
    return out
