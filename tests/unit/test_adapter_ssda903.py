"""The SSDA903 adapter: the Episodes and Header CSVs and the expanded XML yield looked-after
episodes and identities for the LA code given, every episode or value not taken is
explained by its 903 rule, files that cannot be read are refused whole, and no input
crashes it. Personal values from the samples are never written here."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.adapters.ssda903 import RULES, parse_ssda903, parse_ssda903_csv, parse_ssda903_xml
from hub.consent.sealing import personal_fields
from hub.errors import PermanentError
from hub.events.social_care import ChildIdentified, LookedAfterEpisodeRecorded
from hub.ingest.model import AdapterResult

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def counts(result: AdapterResult) -> dict[str, int]:
    return dict(Counter(type(f.payload).event_type for f in result.facts))


def episodes_of(result: AdapterResult) -> list[LookedAfterEpisodeRecorded]:
    return [f.payload for f in result.facts if isinstance(f.payload, LookedAfterEpisodeRecorded)]


def explained(result: AdapterResult) -> None:
    for n in result.not_taken:
        assert n.ref and n.reason and n.rule and n.field, n.ref
        if n.rule in RULES:
            assert n.reason == RULES[n.rule]
        else:
            assert n.rule.startswith("hub."), n.rule


@pytest.mark.samples
def test_rule_messages_are_the_catalogues(samples_dir: Path) -> None:
    with (samples_dir / "ssda903" / "903_2024_25_rule_info.csv").open(encoding="utf-8") as f:
        messages = {row["Rule code"]: row["Rule message"] for row in csv.DictReader(f)}
    for code, message in RULES.items():
        assert messages[code] == message, code


@pytest.mark.samples
def test_episode_and_header_csvs_yield_every_episode_and_identity(samples_dir: Path) -> None:
    folder = samples_dir / "ssda903"
    episodes, header = (folder / "episodes.csv").read_bytes(), (folder / "header.csv").read_bytes()
    result = parse_ssda903(episodes, agency="la-csc", la_code="975", header=header, now=NOW)
    rows = list(csv.DictReader(io.StringIO(episodes.decode())))

    assert counts(result) == {
        "social_care.child_identified": 2675,
        "social_care.looked_after_episode_recorded": 5050,
    }
    taken = [f for f in result.facts if isinstance(f.payload, LookedAfterEpisodeRecorded)]
    taken_episodes = episodes_of(result)
    assert {f.subject.la_child_id for f in taken} == {r["CHILD"] for r in rows}
    assert {f.subject.la_code for f in result.facts} == {"975"}
    assert all(f.subject.upn and f.subject.date_of_birth for f in taken)  # joined from the header
    assert result.message_id and result.message_id.startswith("ssda903:sha256:")
    assert Counter(e.placement_type for e in taken_episodes) == Counter(r["PLACE"] for r in rows)
    assert Counter(e.legal_status for e in taken_episodes) == Counter(r["LS"] for r in rows)
    first = taken_episodes[0]
    assert (first.start_date, first.reason_new_episode, first.legal_status) == (
        date(2016, 2, 15),
        "L",
        "C2",
    )
    assert (first.category_of_need, first.placement_type, first.placement_provider) == (
        "N3",
        "T2",
        "PR0",
    )
    assert (first.end_date, first.reason_ceased, first.reason_place_change) == (
        date(2017, 8, 14),
        "X1",
        "CLOSE",
    )
    assert taken[0].occurred_at == datetime(2017, 8, 14, tzinfo=UTC)
    identity = next(f.payload for f in result.facts if isinstance(f.payload, ChildIdentified))
    assert identity.sex in ("M", "F") and identity.la_code == "975"

    explained(result)
    rules = Counter((n.rule, n.field) for n in result.not_taken)
    open_with_rec = sum(1 for r in rows if not r["DEC"] and r["REC"])
    assert open_with_rec == 1413
    assert rules == Counter(
        {
            (
                "148",
                "REC",
            ): open_with_rec,  # REC without DEC: the episode is taken as open, REC is not
            ("hub.not_read", "HOME_POST"): 1,
            ("hub.not_read", "PL_POST"): 1,
            ("hub.not_read", "ETHNIC"): 1,
            ("hub.not_read", "MOTHER"): 1,
            ("hub.not_read", "MC_DOB"): 1,
        }
    )
    open_episodes = [e for e in taken_episodes if e.end_date is None]
    assert len(open_episodes) == 1413 and all(e.reason_ceased is None for e in open_episodes)
    assert "postcode" in next(n.reason for n in result.not_taken if n.field == "PL_POST")


@pytest.mark.samples
def test_the_expanded_xml_yields_episodes_and_identities(samples_dir: Path) -> None:
    data = (samples_dir / "ssda903" / "fake_903.xml").read_bytes()
    result = parse_ssda903(data, agency="la-csc", la_code="975", now=NOW)
    assert counts(result) == {
        "social_care.child_identified": 253,
        "social_care.looked_after_episode_recorded": 459,
    }
    first_fact = next(f for f in result.facts if isinstance(f.payload, LookedAfterEpisodeRecorded))
    assert first_fact.ref == "CHILD[1]/EPISODE[1]"
    first = episodes_of(result)[0]
    assert (first.placement_type, first.legal_status, first.reason_ceased) == ("R5", "J3", "X1")
    assert first.placement_urn is not None  # taken, and sealed as personal by the gate
    assert "placement_urn" in (personal_fields(LookedAfterEpisodeRecorded) or ())
    explained(result)
    rules = Counter(n.rule for n in result.not_taken)
    assert rules["148"] == 133
    assert {n.field for n in result.not_taken if n.rule == "hub.not_read"} == {
        "ACCOM", "ACTIV", "AD_PLACED", "AMISSING", "AREVIEW", "DATE_INT", "DATE_MATCH", "DUC",
        "ETHNIC", "FOSTER_CARE", "HOME_POST", "IN_TOUCH", "LS_ADOPTR", "MC_DOB", "MOTHER",
        "NB_ADOPTR", "OC2", "PERMANENCE", "PL_POST", "SEX_ADOPTR", "UASC",
    }  # fmt: skip
    assert sum(rules.values()) == 133 + 21


# --- rule by rule, on synthetic rows ------------------------------------------------------

COLUMNS = "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,URN"
GOOD = "C1,01/04/2022,S,C2,N1,U1,PR1,01/10/2022,E11,,1234567"


def episodes(*rows: str) -> bytes:
    return ("\n".join([COLUMNS, *rows]) + "\n").encode()


def row(**changes: str) -> str:
    values = dict(zip(COLUMNS.split(","), GOOD.split(","), strict=True))
    values.update(changes)
    return ",".join(values[c] for c in COLUMNS.split(","))


HEADER = b"CHILD,SEX,DOB,UPN\nC1,2,01/01/2012,UN2\n"


@pytest.mark.parametrize(
    ("episode", "field", "rule"),
    [
        (row(DECOM="31/02/2022"), "DECOM", "141"),
        (row(DECOM=""), "DECOM", "141"),
        (row(RNE="Q"), "RNE", "143"),
        (row(LS="X9"), "LS", "144"),
        (row(CIN="N9"), "CIN", "145"),
        (row(PLACE="A1"), "PLACE", "146"),
        (row(DEC="2022-13-01"), "DEC", "147"),
        (row(REC="E99"), "REC", "149"),
        (row(PLACE_PROVIDER="PR9"), "PLACE_PROVIDER", "178"),
        (row(DEC="01/03/2022"), "DEC", "356"),
        (row(DECOM="01/06/2011"), "DECOM", "302"),
    ],
)
def test_an_episode_breaking_a_903_rule_is_not_taken_with_its_code(
    episode: str, field: str, rule: str
) -> None:
    result = parse_ssda903_csv(
        episodes(episode), agency="la", la_code="999", header=HEADER, now=NOW
    )
    assert [(n.ref, n.field, n.rule) for n in result.not_taken] == [
        (f"Episodes/row[1]/{field}", field, rule)
    ]
    assert counts(result) == {"social_care.child_identified": 1}
    explained(result)


def test_a_valid_episode_is_taken_with_the_header_identifiers() -> None:
    result = parse_ssda903_csv(episodes(GOOD), agency="la", la_code="999", header=HEADER, now=NOW)
    assert result.not_taken == []
    identity, episode = result.facts
    assert identity.payload == ChildIdentified(
        la_code="999",
        la_child_id="C1",
        upn_unknown_reason="UN2",
        date_of_birth=date(2012, 1, 1),
        sex="F",
    )
    assert episode.payload == LookedAfterEpisodeRecorded(
        start_date=date(2022, 4, 1),
        reason_new_episode="S",
        legal_status="C2",
        category_of_need="N1",
        placement_type="U1",
        placement_provider="PR1",
        end_date=date(2022, 10, 1),
        reason_ceased="E11",
        placement_urn="1234567",
    )
    assert episode.subject.la_child_id == "C1" and episode.subject.upn is None
    assert episode.subject.date_of_birth == date(2012, 1, 1)


def test_values_that_are_not_taken_leave_the_episode_taken() -> None:
    result = parse_ssda903_csv(
        episodes(
            row(URN="not-an-urn", REASON_PLACE_CHANGE="WHIM"), row(URN="XXXXXXX", DEC="", REC="X1")
        ),
        agency="la",
        la_code="999",
        now=NOW,
    )
    assert [(n.ref, n.rule) for n in result.not_taken] == [
        ("Episodes/row[1]/REASON_PLACE_CHANGE", "hub.code_list"),
        ("Episodes/row[1]/URN", "1008"),
        ("Episodes/row[2]/REC", "148"),
    ]
    first, second = (f.payload for f in result.facts)
    assert isinstance(first, LookedAfterEpisodeRecorded) and isinstance(
        second, LookedAfterEpisodeRecorded
    )
    assert (first.placement_urn, first.reason_place_change) == (None, None)
    assert (second.placement_urn, second.end_date, second.reason_ceased) == (None, None, None)


def test_dates_after_today_and_bad_header_values_are_explained() -> None:
    header = b"CHILD,SEX,DOB,UPN\nC1,7,01/01/2030,A999200100001\nC2,1,35/01/2010,\n"
    result = parse_ssda903_csv(
        episodes(row(DECOM="01/01/2026", DEC="")),
        agency="la",
        la_code="999",
        header=header,
        now=NOW,
    )
    assert {(n.ref, n.rule) for n in result.not_taken} == {
        ("Header/row[1]/DOB", "hub.date_in_future"),
        ("Header/row[1]/SEX", "101"),
        ("Header/row[2]/DOB", "102"),
        ("Episodes/row[1]/DECOM", "hub.date_in_future"),
    }
    identities = [f.payload for f in result.facts if isinstance(f.payload, ChildIdentified)]
    assert [(i.date_of_birth, i.sex) for i in identities] == [(None, None), (None, "M")]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"CHILD,DECOM\nC1,01/01/2020\n", "Episodes.RNE"),
        (b"", "Episodes"),
        (b"CHILD,DECOM,RNE,LS,CIN,PLACE\nC1,\xff\xfe,S,C2,N1,U1\n", "Episodes"),
        (b'<!DOCTYPE x [<!ENTITY a "a">]><EXPSSDA903>&a;</EXPSSDA903>', "xml.doctype"),
        (b"<EXPSSDA903><CHILD>", "xml"),
        (b"<Message/>", "EXPSSDA903"),
    ],
)
def test_unreadable_files_are_refused_whole(data: bytes, field: str) -> None:
    with pytest.raises(PermanentError) as info:
        parse_ssda903(data, agency="la", la_code="999", now=NOW)
    assert info.value.field == field


@pytest.mark.parametrize("la_code", ["", "12", "ABC", "1234"])
def test_the_la_code_must_be_three_digits(la_code: str) -> None:
    with pytest.raises(PermanentError) as info:
        parse_ssda903(episodes(GOOD), agency="la", la_code=la_code, now=NOW)
    assert info.value.field == "la_code"


def test_the_xml_form_reads_pl_as_the_placement_type() -> None:
    xml = (
        b"<EXPSSDA903><CHILD><HEADER><CHILDID>C1</CHILDID><SEX>1</SEX><DOB>01/01/2012</DOB></HEADER>"
        b"<EPISODE><DECOM>01/04/2022</DECOM><RNE>S</RNE><LS>C2</LS><CIN>N1</CIN><PL>K2</PL>"
        b"<DEC /><REC /></EPISODE></CHILD></EXPSSDA903>"
    )
    result = parse_ssda903_xml(xml, agency="la", la_code="999", now=NOW)
    assert result.not_taken == []
    episode = result.facts[1].payload
    assert isinstance(episode, LookedAfterEpisodeRecorded) and episode.placement_type == "K2"
    assert result.facts[1].ref == "CHILD[1]/EPISODE[1]"


# --- no input crashes the adapter --------------------------------------------------------


@given(st.binary(max_size=1500))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_nothing_but_permanent_errors(data: bytes) -> None:
    try:
        explained(parse_ssda903(data, agency="la", la_code="999", now=NOW))
    except PermanentError as exc:
        assert exc.reason


cells = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(["01/04/2022", "31/12/1999", "S", "C2", "N1", "U1", "PR1", "X1", "E11", ""]),
)


@given(st.lists(st.lists(cells, min_size=0, max_size=13), min_size=0, max_size=8))
@settings(max_examples=300, deadline=None)
def test_arbitrary_csv_rows_are_reported_never_raised(rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS.split(","))
    writer.writerows(rows)
    try:
        result = parse_ssda903_csv(
            buffer.getvalue().encode(), agency="la", la_code="999", header=HEADER, now=NOW
        )
    except PermanentError as exc:
        assert exc.reason
        return
    explained(result)
