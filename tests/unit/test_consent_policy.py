"""The sharing policy file: the shipped one is valid and says what DOMAIN.md says; a
malformed one stops start-up with an error naming the key path and the reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.consent.policy import (
    REQUIRED_CATEGORIES,
    PolicyError,
    SharingPolicy,
    add_years,
    default_policy_path,
    load_policy,
    parse_policy,
)
from hub.errors import PermanentError
from hub.events.consent import ConsentRecorded

POLICY_FILE = Path(__file__).resolve().parents[2] / "contracts" / "consent-policy.yaml"


@pytest.fixture(scope="module")
def policy() -> SharingPolicy:
    return load_policy(POLICY_FILE)


@pytest.fixture
def raw() -> dict[str, Any]:
    data = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_default_path_is_the_repository_contract_shipped_in_the_package() -> None:
    assert default_policy_path().parent.name == "_contracts"
    assert default_policy_path().read_bytes() == POLICY_FILE.read_bytes()
    assert load_policy() == load_policy(POLICY_FILE)


def test_the_consent_policy_setting_names_another_policy_from_env_or_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hub.settings import Settings

    other = tmp_path / "other.yaml"
    other.write_text(POLICY_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.delenv("HUB_CONSENT_POLICY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings().consent_policy is None
    (tmp_path / ".env").write_text(f"HUB_CONSENT_POLICY={other}\n", encoding="utf-8")
    assert Settings().consent_policy == other
    assert load_policy(Settings().consent_policy).digest == load_policy(POLICY_FILE).digest
    monkeypatch.setenv("HUB_CONSENT_POLICY", str(tmp_path / "env.yaml"))
    assert Settings().consent_policy == tmp_path / "env.yaml"


def test_the_shipped_policy_declares_every_required_category(policy: SharingPolicy) -> None:
    assert set(REQUIRED_CATEGORIES) <= set(policy.categories)
    assert {"agency", "coordinator", "ig_auditor", "admin"} <= set(policy.roles)


@pytest.mark.parametrize(
    ("category", "sensitivity", "special"),
    [
        ("education", "standard", False),
        ("identity", "standard", False),
        ("family_views", "standard", False),
        ("health", "special", True),
        ("social_care", "special", True),
        ("safeguarding", "highly_sensitive", True),
        ("mental_health", "highly_sensitive", True),
        ("sexual_health", "highly_sensitive", True),
    ],
)
def test_category_sensitivity_and_art9(
    policy: SharingPolicy, category: str, sensitivity: str, special: bool
) -> None:
    cat = policy.categories[category]
    assert cat.sensitivity == sensitivity
    assert cat.special is special
    assert (cat.consent_basis.art9 is not None) is special
    assert cat.consent_basis.art6.startswith("UK GDPR Art. 6")
    # highly sensitive categories are covered only by a consent that names them
    assert cat.named_consent_only is (sensitivity == "highly_sensitive")


def test_no_category_is_ever_visible_to_auditors_admins_or_agency_systems(
    policy: SharingPolicy,
) -> None:
    for cat in policy.categories.values():
        assert not {"ig_auditor", "admin", "agency"} & set(cat.visible_to)


def test_the_statutory_bases_say_what_domain_md_says(policy: SharingPolicy) -> None:
    reg6 = policy.statutory_bases["reg6_ehc_advice"]
    assert set(reg6.categories) == {"education", "health", "social_care"}
    assert reg6.purposes == ("ehc_assessment",)
    assert reg6.audience.roles == ("coordinator",)
    assert "6(1)(e)" in reg6.art6 and "6(1)(c)" in reg6.art6
    assert reg6.art9 is not None and "9(2)(h)" in reg6.art9
    assert "legal duty" in reg6.confidentiality
    assert reg6.overrides_refusal is False

    safeguarding = policy.statutory_bases["safeguarding"]
    assert safeguarding.overrides_refusal is True
    assert set(safeguarding.audience.roles) == {"coordinator", "safeguarding_lead"}
    assert safeguarding.art9 is not None and "para 18" in safeguarding.art9
    assert set(safeguarding.categories) == set(REQUIRED_CATEGORIES)


@pytest.mark.parametrize(
    ("category", "dob", "last_event", "expected"),
    [
        ("education", date(2010, 5, 4), None, date(2035, 5, 4)),
        ("health", date(2010, 5, 4), date(2020, 1, 1), date(2035, 5, 4)),
        # mental health: 20 years after the last contact when that is later
        ("mental_health", date(2010, 5, 4), date(2024, 1, 1), date(2044, 1, 1)),
        ("mental_health", date(2010, 5, 4), date(2012, 1, 1), date(2035, 5, 4)),
        ("safeguarding", date(2010, 5, 4), date(2031, 6, 1), date(2037, 6, 1)),
        # no rule of its own: the default
        ("family_views", date(2010, 5, 4), None, date(2035, 5, 4)),
        ("no_such_category", date(2010, 5, 4), None, date(2035, 5, 4)),
        # 29 February moves to 1 March in a common year
        ("education", date(2008, 2, 29), None, date(2033, 3, 1)),
    ],
)
def test_retention_rules(
    policy: SharingPolicy, category: str, dob: date, last_event: date | None, expected: date
) -> None:
    rule = policy.retention_for(category)
    assert rule.keep_until(date_of_birth=dob, last_event_on=last_event) == expected


def test_add_years_handles_leap_days() -> None:
    assert add_years(date(2008, 2, 29), 4) == date(2012, 2, 29)
    assert add_years(date(2008, 2, 29), 1) == date(2009, 3, 1)


def test_the_digest_names_the_policy_content(policy: SharingPolicy, raw: dict[str, Any]) -> None:
    assert len(policy.digest) == 64
    assert parse_policy(copy.deepcopy(raw)).digest == policy.digest
    raw["policy_version"] = 2
    assert parse_policy(raw).digest != policy.digest


# --------------------------------------------------------------------------- malformed


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = data
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "bad sensitivity",
        _set("categories/health/sensitivity", "secret"),
        "categories.health.sensitivity",
        "must be one of 'standard', 'special' or 'highly_sensitive'",
    ),
    (
        "unknown key",
        _set("categories/health/colour", "red"),
        "categories.health.colour",
        "unknown key",
    ),
    (
        "missing key",
        _delete("categories/health/visible_to"),
        "categories.health.visible_to",
        "required key is missing",
    ),
    (
        "undefined role",
        _set("categories/health/visible_to", ["coordinator", "wizard"]),
        "categories.health.visible_to[1]",
        "undefined role 'wizard'",
    ),
    (
        "missing required category",
        _delete("categories/sexual_health"),
        "categories",
        "missing required category 'sexual_health'",
    ),
    (
        "basis names an undefined category",
        _set("statutory_bases/reg6_ehc_advice/categories", ["education", "astrology"]),
        "statutory_bases.reg6_ehc_advice.categories[1]",
        "undefined category 'astrology'",
    ),
    (
        "basis names an undefined role",
        _set("statutory_bases/safeguarding/audience/roles", ["coordinator", "nobody_role"]),
        "statutory_bases.safeguarding.audience.roles[1]",
        "undefined role 'nobody_role'",
    ),
    (
        "basis audience can never see a category",
        _set("statutory_bases/reg6_ehc_advice/audience/roles", ["ig_auditor"]),
        "statutory_bases.reg6_ehc_advice.audience.roles",
        "no role of its audience may ever see category 'education'",
    ),
    (
        "basis purpose unknown",
        _set("statutory_bases/reg6_ehc_advice/purposes", ["marketing"]),
        "statutory_bases.reg6_ehc_advice.purposes[0]",
        "must be one of",
    ),
    (
        "special category without art9",
        _set("categories/health/consent_basis/art9", None),
        "categories.health.consent_basis.art9",
        "a special category needs an Art. 9 condition",
    ),
    (
        "standard category with art9",
        _set("categories/education/consent_basis/art9", "Art. 9(2)(h)"),
        "categories.education.consent_basis.art9",
        "art9 must be null",
    ),
    (
        "basis over special data without art9",
        _set("statutory_bases/reg6_ehc_advice/art9", None),
        "statutory_bases.reg6_ehc_advice.art9",
        "covers special category 'health'",
    ),
    (
        "role code not lower case",
        _set("categories/health/visible_to", ["Coordinator"]),
        "categories.health.visible_to[0]",
        "lower-case code",
    ),
    (
        "retention years not positive",
        _set("categories/health/retention/years", 0),
        "categories.health.retention.years",
        "greater than or equal to 1",
    ),
    (
        "retention anchor unknown",
        _set("categories/health/retention/anchor", "moon_phase"),
        "categories.health.retention.anchor",
        "must be one of",
    ),
    (
        "fhir class code maps to an undefined category",
        lambda d: d["fhir"]["class_codes"]["http://hl7.org/fhir/resource-types"].update(
            Condition="dentistry"
        ),
        "fhir.class_codes.http://hl7.org/fhir/resource-types.Condition",
        "undefined category 'dentistry'",
    ),
    (
        "fhir system not a uri",
        _set("fhir/systems/data_category", "not a uri"),
        "fhir.systems.data_category",
        "",
    ),
    (
        "empty visible_to",
        _set("categories/identity/visible_to", []),
        "categories.identity.visible_to",
        "at least 1",
    ),
    (
        "duplicate role in visible_to",
        _set("categories/identity/visible_to", ["coordinator", "coordinator"]),
        "categories.identity.visible_to",
        "listed twice",
    ),
    (
        "policy_version missing",
        _delete("policy_version"),
        "policy_version",
        "required key is missing",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [pytest.param(m, p, r, id=name) for name, m, p, r in MALFORMED],
)
def test_a_malformed_policy_names_the_key_path_and_reason(
    raw: dict[str, Any],
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None],
    path: str,
    reason: str,
) -> None:
    mutate(raw)
    file = tmp_path / "policy.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(file)
    assert err.value.path == path
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{path}: ")


def test_a_duplicated_key_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    text = POLICY_FILE.read_text(encoding="utf-8")
    text = text.replace("  identity:\n", "  health:\n    description: x\n  identity:\n", 1)
    file = tmp_path / "dup.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"duplicate key 'health' \(line \d+, column \d+\)"):
        load_policy(file)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("categories: [unclosed", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping at the top level"),
        ("", "must be a mapping at the top level"),
        ("!!python/object:os.system {}", "not valid YAML"),
    ],
)
def test_unparseable_policies_are_rejected(tmp_path: Path, content: str, fragment: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError, match=fragment):
        load_policy(file)


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yaml")


def _consent(scope: dict[str, Any], exceptions: list[Any] | None = None) -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": "c-1",
            "decision": "permit",
            "grantor": {"reference": "p-1", "capacity": "parent_with_pr"},
            "given_on": "2024-01-01",
            "scope": scope,
            "period": {"start": "2024-01-01"},
            "capture_method": "form",
            "recorded_by": "coord-1",
            "exceptions": exceptions or [],
        }
    )


def test_check_consent_accepts_codes_the_policy_defines(policy: SharingPolicy) -> None:
    policy.check_consent(_consent({"categories": ["health"], "roles": ["coordinator"]}))


@pytest.mark.parametrize(
    ("scope", "exceptions", "field"),
    [
        ({"categories": ["health", "astrology"]}, None, "scope.categories[1]"),
        ({"roles": ["wizard"]}, None, "scope.roles[0]"),
        (
            {"categories": ["health"]},
            [{"decision": "deny", "scope": {"roles": ["wizard"]}}],
            "exceptions[0].scope.roles[0]",
        ),
    ],
)
def test_check_consent_names_an_unknown_code(
    policy: SharingPolicy, scope: dict[str, Any], exceptions: list[Any] | None, field: str
) -> None:
    with pytest.raises(PermanentError) as err:
        policy.check_consent(_consent(scope, exceptions))
    assert err.value.field == field
