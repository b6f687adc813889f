"""School MIS adapter for the DfE Common Transfer File (CTF 19-21 XML, as SIMS, Arbor and
Bromcom export it): `parse_ctf` turns one file into facts about each pupil — identity
(`education.pupil_identified`), SEN provision with its ranked needs
(`education.sen_status_recorded`), disabilities, attendance per school year, exclusions,
school history and current placement, and contacts holding parental responsibility
(`family.contact_recorded`) — and explains, as `NotTaken`, every element it would not or
could not take. A CTF header carries no unique message id (only DocumentName, CTFversion,
DateTime, DocumentQualifier, SupplierID and the schools), so the message id is the SHA-256
of the file's bytes: `ctf:sha256:<hex>`. CTF carries no school staff, so it yields no
`team.practitioner_joined` (the school MIS JSON form does). Identifiers are passed through
as sent; the identity layer validates them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, get_args

from pydantic import ValidationError

from hub.adapters.xml_safety import (
    RULE_CODE_LIST,
    RULE_DATE_FORMAT,
    RULE_DATE_IN_FUTURE,
    RULE_DATES_IN_ORDER,
    RULE_REQUIRED,
    RULE_SUBJECT,
    Element,
    Reader,
    build_payload,
    content_message_id,
    day_start,
    element_paths,
    flag,
    leaf_texts,
    parse_local_datetime,
    parse_xml,
    report_unread,
    text_of,
    validation_not_taken,
)
from hub.errors import PermanentError
from hub.events.education import (
    AttendanceRecorded,
    ExclusionRecorded,
    NcYear,
    Phase,
    PlacementRecorded,
    PostalAddress,
    ProvisionType,
    PupilIdentified,
    SenNeedRanked,
    SenNeedType,
    SenStatusRecorded,
)
from hub.events.envelope import EventPayload, Source
from hub.events.family import ContactPoint, ContactRecorded
from hub.events.family import PostalAddress as ContactAddress
from hub.events.social_care import DisabilityCode, DisabilityRecorded
from hub.ingest.model import AdapterResult, InboundFact, Subject

SUPPORTED_VERSIONS = (19, 20, 21)
NEED_TYPES = frozenset(get_args(SenNeedType))
DISABILITY_CODES = frozenset(get_args(DisabilityCode))
NC_YEARS = frozenset(get_args(NcYear))
ENROL_STATUSES = frozenset({"C", "M", "S", "G", "O"})
EXCLUSION_CATEGORIES = frozenset({"FIXD", "SUSP", "PERM", "LNCH"})
PROVISION_CODES = {"E": "E", "K": "K", "N": "N", "S": "E", "P": "K", "A": "K"}
"""E/K/N since 2014; the pre-2014 codes still found in SEN history (S statement, P School
Action Plus, A School Action) are mapped as the event's v1 upcaster maps them."""
PHONE_USE = {"H": "home", "M": "mobile", "W": "work"}

RULE_SEN_NEED_WITHOUT_PROVISION = "hub.sen_need_without_provision"
RULE_CONTACT_WITHOUT_PR = "hub.contact_without_parental_responsibility"
RULE_NOT_COLLECTED = "hub.not_collected"


_LINES = ("SAON", "PAON", "Street", "Locality", "Town", "PostTown")
_ADDRESS_LINES = tuple(f"AddressLine{i}" for i in range(1, 6))
_PUPIL = "CTFpupilData/Pupil"
_CONTACT = f"{_PUPIL}/Contacts/Contact"
TAKEN_ELEMENTS = element_paths(
    ("Header", ("CTFversion", "DateTime", "DocumentQualifier", "SupplierID", "SourceSchool")),
    ("Header/SourceSchool", ("LEA", "Estab", "URN")),
    ("CTFpupilData", ("Pupil",)),
    (_PUPIL, (
        "UPN", "UniqueLearnerNumber", "Surname", "Forename", "DOB", "Gender", "BasicDetails",
        "SENhistory", "Address", "Contacts", "Attendance", "SchoolHistory", "Exclusions",
    )),
    (f"{_PUPIL}/BasicDetails", (
        "FormerUPN", "PreferredSurname", "PreferredForename", "MiddleNames", "NCyearActual",
        "EnrolStatus", "Disabilities",
    )),
    (f"{_PUPIL}/BasicDetails/Disabilities", ("Disability",)),
    (f"{_PUPIL}/Address", ("BS7666Address", "AddressLines", "County", "PostCode")),
    (f"{_PUPIL}/Address/BS7666Address", (*_LINES, "UniquePropertyReferenceNumber")),
    (f"{_PUPIL}/Address/AddressLines", _ADDRESS_LINES),
    (f"{_PUPIL}/SENhistory", ("SENneeds", "SEN")),
    (f"{_PUPIL}/SENhistory/SENneeds", ("SENneed",)),
    (f"{_PUPIL}/SENhistory/SENneeds/SENneed", ("SENtype", "SENtypeRank", "NeedStartDate")),
    (f"{_PUPIL}/SENhistory/SEN", ("SENprovision", "StartDate", "EndDate")),
    (f"{_PUPIL}/Attendance", ("YearData",)),
    (f"{_PUPIL}/Attendance/YearData", (
        "LEA", "Estab", "URN", "SchoolName", "Year", "SessionsPossible", "SessionsAttended",
        "SessionsAuthorised", "SessionsUnauthorised",
    )),
    (f"{_PUPIL}/Exclusions", ("Exclusion",)),
    (f"{_PUPIL}/Exclusions/Exclusion", (
        "Category", "ExclusionCategory", "StartDate", "EndDate", "ActualSessions", "Sessions",
        "Reason", "Reasons", "LEA", "Estab", "URN",
    )),
    (f"{_PUPIL}/Exclusions/Exclusion/Reasons", ("Reason",)),
    (f"{_PUPIL}/SchoolHistory", ("School",)),
    (f"{_PUPIL}/SchoolHistory/School", (
        "EntryDate", "LeavingDate", "LEA", "Estab", "URN", "SchoolName", "LeavingReason",
    )),
    (f"{_PUPIL}/Contacts", ("Contact",)),
    (_CONTACT, (
        "Order", "Title", "Surname", "Forename", "MiddleNames", "Relationship", "Responsibility",
        "CourtOrder", "SuppInfo", "Address", "Phones", "Email",
    )),
    (f"{_CONTACT}/SuppInfo", ("CourtOrder",)),
    (f"{_CONTACT}/Phones", ("Phone",)),
    (f"{_CONTACT}/Phones/Phone", ("PhoneNo", "TelephoneType")),
    (f"{_CONTACT}/Address", ("AddressAsPupil", "BS7666Address", "AddressLines", "County",
                             "PostCode")),
    (f"{_CONTACT}/Address/BS7666Address", _LINES),
    (f"{_CONTACT}/Address/AddressLines", _ADDRESS_LINES),
)  # fmt: skip
"""Every element the adapter reads (a path below CTfile, without indices); every other
element of a file gets a not-taken line (`report_unread`), so none is dropped unexplained."""
_MINIMISED = "not among the facts the hub takes (data minimisation)"
_UNSUPPORTED_REASONS = {
    "UCI": "the unique candidate identifier (exam entries) is not used by the hub",
    "FSMhistory": f"free school meal eligibility is {_MINIMISED}",
    "NAWdetails": f"Wales-only details are {_MINIMISED}",
    "StageAssessments": f"key stage assessment results are {_MINIMISED}",
    "Phones": "the pupil's own phone numbers are not needed by the hub (data minimisation)",
    "Email": "the pupil's own email address is not needed by the hub (data minimisation)",
    "SuppInfo": "supplier-specific information is not read",
    "LookedAfter": "looked-after status is taken from children's social care (SSDA903), "
    "not from the school's record",
    "Ethnicity": f"ethnicity is special category data {_MINIMISED}",
    "EthnicitySource": f"ethnicity is special category data {_MINIMISED}",
    "Languages": f"languages are {_MINIMISED}",
    "MedicalFlag": "a medical flag without detail is not taken: health facts come from "
    "health services",
    "ServiceChild": f"service child status is {_MINIMISED}",
    "FormerSurname": f"former surnames are {_MINIMISED}",
    "YSSA": f"youth support services agreement is {_MINIMISED}",
}
_NOT_NEEDED = "is not needed by the hub: the postcode places an address"
_UNSUPPORTED_REASONS.update({
    "Country": f"the country of an address {_NOT_NEEDED}",
    "Easting": f"a grid reference {_NOT_NEEDED}",
    "Northing": f"a grid reference {_NOT_NEEDED}",
    "DestSchool": "the destination school is the receiving end of the transfer, not a fact "
    "about the child (the receiving school sends its own records)",
    "DocumentName": "the document's name is not a fact about a child",
    "AcademicYear": "the sending school's academic year is not taken: facts carry their "
    "own dates",
    "SchoolName": "the sending school is named by its URN or DfE number (the header's school "
    "name is not taken)",
    f"{_CONTACT}/Gender": f"a contact's gender is {_MINIMISED}",
    f"{_CONTACT}/Address/BS7666Address/UniquePropertyReferenceNumber": "a contact's UPRN is "
    f"{_MINIMISED} (their postal address is taken)",
    "SuppID": "the MIS supplier's own record id is not taken (the hub keys facts by their "
    "identifiers)",
})  # fmt: skip
_DEFAULT_UNSUPPORTED = "not read by the hub's CTF adapter"


def _ref_of(path: str) -> str:
    """A path below CTfile in the adapter's ref style: `Pupil[*]/Address/Easting`."""
    if path == _PUPIL or path.startswith((f"{_PUPIL}/", f"{_PUPIL}#")):
        return "Pupil[*]" + path[len(_PUPIL) :]
    return path


def parse_ctf(data: bytes, *, agency: str, now: datetime | None = None) -> AdapterResult:
    """Parse one CTF file. Raises `PermanentError` when the file cannot be read at all (not
    well-formed or unsafe XML, not a CTF, no header); otherwise every pupil is read and each
    element not taken is reported with its reason. `now` (default: the current time)
    bounds dates that cannot be in the future, such as a date of birth."""
    root = parse_xml(data, document="CTF")
    if root.tag != "CTfile":
        raise PermanentError(
            "the root element is not CTfile: not a Common Transfer File", field="CTfile"
        )
    header = root.find("Header")
    if header is None:
        raise PermanentError("the CTF has no Header", field="CTfile/Header")
    reader = _CtfReader(header, agency=agency, message_id=content_message_id("ctf", data), now=now)
    pupil_data = root.find("CTFpupilData")
    pupils = [] if pupil_data is None else pupil_data.findall("Pupil")
    if not pupils:
        reader.result.warnings.append("the CTF holds no pupils")
    for index, pupil in enumerate(pupils, start=1):
        reader.read_pupil(pupil, f"Pupil[{index}]")
    report_unread(
        root, TAKEN_ELEMENTS, reader.result.not_taken,
        ref_of=_ref_of, reasons=_UNSUPPORTED_REASONS, default=_DEFAULT_UNSUPPORTED,
    )  # fmt: skip
    return reader.result


def phase_for(nc_year: str | None, estab: str | None) -> Phase | None:
    """School phase from the NC year when known, else from the establishment number range."""
    if nc_year in ("N1", "N2"):
        return "early_years"
    if nc_year == "R":
        return "primary"
    if nc_year is not None and (nc_year.isascii() and nc_year.isdigit()):
        year = int(nc_year)
        return "primary" if year <= 6 else "secondary" if year <= 11 else "post16"
    if estab is not None and (estab.isascii() and estab.isdigit()):
        number = int(estab)
        if 1000 <= number <= 1099:
            return "early_years"
        if 2000 <= number <= 3999:
            return "primary"
        if 4000 <= number <= 4999:
            return "secondary"
    return None


def provision_type_for(estab: str | None) -> ProvisionType | None:
    """Special, alternative provision, independent or mainstream, from the DfE range."""
    if estab is None or not (estab.isascii() and estab.isdigit()):
        return None
    number = int(estab)
    if 7000 <= number <= 7999:
        return "special"
    if 1100 <= number <= 1199:
        return "alternative_provision"
    if 6000 <= number <= 6999:
        return "independent"
    if 1000 <= number <= 5999:
        return "mainstream"
    return None


def _digits(value: str | None, length: tuple[int, ...]) -> str | None:
    """`value` when it is all digits of one of the lengths; placeholders such as XXXXXX
    (URN unknown) read as None."""
    if value is not None and (value.isascii() and value.isdigit()) and len(value) in length:
        return value
    return None


class _CtfReader:
    """State of one CTF parse: header context, the result being built, unsupported tags."""

    def __init__(
        self, header: Element, *, agency: str, message_id: str, now: datetime | None
    ) -> None:
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.result = AdapterResult(message_id=message_id)
        self.read = Reader(self.result.not_taken)
        warnings = self.result.warnings

        version = text_of(header, "CTFversion")
        major = version.split(".", 1)[0] if version else ""
        if not (major.isascii() and major.isdigit()) or int(major) not in SUPPORTED_VERSIONS:
            warnings.append("CTFversion is missing or outside 19-21: read with the CTF 21 layout")
        if text_of(header, "DocumentQualifier") == "partial":
            warnings.append("partial CTF: only the containers it carries are read")

        school = header.find("SourceSchool")
        self.source_la = _digits(text_of(school, "LEA"), (3,))
        self.source_estab = _digits(text_of(school, "Estab"), (4,))
        urn = _digits(text_of(school, "URN"), (6, 7))
        dfe_number = (
            f"{self.source_la}{self.source_estab}" if self.source_la and self.source_estab else None
        )
        supplier = text_of(header, "SupplierID")
        system = " ".join(part for part in (supplier, f"CTF {version}" if version else "") if part)
        try:
            self.source = Source(
                agency=agency,
                organisation_code=urn or dfe_number,
                system=system[:128] or None,
                message_id=message_id,
            )
        except ValidationError:
            raise PermanentError(
                "the agency name must be 1-64 characters", field="agency"
            ) from None

        self.extracted_at = self.now
        stamp = text_of(header, "DateTime")
        if stamp is None:
            warnings.append(
                "the CTF header has no DateTime: facts without dates are timed on receipt"
            )
        else:
            try:
                self.extracted_at = min(parse_local_datetime(stamp), self.now)
            except ValueError:
                self.read.reject(
                    "Header/DateTime", "DateTime", "not a valid date and time", RULE_DATE_FORMAT
                )

    # --- helpers -------------------------------------------------------------------------

    def fact(
        self,
        subject: Subject,
        payload: EventPayload | None,
        occurred_at: datetime,
        ref: str,
        category: str | None = None,
    ) -> None:
        if payload is not None:
            self.result.facts.append(
                InboundFact(
                    subject=subject,
                    payload=payload,
                    occurred_at=occurred_at,
                    source=self.source,
                    ref=ref,
                    category=category,
                )
            )

    def in_order(
        self, ref: str, start: date | None, end: date | None, end_field: str, start_field: str
    ) -> bool:
        if start is not None and end is not None and end < start:
            self.read.reject(
                ref, end_field, f"{end_field} is before {start_field}", RULE_DATES_IN_ORDER
            )
            return False
        return True

    def pupil_address(self, el: Element | None, ref: str) -> PostalAddress | None:
        if el is None:
            return None
        bs = el.find("BS7666Address")
        lines = _address_lines(el)
        postcode = text_of(el, "PostCode")
        if not lines and postcode is None:
            return None
        town = (text_of(bs, "Town") or text_of(bs, "PostTown")) if bs is not None else None
        uprn = text_of(bs, "UniquePropertyReferenceNumber") if bs is not None else None
        values = {
            "lines": tuple(lines),
            "town": town,
            "county": text_of(el, "County"),
            "postcode": postcode,
            "uprn": uprn,
        }
        return build_payload(
            PostalAddress, ref, self.result.not_taken, values, fields=_ADDRESS_ELEMENTS
        )

    def contact_address(self, el: Element | None, ref: str) -> ContactAddress | None:
        if el is None:
            return None
        lines = _address_lines(el)
        bs = el.find("BS7666Address")
        county = text_of(el, "County")
        postcode = text_of(el, "PostCode")
        if not lines and postcode is None:
            return None
        values = {
            "lines": tuple([*lines, county] if county else lines),
            "city": (text_of(bs, "Town") or text_of(bs, "PostTown")) if bs is not None else None,
            "postcode": postcode,
        }
        return build_payload(
            ContactAddress, ref, self.result.not_taken, values, fields=_ADDRESS_ELEMENTS
        )

    # --- one pupil -----------------------------------------------------------------------

    def read_pupil(self, pupil: Element, ref: str) -> None:
        basic = pupil.find("BasicDetails")

        upn = text_of(pupil, "UPN")
        former = tuple(
            v
            for v in (
                _strip(e.text) for e in (basic.findall("FormerUPN") if basic is not None else [])
            )
            if v
        )
        dob = self.read.date(text_of(pupil, "DOB"), ref, "DOB")
        if dob is not None and dob > self.extracted_at.date():
            self.read.reject(
                f"{ref}/DOB",
                "DOB",
                "the date of birth is after the file was produced",
                RULE_DATE_IN_FUTURE,
            )
            dob = None
        address = self.pupil_address(pupil.find("Address"), f"{ref}/Address")
        try:
            subject = Subject(
                upn=upn,
                former_upn=former[0] if former else None,
                given_name=text_of(pupil, "Forename"),
                family_name=text_of(pupil, "Surname"),
                date_of_birth=dob,
                postcode=address.postcode if address else None,
            )
        except ValidationError as exc:
            self.result.not_taken.extend(
                validation_not_taken(exc, ref, rule=RULE_SUBJECT, fields=_SUBJECT_ELEMENTS)
            )
            return

        gender = text_of(pupil, "Gender")
        if gender is not None and gender not in ("M", "F", "U"):
            self.read.reject(
                f"{ref}/Gender", "Gender", "code is not in the code list", RULE_CODE_LIST
            )
            gender = None
        identity = build_payload(
            PupilIdentified,
            ref,
            self.result.not_taken,
            {
                "upn": upn,
                "former_upns": former,
                "uln": text_of(pupil, "UniqueLearnerNumber"),
                "surname": text_of(pupil, "Surname"),
                "forename": text_of(pupil, "Forename"),
                "middle_names": text_of(basic, "MiddleNames"),
                "preferred_surname": text_of(basic, "PreferredSurname"),
                "preferred_forename": text_of(basic, "PreferredForename"),
                "date_of_birth": dob,
                "gender": gender,
                "address": address,
            },
            fields=_IDENTITY_ELEMENTS,
        )
        self.fact(subject, identity, self.extracted_at, ref)

        self.read_sen(pupil.find("SENhistory"), subject, f"{ref}/SENhistory")
        if basic is not None:
            self.read_disabilities(
                basic.find("Disabilities"), subject, f"{ref}/BasicDetails/Disabilities"
            )
        self.read_attendance(pupil.find("Attendance"), subject, f"{ref}/Attendance")
        self.read_exclusions(pupil.find("Exclusions"), subject, f"{ref}/Exclusions")
        nc_year = self.read.code(
            text_of(basic, "NCyearActual"), NC_YEARS, f"{ref}/BasicDetails", "NCyearActual"
        )
        enrol = self.read.code(
            text_of(basic, "EnrolStatus"), ENROL_STATUSES, f"{ref}/BasicDetails", "EnrolStatus"
        )
        self.read_schools(
            pupil.find("SchoolHistory"), nc_year, enrol, subject, f"{ref}/SchoolHistory"
        )
        self.read_contacts(pupil.find("Contacts"), subject, f"{ref}/Contacts")

    def read_sen(self, history: Element | None, subject: Subject, ref: str) -> None:
        if history is None:
            return
        needs: list[tuple[date | None, SenNeedRanked, str]] = []
        for k, need in enumerate(history.findall("SENneeds/SENneed"), start=1):
            need_ = leaf_texts(need)
            need_ref = f"{ref}/SENneeds/SENneed[{k}]"
            need_type = self.read.code(need_.get("SENtype"), NEED_TYPES, need_ref, "SENtype")
            rank = self.read.integer(need_.get("SENtypeRank"), need_ref, "SENtypeRank")
            start = self.read.date(need_.get("NeedStartDate"), need_ref, "NeedStartDate")
            if need_type is None or rank is None:
                if need_.get("SENtype") is None:
                    self.read.reject(need_ref, "SENtype", "an SEN need has no type", RULE_REQUIRED)
                continue
            ranked = build_payload(
                SenNeedRanked, need_ref, self.result.not_taken, {"type": need_type, "rank": rank},
                fields={"type": "SENtype", "rank": "SENtypeRank"},
            )  # fmt: skip
            if ranked is not None:
                needs.append((start, ranked, need_ref))

        records: list[tuple[str, date, date | None, str]] = []
        for j, sen in enumerate(history.findall("SEN"), start=1):
            sen_ = leaf_texts(sen)
            sen_ref = f"{ref}/SEN[{j}]"
            raw = sen_.get("SENprovision")
            if raw is None:
                self.read.reject(
                    sen_ref, "SENprovision", "an SEN record has no provision code", RULE_REQUIRED
                )
                continue
            provision = PROVISION_CODES.get(raw)
            if provision is None:
                self.read.reject(
                    f"{sen_ref}/SENprovision",
                    "SENprovision",
                    "code is not in the code list",
                    RULE_CODE_LIST,
                )
                continue
            start = self.read.date(sen_.get("StartDate"), sen_ref, "StartDate")
            end = self.read.date(sen_.get("EndDate"), sen_ref, "EndDate")
            if start is None:
                if sen_.get("StartDate") is None:
                    self.read.reject(
                        sen_ref, "StartDate", "an SEN record has no start date", RULE_REQUIRED
                    )
                continue
            if not self.in_order(sen_ref, start, end, "EndDate", "StartDate"):
                continue
            records.append((provision, start, end, sen_ref))

        attached: dict[str, list[SenNeedRanked]] = {r[3]: [] for r in records}
        with_needs = sorted((r for r in records if r[0] in ("E", "K")), key=lambda r: r[1])
        for start, ranked, need_ref in needs:
            home = None
            if start is not None:
                home = next(
                    (r for r in with_needs if r[1] <= start and (r[2] is None or start <= r[2])),
                    None,
                )
            if home is None and with_needs:
                home = with_needs[-1]
            if home is None:
                self.read.reject(
                    need_ref, "SENneed",
                    "an SEN need is recorded but no SEN record has provision E or K",
                    RULE_SEN_NEED_WITHOUT_PROVISION,
                )  # fmt: skip
                continue
            attached[home[3]].append(ranked)

        for provision, start, end, sen_ref in records:
            status = build_payload(
                SenStatusRecorded,
                sen_ref,
                self.result.not_taken,
                {
                    "sen_provision": provision,
                    "start_date": start,
                    "end_date": end,
                    "needs": tuple(sorted(attached[sen_ref], key=lambda n: n.rank)),
                },
            )
            self.fact(subject, status, day_start(end or start), sen_ref)

    def read_disabilities(self, el: Element | None, subject: Subject, ref: str) -> None:
        if el is None:
            return
        codes: list[str] = []
        for k, item in enumerate(el.findall("Disability"), start=1):
            code = _strip(item.text)
            if code is None:
                continue
            if code == "NCOL":
                self.read.reject(
                    f"{ref}/Disability[{k}]", "Disability",
                    "disability information was not collected (NCOL): nothing to record",
                    RULE_NOT_COLLECTED, kind="unsupported",
                )  # fmt: skip
            elif code not in DISABILITY_CODES:
                self.read.reject(
                    f"{ref}/Disability[{k}]",
                    "Disability",
                    "code is not in the code list",
                    RULE_CODE_LIST,
                )
            elif code not in codes:
                codes.append(code)
        if codes:
            payload = build_payload(
                DisabilityRecorded, ref, self.result.not_taken, {"disabilities": tuple(codes)}
            )
            self.fact(subject, payload, self.extracted_at, ref, category="education")

    def read_attendance(self, el: Element | None, subject: Subject, ref: str) -> None:
        if el is None:
            return
        for j, year in enumerate(el.findall("YearData"), start=1):
            year_ = leaf_texts(year)
            year_ref = f"{ref}/YearData[{j}]"
            values: dict[str, Any] = {
                "la_code": _digits(year_.get("LEA"), (3,)),
                "estab": _digits(year_.get("Estab"), (4,)),
                "urn": _digits(year_.get("URN"), (6, 7)),
                "school_name": year_.get("SchoolName"),
            }
            missing = False
            for element, name in _ATTENDANCE_ELEMENTS.items():
                raw = text_of(year, element)
                if raw is None:
                    self.read.reject(year_ref, element, f"{element} is missing", RULE_REQUIRED)
                    missing = True
                    continue
                number = self.read.integer(raw, year_ref, element)
                missing = missing or number is None
                values[name] = number
            if missing:
                continue
            payload = build_payload(
                AttendanceRecorded, year_ref, self.result.not_taken, values,
                fields={v: k for k, v in _ATTENDANCE_ELEMENTS.items()},
            )  # fmt: skip
            if payload is None:
                continue
            year_end = day_start(date(payload.academic_year + 1, 8, 31))
            self.fact(subject, payload, min(year_end, self.extracted_at), year_ref)

    def read_exclusions(self, el: Element | None, subject: Subject, ref: str) -> None:
        if el is None:
            return
        for j, exclusion in enumerate(el.findall("Exclusion"), start=1):
            ex_ref = f"{ref}/Exclusion[{j}]"
            category_el = (
                "Category" if exclusion.find("Category") is not None else "ExclusionCategory"
            )
            category = self.read.code(
                text_of(exclusion, category_el), EXCLUSION_CATEGORIES, ex_ref, category_el
            )
            start = self.read.date(text_of(exclusion, "StartDate"), ex_ref, "StartDate")
            end = self.read.date(text_of(exclusion, "EndDate"), ex_ref, "EndDate")
            if category is None or start is None:
                for name, raw in (
                    (category_el, text_of(exclusion, category_el)),
                    ("StartDate", text_of(exclusion, "StartDate")),
                ):
                    if raw is None:
                        self.read.reject(ex_ref, name, f"{name} is missing", RULE_REQUIRED)
                continue
            if not self.in_order(ex_ref, start, end, "EndDate", "StartDate"):
                continue
            sessions_el = (
                "ActualSessions" if exclusion.find("ActualSessions") is not None else "Sessions"
            )
            reasons = [
                _strip(r.text)
                for r in [*exclusion.findall("Reason"), *exclusion.findall("Reasons/Reason")]
            ]
            payload = build_payload(
                ExclusionRecorded,
                ex_ref,
                self.result.not_taken,
                {
                    "la_code": _digits(text_of(exclusion, "LEA"), (3,)),
                    "estab": _digits(text_of(exclusion, "Estab"), (4,)),
                    "urn": _digits(text_of(exclusion, "URN"), (6, 7)),
                    "exclusion_category": category,
                    "start_date": start,
                    "end_date": end,
                    "sessions": self.read.integer(
                        text_of(exclusion, sessions_el), ex_ref, sessions_el
                    ),
                    "reasons": tuple(r for r in reasons if r),
                },
                fields={"reasons": "Reason", "sessions": sessions_el},
            )
            self.fact(subject, payload, day_start(start), ex_ref)

    def read_schools(
        self, el: Element | None, nc_year: str | None, enrol: str | None, subject: Subject, ref: str
    ) -> None:
        if el is None:
            return
        for j, school in enumerate(el.findall("School"), start=1):
            school_ = leaf_texts(school)
            school_ref = f"{ref}/School[{j}]"
            entry = self.read.date(school_.get("EntryDate"), school_ref, "EntryDate")
            leaving = self.read.date(school_.get("LeavingDate"), school_ref, "LeavingDate")
            if entry is None:
                if school_.get("EntryDate") is None:
                    self.read.reject(
                        school_ref,
                        "EntryDate",
                        "a school history entry has no entry date",
                        RULE_REQUIRED,
                    )
                continue
            if not self.in_order(school_ref, entry, leaving, "LeavingDate", "EntryDate"):
                continue
            la = _digits(school_.get("LEA"), (3,))
            estab = _digits(school_.get("Estab"), (4,))
            current = leaving is None and la == self.source_la and estab == self.source_estab
            payload = build_payload(
                PlacementRecorded,
                school_ref,
                self.result.not_taken,
                {
                    "la_code": la,
                    "estab": estab,
                    "urn": _digits(school_.get("URN"), (6, 7)),
                    "school_name": school_.get("SchoolName"),
                    "phase": phase_for(nc_year if current else None, estab),
                    "provision_type": provision_type_for(estab),
                    "entry_date": entry,
                    "leaving_date": leaving,
                    "leaving_reason": school_.get("LeavingReason"),
                    "nc_year": nc_year if current else None,
                    "enrolment_status": enrol if current else None,
                },
                fields={
                    "la_code": "LEA",
                    "estab": "Estab",
                    "leaving_reason": "LeavingReason",
                    "school_name": "SchoolName",
                },
            )
            self.fact(subject, payload, day_start(leaving or entry), school_ref)

    def read_contacts(self, el: Element | None, subject: Subject, ref: str) -> None:
        if el is None:
            return
        for j, contact in enumerate(el.findall("Contact"), start=1):
            contact_ = leaf_texts(contact)
            contact_ref = f"{ref}/Contact[{j}]"
            try:
                responsible = flag(contact_.get("Responsibility"))
            except ValueError:
                self.read.reject(
                    f"{contact_ref}/Responsibility",
                    "Responsibility",
                    "not true or false",
                    RULE_CODE_LIST,
                )
                continue
            if not responsible:
                self.read.reject(
                    contact_ref, "Responsibility",
                    "the contact does not hold parental responsibility: the hub takes only "
                    "contacts who do (data minimisation)",
                    RULE_CONTACT_WITHOUT_PR, kind="unsupported",
                )  # fmt: skip
                continue
            relationship = contact_.get("Relationship")
            if relationship is not None and not (
                len(relationship) == 3 and relationship.isalpha() and relationship.isupper()
            ):
                self.read.reject(
                    f"{contact_ref}/Relationship",
                    "Relationship",
                    "code is not in the code list",
                    RULE_CODE_LIST,
                )
                relationship = None
            address_el = contact.find("Address")
            try:
                lives_with = flag(text_of(address_el, "AddressAsPupil"))
            except ValueError:
                lives_with = None
            try:
                court_order = flag(
                    text_of(contact, "SuppInfo/CourtOrder") or contact_.get("CourtOrder")
                )
            except ValueError:
                court_order = None
            points: list[ContactPoint] = []
            for phone in contact.findall("Phones/Phone"):
                number = text_of(phone, "PhoneNo")
                if number:
                    use = PHONE_USE.get(text_of(phone, "TelephoneType") or "")
                    points.append(ContactPoint(system="phone", value=number[:256], use=use))
            email = contact_.get("Email")
            if email:
                points.append(ContactPoint(system="email", value=email[:256]))
            payload = build_payload(
                ContactRecorded,
                contact_ref,
                self.result.not_taken,
                {
                    "contact_order": self.read.integer(contact_.get("Order"), contact_ref, "Order"),
                    "relationship": relationship,
                    "parental_responsibility": True,
                    "court_order": court_order,
                    "lives_with_child": lives_with,
                    "title": contact_.get("Title"),
                    "surname": contact_.get("Surname"),
                    "forename": contact_.get("Forename"),
                    "middle_names": contact_.get("MiddleNames"),
                    "address": None
                    if lives_with
                    else self.contact_address(address_el, f"{contact_ref}/Address"),
                    "contact_points": tuple(points),
                },
                fields={
                    "contact_order": "Order",
                    "surname": "Surname",
                    "forename": "Forename",
                    "title": "Title",
                },
            )
            self.fact(subject, payload, self.extracted_at, contact_ref)


_SUBJECT_ELEMENTS = {
    "upn": "UPN",
    "former_upn": "FormerUPN",
    "given_name": "Forename",
    "family_name": "Surname",
    "date_of_birth": "DOB",
    "postcode": "PostCode",
}
_IDENTITY_ELEMENTS = {
    "upn": "UPN",
    "former_upns": "FormerUPN",
    "uln": "UniqueLearnerNumber",
    "surname": "Surname",
    "forename": "Forename",
    "middle_names": "MiddleNames",
    "preferred_surname": "PreferredSurname",
    "preferred_forename": "PreferredForename",
    "address": "Address",
}
_ADDRESS_ELEMENTS = {
    "lines": "BS7666Address",
    "town": "Town",
    "city": "Town",
    "county": "County",
    "postcode": "PostCode",
    "uprn": "UniquePropertyReferenceNumber",
}
_ATTENDANCE_ELEMENTS = {
    "Year": "academic_year",
    "SessionsPossible": "sessions_possible",
    "SessionsAttended": "sessions_attended",
    "SessionsAuthorised": "sessions_authorised_absence",
    "SessionsUnauthorised": "sessions_unauthorised_absence",
}


def _strip(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _address_lines(el: Element) -> list[str]:
    bs = el.find("BS7666Address")
    if bs is not None:
        names = ("SAON", "PAON", "Street", "Locality")
        return [v for v in (text_of(bs, n) for n in names) if v]
    lines = el.find("AddressLines")
    if lines is not None:
        return [v for v in (_strip(line.text) for line in lines) if v]
    return []
