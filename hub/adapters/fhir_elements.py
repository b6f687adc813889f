"""Which elements of each FHIR resource type the FHIR adapter reads, so that every other
element of a resource it takes is named in a not-taken line (`hub.not_read`).

`TAKEN_ELEMENTS` lists, per resource type, the element paths (FHIR names joined with `.`,
no indices; `class` and other keywords as FHIR spells them) that the mapping in
`hub.adapters.fhir` reads into a fact, into a fact's source, or uses to decide about one
(a status, the subject, a category signal). A path names an element and everything below
it only where the whole element is carried (a narrative `div` is never among them).
`leaf_paths` gives the paths of every value a resource holds, in its JSON form, so the
adapter (and the sample-accounting test) can find each element no path covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final


def _under(prefix: str, *leaves: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{leaf}" for leaf in leaves)


CODING: Final = ("system", "code", "display")
CONCEPT: Final = ("coding.system", "coding.code", "coding.display", "text")
CODES_ONLY: Final = ("coding.system", "coding.code", "coding.display")
QUANTITY: Final = ("value", "comparator", "unit", "system", "code")
PERIOD: Final = ("start", "end")
NAME: Final = ("use", "family", "given", "text")
ADDRESS: Final = ("use", "period.end", "line", "city", "postalCode")
TELECOM: Final = ("system", "value", "use")
SUBJECT: Final = ("reference", "type", "identifier.system", "identifier.value")
"""A reference to the subject Patient: resolved in the message, else its NHS number."""
ODS_REF: Final = ("reference", "identifier.system", "identifier.value")
"""A reference read for an organisation's ODS code (identifier, or the Organization)."""
ORGANISATION: Final = (*ODS_REF, "display")
"""A reference read for an organisation's ODS code and its name."""
STATUS: Final = ("coding.system", "coding.code")
"""A coded status: its HL7 code (checked against the value set) is carried."""
MEMBER: Final = ("reference", "display", "identifier.system", "identifier.value")
"""A reference to a Practitioner or PractitionerRole: its identifier, name and contact."""


def _value(prefix: str, *, text: bool = True) -> tuple[str, ...]:
    """An Observation's (or component's) `value[x]`, as `fhir_values.observed_value` reads
    it (a component's string value is not carried)."""
    return (
        *_under(f"{prefix}Quantity", *QUANTITY),
        *_under(f"{prefix}CodeableConcept", *CONCEPT),
        *((f"{prefix}String",) if text else ()),
        f"{prefix}Boolean",
        f"{prefix}Integer",
        *_under(f"{prefix}Range.low", *QUANTITY),
        *_under(f"{prefix}Range.high", *QUANTITY),
        *_under(f"{prefix}Ratio.numerator", *QUANTITY),
        *_under(f"{prefix}Ratio.denominator", *QUANTITY),
        f"{prefix}DateTime",
        *_under(f"{prefix}Period", *PERIOD),
        f"{prefix}Time",
    )


def _team(prefix: str = "") -> tuple[str, ...]:
    """What joining a CareTeam's members reads (also of a CareTeam contained in a plan)."""
    p = f"{prefix}." if prefix else ""
    return (
        *_under(f"{p}period", *PERIOD),
        *_under(f"{p}managingOrganization", *ORGANISATION),
        *_under(f"{p}participant.member", *MEMBER),
        *_under(f"{p}participant.period", *PERIOD),
        *_under(f"{p}participant.role", *CONCEPT),
        *_under(f"{p}participant.onBehalfOf", *ORGANISATION),
    )


def _provision(prefix: str) -> tuple[str, ...]:
    """A Consent provision as `hub.consent.fhir` reads it (the elements it refuses, rather
    than ignore, are refused there with the element named)."""
    return (
        f"{prefix}.type",
        *_under(f"{prefix}.period", *PERIOD),
        *_under(f"{prefix}.action", *STATUS),
        *_under(f"{prefix}.actor.role", *STATUS),
        *_under(f"{prefix}.actor.reference", "identifier.system", "identifier.value"),
        *_under(f"{prefix}.purpose", *CODING),
        *_under(f"{prefix}.class", *CODING),
    )


_COMMON: Final = ("id", "meta.versionId", "meta.lastUpdated")
"""Every resource: its id names it; its version orders what it says (natural keys)."""

TAKEN_ELEMENTS: Final[dict[str, frozenset[str]]] = {
    name: frozenset((*_COMMON, *paths))
    for name, paths in {
        "Patient": (
            "identifier.system",
            "identifier.value",
            "identifier.extension.url",
            *_under("identifier.extension.valueCodeableConcept", *CODES_ONLY),
            *_under("name", "use", "family", "given"),  # the child's own name: no text
            "birthDate",
            "gender",
            *_under("address", "use", "period.end", "postalCode"),  # the postcode alone
            "deceasedBoolean",
            "deceasedDateTime",
            *_under("generalPractitioner", *ODS_REF),
            *_under("managingOrganization", *ODS_REF),
            *_under("contact.relationship", *CODES_ONLY),
            *_under("contact.name", "family", "given", "text"),
            *_under("contact.telecom", *TELECOM),
            *_under("contact.address", "line", "city", "postalCode"),
        ),
        "Condition": (
            *_under("subject", *SUBJECT),
            *_under("verificationStatus", *STATUS),
            *_under("clinicalStatus", *STATUS),
            *_under("code", *CONCEPT),
            *_under("category", *CODES_ONLY),
            *_under("severity", *CONCEPT),
            "onsetDateTime",
            "onsetPeriod.start",
            "abatementDateTime",
            "abatementPeriod.end",
            "recordedDate",
            "encounter.reference",
            "note.text",
        ),
        "Encounter": (
            *_under("subject", *SUBJECT),
            "status",
            *_under("period", *PERIOD),
            *_under("class", *CODING),
            "extension.url",
            *_under("extension.valueCoding", "system", "code"),  # attendance signals
            *_under("extension.valueCodeableConcept", *STATUS),
            *_under("type", *CONCEPT),
            *_under("serviceType", *CONCEPT),
            *_under("reasonCode", *CONCEPT),
            *_under("diagnosis.condition", "reference"),
            *_under("serviceProvider", *ODS_REF),
        ),
        "Observation": (
            *_under("subject", *SUBJECT),
            "status",
            "effectiveDateTime",
            "effectiveInstant",
            *_under("effectivePeriod", *PERIOD),
            *_under("component.code", *CONCEPT),
            *_value("component.value", text=False),
            *_under("component.dataAbsentReason", "coding.code"),
            *_under("category", *CODES_ONLY),
            *_under("code", *CONCEPT),
            *_value("value"),
            *_under("dataAbsentReason", "coding.code"),
            *_under("interpretation", *CODES_ONLY),
            "issued",
            "hasMember.reference",
            "encounter.reference",
            "note.text",
        ),
        "CarePlan": (
            *_under("subject", *SUBJECT),
            "status",
            "intent",
            *_under("period", *PERIOD),
            *_under("activity.detail.code", *CONCEPT),
            "activity.detail.kind",
            "activity.detail.status",
            "activity.reference.reference",
            "created",
            *_under("category", *CONCEPT),
            "title",
            "description",
            "addresses.reference",
            "note.text",
            "encounter.reference",
            "careTeam.reference",
            "contained.id",
            *_team("contained"),
        ),
        "CareTeam": (
            *_under("subject", *SUBJECT),
            "status",
            *_under("category", *CONCEPT),
            *_under("reasonCode", "coding.system", "coding.code"),
            "encounter.reference",
            "reasonReference.reference",
            *_team(),
        ),
        "DocumentReference": (
            *_under("subject", *SUBJECT),
            "status",
            "docStatus",
            *_under("type", *CONCEPT),
            *_under("category", *CONCEPT),
            "context.encounter.reference",
            *_under("context.related", "reference", "identifier.system", "identifier.value"),
            *_under("context.practiceSetting", *CONCEPT),
            *_under("context.facilityType", *CONCEPT),
            *_under("custodian", *ODS_REF),
            "date",
            *_under("content.attachment", "contentType", "url", "title", "size", "creation"),
            "description",
            *_under("author", "reference", "identifier.system", "identifier.value"),
            "masterIdentifier.value",
            "identifier.value",
        ),
        "Consent": (
            *_under("patient", *SUBJECT),
            "status",
            "identifier.system",
            "identifier.value",
            "dateTime",
            "performer.reference",
            "performer.identifier.value",
            "extension.url",
            "extension.valueCode",
            "extension.valueString",
            *_under("policyRule", *CODES_ONLY),
            *_provision("provision"),
            *_provision("provision.provision"),
        ),
        "RelatedPerson": (
            *_under("patient", *SUBJECT),
            *_under("relationship", *CODES_ONLY),
            *_under("name", *NAME),
            *_under("telecom", *TELECOM),
            *_under("address", *ADDRESS),
            "active",
        ),
        "Practitioner": (
            "identifier.system",
            "identifier.value",
            *_under("name", *NAME, "prefix"),
            *_under("telecom", *TELECOM),
        ),
        "PractitionerRole": (
            *_under("practitioner", *MEMBER),
            *_under("organization", *ORGANISATION),
            *_under("code", *CONCEPT),
            *_under("specialty", *CONCEPT),
            *_under("telecom", *TELECOM),
        ),
        "Organization": ("identifier.system", "identifier.value", "name"),
        "MessageHeader": (
            "source.software",
            "source.name",
            "source.endpoint",
            *_under("sender", *ODS_REF),
            *_under("responsible", *ODS_REF),
        ),
        "ServiceRequest": (
            "identifier.system",
            "identifier.value",
            *_under("code", "coding.system", "coding.code"),
            *_under("category", "coding.system", "coding.code"),
            "basedOn.identifier.system",
            "basedOn.identifier.value",
        ),
        "Task": (
            "identifier.system",
            "identifier.value",
            *_under("code", "coding.system", "coding.code"),
            "basedOn.identifier.system",
            "basedOn.identifier.value",
        ),
    }.items()
}
"""Per resource type, the element paths the adapter reads (see the module docstring)."""

REASONS: Final[dict[str, str]] = {
    "text": "the narrative is a rendering for people of what the resource says; the hub "
    "reads the structured elements",
    "meta": "resource metadata (profiles, tags, security labels, source) is not a fact "
    "about the child",
    "extension": "an extension the hub does not read",
    "modifierExtension": "a modifier extension the hub does not read",
    "identifier": "an identifier the hub does not use",
}
"""Why an element is not read, by its first name in the path (else `DEFAULT_REASON`)."""
DEFAULT_REASON: Final = "not read by the hub's FHIR adapter"


def leaf_paths(doc: Any, path: str = "") -> Iterator[str]:
    """The path of every value in a resource's JSON form (lists add no index; the
    narrative's `div` is one value; `resourceType` is the resource itself, not a value)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "resourceType":
                continue
            sub = f"{path}.{key}" if path else key
            if key == "div" or not isinstance(value, dict | list):
                yield sub
            else:
                yield from leaf_paths(value, sub)
    elif isinstance(doc, list):
        for value in doc:
            if isinstance(value, dict | list):
                yield from leaf_paths(value, path)
            else:
                yield path


def covered(path: str, taken: Iterable[str]) -> bool:
    """Whether `path` or an element holding it is among `taken`."""
    names = frozenset(taken)
    parts = path.split(".")
    return any(".".join(parts[:n]) in names for n in range(1, len(parts) + 1))


def unread(resource: Any, resource_type: str) -> list[str]:
    """The elements (in order, once each) of a resource the adapter does not read, each
    named by the largest element that holds it of which the adapter reads nothing: an
    extension the hub does not read is one path (`extension`), not one per value in it,
    while an address's `state` is named alone (its `postalCode` is read)."""
    out: dict[str, None] = {}
    for path in leaf_paths(resource):
        key = (resource_type, path)
        head = _HEADS.get(key, "")
        if head == "":
            head = _unread_head(path, TAKEN_ELEMENTS.get(resource_type, frozenset()))
            if len(_HEADS) < _MEMO_LIMIT:  # a hostile sender's paths must not grow it
                _HEADS[key] = head
        if head is not None:
            out[head] = None
    return list(out)


def _unread_head(path: str, taken: frozenset[str]) -> str | None:
    """None when the adapter reads `path`, else the largest element holding it of which
    the adapter reads nothing."""
    if covered(path, taken):
        return None
    parts = path.split(".")
    for n in range(1, len(parts) + 1):
        head = ".".join(parts[:n])
        if not any(t == head or t.startswith(f"{head}.") for t in taken):
            return head
    return path


_MEMO_LIMIT: Final = 20_000
_HEADS: dict[tuple[str, str], str | None] = {}
"""`_unread_head` by (resource type, path): the paths a sender uses are few, and the
answer is a pure function of the declarations."""
