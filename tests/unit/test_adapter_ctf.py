"""The CTF adapter: each published sample yields the facts it must, every element not
taken is explained, a generated 1,000-pupil file parses to its known counts, unsafe or
broken XML is refused with a clear `PermanentError`, and no input crashes it.

Sample content is personal data: personal values are compared by digest, never written
here or shown in a failure message."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.gen_ctf import expected_facts, generate_ctf, make_upn, upn_check_letter
from hub.adapters.ctf import parse_ctf, phase_for, provision_type_for
from hub.errors import PermanentError
from hub.events.education import (
    AttendanceRecorded,
    PlacementRecorded,
    PupilIdentified,
    SenNeedRanked,
    SenStatusRecorded,
)
from hub.events.family import ContactRecorded
from hub.identity.identifiers import check_upn
from hub.ingest.model import AdapterResult, NotTaken

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def counts(result: AdapterResult) -> dict[str, int]:
    return dict(Counter(type(f.payload).event_type for f in result.facts))


def unsupported(result: AdapterResult) -> set[str]:
    return {n.ref for n in result.not_taken if n.rule == "hub.not_read"}


def explained(result: AdapterResult) -> None:
    """Every NotTaken names where, why and by which rule."""
    for n in result.not_taken:
        assert n.ref and n.reason and n.rule, n.ref


def payloads(result: AdapterResult, cls: type) -> list:  # type: ignore[type-arg]
    return [f.payload for f in result.facts if isinstance(f.payload, cls)]


def by_ref(result: AdapterResult) -> dict[str, object]:
    return {f.ref: f.payload for f in result.facts}


# --- the published samples ---------------------------------------------------------------


@pytest.mark.samples
def test_y12_sample_yields_identity_sen_attendance_history_and_parents(samples_dir: Path) -> None:
    data = (samples_dir / "ctf" / "gryphon-y12.xml").read_bytes()
    result = parse_ctf(data, agency="school-a", now=NOW)

    assert counts(result) == {
        "education.pupil_identified": 1,
        "education.sen_status_recorded": 2,
        "education.attendance_recorded": 7,
        "education.placement_recorded": 4,
        "family.contact_recorded": 2,
    }
    fact = result.facts[0]
    assert fact.source.organisation_code == "136294"
    assert fact.source.system == "SIMS CTF 19.0"
    assert result.message_id == "ctf:sha256:" + hashlib.sha256(data).hexdigest()
    assert fact.occurred_at == datetime(2020, 6, 19, 11, 12, 27, tzinfo=UTC)  # BST header time

    pupil = ET.fromstring(data).find("CTFpupilData/Pupil")  # noqa: S314 - a published sample
    assert pupil is not None
    identity = payloads(result, PupilIdentified)[0]
    assert digest(identity.upn) == digest(pupil.findtext("UPN"))
    assert digest(fact.subject.upn) == digest(pupil.findtext("UPN"))
    assert digest(identity.surname) == digest(pupil.findtext("Surname"))
    assert digest(identity.date_of_birth.isoformat()) == digest(pupil.findtext("DOB"))
    assert digest(fact.subject.postcode) == digest(pupil.findtext("Address/PostCode"))

    refs = by_ref(result)
    k = refs["Pupil[1]/SENhistory/SEN[2]"]
    assert k == SenStatusRecorded(
        sen_provision="K",
        start_date=date(2015, 3, 10),
        end_date=date(2016, 7, 9),
        needs=(SenNeedRanked(type="NSA", rank=1),),
    )
    assert refs["Pupil[1]/SENhistory/SEN[1]"] == SenStatusRecorded(
        sen_provision="N", start_date=date(2016, 7, 10)
    )
    year_2019 = refs["Pupil[1]/Attendance/YearData[7]"]
    assert isinstance(year_2019, AttendanceRecorded)
    assert (year_2019.academic_year, year_2019.urn, year_2019.sessions_possible) == (
        2019,
        "136294",
        242,
    )
    assert (year_2019.sessions_attended, year_2019.sessions_authorised_absence) == (235, 4)
    assert year_2019.sessions_unauthorised_absence == 3

    current = refs["Pupil[1]/SchoolHistory/School[1]"]
    assert isinstance(current, PlacementRecorded)
    assert (current.urn, current.phase, current.nc_year, current.leaving_date) == (
        "136294",
        "secondary",
        "11",
        None,
    )
    infant = refs["Pupil[1]/SchoolHistory/School[4]"]
    assert isinstance(infant, PlacementRecorded)
    assert (infant.estab, infant.phase, infant.urn, infant.leaving_reason) == (
        "2098",
        "primary",
        None,
        "ST",
    )

    parents = payloads(result, ContactRecorded)
    assert sorted((c.contact_order, c.relationship) for c in parents) == [(1, "PAF"), (2, "PAM")]
    assert all(
        c.parental_responsibility and c.lives_with_child and c.address is None for c in parents
    )
    assert all(c.contact_points for c in parents)

    explained(result)
    without_pr = [
        n for n in result.not_taken if n.rule == "hub.contact_without_parental_responsibility"
    ]
    assert [n.ref for n in without_pr] == [
        "Pupil[1]/Contacts/Contact[1]",
        "Pupil[1]/Contacts/Contact[4]",
    ]
    assert all(
        n.kind == "unsupported" and "parental responsibility" in n.reason for n in without_pr
    )
    assert unsupported(result) == {
        "Header/DocumentName",
        "Header/DestSchool",
        "Header/SourceSchool/SchoolName",
        "Header/SourceSchool/AcademicYear",
        "Pupil[*]/UCI",
        "Pupil[*]/FSMhistory",
        "Pupil[*]/StageAssessments",
        "Pupil[*]/SuppInfo",
        "Pupil[*]/BasicDetails/Ethnicity",
        "Pupil[*]/BasicDetails/EthnicitySource",
        "Pupil[*]/BasicDetails/Languages",
        "Pupil[*]/BasicDetails/ServiceChild",
        "Pupil[*]/BasicDetails/MedicalFlag",
        "Pupil[*]/BasicDetails/SuppInfo",
        "Pupil[*]/Address/Country",
        "Pupil[*]/Contacts/Contact/Gender",
        "Pupil[*]/Contacts/Contact/SuppInfo/SuppID",
    }
    assert len(result.not_taken) == 19
    assert result.warnings == []


@pytest.mark.samples
def test_y7_sample_attaches_ranked_needs_to_the_sen_support_period(samples_dir: Path) -> None:
    data = (samples_dir / "ctf" / "gryphon-y7_2_students.xml").read_bytes()
    result = parse_ctf(data, agency="school-a", now=NOW)

    assert counts(result) == {
        "education.pupil_identified": 2,
        "education.sen_status_recorded": 2,
        "education.attendance_recorded": 2,
        "education.placement_recorded": 5,
        "family.contact_recorded": 4,
    }
    refs = by_ref(result)
    assert refs["Pupil[2]/SENhistory/SEN[2]"] == SenStatusRecorded(
        sen_provision="K",
        start_date=date(2014, 5, 17),
        end_date=date(2016, 5, 17),
        needs=(SenNeedRanked(type="SLCN", rank=1), SenNeedRanked(type="SPLD", rank=2)),
    )
    root = ET.fromstring(data)  # noqa: S314 - a published sample
    second = root.findall("CTFpupilData/Pupil")[1]
    identity = refs["Pupil[2]"]
    assert isinstance(identity, PupilIdentified)
    assert digest(identity.former_upns) == digest((second.findtext("BasicDetails/FormerUPN"),))
    subjects = {f.ref.split("/")[0]: f.subject for f in result.facts}
    assert digest(subjects["Pupil[2]"].former_upn) == digest(
        second.findtext("BasicDetails/FormerUPN")
    )
    assert subjects["Pupil[1]"].upn != subjects["Pupil[2]"].upn
    # a placeholder URN (XXXXXX) reads as unknown, not as a bad value
    stower = refs["Pupil[2]/SchoolHistory/School[2]"]
    assert isinstance(stower, PlacementRecorded)
    assert (stower.urn, stower.estab, stower.provision_type) == (None, "2030", "mainstream")
    current = refs["Pupil[1]/SchoolHistory/School[1]"]
    assert isinstance(current, PlacementRecorded)
    assert (current.phase, current.nc_year, current.enrolment_status) == ("primary", "6", "C")

    explained(result)
    ncol = [n for n in result.not_taken if n.rule == "hub.not_collected"]
    assert [n.ref for n in ncol] == ["Pupil[1]/BasicDetails/Disabilities/Disability[1]"]
    assert "NCOL" in ncol[0].reason
    assert [
        n.ref for n in result.not_taken if n.rule == "hub.contact_without_parental_responsibility"
    ] == [
        "Pupil[1]/Contacts/Contact[1]",
        "Pupil[1]/Contacts/Contact[2]",
        "Pupil[2]/Contacts/Contact[1]",
    ]
    assert unsupported(result) == {
        "Header/DocumentName",
        "Header/DestSchool",
        "Header/SourceSchool/SchoolName",
        "Header/SourceSchool/AcademicYear",
        "Pupil[*]/Phones",
        "Pupil[*]/StageAssessments",
        "Pupil[*]/SuppInfo",
        "Pupil[*]/BasicDetails/Ethnicity",
        "Pupil[*]/BasicDetails/EthnicitySource",
        "Pupil[*]/BasicDetails/Languages",
        "Pupil[*]/BasicDetails/MedicalFlag",
        "Pupil[*]/BasicDetails/SuppInfo",
        "Pupil[*]/Address/Country",
        "Pupil[*]/Address/Easting",
        "Pupil[*]/Address/Northing",
        "Pupil[*]/Contacts/Contact/Gender",
        "Pupil[*]/Contacts/Contact/SuppInfo/SuppID",
        "Pupil[*]/Contacts/Contact/Address/Country",
        "Pupil[*]/Contacts/Contact/Address/Easting",
        "Pupil[*]/Contacts/Contact/Address/Northing",
    }
    assert len(result.not_taken) == 24


@pytest.mark.samples
def test_partial_sample_is_read_for_what_it_carries(samples_dir: Path) -> None:
    result = parse_ctf(
        (samples_dir / "ctf" / "gryphon-y7_partial.xml").read_bytes(), agency="s", now=NOW
    )
    assert counts(result) == {
        "education.pupil_identified": 1,
        "education.attendance_recorded": 1,
        "education.placement_recorded": 1,
    }
    assert result.warnings == ["partial CTF: only the containers it carries are read"]
    placement = by_ref(result)["Pupil[1]/SchoolHistory/School[1]"]
    assert isinstance(placement, PlacementRecorded)
    assert (placement.urn, placement.entry_date, placement.phase) == (
        "123818",
        date(2018, 9, 3),
        "primary",
    )
    explained(result)
    assert {n.rule for n in result.not_taken} == {"hub.not_read"}
    assert len(result.not_taken) == 12  # 4 header elements, 8 of the pupil's


@pytest.mark.samples
def test_the_same_file_has_the_same_message_id_and_refs(samples_dir: Path) -> None:
    data = (samples_dir / "ctf" / "gryphon-y12.xml").read_bytes()
    first, second = parse_ctf(data, agency="s", now=NOW), parse_ctf(data, agency="s", now=NOW)
    assert first.message_id == second.message_id
    assert [f.ref for f in first.facts] == [f.ref for f in second.facts]
    assert len({f.ref for f in first.facts}) == len(first.facts)


# --- a generated 1,000-pupil file --------------------------------------------------------


def test_generated_upns_have_correct_check_letters() -> None:
    assert upn_check_letter("801200005001") == "B"  # python-stdnum's documented example
    assert check_upn(make_upn("933", "3321", 19, 7)).value.startswith(
        tuple("ABCDEFGHJKLMNPQRTUVWXYZ")
    )
    assert check_upn(make_upn("880", "2030", 11, 42, temporary=True))


def test_a_generated_1000_pupil_ctf_parses_to_its_expected_counts() -> None:
    data = generate_ctf(1000, seed=11)
    assert data == generate_ctf(1000, seed=11)
    result = parse_ctf(data, agency="bench", now=NOW)
    assert counts(result) == expected_facts(1000, seed=11)
    assert counts(result)["education.pupil_identified"] == 1000
    identities = [f.subject for f in result.facts if isinstance(f.payload, PupilIdentified)]
    assert len({s.upn for s in identities}) == 1000
    for subject in identities:
        check_upn(subject.upn or "")
        if subject.former_upn:
            check_upn(subject.former_upn)
    assert sum(1 for s in identities if s.former_upn) == 100
    explained(result)
    rules = Counter(n.rule for n in result.not_taken)
    assert set(rules) == {"hub.contact_without_parental_responsibility", "hub.not_read"}
    assert unsupported(result) == {
        "Header/DocumentName", "Header/DestSchool", "Header/SourceSchool/SchoolName",
        "Header/SourceSchool/AcademicYear", "Pupil[*]/FSMhistory",
        "Pupil[*]/BasicDetails/Ethnicity",
    }  # fmt: skip


# --- bad input ---------------------------------------------------------------------------

HEADER = (
    "<Header><CTFversion>20.0</CTFversion><DateTime>2024-01-15T10:00:00</DateTime>"
    "<SupplierID>TEST</SupplierID><SourceSchool><LEA>933</LEA><Estab>3321</Estab>"
    "<URN>113799</URN></SourceSchool></Header>"
)


def ctf(*pupils: str, header: str = HEADER) -> bytes:
    body = "".join(f"<Pupil>{p}</Pupil>" for p in pupils)
    return f"<CTfile>{header}<CTFpupilData>{body}</CTFpupilData></CTfile>".encode()


UPN = make_upn("933", "3321", 20, 1)


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><CTfile>&lol2;</CTfile>',
            "xml.doctype",
            "entity",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<CTfile>&xxe;</CTfile>",
            "xml.doctype",
            "never fetched",
        ),
        (ctf(f"<UPN>{UPN}</UPN>")[:-20], "xml", "line 1, column"),
        (b"", "xml", "no element found"),
        (b"\x00\x01garbage", "xml", "not well-formed"),
        (
            b'<?xml version="1.0" encoding="utf-8"?><CTfile><Header>\xe9</Header></CTfile>',
            "xml",
            "line 1",
        ),
        (b'<?xml version="1.0" encoding="x-no-such"?><CTfile/>', "xml.encoding", "encoding"),
        (b"<Message><Header/></Message>", "CTfile", "not a Common Transfer File"),
        (b"<CTfile><CTFpupilData/></CTfile>", "CTfile/Header", "no Header"),
    ],
)
def test_unreadable_or_unsafe_files_are_refused_whole(
    data: bytes, field: str, fragment: str
) -> None:
    with pytest.raises(PermanentError) as info:
        parse_ctf(data, agency="s", now=NOW)
    assert info.value.field == field
    assert fragment in info.value.reason


def test_utf16_and_namespaced_ctf_files_are_read() -> None:
    text = ctf(f"<UPN>{UPN}</UPN><DOB>2015-04-01</DOB>").decode()
    utf16 = ('<?xml version="1.0" encoding="utf-16"?>' + text).encode("utf-16")
    assert counts(parse_ctf(utf16, agency="s", now=NOW)) == {"education.pupil_identified": 1}
    namespaced = text.replace("<CTfile>", '<CTfile xmlns="http://www.example.org/ctf">').encode()
    assert counts(parse_ctf(namespaced, agency="s", now=NOW)) == {"education.pupil_identified": 1}


def test_bad_elements_are_reported_and_the_rest_of_the_pupil_taken() -> None:
    pupil = (
        f"<UPN>{UPN}</UPN><Surname>Zzyzxunique</Surname><DOB>2031-02-30</DOB><Gender>Q</Gender>"
        "<BasicDetails><NCyearActual>3</NCyearActual><EnrolStatus>C</EnrolStatus>"
        "<Disabilities><Disability>AUT</Disability><Disability>WHAT</Disability></Disabilities></BasicDetails>"
        "<SENhistory>"
        "<SEN><StartDate>2020-09-01</StartDate><SENprovision>Z</SENprovision></SEN>"
        "<SEN><StartDate>2021-09-01</StartDate><SENprovision>K</SENprovision><EndDate>2021-01-01</EndDate></SEN>"
        "<SEN><StartDate>2012-09-01</StartDate><SENprovision>S</SENprovision><EndDate>2014-08-31</EndDate></SEN>"
        "<SENneeds><SENneed><NeedStartDate>2013-01-01</NeedStartDate><SENtypeRank>1</SENtypeRank>"
        "<SENtype>ASD</SENtype></SENneed><SENneed><SENtypeRank>x</SENtypeRank><SENtype>ASD</SENtype>"
        "</SENneed></SENneeds></SENhistory>"
        "<Attendance><YearData><Year>2022</Year><SessionsPossible>100</SessionsPossible>"
        "<SessionsAttended>99</SessionsAttended><SessionsAuthorised>5</SessionsAuthorised>"
        "<SessionsUnauthorised>0</SessionsUnauthorised></YearData>"
        "<YearData><Year>2023</Year><SessionsPossible>10</SessionsPossible></YearData></Attendance>"
        "<Exclusions><Exclusion><LEA>933</LEA><Estab>3321</Estab><StartDate>2023-03-06</StartDate>"
        "<Category>FIXD</Category><ActualSessions>2</ActualSessions><Reason>PD</Reason></Exclusion>"
        "<Exclusion><StartDate>2023-03-07</StartDate><Category>EXPL</Category></Exclusion></Exclusions>"
        "<SchoolHistory><School><LEA>933</LEA><Estab>3321</Estab><EntryDate>2019-09-02</EntryDate></School>"
        "<School><LEA>933</LEA><Estab>7001</Estab><EntryDate>2018-09-02</EntryDate>"
        "<LeavingDate>2017-01-01</LeavingDate></School></SchoolHistory>"
        "<Contacts><Contact><Order>1</Order><Relationship>PAM</Relationship>"
        "<Responsibility>perhaps</Responsibility></Contact></Contacts>"
    )
    result = parse_ctf(ctf(pupil), agency="s", now=NOW)
    found = {(n.ref, n.rule) for n in result.not_taken}
    assert found >= {
        ("Pupil[1]/DOB", "hub.date_format"),
        ("Pupil[1]/Gender", "hub.code_list"),
        ("Pupil[1]/BasicDetails/Disabilities/Disability[2]", "hub.code_list"),
        ("Pupil[1]/SENhistory/SEN[1]/SENprovision", "hub.code_list"),
        ("Pupil[1]/SENhistory/SEN[2]", "hub.dates_in_order"),
        ("Pupil[1]/SENhistory/SENneeds/SENneed[2]/SENtypeRank", "hub.number_format"),
        ("Pupil[1]/Attendance/YearData[1]", "hub.payload"),
        ("Pupil[1]/Attendance/YearData[2]", "hub.required"),
        ("Pupil[1]/Exclusions/Exclusion[2]/Category", "hub.code_list"),
        ("Pupil[1]/SchoolHistory/School[2]", "hub.dates_in_order"),
        ("Pupil[1]/Contacts/Contact[1]/Responsibility", "hub.code_list"),
    }
    refs = by_ref(result)
    # a pre-2014 statement (S) is read as an EHC plan (E), as the v1 upcaster reads it
    assert refs["Pupil[1]/SENhistory/SEN[3]"] == SenStatusRecorded(
        sen_provision="E",
        start_date=date(2012, 9, 1),
        end_date=date(2014, 8, 31),
        needs=(SenNeedRanked(type="ASD", rank=1),),
    )
    identity = refs["Pupil[1]"]
    assert isinstance(identity, PupilIdentified)
    assert (identity.date_of_birth, identity.gender) == (None, None)
    assert counts(result) == {
        "education.pupil_identified": 1,
        "social_care.disability_recorded": 1,
        "education.sen_status_recorded": 1,
        "education.exclusion_recorded": 1,
        "education.placement_recorded": 1,
    }
    disability = next(f for f in result.facts if f.ref.endswith("Disabilities"))
    assert disability.category == "education"
    special = refs["Pupil[1]/SchoolHistory/School[1]"]
    assert isinstance(special, PlacementRecorded)
    assert (special.phase, special.nc_year) == ("primary", "3")
    for n in result.not_taken:  # reasons name elements and rules, never values
        assert "Zzyzxunique" not in f"{n.ref}{n.reason}{n.field}"
        assert "perhaps" not in n.reason and "WHAT" not in n.reason and "2031" not in n.reason


def test_a_date_of_birth_after_the_file_was_produced_is_not_taken() -> None:
    result = parse_ctf(ctf(f"<UPN>{UPN}</UPN><DOB>2024-02-01</DOB>"), agency="s", now=NOW)
    assert [(n.ref, n.rule) for n in result.not_taken] == [("Pupil[1]/DOB", "hub.date_in_future")]
    assert result.facts[0].subject.date_of_birth is None


def test_an_sen_need_without_an_sen_support_or_ehc_record_is_explained() -> None:
    pupil = (
        f"<UPN>{UPN}</UPN><SENhistory><SEN><StartDate>2020-01-01</StartDate><SENprovision>N</SENprovision>"
        "</SEN><SENneeds><SENneed><SENtypeRank>1</SENtypeRank><SENtype>SLD</SENtype></SENneed></SENneeds>"
        "</SENhistory>"
    )
    result = parse_ctf(ctf(pupil), agency="s", now=NOW)
    assert [(n.ref, n.rule) for n in result.not_taken] == [
        ("Pupil[1]/SENhistory/SENneeds/SENneed[1]", "hub.sen_need_without_provision")
    ]


def test_identifiers_are_passed_through_unvalidated() -> None:
    result = parse_ctf(ctf("<UPN>A123456789123</UPN>"), agency="s", now=NOW)
    assert result.facts[0].subject.upn == "A123456789123"  # synthetic, wrong check letter
    assert result.not_taken == []


def test_an_over_long_identifier_rejects_only_that_pupil() -> None:
    result = parse_ctf(ctf("<UPN>" + "9" * 40 + "</UPN>", f"<UPN>{UPN}</UPN>"), agency="s", now=NOW)
    assert [(n.ref, n.rule, n.field) for n in result.not_taken] == [
        ("Pupil[1]", "hub.subject", "UPN")
    ]
    assert [f.ref for f in result.facts] == ["Pupil[2]"]


def test_versions_outside_19_to_21_are_read_with_a_warning() -> None:
    result = parse_ctf(
        ctf(f"<UPN>{UPN}</UPN>", header=HEADER.replace("20.0", "17.0")), agency="s", now=NOW
    )
    assert counts(result) == {"education.pupil_identified": 1}
    assert result.warnings == [
        "CTFversion is missing or outside 19-21: read with the CTF 21 layout"
    ]


def test_phase_and_provision_type_follow_nc_year_then_the_dfe_number_range() -> None:
    assert [phase_for(y, None) for y in ("N1", "R", "6", "7", "11", "12", "X")] == [
        "early_years", "primary", "primary", "secondary", "secondary", "post16", None,
    ]  # fmt: skip
    assert [phase_for(None, e) for e in ("1001", "2500", "4100", "7001", None)] == [
        "early_years", "primary", "secondary", None, None,
    ]  # fmt: skip
    assert [provision_type_for(e) for e in ("7001", "1101", "6001", "3000", "9999")] == [
        "special", "alternative_provision", "independent", "mainstream", None,
    ]  # fmt: skip


# --- no input crashes the adapter --------------------------------------------------------

SMALL = generate_ctf(3, seed=5)


def only_permanent_errors(data: bytes) -> None:
    try:
        result = parse_ctf(data, agency="s", now=NOW)
    except PermanentError as exc:
        assert exc.reason
        return
    assert isinstance(result, AdapterResult)
    for n in result.not_taken:
        assert isinstance(n, NotTaken) and n.reason


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_nothing_but_permanent_errors(data: bytes) -> None:
    only_permanent_errors(data)


@st.composite
def mutated(draw: st.DrawFn, base: bytes = SMALL) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif action == "insert":
            data[at:at] = draw(
                st.sampled_from([b"<", b">", b"&", b"<X>", b"</Pupil>", b"\xff", b"9" * 50])
            )
        else:
            del data[at:]
        if not data:
            break
    return bytes(data)


@given(mutated())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_ctf_raises_nothing_but_permanent_errors(data: bytes) -> None:
    only_permanent_errors(data)


@st.composite
def element_values(draw: st.DrawFn) -> bytes:
    """A well-formed CTF whose leaf values are arbitrary text."""
    root = ET.fromstring(SMALL)  # noqa: S314 - our own synthetic bytes
    leaves = [el for el in root.iter() if len(el) == 0]
    for el in draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=10)):
        el.text = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30))
    return ET.tostring(root)


@given(element_values())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_element_values_are_reported_never_raised(data: bytes) -> None:
    result = parse_ctf(data, agency="s", now=NOW)
    assert counts(result).get("education.pupil_identified", 0) <= 3


def test_every_element_not_read_and_stray_text_get_one_line_each_per_path() -> None:
    pupil = (
        f"<UPN>{UPN}</UPN>stray words<Surname>Example</Surname>"
        "<Address><PostCode>ZZ99 9ZZ</PostCode><Easting>1</Easting><Country>ENG</Country>"
        "<Made><Up>1</Up></Made></Address>"
        "<Contacts><Contact><Surname>Parent</Surname><Gender>F</Gender>"
        "<Responsibility>true</Responsibility></Contact><Contact><Surname>Other</Surname>"
        "<Gender>M</Gender><Responsibility>true</Responsibility></Contact></Contacts>"
    )
    result = parse_ctf(ctf(pupil, pupil), agency="s", now=NOW)
    lines = {n.ref: n for n in result.not_taken if n.rule in ("hub.not_read", "hub.stray_text")}
    assert set(lines) == {
        "Pupil[*]#text",
        "Pupil[*]/Address/Easting",
        "Pupil[*]/Address/Country",
        "Pupil[*]/Address/Made",  # reported once, its children with it
        "Pupil[*]/Contacts/Contact/Gender",  # two contacts, two pupils: one line
    }
    assert lines["Pupil[*]#text"].rule == "hub.stray_text"
    assert "gender" in lines["Pupil[*]/Contacts/Contact/Gender"].reason
    assert all(n.kind == "unsupported" and n.field for n in lines.values())
    for n in result.not_taken:  # reasons never quote a value
        assert "stray words" not in n.reason and "ZZ99" not in n.reason
