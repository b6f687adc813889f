"""The few words a list row says about a child's consent (`summarise_consent`): what is
in force now, or how the last record stopped, naming only categories the viewer may see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.consent.state import ConsentState, summarise_consent
from hub.events.consent import ConsentExpired, ConsentRecorded, ConsentWithdrawn

CHILD = "child-1"
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
EARLIER = datetime(2024, 3, 1, 12, tzinfo=UTC)


def recorded(cid: str, decision: str = "permit", **scope: Any) -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": cid,
            "decision": decision,
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-03-01",
            "scope": scope,
            "period": {"start": "2024-03-01"},
            "capture_method": "form",
            "recorded_by": "coord-1",
        }
    )


def state(*payloads: Any) -> ConsentState:
    s = ConsentState(CHILD)
    for p in payloads:
        s = s.apply(p, at=EARLIER)
    return s


def test_no_record_says_no_consent_recorded() -> None:
    assert summarise_consent(ConsentState(CHILD), NOW) == "no consent recorded"


def test_a_grant_of_any_data_says_consent_given_and_a_scoped_one_names_its_categories() -> None:
    assert summarise_consent(state(recorded("c-1")), NOW) == "consent given"
    scoped = state(recorded("c-1", categories=["education", "health"]))
    assert summarise_consent(scoped, NOW) == "consent given for education, health"


def test_grants_and_refusals_in_force_are_both_said() -> None:
    both = state(
        recorded("c-1", categories=["education"]),
        recorded("c-2", "deny", categories=["social_care"]),
    )
    assert summarise_consent(both, NOW) == "consent given for education; refused for social care"
    assert summarise_consent(state(recorded("c-3", "deny")), NOW) == "refused"


def test_nothing_in_force_says_how_the_last_record_stopped() -> None:
    withdrawn = state(recorded("c-1")).apply(
        ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"), at=EARLIER
    )
    assert summarise_consent(withdrawn, NOW) == "withdrawn"
    expired = state(recorded("c-1")).apply(ConsentExpired(consent_id="c-1"), at=EARLIER)
    assert summarise_consent(expired, NOW) == "expired"
    assert summarise_consent(state(recorded("c-1")), EARLIER.replace(month=2)) == (
        "not yet in force"
    )


def test_only_categories_the_viewer_may_see_are_named() -> None:
    s = state(
        recorded("c-1", categories=["education", "sexual_health"]),
        recorded("c-2", "deny", categories=["sexual_health"]),
    )
    assert summarise_consent(s, NOW, may_see=lambda c: c != "sexual_health") == (
        "consent given for education"
    )
    assert summarise_consent(s, NOW) == (
        "consent given for education, sexual health; refused for sexual health"
    )
    hidden = state(recorded("c-2", "deny", categories=["sexual_health"]))
    assert summarise_consent(hidden, NOW, may_see=lambda c: False) == "no consent recorded"
