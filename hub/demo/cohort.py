"""The demo's synthetic cohort: made-up children, families and practitioners of a made-up
area (Eastbrook, in Exampleshire), drawn the same way for the same seed and day.
`build_cohort(n, seed=..., today=...)` gives each child a valid UPN (check letter as DfE
specifies) and a valid NHS number in the 999 range the NHS keeps for testing, a year
group and a school among three synthetic ones, SEN needs with the conditions and
therapists they bring, parents with parental responsibility, a team of practitioners from
the area's catalogue, a consent story (granted; health refused; social care withdrawn; the
young person's own; not yet asked) and a plan scenario — one stage of the EHC journey,
dated back from `today` by `hub.demo.journeys`. Child 0 has a team of thirty across
education, health, social care and the voluntary sector, like the pathfinder map in
DOMAIN.md. Children's first names come from lists of popular baby names and every other
name from Faker's en_GB provider, so no real person is described; phone numbers are in
Ofcom's drama range, email domains `example.org`, postcodes the ZZ99 pseudo-postcodes. A
UPN must carry an allocated LA number to pass its check, so UPNs use 926 with made-up
establishment numbers and URNs in the unissued 999xxx range; the authority itself is LA 999,
a code no authority has; NHS organisations have made-up ODS codes and practitioners'
registration numbers in forms their regulators do not issue.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from faker import Faker
from stdnum.gb import nhs as stdnum_nhs
from stdnum.gb import upn as stdnum_upn

# --------------------------------------------------------------------------- the area

UPN_LA = "926"
"""The LA number inside each UPN (the check accepts only allocated numbers)."""
LA_CODE = "999"
"""The demo's local authority: its SEN service and children's services."""
TOWN = "Eastbrook"

Channel = Literal["school_mis", "fhir", "social_care_json", "events"]
"""How a practitioner's membership reaches the hub: a school MIS message (staff), a FHIR
CareTeam, the social care JSON form (allocated workers), or the inbound event form."""


@dataclass(frozen=True)
class School:
    agency: str
    """The agency name the school's MIS publishes as (its API key's agency)."""
    name: str
    estab: str
    urn: str
    system: str
    nc_years: tuple[str, ...]

    @property
    def organisation_code(self) -> str:
        return self.urn


@dataclass(frozen=True)
class Agency:
    """A system that publishes to the hub, and the organisation code it sends."""

    agency: str
    name: str
    organisation_code: str
    system: str


PRIMARY_YEARS = ("N1", "N2", "R", "1", "2", "3", "4", "5", "6")
SECONDARY_YEARS = ("7", "8", "9", "10", "11", "12", "13")
SCHOOLS: tuple[School, ...] = (
    School("eastbrook-primary", "Eastbrook Primary School", "2999", "999101",
           "SIMS 7 (synthetic)", PRIMARY_YEARS),
    School("eastbrook-academy", "Eastbrook Academy", "4999", "999102",
           "Arbor (synthetic)", SECONDARY_YEARS),
    School("larkfield-school", "Larkfield Special School", "7999", "999103",
           "Bromcom (synthetic)", ("R", *PRIMARY_YEARS[3:], *SECONDARY_YEARS, "14")),
)  # fmt: skip
COMMUNITY_TRUST = Agency(
    "eastbrook-community-health",
    "Eastbrook Community Health NHS Trust",
    "RZ9",
    "SystmOne (synthetic)",
)
ACUTE_TRUST = Agency(
    "eastbrook-hospitals",
    "Eastbrook Hospitals NHS Foundation Trust",
    "RZ8",
    "Millennium (synthetic)",
)
CHILDRENS_SERVICES = Agency(
    "exampleshire-childrens-services",
    "Exampleshire Children's Services",
    LA_CODE,
    "Liquidlogic (synthetic)",
)
SEN_SERVICE = Agency(
    "exampleshire-send", "Exampleshire SEND Service", LA_CODE, "Synergy (synthetic)"
)
FAMILY_PORTAL = Agency(
    "exampleshire-family-portal",
    "Exampleshire Local Offer family portal",
    LA_CODE,
    "Family portal (synthetic)",
)
CARERS_CENTRE = Agency(
    "eastbrook-carers-centre",
    "Eastbrook Carers and Families Centre",
    "VOL999",
    "CharityLog (synthetic)",
)
GP_PRACTICES = {"Y99901": "Eastbrook Medical Practice", "Y99902": "Larkfield Surgery"}
AGENCIES: tuple[Agency, ...] = (
    COMMUNITY_TRUST, ACUTE_TRUST, CHILDRENS_SERVICES, SEN_SERVICE, FAMILY_PORTAL, CARERS_CENTRE,
)  # fmt: skip
PUBLISHERS: dict[str, Agency | School] = {s.agency: s for s in SCHOOLS} | {
    a.agency: a for a in AGENCIES
}

# --------------------------------------------------------------------------- identifiers


def nhs_number(rng: random.Random) -> str:
    """A valid NHS number in the 999 range the NHS reserves for testing."""
    while True:
        digits = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        if check != 10:
            number = digits + str(0 if check == 11 else check)
            if stdnum_nhs.is_valid(number):
                return number


def make_upn(estab: str, year: int, serial: int) -> str:
    """A permanent UPN: check letter, LA number, establishment, 2-digit year, serial."""
    rest = f"{UPN_LA}{estab}{year % 100:02d}{serial % 1000:03d}"
    return stdnum_upn.calc_check_digit(rest) + rest


# --------------------------------------------------------------------------- practitioners


@dataclass(frozen=True)
class Practitioner:
    """One practitioner: the id the hub will know them by, their role code (the hub's
    controlled vocabulary where it has one), their role in plain words, agency and
    organisation, and how their membership of a child's team reaches the hub."""

    key: str
    practitioner_id: str
    role: str
    title: str
    agency: str
    organisation_code: str
    channel: Channel
    publisher: str
    """The agency name that publishes the membership."""
    local_ref: str
    """The sender's own reference: staff id, worker id or professional registration."""
    given: str
    family: str
    id_system: str | None = None
    snomed: str | None = None
    treatment_function: str | None = None

    @property
    def name(self) -> str:
        """Their name as their agency's system gives it (invented by Faker)."""
        return f"{self.given} {self.family}"

    @property
    def contact(self) -> str:
        """A work email at `example.org` and a number in Ofcom's drama range for Leeds
        (0113 496 0000-0999), both made from the practitioner's id, so stable."""
        number = zlib.crc32(self.practitioner_id.encode()) % 1000
        mailbox = f"{self.given}.{self.family}".lower().replace(" ", "").replace("'", "")
        return f"{mailbox}@example.org, 0113 496 0{number:03d}"


@dataclass(frozen=True)
class Post:
    """A kind of practitioner in the area's catalogue: `count` people of it."""

    key: str
    title: str
    publisher: str
    agency: str
    role: str = ""
    channel: Channel = "events"
    prefix: str = ""
    id_system: str | None = None
    snomed: str | None = None
    function: str | None = None
    count: int = 1
    organisation: str | None = None


_CT, _AT = COMMUNITY_TRUST.agency, ACUTE_TRUST.agency
_CS, _SEN, _VOL = CHILDRENS_SERVICES.agency, SEN_SERVICE.agency, CARERS_CENTRE.agency
POSTS: tuple[Post, ...] = (
    Post("la_sen_officer", "SEN casework officer", _SEN, "local_authority", prefix="SENO", count=2),
    Post("educational_psychologist", "Educational psychologist", _SEN, "education", prefix="EP",
         count=2),
    Post("key_worker", "Key worker", _SEN, "local_authority", prefix="KW", count=2),
    Post("portage_worker", "Portage home visitor", _SEN, "local_authority", prefix="PG"),
    Post("inclusion_officer", "Inclusion officer", _SEN, "local_authority", prefix="INC"),
    Post("school_transport", "School transport officer", _SEN, "local_authority",
         role="school_transport_officer", prefix="TR"),
    Post("paediatrician", "Community paediatrician", _CT, "health", channel="fhir",
         id_system="gmc", snomed="82296001", function="290", count=2),
    Post("speech_and_language_therapist", "Speech and language therapist", _CT, "health",
         channel="fhir", prefix="SL", id_system="hcpc", snomed="159026005", function="652",
         count=2),
    Post("occupational_therapist", "Occupational therapist", _CT, "health", channel="fhir",
         prefix="OT", id_system="hcpc", snomed="80546007", function="651", count=2),
    Post("physiotherapist", "Physiotherapist", _CT, "health", channel="fhir", prefix="PH",
         id_system="hcpc", snomed="36682004", function="650", count=2),
    Post("school_nurse", "School nurse", _CT, "health", channel="fhir", id_system="nmc", count=2),
    Post("health_visitor", "Health visitor", _CT, "health", channel="fhir", id_system="nmc"),
    Post("continence_adviser", "Continence nurse adviser", _CT, "health", channel="fhir",
         id_system="nmc"),
    Post("dentist", "Community dentist", _CT, "health", channel="fhir", id_system="gdc"),
    Post("gp", "General practitioner", _CT, "health", channel="fhir", id_system="gmc",
         snomed="62247001", organisation="Y99901"),
    Post("gp", "General practitioner", _CT, "health", channel="fhir", id_system="gmc",
         snomed="62247001", organisation="Y99902"),
    Post("orthopaedic_surgeon", "Consultant orthopaedic surgeon", _AT, "health", channel="fhir",
         id_system="gmc", function="110"),
    Post("scoliosis_nurse", "Scoliosis clinical nurse specialist", _AT, "health", channel="fhir",
         id_system="nmc", function="110"),
    Post("orthotist", "Orthotist", _AT, "health", channel="fhir", prefix="PO", id_system="hcpc",
         function="658"),
    Post("ophthalmologist", "Consultant ophthalmologist", _AT, "health", channel="fhir",
         id_system="gmc", function="130"),
    Post("neurologist", "Consultant paediatric neurologist", _AT, "health", channel="fhir",
         id_system="gmc", function="421"),
    Post("wheelchair_services", "Wheelchair services therapist", _AT, "health", channel="fhir",
         prefix="OT", id_system="hcpc"),
    Post("social_worker", "Social worker (disabled children's team)", _CS, "social_care",
         channel="social_care_json", prefix="SW", count=3),
    Post("social_care_ot", "Occupational therapist (social care)", _CS, "social_care",
         role="occupational_therapist", channel="social_care_json", prefix="SCOT"),
    Post("short_breaks", "Short breaks and family support worker", _CS, "social_care",
         role="short_breaks_worker", prefix="SB"),
    Post("personal_assistant", "Personal assistant (direct payment)", _CS, "social_care",
         prefix="PA"),
    Post("benefits_adviser", "Benefits adviser", _VOL, "voluntary", prefix="BA"),
    Post("parent_carer_forum", "Parent carer forum link worker", _VOL, "voluntary",
         role="voluntary_sector_worker", prefix="PCF"),
    Post("motability", "Motability and mobility adviser", _VOL, "voluntary",
         role="mobility_adviser", prefix="MOB"),
    *(p for s in SCHOOLS for p in (
        Post(f"senco:{s.agency}", "SENCo", s.agency, "education", role="senco",
             channel="school_mis", prefix="S"),
        Post(f"teacher:{s.agency}", "Class teacher", s.agency, "education", role="teacher",
             channel="school_mis", prefix="T", count=4),
        Post(f"head:{s.agency}", "Head teacher", s.agency, "education", role="head_teacher",
             prefix="H"),
    )),
)  # fmt: skip
"""The area's practitioners. A `role` left empty is the key; codes outside the policy's
vocabulary (head_teacher, portage_worker, ...) are shown by the team view in words."""

ID_SYSTEMS = {
    "gmc": "https://fhir.hl7.org.uk/Id/gmc-number",
    "nmc": "https://fhir.hl7.org.uk/Id/nmc-number",
    "hcpc": "https://fhir.hl7.org.uk/Id/hcpc-number",
    "gdc": "https://fhir.hl7.org.uk/Id/gdc-number",
}


def _local_ref(post: Post, serial: int, number: int) -> str:
    """The registration number or staff reference. Registration numbers are in forms the
    regulators do not issue (a GMC number has no letter; X is no month in an NMC PIN, nor
    a digit in an HCPC or GDC number), so none can be a real professional's."""
    if post.id_system == "gmc":
        return f"C99{serial:05d}"
    if post.id_system == "nmc":
        return f"99X{serial:04d}E"
    if post.id_system == "gdc":
        return f"X{serial:05d}"
    if post.id_system == "hcpc":
        return f"{post.prefix}X{serial:04d}"
    return f"{post.prefix}{number:02d}"


def _organisation(post: Post) -> str:
    if post.organisation is not None:
        return post.organisation
    publisher = PUBLISHERS[post.publisher]
    return publisher.organisation_code


def catalogue(fake: Faker) -> dict[str, list[Practitioner]]:
    """Every practitioner of the area, by post key."""
    out: dict[str, list[Practitioner]] = {}
    serial = 0
    for post in POSTS:
        for _ in range(post.count):
            serial += 1
            group = out.setdefault(post.key, [])
            local = _local_ref(post, serial, len(group) + 1)
            org = _organisation(post)
            if post.channel == "school_mis":
                pid = f"school:{org}:{local}"
            elif post.channel == "social_care_json":
                pid = f"la:{LA_CODE}:{local}"
            elif post.id_system is not None:
                pid = f"{post.id_system}:{local}"
            else:
                pid = f"{post.publisher}:{local}"
            group.append(
                Practitioner(
                    key=post.key, practitioner_id=pid, role=post.role or post.key,
                    title=post.title, agency=post.agency, organisation_code=org,
                    channel=post.channel, publisher=post.publisher, local_ref=local,
                    given=fake.first_name(), family=fake.last_name(), id_system=post.id_system,
                    snomed=post.snomed, treatment_function=post.function,
                )
            )  # fmt: skip
    return out


BIG_TEAM: tuple[str, ...] = (
    # education and the local authority (8)
    "senco", "teacher", "head", "educational_psychologist", "la_sen_officer",
    "inclusion_officer", "school_transport", "portage_worker",
    # health (15)
    "paediatrician", "health_visitor", "gp", "school_nurse", "physiotherapist",
    "occupational_therapist", "speech_and_language_therapist", "continence_adviser", "dentist",
    "orthopaedic_surgeon", "scoliosis_nurse", "orthotist", "ophthalmologist", "neurologist",
    "wheelchair_services",
    # social care (4)
    "social_worker", "social_care_ot", "short_breaks", "personal_assistant",
    # voluntary sector (3)
    "benefits_adviser", "parent_carer_forum", "motability",
)  # fmt: skip
"""The thirty around child 0, after the pathfinder map in DOMAIN.md."""

# --------------------------------------------------------------------------- children

Scenario = Literal[
    "big_team", "requested", "decision_overdue", "advice_on_track", "advice_overdue", "paused",
    "draft", "final", "final_late", "review_due", "review_overdue", "phase_transfer",
    "post16_transfer", "no_plan",
]  # fmt: skip
ROTATION: tuple[Scenario, ...] = (
    "advice_overdue", "requested", "paused", "draft", "final", "review_due", "phase_transfer",
    "decision_overdue", "advice_on_track", "final_late", "review_overdue", "post16_transfer",
    "no_plan",
)  # fmt: skip
"""Plan stages after child 0, dealt out in this order: each appears once in the first 14
children, three times in 40."""
YEAR_GROUPS: dict[Scenario, tuple[str, ...]] = {
    "big_team": ("4",), "phase_transfer": ("6",), "post16_transfer": ("11",),
    "requested": ("N2", "1", "-"), "decision_overdue": ("2", "5", "9"),
    "advice_on_track": ("R", "4", "7"), "advice_overdue": ("3", "5", "8"),
    "paused": ("2", "4", "10"), "draft": ("1", "5", "9"), "final": ("3", "13", "7"),
    "final_late": ("2", "8", "5"), "review_due": ("4", "9", "5"),
    "review_overdue": ("6", "10", "3"), "no_plan": ("2", "5", "8"),
}  # fmt: skip
"""Year groups per scenario, by round; "-" is a two-year-old not yet at school. Phase
transfer children are in Year 6 and Year 11 so that their transfer reviews fall due
this school year."""

ConsentStory = Literal[
    "granted", "refused_health", "withdrawn_social_care", "young_person", "none"
]  # fmt: skip
SocialCare = Literal["none", "cin_census", "case_system"]

GIRLS = (
    "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow", "Rosie",
    "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella", "Evelyn",
    "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda", "Maya", "Aisha", "Zara",
)  # fmt: skip
BOYS = (
    "Noah", "Muhammad", "George", "Oliver", "Leo", "Arthur", "Oscar", "Theodore", "Freddie",
    "Theo", "Harry", "Archie", "Henry", "Jack", "Alfie", "Finley", "Charlie", "Jacob", "Thomas",
    "Lucas", "Isaac", "Tommy", "Ethan", "Max", "Albie", "Reuben", "Rory", "Kai", "Yusuf", "Ibrahim",
)  # fmt: skip
"""Children's first names, from lists of popular baby names."""
INTERESTS = (
    "trains", "swimming", "drawing", "dinosaurs", "music", "football", "the trampoline",
    "cooking with Nan", "Lego", "animals", "being outside", "dancing", "computer games",
    "horse riding", "books about space",
)  # fmt: skip
ASPIRATIONS = (
    "to have a friend to play with at break time", "to read a book on my own",
    "to go to the same school as my brother", "to be a vet", "to travel on the bus by myself",
    "to join a football club", "to work in a bakery", "to learn to swim without armbands",
    "to tell people what I need", "to go to college",
)  # fmt: skip


@dataclass(frozen=True)
class Condition:
    snomed: str
    display: str


_DELAY = Condition("248290002", "Developmental delay")
_CP = Condition("128188000", "Cerebral palsy")
_EPILEPSY = Condition("84757009", "Epilepsy")
_VISION = Condition("397540003", "Visual impairment")
NEEDS: dict[str, tuple[tuple[Condition, ...], str | None, tuple[str, ...]]] = {
    # SEN need type: (conditions health records, CTF/CIN disability code, therapists)
    "ASD": ((Condition("35919005", "Autism spectrum disorder"),), "AUT",
            ("speech_and_language_therapist", "occupational_therapist")),
    "SLCN": ((_DELAY,), "COMM", ("speech_and_language_therapist",)),
    "MLD": ((_DELAY,), "LD", ()),
    "SLD": ((Condition("41040004", "Down syndrome"),), "LD",
            ("speech_and_language_therapist", "physiotherapist")),
    "PMLD": ((_CP, _EPILEPSY), "LD",
             ("physiotherapist", "occupational_therapist", "speech_and_language_therapist")),
    "PD": ((_CP,), "MOB", ("physiotherapist", "occupational_therapist")),
    "HI": ((Condition("15188001", "Hearing loss"),), "HEAR", ()),
    "VI": ((_VISION,), "VIS", ()),
    "SEMH": ((Condition("406506008", "Attention deficit hyperactivity disorder"),), "BEH", ()),
    "SPLD": ((), None, ()),
}  # fmt: skip


@dataclass(frozen=True)
class Parent:
    ref: str
    """The family's reference in the hub (an id, never a name)."""
    relationship: str
    """DfE contact relationship code: PAM mother, PAF father, CAM/CAF carer (female/male),
    as the team view reads them."""
    title: str
    forename: str
    surname: str
    phone: str
    email: str


@dataclass
class Child:
    index: int
    given: str
    family: str
    sex: Literal["M", "F"]
    date_of_birth: date
    nc_year: str | None
    school: School | None
    upn: str | None
    nhs_number: str
    la_child_id: str | None
    scenario: Scenario
    consent: ConsentStory
    needs: list[str]
    sen_start: date
    house: int
    street: str
    postcode: str
    parents: list[Parent]
    social_care: SocialCare
    safeguarding_enquiry: bool = False
    did_not_attend: bool = False
    interests: list[str] = field(default_factory=list)
    aspirations: list[str] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    team: list[Practitioner] = field(default_factory=list)

    @property
    def reference(self) -> str:
        """How the demo names the child in its own output (never by name)."""
        return f"demo-child-{self.index:03d}"

    @property
    def subject(self) -> dict[str, Any]:
        """The child's strong identifiers and date of birth, as the LA's SEN case system
        holds them (the inbound event form's `subject`)."""
        out: dict[str, Any] = {
            "nhs_number": self.nhs_number,
            "date_of_birth": self.date_of_birth.isoformat(),
        }
        if self.upn:
            out["upn"] = self.upn
        return out

    @property
    def disabilities(self) -> list[str]:
        return sorted({code for n in self.needs if (code := NEEDS[n][1])})

    def members(self, channel: Channel) -> list[Practitioner]:
        return [p for p in self.team if p.channel == channel]

    def member(self, key: str) -> Practitioner | None:
        """The team member in post `key` (`senco`, `teacher`, `head` match any school)."""
        return next((p for p in self.team if p.key.split(":")[0] == key), None)


@dataclass
class Cohort:
    seed: int
    today: date
    children: list[Child]
    practitioners: dict[str, list[Practitioner]]

    @property
    def big_team_child(self) -> Child:
        return self.children[0]

    def at_school(self, school: School) -> list[Child]:
        return [c for c in self.children if c.school is school]


def academic_year_start(today: date) -> int:
    """The calendar year the current school year started (1 September)."""
    return today.year if today.month >= 9 else today.year - 1


def _date_of_birth(rng: random.Random, nc_year: str, today: date) -> date:
    """A birthday inside the chronological year group `nc_year` this school year."""
    offset = {"N1": -2, "N2": -1, "R": 0}.get(nc_year)
    reception = academic_year_start(today) - (offset if offset is not None else int(nc_year))
    return date(reception - 5, 9, 1) + timedelta(days=rng.randrange(365))


def _school_for(nc_year: str | None, needs: list[str]) -> School | None:
    if nc_year is None:
        return None
    special = SCHOOLS[2]
    if needs[0] in ("SLD", "PMLD", "PD") and nc_year in special.nc_years:
        return special
    return next((s for s in SCHOOLS[:2] if nc_year in s.nc_years), special)


def _social_care(index: int, scenario: Scenario) -> SocialCare:
    if scenario == "big_team" or index % 4 == 1:
        return "cin_census" if index % 8 == 5 else "case_system"
    if index % 12 == 3:
        return "cin_census"
    return "none"


def _consent_story(
    index: int, scenario: Scenario, nc_year: str | None, social: SocialCare
) -> ConsentStory:
    if nc_year in ("12", "13", "14"):
        return "young_person"
    if index == 0:
        return "granted"
    if nc_year is None:
        return "none"
    if social != "none" and index % 3 == 0:
        return "withdrawn_social_care"
    if index % 11 == 4:
        return "refused_health"
    return "granted"


def build_cohort(n_children: int = 40, *, seed: int = 7, today: date | None = None) -> Cohort:
    """The same synthetic cohort for the same (n_children, seed, today)."""
    if n_children < 1:
        raise ValueError("the cohort needs at least one child")
    today = today or datetime.now(UTC).date()
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    posts = catalogue(fake)
    streets = [fake.street_name() for _ in range(12)]
    children: list[Child] = []
    serials: dict[str, int] = {}
    for index in range(n_children):
        scenario: Scenario = "big_team" if index == 0 else ROTATION[(index - 1) % len(ROTATION)]
        years = YEAR_GROUPS[scenario]
        year = years[((index - 1) // len(ROTATION)) % len(years)]
        nc_year = None if year == "-" else year
        if nc_year is None:
            dob = today - timedelta(days=730 + rng.randrange(200))
        else:
            dob = _date_of_birth(rng, nc_year, today)
        if scenario == "big_team":
            needs = ["PD", "SLCN", "VI"]
        else:
            primary = rng.choice(sorted(NEEDS))
            others = [n for n in ("SLCN", "SEMH", "MLD") if n != primary]
            needs = [primary, *rng.sample(others, rng.randint(0, 1))]
        school = _school_for(nc_year, needs)
        upn = None
        if school is not None:
            serials[school.estab] = serials.get(school.estab, 0) + 1
            upn = make_upn(school.estab, dob.year + 5, serials[school.estab])
        sex: Literal["M", "F"] = "F" if rng.random() < 0.4 else "M"
        family = fake.last_name()
        social = _social_care(index, scenario)
        child = Child(
            index=index, given=rng.choice(GIRLS if sex == "F" else BOYS), family=family, sex=sex,
            date_of_birth=dob, nc_year=nc_year, school=school, upn=upn, nhs_number=nhs_number(rng),
            la_child_id=f"EX{100000 + index * 37:06d}" if social != "none" else None,
            scenario=scenario, consent=_consent_story(index, scenario, nc_year, social),
            needs=needs,
            sen_start=max(dob + timedelta(days=2 * 365 + 100),
                          today - timedelta(days=900 + rng.randrange(400))),
            house=rng.randint(1, 180), street=rng.choice(streets),
            postcode=f"ZZ99 {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXY')}Z",
            parents=_parents(fake, rng, index, family), social_care=social,
            did_not_attend=index % 5 == 2,
            interests=rng.sample(INTERESTS, 3), aspirations=rng.sample(ASPIRATIONS, 2),
        )  # fmt: skip
        child.conditions = _conditions(child)
        child.team = _team(child, posts, rng)
        children.append(child)
    census = [c for c in children if c.social_care == "cin_census"]
    if census:
        census[-1].safeguarding_enquiry = True
    return Cohort(seed, today, children, posts)


def _conditions(child: Child) -> list[Condition]:
    if child.scenario == "big_team":
        return [_CP, Condition("298382003", "Scoliosis deformity of spine"), _EPILEPSY, _VISION]
    found = {c.snomed: c for need in child.needs for c in NEEDS[need][0]}
    return list(found.values())


def _parents(fake: Faker, rng: random.Random, index: int, family: str) -> list[Parent]:
    kinds = [("PAM", "Ms"), ("PAF", "Mr")] if rng.random() < 0.7 else [("PAM", "Mrs")]
    if index % 17 == 9:
        kinds = [("CAM", "Mrs"), ("CAF", "Mr")]  # kinship carers
    out = []
    for k, (relationship, title) in enumerate(kinds, start=1):
        female = relationship in ("PAM", "CAM")
        forename = fake.first_name_female() if female else fake.first_name_male()
        surname = family if k == 1 or rng.random() < 0.6 else fake.last_name()
        out.append(
            Parent(
                ref=f"parent-{index:03d}-{k}", relationship=relationship, title=title,
                forename=forename, surname=surname, phone=f"07700 900{rng.randrange(1000):03d}",
                email=f"{forename.lower()}.{surname.lower().replace(' ', '')}@example.org",
            )
        )  # fmt: skip
    return out


def _team(
    child: Child, posts: dict[str, list[Practitioner]], rng: random.Random
) -> list[Practitioner]:
    """The practitioners around a child: the thirty for child 0, otherwise those the
    child's school, age, needs, plan and social care involvement call for."""
    school = child.school.agency if child.school else None

    def one(key: str) -> Practitioner:
        group = posts[f"{key}:{school}" if key in ("senco", "teacher", "head") else key]
        return group[0] if child.scenario == "big_team" else group[child.index % len(group)]

    if child.scenario == "big_team":
        return [one(key) for key in BIG_TEAM]
    keys = ["senco", "teacher"] if school else []
    keys.append("la_sen_officer")
    if child.nc_year in (None, "N1", "N2"):
        keys += ["health_visitor", "portage_worker"]
    elif child.scenario != "no_plan":
        keys.append("educational_psychologist")
    therapists = [t for need in child.needs for t in NEEDS[need][2]]
    if child.scenario != "no_plan" or therapists:
        keys.append("paediatrician")
    keys += list(dict.fromkeys(therapists))
    if child.nc_year not in (None, "N1", "N2"):
        keys.append("school_nurse")
    if child.social_care == "case_system":
        keys.append("social_worker")
    if child.scenario in ("final", "review_due", "phase_transfer", "post16_transfer"):
        keys.append("key_worker")
    team = [one(key) for key in keys]
    team.append(rng.choice(posts["gp"]))
    return team
