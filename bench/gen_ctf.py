"""Synthetic DfE Common Transfer Files for the CTF adapter benchmark and tests.

`generate_ctf(n_pupils, seed)` writes a CTF 21 file (SIMS-like layout) of `n_pupils`
pupils as UTF-8 bytes: each has a valid UPN (check letter computed as DfE specifies; one in
ten also a temporary former UPN), made-up names, date of birth and address, a school
history of one or two schools, one to three years of attendance, two or three contacts
(the first two with parental responsibility), and for some an SEN history (SEN support or
an EHC plan, with ranked needs), disabilities, an exclusion and free school meal history
(which the hub does not take). `expected_facts(n_pupils, seed)` gives the fact counts per
event type that parsing must yield. Nothing here is real data.

`python -m bench.gen_ctf [N]` measures `parse_ctf` facts/s and pupils/s on an N-pupil file
(default 1000), and `parse_cin` on the 332-child CIN sample when ../shared/samples is
present, each beside a raw ElementTree and lxml parse of the same bytes.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ0123456789"
GIVEN = [
    "Amara",
    "Ben",
    "Chloe",
    "Dev",
    "Ella",
    "Finn",
    "Grace",
    "Harun",
    "Isla",
    "Jonah",
    "Kit",
    "Lena",
]
FAMILY = [
    "Testwell",
    "Sampleby",
    "Mockford",
    "Dummer",
    "Fakeham",
    "Placeley",
    "Synthe",
    "Exampleton",
]
STREETS = ["Acacia Avenue", "Test Lane", "Sample Road", "Mock Close", "Specimen Way"]
NEEDS = ["SLCN", "SPLD", "ASD", "SEMH", "MLD", "PD", "HI", "VI"]
DISABILITIES = ["COMM", "LD", "AUT", "MOB", "HEAR", "VIS", "BEH"]
SCHOOL = ("933", "3321", "113799", "Example CE Primary")
PREVIOUS = [("880", "2030", "Sample Community Primary"), ("933", "2451", "Mockton Infant School")]


def upn_check_letter(rest: str) -> str:
    """The check letter of a UPN from its other 12 characters (DfE: sum of value x
    position over positions 2-13, mod 23, indexing ABCDEFGHJKLMNPQRTUVWXYZ)."""
    return _ALPHABET[sum(i * _ALPHABET.index(c) for i, c in enumerate(rest, 2)) % 23]


def make_upn(la: str, estab: str, year: int, serial: int, temporary: bool = False) -> str:
    tail = (
        f"{serial % 100:02d}{'ABCDEFGHJKLMNPQRTUVWXYZ'[serial % 23]}"
        if temporary
        else f"{serial:03d}"
    )
    rest = f"{la}{estab}{year:02d}{tail}"
    return upn_check_letter(rest) + rest


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _pupil(rng: random.Random, i: int, counts: Counter[str]) -> str:
    la, estab, urn, school_name = SCHOOL
    dob = date(2008, 9, 1) + timedelta(days=rng.randrange(0, 365 * 10))
    nc_year = max(0, min(11, 2023 - dob.year - 5))
    upn = make_upn(la, estab, 12 + (i // 1000) % 80, i % 1000)
    parts = [
        _el("UPN", upn),
        _el("Surname", rng.choice(FAMILY)),
        _el("Forename", rng.choice(GIVEN)),
        _el("DOB", dob.isoformat()),
        _el("Gender", rng.choice("MF")),
    ]
    counts["education.pupil_identified"] += 1
    basic = []
    if i % 10 == 0:
        basic.append(_el("FormerUPN", make_upn(la, estab, 11, i % 1000, temporary=True)))
    basic += [_el("PreferredForename", rng.choice(GIVEN)), _el("NCyearActual", nc_year or "R")]
    basic.append(_el("Ethnicity", "NOBT"))
    if i % 8 == 3:
        codes = rng.sample(DISABILITIES, rng.randint(1, 2))
        basic.append(
            "<Disabilities>" + "".join(_el("Disability", c) for c in codes) + "</Disabilities>"
        )
        counts["social_care.disability_recorded"] += 1
    basic.append(_el("EnrolStatus", "C"))
    parts.append("<BasicDetails>" + "".join(basic) + "</BasicDetails>")

    if i % 7 == 0:
        parts.append(
            "<FSMhistory><FSMinstance><FSMstartDate>2021-09-01</FSMstartDate>"
            "<UKcountry>ENG</UKcountry></FSMinstance></FSMhistory>"
        )
    if i % 3 == 0:
        start = date(2019, 9, 1) + timedelta(days=rng.randrange(0, 700))
        needs = rng.sample(NEEDS, rng.randint(1, 2))
        need_xml = "".join(
            f"<SENneed>{_el('NeedStartDate', start.isoformat())}{_el('SENtypeRank', r + 1)}"
            f"{_el('SENtype', t)}</SENneed>"
            for r, t in enumerate(needs)
        )
        if i % 2 == 0:
            sen = f"<SEN>{_el('StartDate', start.isoformat())}{_el('SENprovision', 'E')}</SEN>"
            counts["education.sen_status_recorded"] += 1
        else:
            end = start + timedelta(days=rng.randrange(100, 500))
            sen = (
                f"<SEN>{_el('StartDate', (end + timedelta(days=1)).isoformat())}"
                f"{_el('SENprovision', 'N')}</SEN>"
                f"<SEN>{_el('StartDate', start.isoformat())}{_el('SENprovision', 'K')}"
                f"{_el('EndDate', end.isoformat())}</SEN>"
            )
            counts["education.sen_status_recorded"] += 2
        parts.append(f"<SENhistory>{sen}<SENneeds>{need_xml}</SENneeds></SENhistory>")
    parts.append(
        "<Address><BS7666Address>"
        f"{_el('PAON', rng.randint(1, 200))}{_el('Street', rng.choice(STREETS))}"
        f"{_el('Town', 'Testbury')}"
        f"</BS7666Address>{_el('PostCode', f'ZZ99 {rng.randint(1, 9)}ZZ')}</Address>"
    )
    contacts = []
    for order in range(1, rng.randint(2, 3) + 1):
        responsible = order <= 2
        contacts.append(
            "<Contact>"
            f"{_el('Order', order)}{_el('Surname', rng.choice(FAMILY))}"
            f"{_el('Forename', rng.choice(GIVEN))}"
            f"{_el('Relationship', ['PAM', 'PAF', 'OTH'][order - 1])}"
            f"{_el('Responsibility', 'true' if responsible else 'false')}"
            "<Address><AddressAsPupil>true</AddressAsPupil></Address>"
            f"<Phones><Phone>{_el('TelephoneType', 'M')}"
            f"{_el('PhoneNo', f'07700 900{rng.randint(0, 999):03d}')}</Phone></Phones></Contact>"
        )
        if responsible:
            counts["family.contact_recorded"] += 1
    parts.append("<Contacts>" + "".join(contacts) + "</Contacts>")
    years = []
    for year in range(2023 - rng.randint(1, 3) + 1, 2024):
        possible = rng.randint(300, 380)
        authorised = rng.randint(0, 20)
        unauthorised = rng.randint(0, 6)
        years.append(
            "<YearData>"
            f"{_el('Year', year)}{_el('LEA', la)}{_el('Estab', estab)}{_el('URN', urn)}"
            f"{_el('SchoolName', school_name)}{_el('SessionsPossible', possible)}"
            f"{_el('SessionsAuthorised', authorised)}"
            f"{_el('SessionsAttended', possible - authorised - unauthorised)}"
            f"{_el('SessionsUnauthorised', unauthorised)}"
            "</YearData>"
        )
        counts["education.attendance_recorded"] += 1
    parts.append("<Attendance>" + "".join(years) + "</Attendance>")
    if i % 20 == 5:
        parts.append(
            "<Exclusions><Exclusion>"
            f"{_el('LEA', la)}{_el('Estab', estab)}{_el('StartDate', '2023-03-06')}"
            f"{_el('Category', 'FIXD')}{_el('ActualSessions', 4)}{_el('Reason', 'PD')}"
            "</Exclusion></Exclusions>"
        )
        counts["education.exclusion_recorded"] += 1
    entry = date(2019, 9, 2) + timedelta(days=rng.randrange(0, 900))
    schools = [
        f"<School>{_el('LEA', la)}{_el('Estab', estab)}{_el('URN', urn)}"
        f"{_el('SchoolName', school_name)}{_el('EntryDate', entry.isoformat())}</School>"
    ]
    if i % 4 == 1:
        prev_la, prev_estab, prev_name = rng.choice(PREVIOUS)
        schools.append(
            f"<School>{_el('LEA', prev_la)}{_el('Estab', prev_estab)}{_el('SchoolName', prev_name)}"
            f"{_el('EntryDate', '2017-09-04')}"
            f"{_el('LeavingDate', (entry - timedelta(days=3)).isoformat())}"
            f"{_el('LeavingReason', 'IM')}</School>"
        )
    counts["education.placement_recorded"] += len(schools)
    parts.append("<SchoolHistory>" + "".join(schools) + "</SchoolHistory>")
    return "<Pupil>" + "".join(parts) + "</Pupil>"


def _generate(n_pupils: int, seed: int) -> tuple[bytes, Counter[str]]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    la, estab, urn, school_name = SCHOOL
    header = (
        "<Header><DocumentName>Common Transfer File</DocumentName><CTFversion>21.0</CTFversion>"
        "<DateTime>2024-07-19T15:30:00</DateTime><DocumentQualifier>full</DocumentQualifier>"
        "<SupplierID>SYNTH</SupplierID><SourceSchool>"
        f"{_el('LEA', la)}{_el('Estab', estab)}{_el('URN', urn)}{_el('SchoolName', school_name)}"
        "<AcademicYear>2023</AcademicYear></SourceSchool>"
        "<DestSchool><LEA>838</LEA><Estab>4512</Estab></DestSchool></Header>"
    )
    pupils = "".join(_pupil(rng, i, counts) for i in range(n_pupils))
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<CTfile>{header}<CTFpupilData>{pupils}</CTFpupilData></CTfile>\n"
    )
    return text.encode("utf-8"), counts


def generate_ctf(n_pupils: int, seed: int) -> bytes:
    """A synthetic CTF of `n_pupils` pupils, the same bytes for the same arguments."""
    return _generate(n_pupils, seed)[0]


def expected_facts(n_pupils: int, seed: int) -> dict[str, int]:
    """Facts per event type that `parse_ctf` must yield from `generate_ctf(n_pupils, seed)`."""
    return dict(_generate(n_pupils, seed)[1])


def _best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if rounds < 3 else statistics.median(times)


def measure(n_pupils: int = 1000, rounds: int = 7) -> dict[str, float]:
    """Facts/s and pupils/s of `parse_ctf` (and of `parse_cin` on the 332-child sample when
    present) beside ElementTree's and lxml's bare parse of the same bytes."""
    import xml.etree.ElementTree as ET

    from lxml import etree  # type: ignore[import-untyped]

    from hub.adapters.cin import parse_cin
    from hub.adapters.ctf import parse_ctf

    out: dict[str, float] = {}
    data = generate_ctf(n_pupils, seed=7)
    facts = len(parse_ctf(data, agency="bench").facts)
    ours = _best(lambda: parse_ctf(data, agency="bench"), rounds)
    et = _best(lambda: ET.fromstring(data), rounds)  # noqa: S314 - our own synthetic bytes
    lx = _best(lambda: etree.fromstring(data), rounds)
    out.update(
        ctf_facts=facts,
        ctf_facts_per_s=facts / ours,
        ctf_pupils_per_s=n_pupils / ours,
        ctf_elementtree_pupils_per_s=n_pupils / et,
        ctf_lxml_pupils_per_s=n_pupils / lx,
        ctf_bytes=len(data),
    )
    sample = (
        Path(__file__).resolve().parents[2] / "shared" / "samples" / "cin" / "fake_CIN_data.xml"
    )
    if sample.is_file():
        cin = sample.read_bytes()
        facts = len(parse_cin(cin, agency="bench").facts)
        ours = _best(lambda: parse_cin(cin, agency="bench"), rounds)
        et = _best(lambda: ET.fromstring(cin), rounds)  # noqa: S314 - a published sample file
        lx = _best(lambda: etree.fromstring(cin), rounds)
        out.update(
            cin_facts=facts,
            cin_facts_per_s=facts / ours,
            cin_children_per_s=332 / ours,
            cin_elementtree_children_per_s=332 / et,
            cin_lxml_children_per_s=332 / lx,
        )
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for name, value in measure(n).items():
        print(f"{name:34} {value:14,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
