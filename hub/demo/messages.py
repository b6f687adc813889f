"""What each agency system around the demo cohort sends the hub, rendered in its own format.
Schools send a DfE Common Transfer File (CTF 21 XML, SIMS-like layout: identity, SEN
history with ranked needs, disabilities, attendance, school history, contacts with
parental responsibility) and the hub's school MIS JSON form naming the staff who work
with each pupil; the NHS trusts send FHIR R4 collection Bundles (Patient with NHS number,
Conditions, Encounters — a did-not-attend among them — and a CareTeam of Practitioners
and PractitionerRoles with ODS-coded Organizations), and EHC advice as DocumentReferences
naming the advice request and the plan; children's services send a CIN census return and
the hub's social care JSON form (open episodes, allocated workers); the family portal
sends each family's own views (section A); and anything a system holds outside those
formats (the LA's own staff, short breaks, the voluntary sector, plan contents) goes in
the inbound event form of `POST /ingest/events`. Every function is pure: the same cohort
gives the same bytes.
"""

from __future__ import annotations

import random
import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import orjson

from hub.demo.cohort import (
    ACUTE_TRUST,
    CHILDRENS_SERVICES,
    COMMUNITY_TRUST,
    GP_PRACTICES,
    ID_SYSTEMS,
    LA_CODE,
    TOWN,
    UPN_LA,
    Agency,
    Child,
    Cohort,
    Practitioner,
    School,
    academic_year_start,
)

# --------------------------------------------------------------------------- schools


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(map(str, parts)))  # noqa: S311 - synthetic data, not secrets


def entry_date(child: Child, school: School, today: date) -> date:
    """1 September of the year the child joined this school."""
    year0 = academic_year_start(today)
    if child.nc_year in ("N1", "N2", "R"):
        return date(year0, 9, 1)
    year = int(child.nc_year or "0")
    first = 7 if school.nc_years[0] == "7" else 0
    return date(year0 - max(min(year - first, 4), 0), 9, 1)


def sen_history(child: Child, final_on: date | None) -> list[tuple[str, date, date | None]]:
    """(provision, start, end) in the school's SEN history: SEN support, then an EHC plan
    from the day the final plan was issued."""
    if final_on is None:
        return [("K", child.sen_start, None)]
    support_start = min(child.sen_start, final_on - timedelta(days=200))
    return [("E", final_on, None), ("K", support_start, final_on - timedelta(days=1))]


def _pupil(cohort: Cohort, child: Child, school: School, final_on: date | None) -> str:
    year0 = academic_year_start(cohort.today)
    basic = [_el("PreferredForename", child.given), _el("NCyearActual", child.nc_year)]
    if child.disabilities:
        codes = "".join(_el("Disability", d) for d in child.disabilities)
        basic.append(f"<Disabilities>{codes}</Disabilities>")
    basic.append(_el("EnrolStatus", "C"))
    sen = "".join(
        f"<SEN>{_el('StartDate', start.isoformat())}{_el('SENprovision', code)}"
        + (_el("EndDate", end.isoformat()) if end else "")
        + "</SEN>"
        for code, start, end in sen_history(child, final_on)
    )
    needs = "".join(
        f"<SENneed>{_el('NeedStartDate', child.sen_start.isoformat())}"
        f"{_el('SENtypeRank', rank)}{_el('SENtype', need)}</SENneed>"
        for rank, need in enumerate(child.needs, start=1)
    )
    contacts = "".join(
        f"<Contact>{_el('Order', k)}{_el('Title', p.title)}{_el('Surname', p.surname)}"
        f"{_el('Forename', p.forename)}{_el('Relationship', p.relationship)}"
        f"{_el('Responsibility', 'true')}"
        "<Address><AddressAsPupil>true</AddressAsPupil></Address>"
        f"<Phones><Phone>{_el('TelephoneType', 'M')}{_el('PhoneNo', p.phone)}</Phone></Phones>"
        f"{_el('Email', p.email)}</Contact>"
        for k, p in enumerate(child.parents, start=1)
    )
    entry = entry_date(child, school, cohort.today)
    attendance = []
    for year in range(max(year0 - 2, entry.year), year0):
        rng = _rng(cohort.seed, "attendance", child.index, year)
        authorised = rng.randint(4, 40 if child.needs[0] in ("PMLD", "PD") else 22)
        unauthorised = rng.randint(0, 12 if child.needs[0] == "SEMH" else 4)
        attendance.append(
            f"<YearData>{_el('Year', year)}{_el('LEA', UPN_LA)}{_el('Estab', school.estab)}"
            f"{_el('URN', school.urn)}{_el('SchoolName', school.name)}"
            f"{_el('SessionsPossible', 380)}{_el('SessionsAuthorised', authorised)}"
            f"{_el('SessionsAttended', 380 - authorised - unauthorised)}"
            f"{_el('SessionsUnauthorised', unauthorised)}</YearData>"
        )
    return (
        f"<Pupil>{_el('UPN', child.upn)}{_el('Surname', child.family)}"
        f"{_el('Forename', child.given)}{_el('DOB', child.date_of_birth.isoformat())}"
        f"{_el('Gender', child.sex)}<BasicDetails>{''.join(basic)}</BasicDetails>"
        f"<SENhistory>{sen}<SENneeds>{needs}</SENneeds></SENhistory>"
        f"<Address><BS7666Address>{_el('PAON', child.house)}{_el('Street', child.street)}"
        f"{_el('Town', TOWN)}</BS7666Address>{_el('PostCode', child.postcode)}</Address>"
        f"<Contacts>{contacts}</Contacts>"
        + (f"<Attendance>{''.join(attendance)}</Attendance>" if attendance else "")
        + f"<SchoolHistory><School>{_el('LEA', UPN_LA)}{_el('Estab', school.estab)}"
        f"{_el('URN', school.urn)}{_el('SchoolName', school.name)}"
        f"{_el('EntryDate', entry.isoformat())}</School></SchoolHistory></Pupil>"
    )


def ctf_message(cohort: Cohort, school: School, finals: dict[int, date]) -> bytes:
    """The school's CTF 21 file of its pupils in the cohort; `finals` gives the day each
    child's final EHC plan was issued (their SEN provision is E from then)."""
    year0 = academic_year_start(cohort.today)
    pupils = "".join(
        _pupil(cohort, c, school, finals.get(c.index)) for c in cohort.at_school(school)
    )
    stamp = f"{(cohort.today - timedelta(days=1)).isoformat()}T16:30:00"
    header = (
        "<Header><DocumentName>Common Transfer File</DocumentName><CTFversion>21.0</CTFversion>"
        f"<DateTime>{stamp}</DateTime><DocumentQualifier>full</DocumentQualifier>"
        f"{_el('SupplierID', school.system)}<SourceSchool>{_el('LEA', UPN_LA)}"
        f"{_el('Estab', school.estab)}{_el('URN', school.urn)}{_el('SchoolName', school.name)}"
        f"{_el('AcademicYear', year0)}</SourceSchool>"
        f"<DestSchool>{_el('LEA', LA_CODE)}<Estab>0000</Estab></DestSchool></Header>"
    )
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<CTfile>{header}<CTFpupilData>{pupils}</CTFpupilData></CTfile>\n"
    )
    return text.encode("utf-8")


def staff_message(cohort: Cohort, school: School) -> bytes:
    """The school MIS JSON message naming the staff who work with each pupil."""
    pupils = []
    for child in cohort.at_school(school):
        since = max(child.sen_start, entry_date(child, school, cohort.today)).isoformat()
        staff = [
            {"staff_id": p.local_ref, "role": p.role, "since": since, "contact": p.contact,
             "name": p.name}
            for p in child.members("school_mis")
        ]  # fmt: skip
        if staff:
            pupils.append(
                {"upn": child.upn, "date_of_birth": child.date_of_birth.isoformat(), "staff": staff}
            )
    return orjson.dumps(
        {
            "message_id": f"{school.agency}-staff-{cohort.seed}-{cohort.today.isoformat()}",
            "sent_at": f"{cohort.today.isoformat()}T07:00:00+00:00",
            "system": school.system,
            "school": {"la_code": UPN_LA, "estab": school.estab, "urn": school.urn,
                       "name": school.name},
            "pupils": pupils,
        }
    )  # fmt: skip


# --------------------------------------------------------------------------- health

SNOMED = "http://snomed.info/sct"
TREATMENT_FUNCTION = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function"
ATTENDANCE = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-attended-or-did-not-attend"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ADVICE_REQUEST_SYSTEM = "https://tac-hub.example/fhir/NamingSystem/advice-request-id"
PLAN_ID_SYSTEM = "https://tac-hub.example/fhir/NamingSystem/plan-id"
HUB_DOC_CATEGORY = "https://tac-hub.example/fhir/CodeSystem/document-category"
FUNCTIONS = {
    "290": "Community Paediatrics", "652": "Speech and Language Therapy",
    "651": "Occupational Therapy", "650": "Physiotherapy", "110": "Trauma and Orthopaedics",
    "130": "Ophthalmology", "421": "Paediatric Neurology", "658": "Orthotics",
}  # fmt: skip
"""NHS Data Dictionary treatment function codes used in encounters and roles."""


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _clinical(kind: str, code: str) -> dict[str, Any]:
    name = {"clinical": "condition-clinical", "verification": "condition-ver-status"}[kind]
    return _cc(f"http://terminology.hl7.org/CodeSystem/{name}", code, code.capitalize())


def _org_name(code: str) -> str:
    if code in GP_PRACTICES:
        return GP_PRACTICES[code]
    return ACUTE_TRUST.name if code == ACUTE_TRUST.organisation_code else COMMUNITY_TRUST.name


class _Bundle:
    """The entries of one FHIR collection Bundle, with stable `urn:uuid:` full URLs and
    each shared resource (organisation, practitioner, patient) written once."""

    def __init__(self, name: str) -> None:
        self.tag = zlib.crc32(name.encode()) & 0xFFFF
        self.entries: list[dict[str, Any]] = []
        self.refs: dict[str, str] = {}

    def add(self, key: str, resource: dict[str, Any]) -> str:
        if key in self.refs:
            return self.refs[key]
        n = len(self.refs) + 1
        url = self.refs[key] = f"urn:uuid:{n:08x}-{self.tag:04x}-4000-8000-{n:012x}"
        self.entries.append({"fullUrl": url, "resource": resource})
        return url

    def organisation(self, code: str) -> str:
        return self.add(
            f"org:{code}",
            {"resourceType": "Organization", "identifier": [{"system": ODS, "value": code}],
             "name": f"{_org_name(code)} (synthetic)"},
        )  # fmt: skip

    def role(self, p: Practitioner) -> str:
        """The PractitionerRole of `p` (with its Practitioner and Organization)."""
        assert p.id_system is not None  # only registered clinicians are sent as FHIR
        practitioner = self.add(
            f"practitioner:{p.practitioner_id}",
            {"resourceType": "Practitioner",
             "identifier": [{"system": ID_SYSTEMS[p.id_system], "value": p.local_ref}],
             "name": [{"family": p.family, "given": [p.given]}]},
        )  # fmt: skip
        code: dict[str, Any] = {"text": p.title}
        if p.snomed:
            code["coding"] = [{"system": SNOMED, "code": p.snomed, "display": p.title}]
        role: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": practitioner},
            "organization": {"reference": self.organisation(p.organisation_code)},
            "code": [code],
            "telecom": [
                {"system": "email" if "@" in value else "phone", "value": value, "use": "work"}
                for value in p.contact.split(", ")
            ],
        }
        if p.treatment_function:
            function = p.treatment_function
            role["specialty"] = [_cc(TREATMENT_FUNCTION, function, FUNCTIONS[function])]
        return self.add(f"role:{p.practitioner_id}", role)

    def patient(self, child: Child, managing: str) -> str:
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "identifier": [{"system": NHS_SYSTEM, "value": child.nhs_number}],
            "name": [{"use": "official", "family": child.family, "given": [child.given]}],
            "gender": "female" if child.sex == "F" else "male",
            "birthDate": child.date_of_birth.isoformat(),
            "address": [{"use": "home", "line": [f"{child.house} {child.street}"], "city": TOWN,
                         "postalCode": child.postcode}],
            "managingOrganization": {"reference": self.organisation(managing)},
        }  # fmt: skip
        gp = child.member("gp")
        if gp is not None:
            resource["generalPractitioner"] = [
                {"reference": self.organisation(gp.organisation_code)}
            ]
        return self.add(f"patient:{child.index}", resource)

    def dumps(self, bundle_id: str, when: str) -> bytes:
        return orjson.dumps(
            {"resourceType": "Bundle", "id": bundle_id, "meta": {"lastUpdated": when},
             "type": "collection", "timestamp": when, "entry": self.entries}
        )  # fmt: skip


def _encounter(
    bundle: _Bundle, patient: str, trust: Agency, p: Practitioner, day: date, *, dna: bool
) -> dict[str, Any]:
    function = p.treatment_function or "290"
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "cancelled" if dna else "finished",
        "class": {"system": ACT_CODE, "code": "AMB"},
        "serviceType": _cc(TREATMENT_FUNCTION, function, FUNCTIONS[function]),
        "subject": {"reference": patient},
        "participant": [{"individual": {"reference": bundle.role(p)}}],
        "period": {"start": f"{day.isoformat()}T10:00:00+00:00"},
        "serviceProvider": {"reference": bundle.organisation(trust.organisation_code)},
    }
    if dna:
        resource["extension"] = [
            {"url": "https://tac-hub.example/fhir/StructureDefinition/attendance",
             "valueCoding": {"system": ATTENDANCE, "code": "3", "display": "Did not attend"}}
        ]  # fmt: skip
    else:
        resource["type"] = [_cc(SNOMED, "185389009", "Follow-up visit")]
        resource["period"]["end"] = f"{day.isoformat()}T10:45:00+00:00"
    return resource


def health_bundle(cohort: Cohort, trust: Agency) -> bytes:
    """One NHS trust's FHIR R4 collection Bundle: for each child it sees, the Patient (NHS
    number), the Conditions (community trust), an Encounter with each clinician who has a
    clinic (one did-not-attend for some children), and a CareTeam of the trust's
    practitioners around the child (the community trust's includes the GP)."""
    bundle = _Bundle(f"{trust.agency}:{cohort.seed}")
    today = cohort.today
    for child in cohort.children:
        members = [p for p in child.members("fhir") if p.publisher == trust.agency]
        if not members:
            continue
        rng = _rng(cohort.seed, "fhir", trust.agency, child.index)
        patient = bundle.patient(child, trust.organisation_code)
        if trust is COMMUNITY_TRUST:
            for k, cond in enumerate(child.conditions):
                recorded = child.sen_start - timedelta(days=30 * (k + 1))
                bundle.add(f"condition:{child.index}:{k}", {
                    "resourceType": "Condition",
                    "clinicalStatus": _clinical("clinical", "active"),
                    "verificationStatus": _clinical("verification", "confirmed"),
                    "code": _cc(SNOMED, cond.snomed, cond.display),
                    "subject": {"reference": patient},
                    "onsetDateTime": (child.date_of_birth + timedelta(days=400)).isoformat(),
                    "recordedDate": max(recorded, child.date_of_birth).isoformat(),
                })  # fmt: skip
        clinics = [p for p in members if p.treatment_function]
        for k, p in enumerate(clinics):
            day = today - timedelta(days=rng.randint(10, 150))
            bundle.add(f"encounter:{child.index}:{k}", _encounter(bundle, patient, trust, p, day,
                                                                  dna=False))  # fmt: skip
        if child.did_not_attend and clinics and trust is COMMUNITY_TRUST:
            day = today - timedelta(days=rng.randint(3, 20))
            bundle.add(f"dna:{child.index}", _encounter(bundle, patient, trust, clinics[0], day,
                                                        dna=True))  # fmt: skip
        since = max(child.sen_start, child.date_of_birth + timedelta(days=200))
        bundle.add(f"careteam:{child.index}", {
            "resourceType": "CareTeam",
            "status": "active",
            "name": "Team around the child",
            "subject": {"reference": patient},
            "period": {"start": since.isoformat()},
            "participant": [
                {"member": {"reference": bundle.role(p)},
                 "period": {"start": (since + timedelta(days=7 * k)).isoformat()}}
                for k, p in enumerate(members)
            ],
            "managingOrganization": [{"reference": bundle.organisation(trust.organisation_code)}],
        })  # fmt: skip
    return bundle.dumps(f"{trust.agency}-{cohort.seed}-{today.isoformat()}",
                        f"{today.isoformat()}T06:00:00+00:00")  # fmt: skip


def advice_bundle(
    answers: list[tuple[Child, str, str, Practitioner, date]], *, today: date, tag: str
) -> bytes:
    """EHC advice from the community trust: for each (child, plan id, advice request id,
    author, day) a DocumentReference coded as EHC advice that names the advice request
    and the plan it answers."""
    bundle = _Bundle(f"advice:{tag}")
    for child, plan_id, request_id, author, day in answers:
        bundle.add(f"advice:{request_id}", {
            "resourceType": "DocumentReference",
            "status": "current",
            "masterIdentifier": {"system": "https://documents.example.org/id",
                                 "value": f"advice-{request_id}"},
            "type": _cc(SNOMED, "371531000", "Report of clinical encounter"),
            "category": [_cc(HUB_DOC_CATEGORY, "ehc-advice", "EHC needs assessment advice")],
            "subject": {"reference": bundle.patient(child, COMMUNITY_TRUST.organisation_code)},
            "date": f"{day.isoformat()}T15:00:00+00:00",
            "author": [{"reference": bundle.role(author)}],
            "custodian": {"reference": bundle.organisation(COMMUNITY_TRUST.organisation_code)},
            "context": {"related": [
                {"identifier": {"system": ADVICE_REQUEST_SYSTEM, "value": request_id}},
                {"identifier": {"system": PLAN_ID_SYSTEM, "value": plan_id}},
            ]},
            "content": [{"attachment": {
                "contentType": "application/pdf",
                "url": f"https://documents.example.org/ehc-advice/{request_id}.pdf",
                "title": f"{author.title}: advice for the EHC needs assessment",
            }}],
        })  # fmt: skip
    return bundle.dumps(f"ehc-advice-{tag}", f"{today.isoformat()}T06:30:00+00:00")


# --------------------------------------------------------------------------- social care


def _census_child(cohort: Cohort, child: Child, reference: date) -> str:
    """One child's census entry as a return with this `reference` date reports them:
    what had happened by then (a return a year earlier reports the episode still open)."""
    today = cohort.today
    rng = _rng(cohort.seed, "cin", child.index)
    referral = today - timedelta(days=rng.randint(300, 420))
    assessment = referral + timedelta(days=rng.randint(2, 8))
    authorised = assessment + timedelta(days=rng.randint(20, 40))
    closure = today - timedelta(days=rng.randint(20, 80))
    if referral > reference:
        return ""
    s47 = ""
    if child.safeguarding_enquiry and referral + timedelta(days=15) <= reference:
        start = referral + timedelta(days=15)
        s47 = (
            f"<Section47>{_el('S47ActualStartDate', start.isoformat())}"
            f"{_el('InitialCPCtarget', (start + timedelta(days=15)).isoformat())}"
            f"{_el('ICPCnotRequired', 'true')}</Section47>"
        )
    upn = _el("UPN", child.upn) if child.upn else _el("UPNunknown", "UN1")
    disabilities = "".join(_el("Disability", d) for d in child.disabilities or ["NONE"])
    closed = ""
    if closure <= reference:
        closed = f"{_el('CINclosureDate', closure.isoformat())}{_el('ReasonForClosure', 'RC4')}"
    assessed = ""
    if authorised <= reference:
        assessed = (
            f"<Assessments>{_el('AssessmentActualStartDate', assessment.isoformat())}"
            f"{_el('AssessmentAuthorisationDate', authorised.isoformat())}"
            "<FactorsIdentifiedAtAssessment>"
            f"{_el('AssessmentFactors', '5A')}{_el('AssessmentFactors', '6A')}"
            "</FactorsIdentifiedAtAssessment></Assessments>"
        )
    planned = ""
    plan_start = authorised + timedelta(days=10)
    if plan_start <= reference:
        ended = _el("CINPlanEndDate", (closure - timedelta(days=1)).isoformat()) if closed else ""
        planned = (
            f"<CINPlanDates>{_el('CINPlanStartDate', plan_start.isoformat())}{ended}</CINPlanDates>"
        )
    return (
        f"<Child><ChildIdentifiers>{_el('LAchildID', child.la_child_id)}{upn}"
        f"{_el('NHSnumber', child.nhs_number)}"
        f"{_el('PersonBirthDate', child.date_of_birth.isoformat())}{_el('Sex', child.sex)}"
        "</ChildIdentifiers>"
        f"<ChildCharacteristics><Disabilities>{disabilities}</Disabilities></ChildCharacteristics>"
        f"<CINdetails>{_el('CINreferralDate', referral.isoformat())}"
        f"{_el('ReferralSource', '3A')}{_el('PrimaryNeedCode', 'N2')}"
        f"{closed}{assessed}{planned}{s47}{_el('ReferralNFA', '0')}</CINdetails></Child>"
    )


def cin_census_message(cohort: Cohort, years_back: int = 0) -> bytes:
    """Children's services' CIN census return for the children it reports that way:
    identifiers (LA child id, UPN, NHS number), disabilities, and a closed CIN episode for
    the child's disability with its assessment and CIN plan; one episode includes a
    section 47 enquiry (filed under safeguarding, which no consent here names).
    `years_back=1`: the return of a year before, reporting what had happened by then
    (the same episodes, still open: the later return restates and corrects them)."""
    reference = cohort.today - timedelta(days=1 + 365 * years_back)
    children = "".join(
        _census_child(cohort, c, reference)
        for c in cohort.children
        if c.social_care == "cin_census"
    )
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<Message><Header><CollectionDetails>'
        f"<Collection>CIN</Collection>{_el('Year', academic_year_start(reference))}"
        f"{_el('ReferenceDate', reference.isoformat())}</CollectionDetails>"
        f"<Source><SourceLevel>L</SourceLevel>{_el('LEA', LA_CODE)}"
        f"{_el('SoftwareCode', CHILDRENS_SERVICES.system)}<Release>demo</Release>"
        f"{_el('SerialNo', f'{(cohort.seed + years_back) % 1000:03d}')}"
        f"{_el('DateTime', f'{reference.isoformat()}T18:00:00')}</Source></Header>"
        f"<Children>{children}</Children></Message>\n"
    )
    return text.encode("utf-8")


def social_care_message(cohort: Cohort) -> bytes:
    """Children's services' case-system message (the hub's social care JSON form) for the
    children with an open episode: identifiers, disabilities, the CIN episode with its
    assessment and plan, and the workers allocated to the child."""
    today = cohort.today
    children = []
    for child in (c for c in cohort.children if c.social_care == "case_system"):
        rng = _rng(cohort.seed, "csc", child.index)
        referral = today - timedelta(days=rng.randint(300, 700))
        assessment = referral + timedelta(days=rng.randint(1, 6))
        authorised = assessment + timedelta(days=35)
        workers = [
            {"worker_id": p.local_ref, "role": p.role, "contact": p.contact, "name": p.name,
             "since": (assessment + timedelta(days=30 * k)).isoformat()}
            for k, p in enumerate(child.members("social_care_json"))
        ]  # fmt: skip
        children.append({
            "la_child_id": child.la_child_id,
            "upn": child.upn,
            "upn_unknown_reason": None if child.upn else "UN1",
            "nhs_number": child.nhs_number,
            "date_of_birth": child.date_of_birth.isoformat(),
            "sex": child.sex,
            "disabilities": child.disabilities or ["NONE"],
            "cin_episodes": [{
                "referral_date": referral.isoformat(),
                "referral_source": "5A" if child.school else "3A",
                "primary_need": "N2",
                "referral_nfa": False,
                "assessments": [{"start_date": assessment.isoformat(),
                                 "authorisation_date": authorised.isoformat(),
                                 "factors": ["5A", "6A"]}],
                "cin_plans": [{"start_date": (assessment + timedelta(days=45)).isoformat()}],
            }],
            "allocated_workers": workers,
        })  # fmt: skip
    return orjson.dumps(
        {"message_id": f"csc-{cohort.seed}-{today.isoformat()}",
         "sent_at": f"{today.isoformat()}T06:15:00+00:00", "la_code": LA_CODE,
         "la_name": CHILDRENS_SERVICES.name, "system": CHILDRENS_SERVICES.system,
         "children": children}
    )  # fmt: skip


# --------------------------------------------------------------------------- family


def family_views(child: Child, today: date) -> list[dict[str, Any]]:
    """Section A in the family's own words: the child's (or young person's) and a parent's
    (or carer's) views, interests and aspirations."""
    recorded = (today - timedelta(days=20 + child.index % 30)).isoformat()
    likes = ", ".join(child.interests[:-1]) + f" and {child.interests[-1]}"
    parent = child.parents[0]
    return [
        {
            "whose": "young_person" if child.consent == "young_person" else "child",
            "recorded_on": recorded,
            "views": f"I like {likes}. I learn best when it is calm and someone shows me "
            "first. I find it hard when it is noisy.",
            "interests": child.interests,
            "aspirations": child.aspirations,
        },
        {
            "whose": "parent" if parent.relationship in ("PAM", "PAF") else "carer",
            "contributor_ref": parent.ref,
            "recorded_on": recorded,
            "views": f"{child.given} is funny and determined. We want everyone around "
            f"{child.given} to talk to each other so that we do not have to tell our story "
            "again at every appointment. Mornings are hardest; a familiar adult at the gate helps.",
            "aspirations": [f"for {child.given} to be happy and safe at school"],
        },
    ]


# --------------------------------------------------------------------------- inbound events


def _at(day: date, hour: int = 9) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def inbound_event(
    event_type: str,
    child: Child,
    publisher: Agency | School,
    occurred_on: date,
    payload: dict[str, Any],
    *,
    message_id: str,
    plan_id: str | None = None,
    category: str | None = None,
    purposes: tuple[str, ...] = (),
    statutory_basis: str | None = None,
) -> dict[str, Any]:
    """One event in the inbound contract form of `POST /ingest/events`."""
    from hub.events import registry

    event: dict[str, Any] = {
        "event_type": event_type,
        "schema_version": registry.payload_class(event_type).schema_version,
        "subject": child.subject,
        "source": {"agency": publisher.agency, "organisation_code": publisher.organisation_code,
                   "system": publisher.system, "message_id": message_id},
        "occurred_at": _at(occurred_on),
        "payload": payload,
    }  # fmt: skip
    optional = {"plan_id": plan_id, "category": category, "statutory_basis": statutory_basis}
    event.update({k: v for k, v in optional.items() if v is not None})
    if purposes:
        event["purposes"] = list(purposes)
    return event


def joined_event(
    child: Child, p: Practitioner, since: date, publisher: Agency | School
) -> dict[str, Any]:
    """`team.practitioner_joined` for a member the publisher's own system holds (filed
    under social care when the member is from social care: that is itself sensitive)."""
    return inbound_event(
        "team.practitioner_joined", child, publisher, since,
        {"practitioner_id": p.practitioner_id, "role": p.role, "agency": p.agency,
         "organisation_code": p.organisation_code, "since": since.isoformat(),
         "contact": p.contact, "name": p.name,
         "organisation_name": publisher.name
         if publisher.organisation_code == p.organisation_code else None},
        message_id=f"joined:{child.reference}:{p.practitioner_id}",
        category="social_care" if p.agency == "social_care" else None,
    )  # fmt: skip
