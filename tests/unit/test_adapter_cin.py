"""The CIN census adapter: each published sample yields the facts it must, every fact not
taken is explained by a catalogue rule (code and message) or a `hub.` rule, the catalogue
is fully accounted for in contracts/inbound/cin-rules.md, bad or unsafe files are refused
whole, and no input crashes it. Personal values from the samples are never written here."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.adapters.cin import RULES, parse_cin
from hub.errors import PermanentError
from hub.events.safeguarding import ChildProtectionPlanRecorded, Section47Recorded
from hub.events.social_care import (
    AssessmentRecorded,
    ChildIdentified,
    CinEpisodeRecorded,
    CinPlanRecorded,
    DisabilityRecorded,
)
from hub.ingest.model import AdapterResult

NOW = datetime(2025, 1, 1, tzinfo=UTC)
RULES_MD = Path(__file__).resolve().parents[2] / "contracts" / "inbound" / "cin-rules.md"


def counts(result: AdapterResult) -> dict[str, int]:
    return dict(Counter(type(f.payload).event_type for f in result.facts))


def rules(result: AdapterResult) -> Counter[tuple[str, str | None]]:
    return Counter((n.rule or "", n.field) for n in result.not_taken)


HEADER_NOT_READ = {("hub.not_read", tag): 1 for tag in ("SourceLevel", "Release", "SerialNo")}
"""The header elements each published sample carries that are not facts about a child."""


def explained(result: AdapterResult) -> None:
    for n in result.not_taken:
        assert n.ref and n.reason and n.rule, n.ref
        assert n.field or n.rule == "hub.payload", n.ref  # a whole-fact invariant names no field
        if n.rule in RULES:
            assert n.reason == RULES[n.rule]
        else:
            assert n.rule.startswith("hub."), n.rule


def by_ref(result: AdapterResult) -> dict[str, object]:
    return {f.ref: f.payload for f in result.facts}


# --- the rule catalogue ------------------------------------------------------------------


def catalogue(samples_dir: Path) -> dict[str, str]:
    """code -> message (the latest ruleset's, as rows are in ruleset order)."""
    out: dict[str, str] = {}
    with (samples_dir / "cin" / "d2i-cin-validator-rule-catalogue.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["code"]] = row["message"]
    return out


@pytest.mark.samples
def test_enforced_rules_carry_the_catalogues_own_messages(samples_dir: Path) -> None:
    messages = catalogue(samples_dir)
    for code, message in RULES.items():
        assert messages[code] == message, code


@pytest.mark.samples
def test_every_catalogue_rule_is_enforced_or_listed_with_a_reason(samples_dir: Path) -> None:
    codes = set(catalogue(samples_dir))
    text = RULES_MD.read_text(encoding="utf-8")
    enforced_part, _, listed_part = text.partition("## Not enforced")
    row = re.compile(r"^\| ([0-9]{3,4}Q?) \| [^|]+ \| .+ \| (.+) \|$", re.M)
    enforced = [m[1] for m in row.finditer(enforced_part)]
    listed = {m[1]: m[2] for m in row.finditer(listed_part)}
    assert sorted(enforced) == sorted(RULES)
    assert set(enforced).isdisjoint(listed)
    assert set(enforced) | set(listed) == codes
    assert len(enforced) + len(listed) == len(codes)  # each exactly once
    assert all(len(reason) > 40 for reason in listed.values())


# --- the published samples ---------------------------------------------------------------


@pytest.mark.samples
def test_the_332_child_census_yields_identities_disabilities_and_episodes(
    samples_dir: Path,
) -> None:
    data = (samples_dir / "cin" / "fake_CIN_data.xml").read_bytes()
    result = parse_cin(data, agency="la-csc", now=NOW)
    root = ET.fromstring(data)  # noqa: S314 - a published sample
    children = root.findall("Children/Child")
    assert len(children) == 332

    assert counts(result) == {
        "social_care.child_identified": 332,
        "social_care.disability_recorded": 71,
        "social_care.cin_episode_recorded": 372,
    }
    assert result.message_id and result.message_id.startswith("cin:sha256:")
    first = result.facts[0]
    assert (first.subject.la_code, first.source.organisation_code) == ("975", "975")
    assert first.source.system == "csdatatools.datasets.cincensus.sample_data"
    assert first.occurred_at == datetime(2022, 7, 21, 10, 12, 28, tzinfo=UTC)
    ids = {f.subject.la_child_id for f in result.facts}
    assert ids == {c.findtext("ChildIdentifiers/LAchildID") for c in children}

    episodes = [f.payload for f in result.facts if isinstance(f.payload, CinEpisodeRecorded)]
    assert Counter(e.primary_need for e in episodes).keys() <= {f"N{i}" for i in range(10)}
    assert (
        sum(1 for e in episodes if e.closure_date is None)
        + sum(1 for e in episodes if e.closure_date is not None)
        == 372
    )
    assert all(e.closure_date is None or e.closure_date >= e.referral_date for e in episodes)
    assert all(e.referral_nfa is not None for e in episodes)

    explained(result)
    assert rules(result) == Counter(
        {
            ("8555Q", "CINreferralDate"): 22,  # referred after the recorded date of death
            ("hub.date_in_future", "CINclosureDate"): 9,  # closed after the return was produced
            ("8600", "CINreferralDate"): 8,  # referred after the census reference date
            ("hub.date_in_future", "DateOfInitialCPC"): 6,
            ("8790", "Disability"): 3,  # NONE recorded with other disabilities
            ("100", "ReferenceDate"): 1,  # 2022-07-21 is not 31 March of the Year (2022)
            ("hub.not_read", "Ethnicity"): 1,
            **HEADER_NOT_READ,
        }
    )
    # 402 episodes in the file: 372 taken, 30 not (two children break two rules at once)
    assert len({n.ref for n in result.not_taken if n.ref.count("CINdetails")}) == 30


@pytest.mark.samples
def test_the_2024_census_sample_takes_what_is_valid_and_explains_the_rest(
    samples_dir: Path,
) -> None:
    result = parse_cin(
        (samples_dir / "cin" / "CIN_Census_2024.xml").read_bytes(), agency="la", now=NOW
    )
    assert counts(result) == {
        "social_care.child_identified": 2,
        "social_care.disability_recorded": 2,
        "social_care.cin_episode_recorded": 1,
        "social_care.cin_plan_recorded": 1,
    }
    refs = by_ref(result)
    assert refs["Child[1]/CINdetails[1]"] == CinEpisodeRecorded(
        referral_date=date(2022, 10, 6),
        referral_source="1A",
        primary_need="N4",
        referral_nfa=False,
        initial_cpc_date=date(2022, 12, 6),
        closure_date=date(2023, 2, 27),
        closure_reason="RC1",
    )
    assert refs["Child[1]/ChildCharacteristics/Disabilities"] == DisabilityRecorded(
        disabilities=("HAND", "HEAR")
    )
    assert refs["Child[2]/ChildCharacteristics/Disabilities"] == DisabilityRecorded(
        disabilities=("NONE",)
    )
    assert refs["Child[1]/CINdetails[1]/CINPlanDates[1]"] == CinPlanRecorded(
        referral_date=date(2022, 10, 6), start_date=date(2023, 1, 24), end_date=date(2023, 1, 26)
    )
    identity = refs["Child[1]/ChildIdentifiers"]
    assert isinstance(identity, ChildIdentified)
    assert (identity.la_code, identity.upn_unknown_reason, identity.sex) == ("201", "UN3", None)
    subject = result.facts[0].subject
    assert subject.upn is not None and subject.former_upn is not None  # passed through as sent

    explained(result)
    found = {(n.ref, n.rule) for n in result.not_taken}
    assert found == {
        ("Child[1]/ChildIdentifiers/Sex", "4180"),  # 1 is not M, F or U (2024-25)
        ("Child[1]/CINdetails[1]/Assessments[1]", "hub.date_in_future"),
        ("Child[1]/CINdetails[1]/Assessments[1]", "8608"),
        ("Child[1]/CINdetails[1]/Assessments[1]", "8565"),
        (
            "Child[1]/CINdetails[1]/Assessments[1]/FactorsIdentifiedAtAssessment/AssessmentFactors[2]",
            "hub.code_list",
        ),
        ("Child[1]/CINdetails[1]/Section47[1]", "2889"),
        ("Child[1]/CINdetails[1]/Section47[1]", "1104"),
        ("Child[1]/CINdetails[1]/ChildProtectionPlans[1]", "1105"),
        ("Child[1]/CINdetails[1]/ChildProtectionPlans[1]", "8565"),
        ("Child[2]/CINdetails[1]", "8600"),
        ("Child[2]/CINdetails[1]", "hub.date_in_future"),
        ("Child[2]/CINdetails[1]/Assessments[1]", "hub.episode_not_taken"),
        ("Child[*]/ChildCharacteristics/Ethnicity", "hub.not_read"),
        ("Header/CollectionDetails/ReferenceDate", "100"),  # 2024-03-31 with Year 2023
        ("Child[*]/ChildIdentifiers#text", "hub.stray_text"),  # "PersonBirthDate" as text
        *(
            (f"Header/Source/{tag}", "hub.not_read")
            for tag in ("SourceLevel", "Release", "SerialNo")
        ),
    }
    s47 = next(n for n in result.not_taken if n.rule == "2889")
    assert s47.reason == "The S47 start date cannot be before the referral date."


@pytest.mark.samples
def test_the_2021_sample_without_factors_yields_its_assessment(samples_dir: Path) -> None:
    data = (samples_dir / "cin" / "CIN_Census_2021_no_assessment_factors.xml").read_bytes()
    result = parse_cin(data, agency="la", now=NOW)
    assert counts(result) == {
        "social_care.child_identified": 1,
        "social_care.disability_recorded": 1,
        "social_care.cin_episode_recorded": 1,
        "social_care.assessment_recorded": 1,
        "social_care.cin_plan_recorded": 1,
    }
    assert by_ref(result)["Child[1]/CINdetails[1]/Assessments[1]"] == AssessmentRecorded(
        referral_date=date(2022, 10, 6), start_date=date(2023, 1, 24)
    )
    explained(result)
    assert rules(result) == Counter(
        {
            ("2889", "S47ActualStartDate"): 1,
            ("1104", "DateOfInitialCPC"): 1,
            ("1105", "CPPstartDate"): 1,
            ("8565", "CPPendDate"): 1,
            ("100", "ReferenceDate"): 1,  # 2024-03-31 with Year 2023
            ("hub.not_read", "Ethnicity"): 1,
            ("hub.stray_text", "ChildIdentifiers"): 1,
            **HEADER_NOT_READ,
        }
    )


@pytest.mark.samples
def test_the_liia_2022_sample_rejects_activity_before_referral_or_after_closure(
    samples_dir: Path,
) -> None:
    result = parse_cin(
        (samples_dir / "cin" / "liia-cin-2022.xml").read_bytes(), agency="la", now=NOW
    )
    assert counts(result) == {
        "social_care.child_identified": 1,
        "social_care.disability_recorded": 1,
        "social_care.cin_episode_recorded": 1,
        "social_care.cin_plan_recorded": 1,
    }
    identity = by_ref(result)["Child[1]/ChildIdentifiers"]
    assert isinstance(identity, ChildIdentified)
    assert identity.gender_current == "1" and identity.date_of_death is not None
    explained(result)
    assert rules(result) == Counter(
        {
            ("1103", "AssessmentActualStartDate"): 1,  # started before the referral
            ("8565", "AssessmentAuthorisationDate"): 1,  # authorised after the closure
            ("2889", "S47ActualStartDate"): 1,
            ("1104", "DateOfInitialCPC"): 1,
            ("1105", "CPPstartDate"): 1,
            ("8565", "CPPendDate"): 1,
            ("hub.not_read", "Ethnicity"): 1,
            **HEADER_NOT_READ,
        }
    )


# --- rule by rule, on synthetic returns --------------------------------------------------


def census(*children: str, header: str | None = None) -> bytes:
    head = (
        "<Header><CollectionDetails><Collection>CIN</Collection><Year>2024</Year>"
        "<ReferenceDate>2024-03-31</ReferenceDate></CollectionDetails><Source><SourceLevel>L</SourceLevel>"
        "<LEA>999</LEA><SoftwareCode>test</SoftwareCode><DateTime>2024-04-10T09:00:00</DateTime></Source>"
        "</Header>"
        if header is None
        else header
    )
    return f"<Message>{head}<Children>{''.join(children)}</Children></Message>".encode()


def child(
    details: str = "",
    *,
    ids: str = "<LAchildID>C1</LAchildID><PersonBirthDate>2015-01-01</PersonBirthDate><Sex>F</Sex>",
    disabilities: str = "",
) -> str:
    chars = f"<Disabilities>{disabilities}</Disabilities>" if disabilities else ""
    return (
        f"<Child><ChildIdentifiers>{ids}</ChildIdentifiers>"
        f"<ChildCharacteristics><Ethnicity>NOBT</Ethnicity>{chars}</ChildCharacteristics>{details}</Child>"
    )


def episode(extra: str = "", **fields: str) -> str:
    values = {
        "CINreferralDate": "2023-06-01",
        "ReferralSource": "2A",
        "PrimaryNeedCode": "N2",
        "CINclosureDate": "2024-02-01",
        "ReasonForClosure": "RC7",
        "ReferralNFA": "false",
    }
    values.update(fields)
    order = [
        "CINreferralDate",
        "ReferralSource",
        "PrimaryNeedCode",
        "CINclosureDate",
        "ReasonForClosure",
    ]
    body = "".join(f"<{k}>{values[k]}</{k}>" for k in order if values.get(k))
    body += extra + (
        f"<ReferralNFA>{values['ReferralNFA']}</ReferralNFA>" if values["ReferralNFA"] else ""
    )
    return f"<CINdetails>{body}</CINdetails>"


ASSESSMENT = (
    "<Assessments><AssessmentActualStartDate>{}</AssessmentActualStartDate>{}</Assessments>"
)
CPP = (
    "<ChildProtectionPlans><CPPstartDate>{}</CPPstartDate>{}<InitialCategoryOfAbuse>{}</InitialCategoryOfAbuse>"
    "<LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse><NumberOfPreviousCPP>0</NumberOfPreviousCPP>{}"
    "</ChildProtectionPlans>"
)


@pytest.mark.parametrize(
    ("xml", "ref", "rule"),
    [
        (child(episode(CINclosureDate="2023-05-01")), "Child[1]/CINdetails[1]", "8630"),
        (child(episode(ReasonForClosure="")), "Child[1]/CINdetails[1]", "8805"),
        (child(episode(CINclosureDate="")), "Child[1]/CINdetails[1]", "8810"),
        (child(episode(ReasonForClosure="RC0")), "Child[1]/CINdetails[1]", "8640"),
        (child(episode(PrimaryNeedCode="N12")), "Child[1]/CINdetails[1]", "8650"),
        (child(episode(ReferralSource="ZZ")), "Child[1]/CINdetails[1]", "8866"),
        (child(episode(ReferralNFA="maybe")), "Child[1]/CINdetails[1]", "8568"),
        (child(episode(ReferralNFA="")), "Child[1]/CINdetails[1]", "8568"),
        (
            child(episode(CINreferralDate="2024-05-01", CINclosureDate="")),
            "Child[1]/CINdetails[1]",
            "8600",
        ),
        (child(episode(CINreferralDate="2013-01-01")), "Child[1]/CINdetails[1]", "8606"),
        (
            child(episode(ASSESSMENT.format("2023-05-01", ""))),
            "Child[1]/CINdetails[1]/Assessments[1]",
            "1103",
        ),
        (
            child(
                episode(
                    ASSESSMENT.format(
                        "2023-07-01",
                        "<AssessmentAuthorisationDate>2023-06-20</AssessmentAuthorisationDate>",
                    )
                )
            ),
            "Child[1]/CINdetails[1]/Assessments[1]",
            "8608",
        ),
        (
            child(episode(ASSESSMENT.format("2024-02-10", ""))),
            "Child[1]/CINdetails[1]/Assessments[1]",
            "8565",
        ),
        (
            child(
                episode(
                    ASSESSMENT.format(
                        "2023-07-01",
                        "<AssessmentAuthorisationDate>2023-08-01</AssessmentAuthorisationDate>"
                        "<FactorsIdentifiedAtAssessment><AssessmentFactors>21</AssessmentFactors>"
                        "<AssessmentFactors>4A</AssessmentFactors></FactorsIdentifiedAtAssessment>",
                    )
                )
            ),
            "Child[1]/CINdetails[1]/Assessments[1]",
            "8869",
        ),
        (
            child(
                episode(
                    "<CINPlanDates><CINPlanStartDate>2023-09-01</CINPlanStartDate><CINPlanEndDate>2023-08-01</CINPlanEndDate></CINPlanDates>"
                )
            ),
            "Child[1]/CINdetails[1]/CINPlanDates[1]",
            "4011",
        ),
        (
            child(
                episode(
                    "<CINPlanDates><CINPlanStartDate>2023-05-01</CINPlanStartDate></CINPlanDates>"
                )
            ),
            "Child[1]/CINdetails[1]/CINPlanDates[1]",
            "4015",
        ),
        (
            child(
                episode("<CINPlanDates><CINPlanEndDate>2023-08-01</CINPlanEndDate></CINPlanDates>")
            ),
            "Child[1]/CINdetails[1]/CINPlanDates[1]",
            "4010",
        ),
        (
            child(
                episode(
                    "<Section47><S47ActualStartDate>2023-07-01</S47ActualStartDate><DateOfInitialCPC>2023-06-20</DateOfInitialCPC><ICPCnotRequired>false</ICPCnotRequired></Section47>"
                )
            ),
            "Child[1]/CINdetails[1]/Section47[1]",
            "8615",
        ),
        (
            child(
                episode(
                    "<Section47><S47ActualStartDate>2023-05-01</S47ActualStartDate><ICPCnotRequired>true</ICPCnotRequired></Section47>"
                )
            ),
            "Child[1]/CINdetails[1]/Section47[1]",
            "2889",
        ),
        (
            child(episode(CPP.format("2023-05-01", "", "NEG", ""))),
            "Child[1]/CINdetails[1]/ChildProtectionPlans[1]",
            "1105",
        ),
        (
            child(
                episode(CPP.format("2023-07-01", "<CPPendDate>2023-06-01</CPPendDate>", "NEG", ""))
            ),
            "Child[1]/CINdetails[1]/ChildProtectionPlans[1]",
            "8925",
        ),
        (
            child(
                episode(CPP.format("2023-07-01", "<CPPendDate>2023-07-01</CPPendDate>", "NEG", ""))
            ),
            "Child[1]/CINdetails[1]/ChildProtectionPlans[1]",
            "8840",
        ),
        (
            child(episode(CPP.format("2023-07-01", "", "XYZ", ""))),
            "Child[1]/CINdetails[1]/ChildProtectionPlans[1]",
            "8905",
        ),
        (
            child(
                episode(
                    CPP.format(
                        "2023-07-01",
                        "",
                        "NEG",
                        "<Reviews><CPPreviewDate>2023-07-01</CPPreviewDate></Reviews>",
                    )
                )
            ),
            "Child[1]/CINdetails[1]/ChildProtectionPlans[1]",
            "8841",
        ),
        (
            child(
                episode(), disabilities="<Disability>NONE</Disability><Disability>MOB</Disability>"
            ),
            "Child[1]/ChildCharacteristics/Disabilities",
            "8790",
        ),
        (
            child(episode(), disabilities="<Disability>XX</Disability>"),
            "Child[1]/ChildCharacteristics/Disabilities/Disability[1]",
            "8540",
        ),
        (
            child(episode(), ids="<PersonBirthDate>2015-01-01</PersonBirthDate>"),
            "Child[1]/ChildIdentifiers",
            "8500",
        ),
        (
            child(
                episode(),
                ids="<LAchildID>C1</LAchildID><PersonBirthDate>2024-03-30</PersonBirthDate>",
            ),
            "Child[1]/CINdetails[1]",
            "8606",
        ),
        (
            child(
                episode(),
                ids="<LAchildID>C1</LAchildID><PersonBirthDate>2024-06-01</PersonBirthDate>",
            ),
            "Child[1]/ChildIdentifiers/PersonBirthDate",
            "8520",
        ),
        (
            child(
                episode(),
                ids="<LAchildID>C1</LAchildID><PersonBirthDate>2015-01-01</PersonBirthDate><PersonDeathDate>2014-01-01</PersonDeathDate>",
            ),
            "Child[1]/ChildIdentifiers/PersonDeathDate",
            "8535Q",
        ),
        (
            child(
                episode(),
                ids="<LAchildID>C1</LAchildID><PersonBirthDate>2015-01-01</PersonBirthDate><PersonDeathDate>2023-01-01</PersonDeathDate>",
            ),
            "Child[1]/CINdetails[1]",
            "8555Q",
        ),
        (
            child(
                episode(
                    "<CINPlanDates><CINPlanStartDate>2023-07-01</CINPlanStartDate></CINPlanDates>"
                ),
                ids="<LAchildID>C1</LAchildID><PersonBirthDate>2015-01-01</PersonBirthDate><PersonDeathDate>2023-06-20</PersonDeathDate>",
            ),
            "Child[1]/CINdetails[1]/CINPlanDates[1]",
            "4008",
        ),
        (
            child(
                episode(CPP.format("2023-07-01", "", "NEG", "")),
                ids="<LAchildID>C1</LAchildID><PersonBirthDate>2015-01-01</PersonBirthDate><PersonDeathDate>2023-06-20</PersonDeathDate>",
            ),
            "Child[1]/CINdetails[1]/ChildProtectionPlans[1]",
            "8915",
        ),
        (
            child(episode(), ids="<LAchildID>C1</LAchildID><Sex>1</Sex>"),
            "Child[1]/ChildIdentifiers/Sex",
            "4180",
        ),
    ],
)
def test_a_fact_breaking_an_enforced_rule_is_not_taken_with_its_code(
    xml: str, ref: str, rule: str
) -> None:
    result = parse_cin(census(xml), agency="la", now=NOW)
    matching = [n for n in result.not_taken if n.rule == rule]
    assert [n.ref for n in matching] == [ref]
    assert matching[0].reason == RULES[rule]
    assert not any(f.ref == ref for f in result.facts)
    explained(result)


@pytest.mark.parametrize(
    ("activity", "late"),
    [
        (ASSESSMENT.format("2024-01-10", "<AssessmentAuthorisationDate>2024-02-20"
                           "</AssessmentAuthorisationDate>"), "AssessmentAuthorisationDate"),
        (ASSESSMENT.format("2024-02-10", "<AssessmentAuthorisationDate>2024-02-20"
                           "</AssessmentAuthorisationDate>"),
         "AssessmentActualStartDate AssessmentAuthorisationDate"),
        ("<CINPlanDates><CINPlanStartDate>2024-01-10</CINPlanStartDate><CINPlanEndDate>"
         "2024-02-20</CINPlanEndDate></CINPlanDates>", "CINPlanEndDate"),
        ("<Section47><S47ActualStartDate>2024-01-10</S47ActualStartDate><DateOfInitialCPC>"
         "2024-02-20</DateOfInitialCPC><ICPCnotRequired>false</ICPCnotRequired></Section47>",
         "DateOfInitialCPC"),
    ],
)  # fmt: skip
def test_activity_after_closure_is_reported_against_the_late_date(activity: str, late: str) -> None:
    """Rule 8565 names the element dated after the closure (2024-02-01), not another date
    of the same activity."""
    result = parse_cin(census(child(episode(activity))), agency="la", now=NOW)
    assert sorted(n.field or "" for n in result.not_taken if n.rule == "8565") == late.split()


def header(year: str, reference: str | None) -> str:
    ref = f"<ReferenceDate>{reference}</ReferenceDate>" if reference else ""
    return (
        f"<Header><CollectionDetails><Collection>CIN</Collection><Year>{year}</Year>{ref}"
        "</CollectionDetails><Source><SourceLevel>L</SourceLevel><LEA>999</LEA>"
        "<DateTime>2024-04-10T09:00:00</DateTime></Source></Header>"
    )


@pytest.mark.parametrize(
    ("year", "reference", "broken"),
    [
        ("2024", "2024-03-31", False),
        ("2024", "2024-07-21", True),  # after the collection year
        ("2023", "2024-03-31", True),  # the next year's reference date
        ("2024", None, True),  # missing
    ],
)
def test_a_reference_date_outside_the_collection_year_is_reported_by_rule_100(
    year: str, reference: str | None, broken: bool
) -> None:
    result = parse_cin(census(child(episode()), header=header(year, reference)), agency="la",
                       now=NOW)  # fmt: skip
    lines = [n for n in result.not_taken if n.rule == "100"]
    if not broken:
        assert lines == [] and not any("rule 100" in w for w in result.warnings)
        return
    [line] = lines
    assert (line.ref, line.field) == ("Header/CollectionDetails/ReferenceDate", "ReferenceDate")
    assert line.reason == RULES["100"]
    [warning] = [w for w in result.warnings if w.startswith("rule 100")]
    assert f"{year}-03-31" in warning and (reference or "none") in warning
    assert ("the ReferenceDate as sent" if reference else "today") in warning
    explained(result)


def test_a_valid_episode_yields_every_fact_within_it() -> None:
    details = episode(
        ASSESSMENT.format(
            "2023-06-05",
            "<AssessmentAuthorisationDate>2023-07-10</AssessmentAuthorisationDate>"
            "<FactorsIdentifiedAtAssessment><AssessmentFactors>5A</AssessmentFactors>"
            "<AssessmentFactors>5A</AssessmentFactors><AssessmentFactors>6A</AssessmentFactors>"
            "</FactorsIdentifiedAtAssessment>",
        )
        + "<CINPlanDates><CINPlanStartDate>2023-07-12</CINPlanStartDate></CINPlanDates>"
        + "<Section47><S47ActualStartDate>2023-06-10</S47ActualStartDate>"
        "<InitialCPCtarget>2023-06-24</InitialCPCtarget><DateOfInitialCPC>2023-06-22</DateOfInitialCPC><ICPCnotRequired>false"
        "</ICPCnotRequired></Section47>"
        + CPP.format(
            "2023-06-22",
            "<CPPendDate>2023-12-01</CPPendDate>",
            "EMO",
            "<Reviews><CPPreviewDate>2023-09-01</CPPreviewDate><CPPreviewDate></CPPreviewDate></Reviews>",
        )
    )
    result = parse_cin(
        census(child(details, disabilities="<Disability>AUT</Disability>")), agency="la", now=NOW
    )
    assert [n.ref for n in result.not_taken] == [
        "Header/Source/SourceLevel",
        "Child[*]/ChildCharacteristics/Ethnicity",
    ]
    refs = by_ref(result)
    assert refs["Child[1]/CINdetails[1]/Assessments[1]"] == AssessmentRecorded(
        referral_date=date(2023, 6, 1),
        start_date=date(2023, 6, 5),
        authorisation_date=date(2023, 7, 10),
        factors=("5A", "6A"),  # a repeated factor (rule 8898) is collapsed, not rejected
    )
    assert refs["Child[1]/CINdetails[1]/Section47[1]"] == Section47Recorded(
        referral_date=date(2023, 6, 1),
        start_date=date(2023, 6, 10),
        initial_cpc_target=date(2023, 6, 24),
        initial_cpc_date=date(2023, 6, 22),
    )
    assert refs["Child[1]/CINdetails[1]/ChildProtectionPlans[1]"] == ChildProtectionPlanRecorded(
        referral_date=date(2023, 6, 1),
        start_date=date(2023, 6, 22),
        end_date=date(2023, 12, 1),
        initial_category="EMO",
        latest_category="NEG",
        previous_plans=0,
        review_dates=(date(2023, 9, 1),),
    )
    categories = {
        type(f.payload).event_type: f.category or type(f.payload).category for f in result.facts
    }
    assert categories["safeguarding.section47_recorded"] == "safeguarding"
    assert categories["safeguarding.cp_plan_recorded"] == "safeguarding"
    assert categories["social_care.assessment_recorded"] == "social_care"
    occurred = {f.ref: f.occurred_at for f in result.facts}
    assert occurred["Child[1]/CINdetails[1]"] == datetime(2024, 2, 1, tzinfo=UTC)  # closure
    assert occurred["Child[1]/CINdetails[1]/Section47[1]"] == datetime(2023, 6, 22, tzinfo=UTC)


def test_duplicate_la_child_ids_reject_every_such_child_and_duplicate_upns_are_dropped() -> None:
    ids = "<LAchildID>{}</LAchildID><UPN>{}</UPN><Sex>F</Sex>"
    xml = census(
        child(episode(), ids=ids.format("D1", "A999200100001")),
        child(episode(), ids=ids.format("D1", "A999200100002")),
        child(episode(), ids=ids.format("D2", "A999200100003")),
        child(episode(), ids=ids.format("D3", "A999200100003")),
    )
    result = parse_cin(xml, agency="la", now=NOW)
    assert {(n.ref, n.rule) for n in result.not_taken if n.rule != "hub.not_read"} == {
        ("Child[1]/ChildIdentifiers/LAchildID", "8510"),
        ("Child[2]/ChildIdentifiers/LAchildID", "8510"),
        ("Child[3]/ChildIdentifiers/UPN", "1520"),
        ("Child[4]/ChildIdentifiers/UPN", "1520"),
    }
    assert {f.subject.la_child_id for f in result.facts} == {"D2", "D3"}
    assert all(f.subject.upn is None for f in result.facts)


def test_the_la_code_comes_from_the_header_or_the_caller_and_they_must_agree() -> None:
    no_header = census(child(episode()), header="")
    result = parse_cin(no_header, agency="la", la_code="888", now=NOW)
    assert {f.subject.la_code for f in result.facts} == {"888"}
    bare = parse_cin(no_header, agency="la", now=NOW)
    assert {f.subject.la_code for f in bare.facts} == {None}
    assert bare.warnings == ["no LA code (header LEA or parameter): LA child ids are unqualified"]
    with pytest.raises(PermanentError) as info:
        parse_cin(census(child(episode())), agency="la", la_code="888", now=NOW)
    assert info.value.field == "Header/Source/LEA"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            b'<!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><Message>&b;</Message>',
            "xml.doctype",
        ),
        (b"<Message><Children><Child>", "xml"),
        (b"<CTfile/>", "Message"),
        (b"<Message><Header/></Message>", "Message/Children"),
        (b'<?xml version="1.0" encoding="utf-8"?><Message>\xff\xfe</Message>', "xml"),
    ],
)
def test_unreadable_or_unsafe_returns_are_refused_whole(data: bytes, field: str) -> None:
    with pytest.raises(PermanentError) as info:
        parse_cin(data, agency="la", now=NOW)
    assert info.value.field == field


# --- no input crashes the adapter --------------------------------------------------------

BASE = census(
    child(
        episode(
            ASSESSMENT.format(
                "2023-06-05",
                "<AssessmentAuthorisationDate>2023-07-10</AssessmentAuthorisationDate>",
            )
            + CPP.format(
                "2023-06-22",
                "",
                "EMO",
                "<Reviews><CPPreviewDate>2023-09-01</CPPreviewDate></Reviews>",
            )
        ),
        disabilities="<Disability>AUT</Disability>",
    ),
    child(
        episode(),
        ids="<LAchildID>C2</LAchildID><UPN>A999200100009</UPN><GenderCurrent>2</GenderCurrent>",
    ),
)


def only_permanent_errors(data: bytes) -> None:
    try:
        result = parse_cin(data, agency="la", now=NOW)
    except PermanentError as exc:
        assert exc.reason
        return
    explained(result)


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_nothing_but_permanent_errors(data: bytes) -> None:
    only_permanent_errors(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 30))]
        else:
            data[at:at] = draw(
                st.sampled_from([b"<", b"&amp;", b"</Child>", b"9999-99-99", b"\x00"])
            )
    return bytes(data)


@given(mutated())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_returns_raise_nothing_but_permanent_errors(data: bytes) -> None:
    only_permanent_errors(data)


@st.composite
def element_values(draw: st.DrawFn) -> bytes:
    root = ET.fromstring(BASE)  # noqa: S314 - our own synthetic bytes
    leaves = [el for el in root.iter() if len(el) == 0]
    for el in draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=10)):
        el.text = draw(
            st.one_of(
                st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
                st.dates().map(date.isoformat),
                st.sampled_from(["N0", "RC8", "21", "NONE", "true", "0", "UN7", "U"]),
            )
        )
    return ET.tostring(root)


@given(element_values())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_element_values_are_reported_never_raised(data: bytes) -> None:
    only_permanent_errors(data)
