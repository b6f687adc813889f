"""What a sender may claim (`hub.consent.senders.judge_claims`) against the shipped policy,
and the policy's checks of its `senders`, `may_be_sent_as` and `event_types_sent_as`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.consent.policy import PolicyError, SharingPolicy, load_policy, parse_policy
from hub.consent.senders import (
    BASIS_RULE,
    CATEGORY_RULE,
    ORGANISATION_RULE,
    Sender,
    judge_claims,
)

POLICY_FILE = Path(__file__).resolve().parents[2] / "contracts" / "consent-policy.yaml"
SCHOOL = Sender("oak-school", "education", frozenset({"8881234"}))
TRUST = Sender("city-health", "health", frozenset({"RR8"}))
CSC = Sender("county-sc", "social_care", frozenset({"801"}))
LEGACY = Sender("old-school", None, taken_elsewhere=frozenset({"RR8"}))


@pytest.fixture(scope="module")
def policy() -> SharingPolicy:
    return load_policy(POLICY_FILE)


def judge(policy: SharingPolicy, sender: Sender, **claims: Any) -> str | None:
    args: dict[str, Any] = {
        "event_type": "health.condition_recorded", "type_category": "health",
        "category": None, "statutory_basis": None, "organisation_code": None,
    } | claims  # fmt: skip
    refusal = judge_claims(policy, sender, **args)
    return None if refusal is None else refusal.rule


def test_a_fact_keeps_its_types_category_or_a_stricter_one_the_policy_lists(
    policy: SharingPolicy,
) -> None:
    assert judge(policy, TRUST) is None
    assert judge(policy, TRUST, category="health") is None
    assert judge(policy, TRUST, category="mental_health") is None
    assert judge(policy, TRUST, category="education") == CATEGORY_RULE
    assert judge(policy, TRUST, category="family_views") == CATEGORY_RULE
    # plan and team events carry the section they are about
    plan = {"event_type": "plan.provision_agreed", "type_category": "education"}
    assert judge(policy, SCHOOL, **plan, category="health") is None
    # a school's own record of disabilities is education data (event_types_sent_as)
    disability = {"event_type": "social_care.disability_recorded", "type_category": "social_care"}
    assert judge(policy, SCHOOL, **disability, category="education") is None
    other = {"event_type": "social_care.child_identified", "type_category": "social_care"}
    assert judge(policy, SCHOOL, **other, category="education") == CATEGORY_RULE


@pytest.mark.parametrize(
    ("sender", "basis", "rule"),
    [
        (SCHOOL, "reg6_ehc_advice", None),
        (SCHOOL, "safeguarding", BASIS_RULE),
        (TRUST, "safeguarding", BASIS_RULE),
        (CSC, "safeguarding", None),
        (SCHOOL, "ehc_statutory_record", BASIS_RULE),
        (Sender("la", "local_authority"), "ehc_statutory_record", None),
        (LEGACY, "reg6_ehc_advice", BASIS_RULE),
        (CSC, "no_such_basis", BASIS_RULE),
    ],
)
def test_a_basis_is_claimed_only_by_a_sender_kind_that_may(
    policy: SharingPolicy, sender: Sender, basis: str, rule: str | None
) -> None:
    assert judge(policy, sender, statutory_basis=basis) == rule


def test_organisation_codes_come_from_the_credential(policy: SharingPolicy) -> None:
    assert judge(policy, SCHOOL, organisation_code="8881234") is None
    assert judge(policy, SCHOOL, organisation_code="RR8") == ORGANISATION_RULE
    assert judge(policy, LEGACY, organisation_code="RR8") == ORGANISATION_RULE
    assert judge(policy, LEGACY, organisation_code="100001") is None  # bound to nobody
    assert judge(policy, LEGACY) is None


def _data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    return copy.deepcopy(loaded)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["senders"]["education"].update(statutory_bases=["nope"]),
         "senders.education.statutory_bases[0]"),
        (lambda d: d["categories"]["health"].update(may_be_sent_as=["nope"]),
         "categories.health.may_be_sent_as[0]"),
        (lambda d: d["categories"]["health"].update(may_be_sent_as=["health"]),
         "categories.health.may_be_sent_as[0]"),
        (lambda d: d["event_types_sent_as"].update({"x.y": ["nope"]}),
         "event_types_sent_as.x.y[0]"),
    ],
)  # fmt: skip
def test_the_policy_refuses_undefined_references_in_what_senders_may_claim(
    change: Any, path: str
) -> None:
    data = _data()
    change(data)
    with pytest.raises(PolicyError) as exc:
        parse_policy(data)
    assert exc.value.path == path


def test_facts_the_hubs_own_routes_record_are_sent_as_the_local_authority(
    policy: SharingPolicy,
) -> None:
    from hub.service_layer.la_records import HUB_SOURCE, LA_SENDER

    assert LA_SENDER.agency == HUB_SOURCE.agency and LA_SENDER.kind in policy.senders
    assert judge(policy, LA_SENDER, statutory_basis="ehc_statutory_record") is None
    assert judge(policy, LA_SENDER, statutory_basis="safeguarding") == BASIS_RULE


def test_no_entry_point_submits_facts_past_the_senders_check() -> None:
    """Routes, pages, the CLI and the Kafka consumer reach the gate only through
    `handlers.submit_as_sender`; `submit_facts` is for the service layer's own handlers."""
    hub_dir = POLICY_FILE.parents[1] / "hub"
    bypassing = sorted(
        str(path.relative_to(hub_dir))
        for path in hub_dir.rglob("*.py")
        if "handlers.submit_facts(" in path.read_text(encoding="utf-8")
    )
    assert bypassing == [], f"these call handlers.submit_facts directly: {bypassing}"
