"""Social care adapter for the DfE Children in Need census XML (2021-2024 schemas, root
Message/Header/Children/Child): `parse_cin` turns a return into facts per child — who the
child is (LA child id qualified by the header's LA code, UPN or the reason it is unknown,
former UPN, dates of birth and death), disabilities, CIN episodes (referral, source,
primary need, closure), CIN plans, assessments with their factors, and, under the
`safeguarding` category, section 47 enquiries and child protection plans. The rules of the
DfE validator catalogue that guard the hub's integrity (dates in order, codes in their
code lists, required ids) are enforced: a fact breaking one is not taken, with the rule's
code and message; the others are listed with reasons in contracts/inbound/cin-rules.md.
The message id is the SHA-256 of the file's bytes (`cin:sha256:<hex>`): a header's serial
number is not unique across resubmissions. Identifiers pass through as sent.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

from pydantic import ValidationError

from hub.adapters.xml_safety import (
    RULE_CODE_LIST,
    RULE_DATE_FORMAT,
    RULE_DATE_IN_FUTURE,
    RULE_REQUIRED,
    RULE_SUBJECT,
    Element,
    Reader,
    build_payload,
    content_message_id,
    day_start,
    element_paths,
    flag,
    parse_date,
    parse_local_datetime,
    parse_xml,
    report_unread,
    text_of,
    validation_not_taken,
)
from hub.errors import PermanentError
from hub.events.envelope import EventPayload, Source
from hub.events.safeguarding import CategoryOfAbuse, ChildProtectionPlanRecorded, Section47Recorded
from hub.events.social_care import (
    AssessmentFactor,
    AssessmentRecorded,
    ChildIdentified,
    CinEpisodeRecorded,
    CinPlanRecorded,
    ClosureReason,
    DisabilityCode,
    DisabilityRecorded,
    PrimaryNeed,
    ReferralSource,
)
from hub.ingest.model import AdapterResult, InboundFact, NotTaken, Subject

RULES: dict[str, str] = {
    "100": "Reference Date is incorrect",
    "1103": "The assessment start date cannot be before the referral date",
    "1104": (
        "The date of the initial child protection conference cannot be before the referral date"
    ),
    "1105": "The child protection plan start date cannot be before the referral date",
    "1520": "More than one record with the same UPN.",
    "2889": "The S47 start date cannot be before the referral date.",
    "4008": "CIN Plan shown as starting after the child\u2019s Date of Death.",
    "4009Q": "CIN Plan cannot end after the child\u2019s Date of Death",
    "4010": "CIN Plan start date is missing or out of data collection period",
    "4011": "CIN Plan End Date earlier than Start Date",
    "4015": "The CIN Plan start date cannot be before the referral date",
    "4180": "Sex must be provided and equal M, F, or U",
    "8500": "LA Child ID missing",
    "8510": "More than one child record with the same LA Child ID",
    "8520": (
        "Date of Birth is after data collection period (must be on or before the end of the census "
        "period)"
    ),
    "8535Q": (
        "Please check and either amend data or provide a reason: Child\u2019s date of death should "
        "not be prior to the date of birth"
    ),
    "8540": "Child\u2019s disability is missing or invalid (see Disability table)",
    "8555Q": "Child cannot be referred after its recorded date of death",
    "8565": "Activity shown after a case has been closed",
    "8568": "RNFA flag is missing or invalid",
    "8600": "Child referral date missing or after data collection period",
    "8606": "Child referral date is more than 40 weeks before DOB or expected DOB",
    "8608": "Assessment Start Date cannot be later than its End Date",
    "8615": (
        "Section 47 Enquiry Start Date must be present and cannot be later than the date of the "
        "initial Child Protection Conference"
    ),
    "8630": "CIN Closure Date is before CIN Referral Date for the same CIN episode",
    "8640": (
        "CIN Reason for closure code invalid (see Reason for Closure table in CIN Census code set)"
    ),
    "8650": "Primary Need Code invalid (see Primary Need table in CIN census code set)",
    "8720": "Child Protection Plan Start Date missing or out of data collection period",
    "8790": "Disability information includes both None and other values",
    "8805": "A CIN case cannot have a CIN closure date without a Reason for Closure",
    "8810": "A CIN case cannot have a Reason for Closure without a CIN Closure Date",
    "8840": "Child Protection Plan cannot start and end on the same day",
    "8841": (
        "The review date cannot be on the same day or before the Child protection Plan start date."
    ),
    "8866": "Source of Referral is missing or an invalid code",
    "8869": (
        "The assessment factors code \u201c21\u201d cannot be used in conjunction with any other "
        "assessment factors."
    ),
    "8905": (
        "Initial Category of Abuse code missing or invalid (see Category of Abuse table in CIN "
        "Census code set)"
    ),
    "8910": (
        "Latest Category of Abuse code missing or invalid (see Category of Abuse table in CIN "
        "Census code set)"
    ),
    "8915": "Child Protection Plan shown as starting after the child\u2019s Date of Death",
    "8920": "Child Protection Plan cannot end after the child\u2019s Date of Death",
    "8925": "Child Protection Plan End Date earlier than Start Date",
    "8945Q": (
        "Please check and either amend data or provide a reason: the assessment factors code '18A' "
        "should not be used ('18B' or '18C' should be used instead)"
    ),
    "8950Q": (
        "Please check and either amend data or provide a reason: the assessment factors code '19A' "
        "should not be used ('19B' or '19C' should be used instead)"
    ),
}
"""The catalogue rules the adapter enforces, code -> the catalogue's message (for a code in
several rulesets, the latest). contracts/inbound/cin-rules.md lists the rest and why."""

DISABILITIES = frozenset(get_args(DisabilityCode))
REFERRAL_SOURCES = frozenset(get_args(ReferralSource))
PRIMARY_NEEDS = frozenset(get_args(PrimaryNeed))
CLOSURE_REASONS = frozenset(get_args(ClosureReason))
FACTORS = frozenset(get_args(AssessmentFactor))
ABUSE_CATEGORIES = frozenset(get_args(CategoryOfAbuse))
UPN_UNKNOWN = frozenset({"UN1", "UN2", "UN3", "UN4", "UN5", "UN6", "UN7"})
GENDERS = frozenset({"0", "1", "2", "9"})
SEXES = frozenset({"M", "F", "U"})
UNBORN_REFERRAL_WINDOW = timedelta(weeks=40)
RULE_EPISODE_NOT_TAKEN = "hub.episode_not_taken"
"""A fact within an episode whose referral date is missing or not taken: it has nothing
to name its episode by."""

_CHILD = "Children/Child"
_DETAILS = f"{_CHILD}/CINdetails"


TAKEN_ELEMENTS = element_paths(
    ("Header", ("CollectionDetails", "Source")),
    ("Header/CollectionDetails", ("Collection", "Year", "ReferenceDate")),
    ("Header/Source", ("LEA", "SoftwareCode", "DateTime")),
    ("Children", ("Child",)),
    (_CHILD, ("ChildIdentifiers", "ChildCharacteristics", "CINdetails")),
    (f"{_CHILD}/ChildIdentifiers", (
        "LAchildID", "UPN", "FormerUPN", "UPNunknown", "PersonBirthDate", "ExpectedPersonBirthDate",
        "GenderCurrent", "Sex", "PersonDeathDate", "NHSnumber", "NHSNumber",
    )),
    (f"{_CHILD}/ChildCharacteristics", ("Disabilities",)),
    (f"{_CHILD}/ChildCharacteristics/Disabilities", ("Disability",)),
    (_DETAILS, (
        "CINreferralDate", "ReferralSource", "PrimaryNeedCode", "CINclosureDate",
        "ReasonForClosure", "DateOfInitialCPC", "Assessments", "CINPlanDates", "Section47",
        "ReferralNFA", "ChildProtectionPlans",
    )),
    (f"{_DETAILS}/Assessments", (
        "AssessmentActualStartDate", "AssessmentInternalReviewDate",
        "AssessmentAuthorisationDate", "FactorsIdentifiedAtAssessment",
    )),
    (f"{_DETAILS}/Assessments/FactorsIdentifiedAtAssessment", ("AssessmentFactors",)),
    (f"{_DETAILS}/CINPlanDates", ("CINPlanStartDate", "CINPlanEndDate")),
    (f"{_DETAILS}/Section47", (
        "S47ActualStartDate", "InitialCPCtarget", "DateOfInitialCPC", "ICPCnotRequired",
    )),
    (f"{_DETAILS}/ChildProtectionPlans", (
        "CPPstartDate", "CPPendDate", "InitialCategoryOfAbuse", "LatestCategoryOfAbuse",
        "NumberOfPreviousCPP", "Reviews",
    )),
    (f"{_DETAILS}/ChildProtectionPlans/Reviews", ("CPPreviewDate",)),
)  # fmt: skip
"""Every element the adapter reads (a path below Message, without indices); every other
element of a return gets a not-taken line (`report_unread`), so none is dropped unexplained."""


def _ref_of(path: str) -> str:
    """A path below Message in the adapter's ref style: `Child[*]/ChildCharacteristics/...`."""
    if path == _CHILD or path.startswith((f"{_CHILD}/", f"{_CHILD}#")):
        return "Child[*]" + path[len(_CHILD) :]
    return path


_UNSUPPORTED_REASONS = {
    "Ethnicity": "ethnicity is special category data not among the facts the hub takes "
    "(data minimisation)",
}
_UNSUPPORTED_REASONS.update({
    "SourceLevel": "the return's source level is not a fact about a child",
    "Release": "the sending software's release is not a fact about a child",
    "SerialNo": "the return's serial number is not a fact about a child (the hub keys a "
    "return by its content)",
})  # fmt: skip
_DEFAULT_UNSUPPORTED = "not read by the hub's CIN census adapter"


def parse_cin(
    data: bytes, *, agency: str, la_code: str | None = None, now: datetime | None = None
) -> AdapterResult:
    """Parse one CIN census return. Raises `PermanentError` when the file cannot be read at
    all (not well-formed or unsafe XML, not a CIN Message, `la_code` contradicting the
    header's LEA); otherwise each child is read and every element not taken is explained.
    `la_code` qualifies LA child ids when the header has no LEA; `now` (default: the current
    time) bounds dates that cannot lie in the future."""
    root = parse_xml(data, document="CIN census")
    if root.tag != "Message":
        raise PermanentError(
            "the root element is not Message: not a CIN census return", field="Message"
        )
    children_el = root.find("Children")
    if children_el is None:
        raise PermanentError("the CIN census has no Children element", field="Message/Children")
    reader = _CinReader(root.find("Header"), agency=agency, la_code=la_code, data=data, now=now)
    reader.read_children(children_el.findall("Child"))
    report_unread(
        root, TAKEN_ELEMENTS, reader.result.not_taken,
        ref_of=_ref_of, reasons=_UNSUPPORTED_REASONS, default=_DEFAULT_UNSUPPORTED,
    )  # fmt: skip
    return reader.result


class _CinReader:
    """State of one CIN parse: header context, the result being built, unsupported tags."""

    def __init__(
        self,
        header: Element | None,
        *,
        agency: str,
        la_code: str | None,
        data: bytes,
        now: datetime | None,
    ) -> None:
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.today = self.now.date()
        self.result = AdapterResult(message_id=content_message_id("cin", data))
        self.read = Reader(self.result.not_taken)
        warnings = self.result.warnings

        header_la = text_of(header, "Source/LEA")
        if header_la is not None and not (
            len(header_la) == 3 and (header_la.isascii() and header_la.isdigit())
        ):
            raise PermanentError(
                "the header's LEA is not a 3-digit LA code", field="Header/Source/LEA"
            )
        if header_la and la_code and header_la != la_code:
            raise PermanentError(
                "the header's LEA differs from the LA code the file was sent with",
                field="Header/Source/LEA",
            )
        self.la_code = header_la or la_code
        if self.la_code is None:
            warnings.append("no LA code (header LEA or parameter): LA child ids are unqualified")
        if text_of(header, "CollectionDetails/Collection") not in (None, "CIN"):
            warnings.append("the header's Collection is not CIN")

        self.reference_date: date | None = None
        ref_text = text_of(header, "CollectionDetails/ReferenceDate")
        if ref_text is not None:
            self.reference_date = self.read.date(
                ref_text, "Header/CollectionDetails", "ReferenceDate"
            )
        self.check_reference_date(text_of(header, "CollectionDetails/Year"))
        self.bound = min(self.reference_date or self.today, self.today)
        """Latest date a referral or birth can have: the census reference date, or today."""

        produced: datetime | None = None
        stamp = text_of(header, "Source/DateTime")
        if stamp is not None:
            try:
                produced = parse_local_datetime(stamp)
            except ValueError:
                self.read.reject(
                    "Header/Source/DateTime",
                    "DateTime",
                    "not a valid date and time",
                    RULE_DATE_FORMAT,
                )
        known = [d for d in (self.reference_date, produced.date() if produced else None) if d]
        self.latest = min(max(known), self.today) if known else self.today
        """Latest date anything in the return can have: when it was produced (the later of
        its reference date and header time), and never after today."""
        fallback = day_start(self.reference_date) if self.reference_date else self.now
        self.extracted_at = min(produced or fallback, self.now)

        software = text_of(header, "Source/SoftwareCode")
        try:
            self.source = Source(
                agency=agency,
                organisation_code=self.la_code,
                system=software[:128] if software else None,
                message_id=self.result.message_id,
            )
        except ValidationError:
            raise PermanentError(
                "the agency name must be 1-64 characters", field="agency"
            ) from None

    def check_reference_date(self, year_text: str | None) -> None:
        """Rule 100: the ReferenceDate is 31 March of the collection Year. A header that
        breaks it is reported (a not-taken line naming ReferenceDate, and a warning naming
        both dates), never silently reconciled: the date checks that rely on the collection
        period (8600, 8520, dates after the return was produced) use the ReferenceDate as
        sent, and the warning says so."""
        year = int(year_text) if year_text and year_text.isascii() and year_text.isdigit() else None
        if year is None or not 1900 < year < 10000:
            if year_text is not None:
                self.read.reject(
                    "Header/CollectionDetails/Year", "Year", "not a year (yyyy)", RULE_DATE_FORMAT
                )
            return
        expected = date(year, 3, 31)
        if self.reference_date == expected:
            return
        self.rule("Header/CollectionDetails/ReferenceDate", "100", "ReferenceDate")
        sent = self.reference_date.isoformat() if self.reference_date else "none"
        self.result.warnings.append(
            f"rule 100: the header's ReferenceDate ({sent}) is not 31 March of its collection "
            f"Year ({expected.isoformat()}); the dates of this return are checked against "
            + (f"the ReferenceDate as sent ({sent})" if self.reference_date else "today")
        )

    # --- helpers -------------------------------------------------------------------------

    def rule(self, ref: str, code: str, field: str | None) -> None:
        """Record that the element at `ref` breaks catalogue rule `code`."""
        self.result.not_taken.append(NotTaken(ref=ref, reason=RULES[code], field=field, rule=code))

    def fact(
        self, subject: Subject, payload: EventPayload | None, occurred_at: datetime, ref: str
    ) -> None:
        if payload is not None:
            self.result.facts.append(
                InboundFact(
                    subject=subject,
                    payload=payload,
                    occurred_at=occurred_at,
                    source=self.source,
                    ref=ref,
                )
            )

    def future(self, ref: str, field: str, value: date | None) -> bool:
        if value is not None and value > self.latest:
            self.read.reject(
                ref, field, f"{field} is later than the return was produced", RULE_DATE_IN_FUTURE
            )
            return True
        return False

    # --- children ------------------------------------------------------------------------

    def read_children(self, children: list[Element]) -> None:
        ids = [text_of(c, "ChildIdentifiers/LAchildID") for c in children]
        upns = [text_of(c, "ChildIdentifiers/UPN") for c in children]
        id_counts = Counter(i for i in ids if i)
        upn_counts = Counter(u.upper() for u in upns if u)
        if not children:
            self.result.warnings.append("the CIN census holds no children")
        for index, child in enumerate(children, start=1):
            ref = f"Child[{index}]"
            child_id = ids[index - 1]
            if child_id is None:
                self.rule(f"{ref}/ChildIdentifiers", "8500", "LAchildID")
                continue
            if id_counts[child_id] > 1:
                self.rule(f"{ref}/ChildIdentifiers/LAchildID", "8510", "LAchildID")
                continue
            upn = upns[index - 1]
            duplicate_upn = upn is not None and upn_counts[upn.upper()] > 1
            self.read_child(child, ref, child_id, duplicate_upn)

    def read_child(self, child: Element, ref: str, child_id: str, duplicate_upn: bool) -> None:
        ids_ref = f"{ref}/ChildIdentifiers"
        ids = child.find("ChildIdentifiers")

        upn = text_of(ids, "UPN")
        if duplicate_upn:
            self.rule(f"{ids_ref}/UPN", "1520", "UPN")
            upn = None
        identity_ok = True
        dob = self.read.date(text_of(ids, "PersonBirthDate"), ids_ref, "PersonBirthDate")
        expected = self.read.date(
            text_of(ids, "ExpectedPersonBirthDate"), ids_ref, "ExpectedPersonBirthDate"
        )
        death = self.read.date(text_of(ids, "PersonDeathDate"), ids_ref, "PersonDeathDate")
        if dob is not None and self.reference_date is not None and dob > self.reference_date:
            self.rule(f"{ids_ref}/PersonBirthDate", "8520", "PersonBirthDate")
            dob, identity_ok = None, False
        elif self.future(f"{ids_ref}/PersonBirthDate", "PersonBirthDate", dob):
            dob, identity_ok = None, False
        if self.future(f"{ids_ref}/PersonDeathDate", "PersonDeathDate", death):
            death, identity_ok = None, False
        if death is not None and dob is not None and death < dob:
            self.rule(f"{ids_ref}/PersonDeathDate", "8535Q", "PersonDeathDate")
            identity_ok = False
        nhs = text_of(ids, "NHSnumber") or text_of(ids, "NHSNumber")
        try:
            subject = Subject(
                la_code=self.la_code,
                la_child_id=child_id,
                upn=upn,
                former_upn=text_of(ids, "FormerUPN"),
                nhs_number=nhs,
                date_of_birth=dob,
            )
        except ValidationError as exc:
            self.result.not_taken.extend(
                validation_not_taken(exc, ref, rule=RULE_SUBJECT, fields=_SUBJECT_ELEMENTS)
            )
            return

        sex = text_of(ids, "Sex")
        if sex is not None and sex not in SEXES:
            self.rule(f"{ids_ref}/Sex", "4180", "Sex")
            sex = None
        gender = self.read.code(text_of(ids, "GenderCurrent"), GENDERS, ids_ref, "GenderCurrent")
        if identity_ok:
            payload = build_payload(
                ChildIdentified,
                ids_ref,
                self.result.not_taken,
                {
                    "la_code": self.la_code,
                    "la_child_id": child_id,
                    "upn": upn,
                    "former_upn": text_of(ids, "FormerUPN"),
                    "upn_unknown_reason": self.read.code(
                        text_of(ids, "UPNunknown"), UPN_UNKNOWN, ids_ref, "UPNunknown"
                    ),
                    "date_of_birth": dob,
                    "expected_date_of_birth": expected,
                    "date_of_death": death,
                    "gender_current": gender,
                    "sex": sex,
                },
                fields=_IDENTITY_ELEMENTS,
            )
            self.fact(subject, payload, self.extracted_at, ids_ref)

        self.read_disabilities(
            child.find("ChildCharacteristics/Disabilities"),
            subject,
            f"{ref}/ChildCharacteristics/Disabilities",
        )
        born = dob or expected
        for j, details in enumerate(child.findall("CINdetails"), start=1):
            self.read_episode(details, subject, f"{ref}/CINdetails[{j}]", born, death)

    def read_disabilities(self, el: Element | None, subject: Subject, ref: str) -> None:
        if el is None:
            return
        codes: list[str] = []
        for k, item in enumerate(el.findall("Disability"), start=1):
            code = (item.text or "").strip()
            if code not in DISABILITIES:
                self.rule(f"{ref}/Disability[{k}]", "8540", "Disability")
            elif code not in codes:
                codes.append(code)
        if "NONE" in codes and len(codes) > 1:
            self.rule(ref, "8790", "Disability")
            return
        if codes:
            payload = build_payload(
                DisabilityRecorded, ref, self.result.not_taken, {"disabilities": tuple(codes)}
            )
            self.fact(subject, payload, self.extracted_at, ref)

    # --- one CIN episode and what happened in it -----------------------------------------

    def read_episode(
        self, el: Element, subject: Subject, ref: str, born: date | None, death: date | None
    ) -> None:
        broken: list[tuple[str, str]] = []
        referral_text = text_of(el, "CINreferralDate")
        referral = self.read.date(referral_text, ref, "CINreferralDate")
        if referral_text is None:
            broken.append(("8600", "CINreferralDate"))
        elif referral is not None and referral > self.bound:
            broken.append(("8600", "CINreferralDate"))
            referral = None
        if referral is not None and born is not None and referral + UNBORN_REFERRAL_WINDOW < born:
            broken.append(("8606", "CINreferralDate"))
        if referral is not None and death is not None and referral > death:
            broken.append(("8555Q", "CINreferralDate"))

        source = text_of(el, "ReferralSource")
        if source not in REFERRAL_SOURCES:
            broken.append(("8866", "ReferralSource"))
        need = text_of(el, "PrimaryNeedCode")
        if need is not None and need not in PRIMARY_NEEDS:
            broken.append(("8650", "PrimaryNeedCode"))
        closure_text = text_of(el, "CINclosureDate")
        closure = self.read.date(closure_text, ref, "CINclosureDate")
        unreadable = closure_text is not None and closure is None
        reason = text_of(el, "ReasonForClosure")
        if reason is not None and reason not in CLOSURE_REASONS:
            broken.append(("8640", "ReasonForClosure"))
        if closure is not None and referral is not None and closure < referral:
            broken.append(("8630", "CINclosureDate"))
        if text_of(el, "CINclosureDate") is not None and reason is None:
            broken.append(("8805", "ReasonForClosure"))
        if reason is not None and text_of(el, "CINclosureDate") is None:
            broken.append(("8810", "CINclosureDate"))
        try:
            nfa = flag(text_of(el, "ReferralNFA"))
        except ValueError:
            nfa = None
        if nfa is None:
            broken.append(("8568", "ReferralNFA"))
        icpc_text = text_of(el, "DateOfInitialCPC")
        icpc = self.read.date(icpc_text, ref, "DateOfInitialCPC")
        unreadable = unreadable or (icpc_text is not None and icpc is None)
        if icpc is not None and referral is not None and icpc < referral:
            broken.append(("1104", "DateOfInitialCPC"))
        if icpc is not None and closure is not None and icpc > closure:
            broken.append(("8565", "DateOfInitialCPC"))
        future = any(
            [  # a list, not a generator: every future date is reported
                self.future(ref, name, value)
                for name, value in (("CINclosureDate", closure), ("DateOfInitialCPC", icpc))
            ]
        )

        for code, field in broken:
            self.rule(ref, code, field)
        if not broken and not future and not unreadable and referral is not None:
            payload = build_payload(
                CinEpisodeRecorded,
                ref,
                self.result.not_taken,
                {
                    "referral_date": referral,
                    "referral_source": source,
                    "primary_need": need,
                    "referral_nfa": nfa,
                    "initial_cpc_date": icpc,
                    "closure_date": closure,
                    "closure_reason": reason,
                },
                fields=_EPISODE_ELEMENTS,
            )
            self.fact(subject, payload, day_start(closure or referral), ref)

        episode = _Episode(referral=referral, closure=closure, death=death)
        for k, item in enumerate(el.findall("Assessments"), start=1):
            self.read_assessment(item, subject, f"{ref}/Assessments[{k}]", episode)
        for k, item in enumerate(el.findall("CINPlanDates"), start=1):
            self.read_cin_plan(item, subject, f"{ref}/CINPlanDates[{k}]", episode)
        for k, item in enumerate(el.findall("Section47"), start=1):
            self.read_section47(item, subject, f"{ref}/Section47[{k}]", episode)
        for k, item in enumerate(el.findall("ChildProtectionPlans"), start=1):
            self.read_cp_plan(item, subject, f"{ref}/ChildProtectionPlans[{k}]", episode)

    def linked(self, ref: str, episode: _Episode) -> bool:
        """A fact inside an episode is taken only when the episode's referral date is known:
        it is how the fact names its episode."""
        if episode.referral is None:
            self.read.reject(
                ref, "CINreferralDate",
                "the episode's referral date is missing or not taken: this cannot be linked to it",
                RULE_EPISODE_NOT_TAKEN,
            )  # fmt: skip
            return False
        return True

    def dates(self, el: Element, ref: str, *names: str) -> tuple[list[date | None], bool]:
        """Read several date elements; the flag is False when one is malformed or future."""
        values: list[date | None] = []
        ok = True
        for name in names:
            raw = text_of(el, name)
            value = self.read.date(raw, ref, name)
            if raw is not None and value is None:
                ok = False
            if self.future(ref, name, value):
                ok = False
            values.append(value)
        return values, ok

    def finish(
        self,
        broken: list[tuple[str, str]],
        ok: bool,
        cls: type[EventPayload],
        values: dict[str, Any],
        subject: Subject,
        ref: str,
        when: date,
        fields: dict[str, str],
    ) -> None:
        for code, field in broken:
            self.rule(ref, code, field)
        if broken or not ok:
            return
        payload = build_payload(cls, ref, self.result.not_taken, values, fields=fields)
        self.fact(subject, payload, day_start(when), ref)

    def read_assessment(self, el: Element, subject: Subject, ref: str, episode: _Episode) -> None:
        (start, review, authorised), ok = self.dates(
            el,
            ref,
            "AssessmentActualStartDate",
            "AssessmentInternalReviewDate",
            "AssessmentAuthorisationDate",
        )
        if not self.linked(ref, episode):
            return
        broken: list[tuple[str, str]] = []
        if start is None:
            if text_of(el, "AssessmentActualStartDate") is None:
                self.read.reject(
                    ref,
                    "AssessmentActualStartDate",
                    "an assessment has no start date",
                    RULE_REQUIRED,
                )
            return
        if episode.referral is not None and start < episode.referral:
            broken.append(("1103", "AssessmentActualStartDate"))
        if authorised is not None and authorised < start:
            broken.append(("8608", "AssessmentAuthorisationDate"))
        broken += episode.after_closure(
            AssessmentActualStartDate=start, AssessmentAuthorisationDate=authorised
        )
        factors: list[str] = []
        for k, item in enumerate(
            el.findall("FactorsIdentifiedAtAssessment/AssessmentFactors"), start=1
        ):
            code = (item.text or "").strip()
            factor_ref = f"{ref}/FactorsIdentifiedAtAssessment/AssessmentFactors[{k}]"
            if code == "18A":
                self.rule(factor_ref, "8945Q", "AssessmentFactors")
            elif code == "19A":
                self.rule(factor_ref, "8950Q", "AssessmentFactors")
            elif code not in FACTORS:
                self.read.reject(
                    factor_ref, "AssessmentFactors", "code is not in the code list", RULE_CODE_LIST
                )
            elif code not in factors:
                factors.append(code)
        if "21" in factors and len(factors) > 1:
            broken.append(("8869", "AssessmentFactors"))
        self.finish(
            broken, ok, AssessmentRecorded,
            {
                "referral_date": episode.referral,
                "start_date": start,
                "internal_review_date": review,
                "authorisation_date": authorised,
                "factors": tuple(factors),
            },
            subject, ref, authorised or start, _ASSESSMENT_ELEMENTS,
        )  # fmt: skip

    def read_cin_plan(self, el: Element, subject: Subject, ref: str, episode: _Episode) -> None:
        (start, end), ok = self.dates(el, ref, "CINPlanStartDate", "CINPlanEndDate")
        if not self.linked(ref, episode):
            return
        if start is None:
            if text_of(el, "CINPlanStartDate") is None:
                self.rule(ref, "4010", "CINPlanStartDate")
            return
        broken: list[tuple[str, str]] = []
        if end is not None and end < start:
            broken.append(("4011", "CINPlanEndDate"))
        if episode.referral is not None and start < episode.referral:
            broken.append(("4015", "CINPlanStartDate"))
        if episode.death is not None and start > episode.death:
            broken.append(("4008", "CINPlanStartDate"))
        if episode.death is not None and end is not None and end > episode.death:
            broken.append(("4009Q", "CINPlanEndDate"))
        broken += episode.after_closure(CINPlanStartDate=start, CINPlanEndDate=end)
        self.finish(
            broken, ok, CinPlanRecorded,
            {"referral_date": episode.referral, "start_date": start, "end_date": end},
            subject, ref, end or start, _PLAN_ELEMENTS,
        )  # fmt: skip

    def read_section47(self, el: Element, subject: Subject, ref: str, episode: _Episode) -> None:
        (start, target, icpc), ok = self.dates(
            el, ref, "S47ActualStartDate", "InitialCPCtarget", "DateOfInitialCPC"
        )
        if not self.linked(ref, episode):
            return
        broken: list[tuple[str, str]] = []
        if start is None:
            if text_of(el, "S47ActualStartDate") is None:
                self.rule(ref, "8615", "S47ActualStartDate")
            return
        if icpc is not None and icpc < start:
            broken.append(("8615", "DateOfInitialCPC"))
        if episode.referral is not None and start < episode.referral:
            broken.append(("2889", "S47ActualStartDate"))
        if episode.referral is not None and icpc is not None and icpc < episode.referral:
            broken.append(("1104", "DateOfInitialCPC"))
        broken += episode.after_closure(S47ActualStartDate=start, DateOfInitialCPC=icpc)
        try:
            not_required = flag(text_of(el, "ICPCnotRequired")) or False
        except ValueError:
            self.read.reject(
                f"{ref}/ICPCnotRequired", "ICPCnotRequired", "not true or false", RULE_CODE_LIST
            )
            return
        self.finish(
            broken, ok, Section47Recorded,
            {
                "referral_date": episode.referral,
                "start_date": start,
                "initial_cpc_target": target,
                "initial_cpc_date": icpc,
                "icpc_not_required": not_required,
            },
            subject, ref, icpc or start, _S47_ELEMENTS,
        )  # fmt: skip

    def read_cp_plan(self, el: Element, subject: Subject, ref: str, episode: _Episode) -> None:
        (start, end), ok = self.dates(el, ref, "CPPstartDate", "CPPendDate")
        if not self.linked(ref, episode):
            return
        if start is None:
            if text_of(el, "CPPstartDate") is None:
                self.rule(ref, "8720", "CPPstartDate")
            return
        broken: list[tuple[str, str]] = []
        if episode.referral is not None and start < episode.referral:
            broken.append(("1105", "CPPstartDate"))
        if end is not None and end < start:
            broken.append(("8925", "CPPendDate"))
        elif end is not None and end == start:
            broken.append(("8840", "CPPendDate"))
        initial = text_of(el, "InitialCategoryOfAbuse")
        if initial not in ABUSE_CATEGORIES:
            broken.append(("8905", "InitialCategoryOfAbuse"))
        latest = text_of(el, "LatestCategoryOfAbuse")
        if latest not in ABUSE_CATEGORIES:
            broken.append(("8910", "LatestCategoryOfAbuse"))
        if episode.death is not None and start > episode.death:
            broken.append(("8915", "CPPstartDate"))
        if episode.death is not None and end is not None and end > episode.death:
            broken.append(("8920", "CPPendDate"))
        broken += episode.after_closure(CPPendDate=end)
        reviews: list[date] = []
        for k, review_el in enumerate(el.findall("Reviews/CPPreviewDate"), start=1):
            review_ref = f"{ref}/Reviews/CPPreviewDate[{k}]"
            raw = (review_el.text or "").strip()
            if not raw:
                continue
            try:
                review = parse_date(raw)
            except ValueError:
                self.read.reject(
                    review_ref, "CPPreviewDate", "not a valid date (yyyy-mm-dd)", RULE_DATE_FORMAT
                )
                ok = False
                continue
            if self.future(review_ref, "CPPreviewDate", review):
                ok = False
            elif review <= start:
                broken.append(("8841", "CPPreviewDate"))
            reviews.append(review)
        previous = self.read.integer(text_of(el, "NumberOfPreviousCPP"), ref, "NumberOfPreviousCPP")
        self.finish(
            broken, ok, ChildProtectionPlanRecorded,
            {
                "referral_date": episode.referral,
                "start_date": start,
                "end_date": end,
                "initial_category": initial,
                "latest_category": latest,
                "previous_plans": previous,
                "review_dates": tuple(sorted(set(reviews))),
            },
            subject, ref, end or start, _CPP_ELEMENTS,
        )  # fmt: skip


class _Episode:
    """The dates of one CIN episode that the facts inside it are checked against."""

    __slots__ = ("closure", "death", "referral")

    def __init__(self, *, referral: date | None, closure: date | None, death: date | None) -> None:
        self.referral = referral
        self.closure = closure
        self.death = death

    def after_closure(self, **dates: date | None) -> list[tuple[str, str]]:
        """Rule 8565 against each element dated after the episode closed (the late one,
        never another date of the same activity)."""
        closure = self.closure
        if closure is None:
            return []
        return [("8565", name) for name, d in dates.items() if d is not None and d > closure]


_SUBJECT_ELEMENTS = {
    "la_child_id": "LAchildID",
    "upn": "UPN",
    "former_upn": "FormerUPN",
    "nhs_number": "NHSnumber",
    "date_of_birth": "PersonBirthDate",
    "la_code": "LEA",
}
_IDENTITY_ELEMENTS = {
    **_SUBJECT_ELEMENTS,
    "upn_unknown_reason": "UPNunknown",
    "expected_date_of_birth": "ExpectedPersonBirthDate",
    "date_of_death": "PersonDeathDate",
    "gender_current": "GenderCurrent",
    "sex": "Sex",
}
_EPISODE_ELEMENTS = {
    "referral_date": "CINreferralDate",
    "referral_source": "ReferralSource",
    "primary_need": "PrimaryNeedCode",
    "referral_nfa": "ReferralNFA",
    "initial_cpc_date": "DateOfInitialCPC",
    "closure_date": "CINclosureDate",
    "closure_reason": "ReasonForClosure",
}
_ASSESSMENT_ELEMENTS = {
    "start_date": "AssessmentActualStartDate",
    "internal_review_date": "AssessmentInternalReviewDate",
    "authorisation_date": "AssessmentAuthorisationDate",
    "factors": "AssessmentFactors",
}
_PLAN_ELEMENTS = {"start_date": "CINPlanStartDate", "end_date": "CINPlanEndDate"}
_S47_ELEMENTS = {
    "start_date": "S47ActualStartDate",
    "initial_cpc_target": "InitialCPCtarget",
    "initial_cpc_date": "DateOfInitialCPC",
    "icpc_not_required": "ICPCnotRequired",
}
_CPP_ELEMENTS = {
    "start_date": "CPPstartDate",
    "end_date": "CPPendDate",
    "initial_category": "InitialCategoryOfAbuse",
    "latest_category": "LatestCategoryOfAbuse",
    "previous_plans": "NumberOfPreviousCPP",
    "review_dates": "CPPreviewDate",
}
