"""Practitioner and family principals, the policy's family access, and the viewer that
judges a family member by it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from hub.auth import Principal, Role
from hub.consent.policy import PolicyError, default_policy_path, load_policy, parse_policy
from hub.consent.state import ConsentState
from hub.consent.viewer import Viewer

POLICY = load_policy()


def test_a_practitioner_is_judged_in_their_policy_role_and_a_family_member_by_capacity() -> None:
    p = Principal("Dr Shah", Role.PRACTITIONER, "health", practitioner_id="gmc:1", policy_role="gp")
    assert p.viewer_role == "gp" and p.actor == "practitioner:Dr Shah"
    parent = Principal("family:ab", Role.FAMILY, children=("hc-1",), capacity="parent_with_pr")
    assert parent.viewer_role == "parent"
    assert Principal("casey", Role.COORDINATOR).viewer_role == "coordinator"
    with pytest.raises(ValueError, match="needs practitioner_id, policy_role, agency"):
        Principal("x", Role.PRACTITIONER)
    with pytest.raises(ValueError, match="needs a child id and a capacity"):
        Principal("x", Role.FAMILY, children=("hc-1",))


def _policy_with(family_access: str) -> None:
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    data["family_access"] = yaml.safe_load(family_access)
    parse_policy(data)


def test_family_access_may_never_name_safeguarding_or_an_unknown_category() -> None:
    with pytest.raises(
        PolicyError, match=r"family_access\.parent\[1\]: category .safeguarding. is never shown"
    ):
        _policy_with("{legislation: x, parent: [education, safeguarding]}")
    with pytest.raises(PolicyError, match=r"undefined category 'gossip'"):
        _policy_with("{legislation: x, young_person: [gossip]}")


def test_a_parent_sees_by_category_whatever_the_consents_say() -> None:
    now = datetime.now(UTC)
    viewer = Viewer(POLICY, {}, role="parent", agency=None, now=now, family_role="parent")
    viewer.add({"hc-1": ConsentState("hc-1")})  # no consent at all
    key = ("education", "school", None, "ehc_assessment", None)
    assert viewer.sees_key("hc-1", key)
    assert not viewer.sees_key("hc-1", ("safeguarding", "la", None, "direct_care", "safeguarding"))
    assert not viewer.sees_key("hc-1", ("sexual_health", "nhs", None, "direct_care", None))
    young = Viewer(
        POLICY, {}, role="young_person", agency=None, now=now, family_role="young_person"
    )
    young.add({"hc-1": ConsentState("hc-1")})
    assert young.sees_key("hc-1", ("sexual_health", "nhs", None, "direct_care", None))
    # a coordinator with no consent in force sees no education fact
    coordinator = Viewer(POLICY, {}, role="coordinator", agency=None, now=now)
    coordinator.add({"hc-1": ConsentState("hc-1")})
    assert not coordinator.sees_key("hc-1", key)
