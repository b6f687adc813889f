"""Code lists the FHIR adapter reads: identifier systems, the practitioner role vocabulary,
encounter attendance, and the sensitive-service rule (see `SENSITIVE_SERVICE_RULE`) that
raises a fact's data category to `mental_health` or `sexual_health`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

MENTAL_HEALTH: Final = "mental_health"
SEXUAL_HEALTH: Final = "sexual_health"

SENSITIVE_SERVICE_RULE: Final = "sexual_health > mental_health > the resource's own"
"""Sensitive-service rule (conservative: only clear signs raise a category, and a
neurodevelopmental diagnosis never does). A fact is `sexual_health`, else
`mental_health`, when any of these holds:
  1. a *service* concept of its resource — Encounter.type / serviceType, CareTeam.category,
     PractitionerRole.code / specialty, DocumentReference.type / practiceSetting /
     facilityType, CarePlan.category — carries an NHS treatment-function or practice-setting
     code in `MENTAL_HEALTH_FUNCTIONS` (710 adult mental illness, 711 child and adolescent
     psychiatry, 712 forensic psychiatry, 713 medical psychotherapy, 715 old age psychiatry)
     or `SEXUAL_HEALTH_FUNCTIONS` (360 genitourinary medicine), or its display or text
     names the service (`MENTAL_HEALTH_WORDS`: CAMHS, "child and adolescent mental
     health", "mental health", psychiatry; `SEXUAL_HEALTH_WORDS`: sexual health,
     genitourinary / GUM, contraception, family planning, sexually transmitted);
  2. a *diagnosis* (Condition.code, Encounter / CareTeam.reasonCode, Observation.code or
     its coded value) is one of the SNOMED CT codes in
     `MENTAL_HEALTH_SNOMED` / `SEXUAL_HEALTH_SNOMED`, or an ICD-10 code in F10-F69
     (mental and behavioural disorders other than organic, intellectual disability F70-F79,
     developmental disorders incl. autism F80-F89 and childhood-onset behavioural and
     emotional disorders incl. ADHD F90-F98 — those are SEND needs the team must see) or
     A50-A64, B20-B24, O00-O08, Z30 (sexually transmitted infections, HIV, pregnancy with
     abortive outcome, contraceptive management);
  3. a practitioner's role maps to `camhs_clinician` / `sexual_health_clinician`;
  4. it belongs to an Encounter, or addresses a Condition, that the rule raised (an
     Observation's, Condition's or DocumentReference's encounter, a CarePlan's addresses).
Diagnosis displays and free text are never keyword-matched.
"""

FHIR_ODS_SYSTEMS: Final = frozenset(
    {
        "https://fhir.nhs.uk/Id/ods-organization-code",
        "https://fhir.nhs.uk/Id/ods-organisation-code",
        "https://fhir.nhs.uk/Id/ods-site-code",
    }
)
NHS_NUMBER_VERIFICATION_URL: Final = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
SNOMED: Final = "http://snomed.info/sct"

PRACTITIONER_ID_SYSTEMS: Final = {
    "https://fhir.hl7.org.uk/Id/gmc-number": "gmc",
    "https://fhir.hl7.org.uk/Id/gmp-number": "gmp",
    "https://fhir.hl7.org.uk/Id/nmc-number": "nmc",
    "https://fhir.hl7.org.uk/Id/hcpc-number": "hcpc",
    "https://fhir.hl7.org.uk/Id/gdc-number": "gdc",
    "https://fhir.nhs.uk/Id/sds-user-id": "sds",
    "https://fhir.nhs.uk/Id/sds-role-profile-id": "sds-role",
    "http://hl7.org/fhir/sid/us-npi": "npi",
}
"""Practitioner identifier systems, and the short prefix of the hub's practitioner id."""

# ------------------------------------------------------------------ practitioner roles

ROLE_SNOMED: Final = {
    "62247001": "gp",  # General practitioner (occupation)
    "82296001": "paediatrician",  # Pediatrician (occupation)
    "159026005": "speech_and_language_therapist",  # Speech and language therapist
    "80546007": "occupational_therapist",  # Occupational therapist
    "36682004": "physiotherapist",  # Physiotherapist
    "106328005": "social_worker",  # Social worker
}
"""SNOMED CT occupation codes mapped onto the hub's role vocabulary
(contracts/consent-policy.yaml `roles`)."""

ROLE_WORDS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern, re.IGNORECASE), role)
    for pattern, role in (
        (r"\bcamhs\b|child and adolescent mental health|psychiatr", "camhs_clinician"),
        (r"sexual health|genito-?urinary", "sexual_health_clinician"),
        (r"educational psycholog", "educational_psychologist"),
        # specialists before "paediatrician" ("consultant paediatric neurologist")
        (r"neurolog", "neurologist"),
        (r"orthop(a)?edic", "orthopaedic_surgeon"),
        (r"scoliosis", "scoliosis_nurse"),
        (r"orthotist|orthotic", "orthotist"),
        (r"ophthalmolog", "ophthalmologist"),
        (r"dentist|dental", "dentist"),
        (r"continence", "continence_adviser"),
        (r"wheelchair", "wheelchair_services"),
        (r"p(a)?ediatrician|consultant p(a)?ediatric|community p(a)?ediatric", "paediatrician"),
        (r"general (medical )?practitioner|\bgp\b", "gp"),
        (r"health visitor", "health_visitor"),
        (r"school nurs", "school_nurse"),
        (r"speech (and language )?therap", "speech_and_language_therapist"),
        (r"occupational therap", "occupational_therapist"),
        (r"physiotherap|physical therap", "physiotherapist"),
        (r"social worker", "social_worker"),
        (r"key ?worker", "key_worker"),
        (r"\bsenco\b|special educational needs co-?ordinator", "senco"),
        (r"\bteacher\b", "teacher"),
    )
)
"""Role words in a role's display or text, first match wins (for codes not listed above)."""

FALLBACK_ROLE: Final = "health_practitioner"
"""A practitioner whose role maps to nothing in the vocabulary."""


def role_from_concepts(concepts: Iterable[Any]) -> str | None:
    """The hub role named by FHIR CodeableConcepts (SNOMED CT code, else role words)."""
    texts: list[str] = []
    for concept in concepts:
        if concept is None:
            continue
        for coding in concept.coding or ():
            if coding.system == SNOMED and coding.code in ROLE_SNOMED:
                return ROLE_SNOMED[coding.code]
            if coding.display:
                texts.append(coding.display)
        if concept.text:
            texts.append(concept.text)
    for text in texts:
        for pattern, role in ROLE_WORDS:
            if pattern.search(text):
                return role
    return None


ROLE_CATEGORY: Final = {"camhs_clinician": MENTAL_HEALTH, "sexual_health_clinician": SEXUAL_HEALTH}

# ------------------------------------------------------------------ sensitive services

MENTAL_HEALTH_FUNCTIONS: Final = frozenset({"710", "711", "712", "713", "715"})
SEXUAL_HEALTH_FUNCTIONS: Final = frozenset({"360"})
_FUNCTION_SYSTEM = re.compile(r"treatment-?function|practice-?setting|specialty", re.IGNORECASE)

MENTAL_HEALTH_WORDS: Final = re.compile(
    r"\bcamhs\b|child and adolescent mental health|mental health|psychiatr", re.IGNORECASE
)
SEXUAL_HEALTH_WORDS: Final = re.compile(
    r"sexual health|genito-?urinary|\bgum\b|contracept|family planning|sexually transmitted",
    re.IGNORECASE,
)

MENTAL_HEALTH_SNOMED: Final = frozenset(
    {
        "74732009",  # Mental disorder
        "35489007",  # Depressive disorder
        "370143000",  # Major depressive disorder
        "197480006",  # Anxiety disorder
        "56882008",  # Anorexia nervosa
        "78004001",  # Bulimia nervosa
        "47505003",  # Posttraumatic stress disorder
        "191736004",  # Obsessive-compulsive disorder
        "69322001",  # Psychotic disorder
        "58214004",  # Schizophrenia
        "13746004",  # Bipolar disorder
    }
)
SEXUAL_HEALTH_SNOMED: Final = frozenset(
    {
        "8098009",  # Sexually transmitted infectious disease
        "105629000",  # Chlamydial infection
        "15628003",  # Gonorrhea
        "76272004",  # Syphilis
        "33839006",  # Genital herpes simplex
        "86406008",  # Human immunodeficiency virus infection
    }
)
_ICD10_SYSTEM = re.compile(r"icd-?10", re.IGNORECASE)
_ICD10_CODE = re.compile(r"^([A-Z])(\d{2})")
_ICD10_MENTAL: Final = (("F", 10, 69),)
_ICD10_SEXUAL: Final = (("A", 50, 64), ("B", 20, 24), ("O", 0, 8), ("Z", 30, 30))


def _icd10_in(code: str, ranges: tuple[tuple[str, int, int], ...]) -> bool:
    match = _ICD10_CODE.match(code.upper())
    if not match:
        return False
    letter, number = match.group(1), int(match.group(2))
    return any(letter == lo_letter and lo <= number <= hi for lo_letter, lo, hi in ranges)


def _strongest(found: set[str]) -> str | None:
    if SEXUAL_HEALTH in found:
        return SEXUAL_HEALTH
    if MENTAL_HEALTH in found:
        return MENTAL_HEALTH
    return None


def service_category(concepts: Iterable[Any]) -> str | None:
    """`sexual_health` / `mental_health` when a service concept names such a service."""
    found: set[str] = set()
    for concept in concepts:
        if concept is None:
            continue
        codings = list(concept.coding or ()) if hasattr(concept, "coding") else [concept]
        texts = [concept.text] if getattr(concept, "text", None) else []
        for coding in codings:
            code = coding.code or ""
            if coding.system and _FUNCTION_SYSTEM.search(coding.system):
                if code in MENTAL_HEALTH_FUNCTIONS:
                    found.add(MENTAL_HEALTH)
                elif code in SEXUAL_HEALTH_FUNCTIONS:
                    found.add(SEXUAL_HEALTH)
            if coding.display:
                texts.append(coding.display)
        for text in texts:
            if SEXUAL_HEALTH_WORDS.search(text):
                found.add(SEXUAL_HEALTH)
            elif MENTAL_HEALTH_WORDS.search(text):
                found.add(MENTAL_HEALTH)
    return _strongest(found)


def diagnosis_category(concepts: Iterable[Any]) -> str | None:
    """`sexual_health` / `mental_health` when a diagnosis code is on the lists above."""
    found: set[str] = set()
    for concept in concepts:
        if concept is None:
            continue
        for coding in concept.coding or ():
            code = coding.code or ""
            system = coding.system or ""
            if system == SNOMED:
                if code in SEXUAL_HEALTH_SNOMED:
                    found.add(SEXUAL_HEALTH)
                elif code in MENTAL_HEALTH_SNOMED:
                    found.add(MENTAL_HEALTH)
            elif _ICD10_SYSTEM.search(system):
                if _icd10_in(code, _ICD10_SEXUAL):
                    found.add(SEXUAL_HEALTH)
                elif _icd10_in(code, _ICD10_MENTAL):
                    found.add(MENTAL_HEALTH)
    return _strongest(found)


def strongest(*categories: str | None) -> str | None:
    """The most sensitive of several categories (sexual health, then mental health)."""
    return _strongest({c for c in categories if c})


# ------------------------------------------------------------------ attendance

ENCOUNTER_STATUSES: Final = frozenset(
    {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
_ATTENDED_STATUSES: Final = frozenset({"arrived", "triaged", "in-progress", "onleave", "finished"})
DNA_SNOMED: Final = frozenset({"281399006"})  # Did not attend
_ATTENDANCE_SYSTEM = re.compile(r"attend", re.IGNORECASE)
_NHS_DD_ATTENDED: Final = frozenset({"5", "6"})
_NHS_DD_DNA: Final = frozenset({"3", "7"})
_NHS_DD_CANCELLED: Final = frozenset({"2", "4"})


def attendance(status: str, codings: Iterable[Any]) -> str:
    """attended / did_not_attend / cancelled / planned / unknown, from Encounter.status
    and any NHS Data Dictionary 'attended or did not attend' code (5, 6 attended; 3, 7
    did not attend; 2, 4 cancelled) or SNOMED CT 281399006 |Did not attend| sent with it
    (in an extension, the type or the reason)."""
    dd: str | None = None
    snomed_dna = False
    for coding in codings:
        system = coding.system or ""
        if system == SNOMED and coding.code in DNA_SNOMED:
            snomed_dna = True
        elif _ATTENDANCE_SYSTEM.search(system) and coding.code:
            dd = coding.code
    if dd in _NHS_DD_DNA or snomed_dna:
        return "did_not_attend"
    if dd in _NHS_DD_CANCELLED:
        return "cancelled"
    if dd in _NHS_DD_ATTENDED or status in _ATTENDED_STATUSES:
        return "attended"
    if status == "cancelled":
        return "cancelled"
    if status == "planned":
        return "planned"
    return "unknown"
