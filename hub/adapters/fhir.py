"""The NHS FHIR R4 adapter: a Bundle, a single resource or FHIR Bulk Data ndjson, in JSON or
XML, read into `InboundFact`s about the child each resource's subject Patient names.

`parse_fhir` decodes the body (JSON with orjson; XML screened by defusedxml — no DTDs, no
entities — and then parsed by an lxml parser that resolves nothing; ndjson a line at a
time), validates each resource on its own against the fhir.resources R4B model of its type
(so one bad resource is reported and the rest go through), links resources within the
message by reference (fullUrl, `Type/id`, `urn:uuid:`, `#contained`), and maps the types
the hub takes: Patient (identity and contacts), Condition, Encounter, Observation,
CarePlan, CareTeam (with Practitioner, PractitionerRole and Organization: team
membership), DocumentReference (EHC advice or a health document), Consent (the consent
import of `hub.consent.fhir`) and RelatedPerson. Every other resource, and every resource
it cannot take, comes back as a `NotTaken` with the FHIR path and the rule. Identifiers
are passed on as sent: linking them is the identity layer's job. fhir.resources is
imported on first use, not with this module. The rule that makes a DocumentReference EHC
advice is on `ADVICE_REQUEST_SYSTEM`; the sensitive-service rule is in `fhir_codes`.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, cast
from xml.parsers import expat

import orjson
from pydantic import ValidationError

from hub.adapters import fhir_codes as codes
from hub.adapters import fhir_elements as fe
from hub.adapters import fhir_values as fv
from hub.errors import PermanentError
from hub.events.envelope import EventPayload, Source
from hub.events.family import RelatedPersonRecorded
from hub.events.health import (
    CarePlanRecorded,
    ConditionRecorded,
    DocumentRecorded,
    EncounterRecorded,
    ObservationRecorded,
    PatientIdentified,
)
from hub.events.plan import AdviceSubmitted
from hub.events.team import PractitionerJoined, PractitionerLeft
from hub.identity.identifiers import FHIR_NHS_NUMBER_SYSTEM
from hub.ingest.model import AdapterResult, InboundFact, NotTaken, Subject

if TYPE_CHECKING:
    from hub.consent.policy import SharingPolicy

Json = dict[str, Any]
Format = Literal["json", "xml", "ndjson"]

FHIR_NS: Final = "http://hl7.org/fhir"
HUB_DOCUMENT_CATEGORY_SYSTEM: Final = "https://tac-hub.example/fhir/CodeSystem/document-category"
ADVICE_CATEGORY_CODE: Final = "ehc-advice"
ADVICE_REQUEST_CODE: Final = "ehc-advice-request"
ADVICE_REQUEST_SYSTEM: Final = "https://tac-hub.example/fhir/NamingSystem/advice-request-id"
"""EHC advice rule: a DocumentReference is `plan.advice_submitted` when (a) one of its
`context.related` references carries an identifier in this system, or resolves in the
message to a ServiceRequest or Task that carries one or is coded `ehc-advice-request` in
`HUB_DOCUMENT_CATEGORY_SYSTEM`; or (b) its own `category` (or `type`) is coded `ehc-advice`
in that system. The advice request id is that identifier's value (none under (b) alone);
the plan id comes from an identifier in `PLAN_ID_SYSTEM` on the related reference, the
request, or the request's `basedOn`. Any other DocumentReference is
`health.document_recorded`. Advice claims the `ehc_assessment` purpose, and the reg 6
statutory basis only when it answers a known request and is not of a sensitive service."""
PLAN_ID_SYSTEM: Final = "https://tac-hub.example/fhir/NamingSystem/plan-id"

MEDIA_TYPES: Final[dict[str, Format]] = {
    "application/fhir+json": "json",
    "application/json+fhir": "json",
    "application/json": "json",
    "text/json": "json",
    "application/fhir+xml": "xml",
    "application/xml+fhir": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/fhir+ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/x-ndjson": "ndjson",
}
BUNDLE_TYPES: Final = frozenset(
    {"collection", "batch", "transaction", "message", "searchset", "document"}
)
REFUSED_BUNDLE_TYPES: Final = {
    "history": "a history bundle holds past versions, not facts to take",
    "batch-response": "a response bundle holds a server's answers, not facts",
    "transaction-response": "a response bundle holds a server's answers, not facts",
}
TAKEN_TYPES: Final = frozenset(
    {
        "Patient",
        "Condition",
        "Encounter",
        "Observation",
        "CarePlan",
        "CareTeam",
        "DocumentReference",
        "Consent",
        "RelatedPerson",
    }
)
CONTEXT_TYPES: Final = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "MessageHeader", "ServiceRequest", "Task"}
)
"""Read only to make sense of the resources that refer to them."""

_GENDERS: Final = frozenset({"male", "female", "other", "unknown"})
OBSERVATION_STATUSES: Final = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "unknown"}
    | {"entered-in-error"}
)
CARE_PLAN_STATUSES: Final = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
CARE_PLAN_INTENTS: Final = frozenset({"proposal", "plan", "order", "option"})
CARE_TEAM_STATUSES: Final = frozenset(
    {"proposed", "active", "suspended", "inactive", "entered-in-error"}
)
DOCUMENT_STATUSES: Final = frozenset({"current", "superseded", "entered-in-error"})
CONDITION_CLINICAL: Final = (
    "http://terminology.hl7.org/CodeSystem/condition-clinical",
    frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"}),
)
CONDITION_VERIFICATION: Final = (
    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    frozenset(
        {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
    ),
)
_REFERENCE_TAIL = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9.\-]{1,64})(?:/_history/[^/]+)?$")
_DIGIT_RUN = re.compile(r"(?<!\d)\d{10}(?!\d)")
_NOT_REFERENCE_CHARS = re.compile(r"[^A-Za-z0-9._:/|-]")
_RECORDED_BY_CHARS = re.compile(r"[^A-Za-z0-9._:/|-]")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_FHIR_ID = re.compile(r"[A-Za-z0-9.\-]{1,64}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S{1,240}")
RULE_NOT_READ: Final = "hub.not_read"
"""An element of a resource the hub took that the adapter does not read."""
_MODEL_CLASSES: dict[str, Any] = {}
_POLICY: list[SharingPolicy] = []


# =========================================================================== entry point


def parse_fhir(
    data: bytes,
    *,
    content_type: str,
    agency: str,
    received_at: datetime | None = None,
    policy: SharingPolicy | None = None,
) -> AdapterResult:
    """Read one FHIR message (Bundle, single resource or ndjson) into facts and not-taken
    lines. `content_type` picks JSON, XML or ndjson (`application/fhir+ndjson`); `agency`
    names the sender. `received_at` dates facts the message leaves undated (default now);
    `policy` is the sharing policy for Consent imports (default: the hub's policy file).
    A body that cannot be read at all raises `PermanentError` with the reason."""
    if not isinstance(agency, str) or not 1 <= len(agency) <= 64:
        raise PermanentError("the sending agency must be named (1-64 characters)", field="agency")
    fmt, charset = _media_type(content_type)
    if not data:
        raise PermanentError("the body is empty", field="body")
    if fmt == "xml":
        message = _read_xml(data)
    elif fmt == "ndjson":
        message = _read_ndjson(_as_text(data, charset))
    else:
        message = _read_json_document(_load_json(data, charset))
    reader = _Reader(message, agency, received_at or datetime.now(UTC), policy, data)
    return reader.run()


# =========================================================================== decoding


def _media_type(content_type: str) -> tuple[Format, str | None]:
    parts = [p.strip() for p in (content_type or "").split(";")]
    media = parts[0].lower()
    fmt = MEDIA_TYPES.get(media)
    if fmt is None:
        shown = media[:64] if re.fullmatch(r"[a-z0-9.+/-]*", media) else "that media type"
        raise PermanentError(
            f"unsupported media type {shown!r}: send application/fhir+json, "
            "application/fhir+xml or application/fhir+ndjson",
            field="content_type",
        )
    charset = None
    for param in parts[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return fmt, charset


def _as_text(data: bytes, charset: str | None) -> str | bytes:
    """Bytes for orjson (UTF-8, BOM removed), or text decoded from another charset."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        charset = "utf-16"
    if charset in (None, "utf-8", "utf8"):
        return data
    try:
        return data.decode(charset)
    except LookupError:
        raise PermanentError("unknown charset", field="content_type") from None
    except UnicodeDecodeError as exc:
        raise PermanentError(
            f"not valid {charset} text (at byte {exc.start})", field="content_type"
        ) from None


def _load_json(data: bytes, charset: str | None) -> Any:
    try:
        return orjson.loads(_as_text(data, charset))
    except orjson.JSONDecodeError as exc:
        raise PermanentError(
            f"not valid JSON ({exc.msg}) at line {exc.lineno}, column {exc.colno}", field="json"
        ) from None


def _screen_xml(data: bytes) -> None:
    """defusedxml first: a DTD, an entity declaration or an external reference is refused
    before any parser that could expand it sees the bytes."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PermanentError(
            f"unsafe XML refused ({exc.__class__.__name__}): DTDs and entities are not accepted",
            field="xml.doctype",
        ) from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        code = getattr(exc, "code", None)
        what = expat.ErrorString(code) if isinstance(code, int) else "not well-formed"
        raise PermanentError(
            f"not well-formed XML: {what} at line {line}, column {column}", field="xml"
        ) from None
    except (ValueError, LookupError, UnicodeError) as exc:
        raise PermanentError(
            f"not readable XML ({exc.__class__.__name__})", field="xml.encoding"
        ) from None


def _parse_xml(data: bytes) -> Any:
    # lxml ships no type stubs; fhir.resources' XML support is built on it
    from lxml import etree  # type: ignore[import-untyped]

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (0, 0)
        raise PermanentError(
            f"not well-formed XML: {exc.__class__.__name__} at line {line}, column {column}",
            field="xml",
        ) from None
    except ValueError as exc:
        raise PermanentError(
            f"not well-formed XML: {exc.__class__.__name__}", field="xml"
        ) from None


# --------------------------------------------------------------------------- the message


@dataclass(slots=True, eq=False)
class _Entry:
    """One resource of the message, before and after validation."""

    index: int
    where: str
    resource_type: str
    rid: str | None
    full_url: str | None
    raw: Any
    ref: str = ""
    model: Any = None
    used: bool = False


@dataclass
class _Message:
    kind: Literal["bundle", "resource", "ndjson"]
    entries: list[_Entry]
    not_taken: list[NotTaken] = field(default_factory=list)
    bundle_type: str | None = None
    bundle_id: str | None = None
    identifier: tuple[str | None, str] | None = None
    version_id: str | None = None
    last_updated: datetime | None = None
    timestamp: datetime | None = None
    meta_source: str | None = None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _read_json_document(doc: Any) -> _Message:
    if not isinstance(doc, dict):
        raise PermanentError("a FHIR resource is a JSON object", field="resourceType")
    resource_type = _str(doc.get("resourceType"))
    if resource_type is None:
        raise PermanentError("required: the resource's type", field="resourceType")
    if resource_type != "Bundle":
        entry = _Entry(0, "resource", resource_type, _str(doc.get("id")), None, doc)
        return _Message("resource", [entry], **_json_meta(doc))
    return _read_json_bundle(doc)


def _json_meta(doc: Json) -> Json:
    meta = doc.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return {
        "version_id": _str(meta.get("versionId")),
        "last_updated": _parse_instant(meta.get("lastUpdated")),
        "meta_source": _str(meta.get("source")),
    }


def _bundle_type(value: str | None) -> str:
    if value is None:
        raise PermanentError("required: the bundle's type", field="Bundle.type")
    if value in REFUSED_BUNDLE_TYPES:
        raise PermanentError(REFUSED_BUNDLE_TYPES[value], field="Bundle.type")
    if value not in BUNDLE_TYPES:
        raise PermanentError(
            "not a bundle type the hub takes (collection, batch, transaction, message, "
            "searchset, document)",
            field="Bundle.type",
        )
    return value


def _read_json_bundle(doc: Json) -> _Message:
    btype = _bundle_type(_str(doc.get("type")))
    raw_entries = doc.get("entry", [])
    if not isinstance(raw_entries, list):
        raise PermanentError("must be an array", field="Bundle.entry")
    ident = doc.get("identifier")
    identifier = None
    if isinstance(ident, dict) and _str(ident.get("value")):
        identifier = (_str(ident.get("system")), str(ident["value"]))
    message = _Message(
        "bundle",
        [],
        bundle_type=btype,
        bundle_id=_str(doc.get("id")),
        identifier=identifier,
        timestamp=_parse_instant(doc.get("timestamp")),
        **_json_meta(doc),
    )
    for i, raw in enumerate(raw_entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(raw, dict):
            message.not_taken.append(
                NotTaken(where, "an entry is a JSON object", field=where, rule="json_shape")
            )
            continue
        request = raw.get("request")
        method = _str(request.get("method")) if isinstance(request, dict) else None
        resource = raw.get("resource")
        problem = _entry_problem(where, resource, method)
        if problem is not None or not isinstance(resource, dict):
            message.not_taken.append(
                problem or NotTaken(where, "invalid", field=where, rule="json_shape")
            )
            continue
        message.entries.append(
            _Entry(
                i,
                f"{where}.resource",
                resource["resourceType"],
                _str(resource.get("id")),
                _str(raw.get("fullUrl")),
                resource,
            )
        )
    return message


def _entry_problem(where: str, resource: Any, method: str | None) -> NotTaken | None:
    if method == "DELETE":
        return NotTaken(
            where,
            "a DELETE request: the hub does not delete facts it has taken",
            kind="unsupported",
            field=f"{where}.request.method",
            rule="delete_request",
        )
    if resource is None:
        return NotTaken(
            where,
            "no resource in the entry",
            kind="unsupported",
            field=f"{where}.resource",
            rule="no_resource",
        )
    if not isinstance(resource, dict):
        return NotTaken(
            where, "a resource is a JSON object", field=f"{where}.resource", rule="json_shape"
        )
    if _str(resource.get("resourceType")) is None:
        return NotTaken(
            where,
            "required: the resource's type",
            field=f"{where}.resource.resourceType",
            rule="required",
        )
    return None


def _read_ndjson(text: str | bytes) -> _Message:
    message = _Message("ndjson", [])
    lines: list[str | bytes] = list(
        text.splitlines() if isinstance(text, str) else text.split(b"\n")
    )
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line[{n}]"
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            message.not_taken.append(
                NotTaken(where, f"not valid JSON ({exc.msg})", field=where, rule="json")
            )
            continue
        if not isinstance(doc, dict) or _str(doc.get("resourceType")) is None:
            message.not_taken.append(
                NotTaken(
                    where, "not a FHIR resource (no resourceType)", field=where, rule="required"
                )
            )
            continue
        message.entries.append(
            _Entry(n, where, doc["resourceType"], _str(doc.get("id")), None, doc)
        )
    if not message.entries:
        first = message.not_taken[0] if message.not_taken else None
        raise PermanentError(
            f"no line of the ndjson body is a FHIR resource ({first.ref}: {first.reason})"
            if first is not None
            else "the ndjson body holds no resource",
            field="ndjson",
        )
    return message


# --------------------------------------------------------------------------- XML


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(element: Any) -> str | None:
    tag = element.tag
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1:].split("}", 1)[0]
    return None


def _child(element: Any, name: str) -> Any:
    return element.find(f"{{{FHIR_NS}}}{name}")


def _xval(element: Any, name: str) -> str | None:
    child = _child(element, name)
    return _str(child.get("value")) if child is not None else None


def _first_element(element: Any) -> Any:
    for child in element:
        if isinstance(child.tag, str):
            return child
    return None


def _read_xml(data: bytes) -> _Message:
    _screen_xml(data)
    root = _parse_xml(data)
    if _ns(root) != FHIR_NS:
        raise PermanentError(
            "not FHIR XML: the root element is not in the FHIR namespace (http://hl7.org/fhir)",
            field="resourceType",
        )
    rtype = _local(root)
    meta: Json = {}
    meta_el = _child(root, "meta")
    if meta_el is not None:
        meta = {
            "version_id": _xval(meta_el, "versionId"),
            "last_updated": _parse_instant(_xval(meta_el, "lastUpdated")),
            "meta_source": _xval(meta_el, "source"),
        }
    if rtype != "Bundle":
        entry = _Entry(0, "resource", rtype, _xval(root, "id"), None, root)
        return _Message("resource", [entry], **meta)
    ident_el = _child(root, "identifier")
    identifier = None
    if ident_el is not None and _xval(ident_el, "value"):
        identifier = (_xval(ident_el, "system"), cast(str, _xval(ident_el, "value")))
    message = _Message(
        "bundle",
        [],
        bundle_type=_bundle_type(_xval(root, "type")),
        bundle_id=_xval(root, "id"),
        identifier=identifier,
        timestamp=_parse_instant(_xval(root, "timestamp")),
        **meta,
    )
    for i, entry_el in enumerate(root.iterfind(f"{{{FHIR_NS}}}entry")):
        where = f"Bundle.entry[{i}]"
        request = _child(entry_el, "request")
        method = _xval(request, "method") if request is not None else None
        holder = _child(entry_el, "resource")
        inner = _first_element(holder) if holder is not None else None
        if inner is not None and _ns(inner) != FHIR_NS:
            message.not_taken.append(
                NotTaken(
                    where,
                    "the resource is not in the FHIR namespace",
                    field=where,
                    rule="namespace",
                )
            )
            continue
        resource = {"resourceType": _local(inner)} if inner is not None else None
        problem = _entry_problem(where, resource, method)
        if problem is not None:
            message.not_taken.append(problem)
            continue
        message.entries.append(
            _Entry(
                i,
                f"{where}.resource",
                _local(inner),
                _xval(inner, "id"),
                _xval(entry_el, "fullUrl"),
                inner,
            )
        )
    return message


# =========================================================================== validation


def _model_class(resource_type: str) -> Any:
    cls = _MODEL_CLASSES.get(resource_type)
    if cls is None:
        from fhir.resources.R4B import get_fhir_model_class

        cls = get_fhir_model_class(resource_type)
        _MODEL_CLASSES[resource_type] = cls
    return cls


def _fhir_path(resource_type: str, loc: Iterable[Any]) -> str:
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "resource_type":
            out += ".resourceType"
        elif isinstance(part, str) and part not in ("__root__", "root"):
            name = part[:-5] if part.endswith("__ext") else part
            out += f".{'_' if part.endswith('__ext') else ''}{name}"
    return out


def _clean_message(msg: str, value: Any) -> str:
    msg = msg.removeprefix("Value error, ")
    msg = " ".join(msg.split())
    if isinstance(value, str) and len(value) >= 3:
        msg = msg.replace(value, "…")
    return fv.clip(msg, 300) or "invalid"


def _invalid(ref: str, resource_type: str, exc: ValidationError) -> NotTaken:
    errors = exc.errors(include_url=False)
    err = errors[0]
    title = exc.title
    prefix = resource_type if title in (resource_type, "") else f"{resource_type}/{title}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return NotTaken(
        ref,
        f"not valid FHIR R4 {resource_type}: {_clean_message(err['msg'], err.get('input'))}{more}",
        field=_fhir_path(prefix, err["loc"]),
        rule=str(err["type"]),
    )


def _validate(entry: _Entry) -> NotTaken | None:
    cls = _model_class(entry.resource_type)
    try:
        if isinstance(entry.raw, dict):
            entry.model = cls.model_validate(entry.raw)
        else:
            from fhir_core.xml_utils import Node

            node = Node.from_element(entry.raw, fhir_class=cls)
            entry.model = node.to_fhir(cls)
    except ValidationError as exc:
        return _invalid(entry.ref, entry.resource_type, exc)
    except KeyError as exc:
        name = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        known = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name)
        what = f"unknown element {name!r}" if known else "an unexpected element"
        return NotTaken(
            entry.ref,
            f"not valid FHIR R4 {entry.resource_type}: {what}",
            field=entry.resource_type,
            rule="unknown_element",
        )
    except Exception as exc:  # hostile input may trip any error in the model code
        return NotTaken(
            entry.ref,
            f"not valid FHIR R4 {entry.resource_type} ({exc.__class__.__name__})",
            field=entry.resource_type,
            rule="invalid",
        )
    return None


# =========================================================================== mapping


@dataclass(slots=True)
class _Fact:
    payload: EventPayload
    occurred_at: datetime
    ref: str
    organisation: str | None = None
    category: str | None = None
    plan_id: str | None = None
    purposes: tuple[str, ...] = ()
    statutory_basis: str | None = None


_Mapped = Iterator["_Fact | NotTaken"]


class _Reader:
    """Maps one decoded message; holds its reference index and caches."""

    def __init__(
        self,
        message: _Message,
        agency: str,
        received_at: datetime,
        policy: SharingPolicy | None,
        data: bytes,
    ) -> None:
        self.message = message
        self.agency = agency
        self.received_at = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
        self.policy = policy
        self.data = data
        self.index: dict[str, _Entry] = {}
        self.masks: dict[str, str] = {}
        self.subjects: dict[int, Subject | NotTaken] = {}
        self.categories: dict[int, str | None] = {}
        self.sources: dict[str | None, Source] = {}
        self.result = AdapterResult()
        self.system: str | None = fv.clip(message.meta_source, 128)
        self.sender_ods: str | None = None
        self.message_time = message.timestamp or message.last_updated
        self.mappers: dict[str, Callable[[_Entry, Any], _Mapped]] = {
            "Patient": self._patient,
            "Condition": self._condition,
            "Encounter": self._encounter,
            "Observation": self._observation,
            "CarePlan": self._care_plan,
            "CareTeam": self._care_team,
            "DocumentReference": self._document,
            "Consent": self._consent,
            "RelatedPerson": self._related_person,
        }

    # ------------------------------------------------------------------ driver

    def run(self) -> AdapterResult:
        result = self.result
        result.not_taken.extend(
            NotTaken(self.mask(n.ref), n.reason, n.kind, n.field, n.rule)
            for n in self.message.not_taken
        )
        valid: list[_Entry] = []
        for entry in self.message.entries:
            entry.ref = self._entry_ref(entry)
            rtype = entry.resource_type
            if rtype not in TAKEN_TYPES and rtype not in CONTEXT_TYPES:
                result.not_taken.append(
                    NotTaken(
                        entry.ref,
                        f"{_type_name(rtype)} is not a resource type the hub takes",
                        kind="unsupported",
                        field=entry.where,
                        rule="resource_type",
                    )
                )
                continue
            problem = _validate(entry)
            if problem is not None:
                result.not_taken.append(problem)
                continue
            entry.rid = entry.model.id
            duplicate = self._index(entry)
            if duplicate is not None:
                result.not_taken.append(duplicate)
                continue
            valid.append(entry)
        self._message_header(valid)
        result.message_id = self._message_id()
        for entry in valid:
            mapper = self.mappers.get(entry.resource_type)
            if mapper is None:
                continue
            try:
                for item in mapper(entry, entry.model):
                    if isinstance(item, NotTaken):
                        result.not_taken.append(item)
                    else:
                        result.facts.append(self._inbound(item, entry))
            except Exception as exc:  # one odd resource must not stop the rest of the message
                result.not_taken.append(
                    NotTaken(
                        entry.ref,
                        f"could not be read ({exc.__class__.__name__})",
                        field=entry.resource_type,
                        rule="adapter_error",
                    )
                )
        for entry in valid:
            if entry.resource_type in CONTEXT_TYPES and entry.used:
                result.context.append(entry.ref)
            elif entry.resource_type in CONTEXT_TYPES:
                result.not_taken.append(
                    NotTaken(
                        entry.ref,
                        f"{entry.resource_type} is read only as context for the resources "
                        "that refer to it, and no resource taken refers to it",
                        kind="unsupported",
                        field=entry.where,
                        rule="context_only",
                    )
                )
        self._report_unread(valid)
        return result

    def _report_unread(self, valid: list[_Entry]) -> None:
        """A not-taken line (`hub.not_read`) for each element path, per resource type, that
        a resource the hub took holds and the adapter does not read (`fhir_elements`):
        one line per path and type for the whole message (`Bundle.entry[*]...`), saying
        in how many resources it was. A resource not taken as a whole has its own line."""
        refused = {n.ref for n in self.result.not_taken}
        found: dict[tuple[str, str, str], int] = {}
        for entry in valid:
            if entry.ref in refused:
                continue
            raw = entry.raw
            if not isinstance(raw, dict):  # XML: its JSON form
                raw = entry.model.model_dump(mode="json", by_alias=True, exclude_none=True)
            if entry.resource_type == "Patient":
                self._other_identifiers(entry)
            pattern = re.sub(r"\[\d+\]", "[*]", entry.where)
            for path in fe.unread(raw, entry.resource_type):
                key = (pattern, entry.resource_type, path)
                found[key] = found.get(key, 0) + 1
        for (pattern, rtype, path), count in found.items():
            names = path.split(".")
            reason = fe.REASONS.get(names[-1]) or fe.REASONS.get(names[0], fe.DEFAULT_REASON)
            if "[*]" in pattern:
                reason += f" (in {count} {rtype} resource{'s' if count > 1 else ''})"
            self.result.not_taken.append(
                NotTaken(
                    f"{pattern}({rtype}).{path}",
                    reason,
                    kind="unsupported",
                    field=f"{rtype}.{path}",
                    rule=RULE_NOT_READ,
                )
            )

    def _inbound(self, fact: _Fact, entry: _Entry) -> InboundFact:
        subject = cast(Subject, self.subjects[id(entry)])  # set before any fact is yielded
        return InboundFact(
            subject=subject,
            payload=fact.payload,
            occurred_at=fact.occurred_at,
            source=self._record_source(self._source(fact.organisation), fact, entry),
            ref=fact.ref,
            plan_id=fact.plan_id,
            category=fact.category,
            purposes=fact.purposes,
            statutory_basis=fact.statutory_basis,
        )

    def _source(self, organisation: str | None) -> Source:
        org = self.sender_ods or organisation
        source = self.sources.get(org)
        if source is None:
            source = Source(
                agency=self.agency,
                organisation_code=org,
                system=self.system,
                message_id=self.result.message_id,
            )
            self.sources[org] = source
        return source

    def _other_identifiers(self, entry: _Entry) -> None:
        """A not-taken line for each identifier of a Patient the hub took other than the
        NHS number (an MRN, a national id of another country): read, to find the NHS
        number, but not carried."""
        for i, ident in enumerate(entry.model.identifier or ()):
            if ident.system == FHIR_NHS_NUMBER_SYSTEM and ident.value:
                continue
            self.result.not_taken.append(
                NotTaken(
                    f"{entry.ref}.identifier[{i}]",
                    "an identifier other than the NHS number is not carried: the hub links "
                    "a child by NHS number, or by name and date of birth",
                    kind="unsupported",
                    field="Patient.identifier",
                    rule=RULE_NOT_READ,
                )
            )

    def _record_source(self, source: Source, fact: _Fact, entry: _Entry) -> Source:
        """`source` naming the resource the fact reads (`Type/id`, with the fact's place
        in it when the resource gives several facts) and the resource's version
        (`meta.versionId`, `meta.lastUpdated`): what makes a re-sent resource the same
        fact, and orders its versions (`hub.ingest.natural_keys`)."""
        if not entry.rid or not _FHIR_ID.fullmatch(entry.rid):
            return source
        record = self.mask(f"{entry.resource_type}/{entry.rid}")
        if fact.ref != entry.ref and fact.ref.startswith(entry.ref):
            record += "#" + fact.ref[len(entry.ref) :].lstrip(".")
        meta = entry.model.meta
        version = fv.fit(meta.versionId, 64) if meta is not None and meta.versionId else None
        updated = fv.instant(meta.lastUpdated) if meta is not None and meta.lastUpdated else None
        if len(record) > 160:
            record = "sha256:" + hashlib.sha256(record.encode("utf-8")).hexdigest()
        return source.model_copy(
            update={"record_id": record, "record_version": version, "record_updated": updated}
        )

    # ------------------------------------------------------------------ identity of things

    def mask(self, text: str) -> str:
        """`text` with any NHS-number-like run of 10 digits (some servers use the NHS
        number as the Patient id) replaced by a per-message token."""
        if not _DIGIT_RUN.search(text):
            return text

        def token(match: re.Match[str]) -> str:
            value = match.group(0)
            if not _valid_nhs_number(value):
                return value
            return self.masks.setdefault(value, f"masked{len(self.masks) + 1}")

        return _DIGIT_RUN.sub(token, text)

    def _entry_ref(self, entry: _Entry) -> str:
        """`<where>(Type/id)`: only a well-formed type and id are shown (the raw values of
        a resource that fails validation could be anything)."""
        name = _type_name(entry.resource_type)
        if entry.rid and _FHIR_ID.fullmatch(entry.rid):
            name = f"{name}/{entry.rid}"
        return self.mask(f"{entry.where}({name})")

    def _canonical(self, entry: _Entry) -> str:
        """How payloads name a resource of the message: `Type/id`, else its fullUrl."""
        if entry.rid:
            return self.mask(f"{entry.resource_type}/{entry.rid}")
        if entry.full_url and _URI.fullmatch(entry.full_url):
            return self.mask(entry.full_url)
        return entry.ref

    def _index(self, entry: _Entry) -> NotTaken | None:
        keys = [k for k in (entry.full_url,) if k]
        if entry.rid:
            keys.append(f"{entry.resource_type}/{entry.rid}")
        for key in keys:
            if key in self.index:
                return NotTaken(
                    entry.ref,
                    f"the message holds this {entry.resource_type} twice",
                    kind="duplicate",
                    rule="duplicate",
                    field=(
                        f"{entry.where.rsplit('.', 1)[0]}.fullUrl"
                        if key == entry.full_url
                        else f"{entry.where}.id"
                    ),
                )
        for key in keys:
            self.index[key] = entry
        return None

    def resolve(self, reference: Any) -> _Entry | None:
        """The message's resource a Reference points at (fullUrl, Type/id, absolute URL)."""
        if reference is None:
            return None
        target = reference.reference if hasattr(reference, "reference") else reference
        if not target:
            return None
        found = self.index.get(target)
        if found is not None:
            return found
        match = _REFERENCE_TAIL.search(target)
        if match:
            return self.index.get(f"{match.group(1)}/{match.group(2)}")
        return None

    def ref_string(self, reference: Any) -> str | None:
        """A Reference as payloads carry it: the canonical ref of the message's resource,
        else the reference as sent (masked)."""
        if reference is None:
            return None
        found = self.resolve(reference)
        if found is not None:
            return self._canonical(found)
        if reference.reference:
            return self.mask(fv.clip(reference.reference, 256) or "")
        return None

    def ods(self, reference: Any) -> str | None:
        """The ODS code of the organisation a Reference names (by identifier, or the
        Organization / PractitionerRole in the message)."""
        if reference is None:
            return None
        ident = reference.identifier
        if ident is not None and ident.system in codes.FHIR_ODS_SYSTEMS and ident.value:
            return fv.fit(ident.value, 32)
        target = self.resolve(reference)
        if target is None:
            return None
        if target.resource_type == "PractitionerRole":
            target.used = True
            return self.ods(target.model.organization)
        if target.resource_type != "Organization":
            return None
        target.used = True
        return _ods_of(target.model)

    def practitioner(self, reference: Any) -> tuple[str | None, Any]:
        """(practitioner id, PractitionerRole model or None) for a Reference to a
        Practitioner or PractitionerRole. The id is the Practitioner's professional
        identifier (`gmc:C1234567`), else its `system|value`, else its reference."""
        if reference is None:
            return None, None
        target = self.resolve(reference)
        role = None
        if target is not None and target.resource_type == "PractitionerRole":
            target.used = True
            role = target.model
            inner = self.resolve(role.practitioner)
            if inner is None and role.practitioner is not None:
                ident = _practitioner_identifier([role.practitioner.identifier])
                return ident or self.ref_string(role.practitioner) or self._canonical(target), role
            target = inner
        if target is not None and target.resource_type == "Practitioner":
            target.used = True
            ident = _practitioner_identifier(target.model.identifier or ())
            return ident or self._canonical(target), role
        if target is not None:
            return None, None
        ident = _practitioner_identifier([reference.identifier])
        if ident:
            return ident, None
        text = reference.reference or ""
        if text.startswith(("Practitioner/", "PractitionerRole/", "urn:", "http")):
            return self.ref_string(reference), None
        return None, None

    def practitioner_contact(self, reference: Any, role: Any) -> str | None:
        """How to reach a team member at work: the PractitionerRole's telecom, else the
        Practitioner's (work or unstated use; never a home number), values joined."""
        sources = [role] if role is not None else []
        target = self.resolve(reference) if reference is not None else None
        if role is not None and role.practitioner is not None:
            target = self.resolve(role.practitioner)
        if target is not None and target.resource_type == "Practitioner":
            sources.append(target.model)
        for source in sources:
            values = [
                p["value"]
                for p in fv.telecoms(source.telecom)
                if p["use"] in (None, "work") and p["system"] in (None, "phone", "email", "other")
            ]
            if values:
                return fv.clip(", ".join(dict.fromkeys(values)), 200)
        return None

    def practitioner_name(self, reference: Any, role: Any) -> str | None:
        """A team member's name: their Practitioner's official (else usual) HumanName in
        the message — prefix, given and family names, else its text — else the display
        of the reference that named them (the PractitionerRole's, then the member's)."""
        target = self.resolve(reference) if reference is not None else None
        if role is not None and role.practitioner is not None:
            target = self.resolve(role.practitioner)
        if target is not None and target.resource_type == "Practitioner":
            name = _human_name(fv.pick_name(target.model.name))
            if name:
                return name
        for ref in (role.practitioner if role is not None else None, reference):
            display = getattr(ref, "display", None)
            if isinstance(display, str) and display.strip():
                return fv.clip(display.strip(), 200)
        return None

    def organisation_name(self, reference: Any) -> str | None:
        """The name of the organisation a Reference names: the Organization in the
        message (directly or through a PractitionerRole), else the reference's display."""
        if reference is None:
            return None
        target = self.resolve(reference)
        if target is not None and target.resource_type == "PractitionerRole":
            target.used = True
            return self.organisation_name(target.model.organization)
        if target is not None and target.resource_type == "Organization":
            target.used = True
            name = target.model.name
        elif target is None:
            name = reference.display
        else:
            return None
        return fv.clip(name.strip(), 200) if isinstance(name, str) and name.strip() else None

    def unmapped_roles(self, where: str, participant: Any, role: Any) -> Iterator[NotTaken]:
        """A not-taken line for each role code of a member whose roles map to nothing in
        the vocabulary (the member still joins, as `FALLBACK_ROLE`): the CareTeam
        participant's `role` and the PractitionerRole's `code`, each by its path. Codes
        are named by system and code, never by their free text."""
        lines: list[tuple[str, str, Any]] = [
            (f"{where}.role[{j}]", "CareTeam.participant.role", c)
            for j, c in enumerate(participant.role or ())
        ]
        if role is not None:
            found = self.resolve(participant.member)
            base = (
                found.ref
                if found is not None and found.resource_type == "PractitionerRole"
                else f"{where}.member(PractitionerRole)"
            )
            lines.extend(
                (f"{base}.code[{j}]", "PractitionerRole.code", c)
                for j, c in enumerate(role.code or ())
            )
        for ref, field_, concept in lines:
            codes_sent = [
                f"{c.system or '(no system)'}|{c.code}" for c in concept.coding or () if c.code
            ]
            what = ", ".join(codes_sent) if codes_sent else "given as text only"
            yield NotTaken(
                ref,
                f"the role ({fv.clip(what, 300)}) maps to no role in the hub's vocabulary: "
                f"the member joins the team as {codes.FALLBACK_ROLE}",
                kind="unsupported",
                field=field_,
                rule="role_not_in_vocabulary",
            )

    def fallback_time(self, resource: Any) -> datetime:
        meta = resource.meta
        if meta is not None and meta.lastUpdated is not None:
            last = fv.instant(meta.lastUpdated)
            if last is not None:
                return last
        return self.message_time or self.received_at

    # ------------------------------------------------------------------ message

    def _message_header(self, valid: list[_Entry]) -> None:
        if self.message.bundle_type != "message":
            return
        header = next((e for e in valid if e.resource_type == "MessageHeader"), None)
        if header is None:
            return
        header.used = True
        model = header.model
        source = model.source
        if source is not None:
            self.system = fv.clip(source.software or source.name or source.endpoint, 128)
        self.sender_ods = self.ods(model.sender) or self.ods(model.responsible)

    def _message_id(self) -> str:
        msg = self.message
        header_id = None
        if msg.bundle_type == "message":
            header = next((e for e in msg.entries if e.resource_type == "MessageHeader"), None)
            header_id = header.rid if header is not None else None
        if header_id:
            candidate = f"MessageHeader/{header_id}"
        elif msg.identifier is not None:
            system, value = msg.identifier
            candidate = f"{system}|{value}" if system else value
        elif msg.kind == "bundle" and msg.bundle_id:
            candidate = f"Bundle/{msg.bundle_id}"
            if msg.version_id:
                candidate += f"/_history/{msg.version_id}"
            elif msg.last_updated is not None:
                candidate += f"@{msg.last_updated.isoformat()}"
        elif msg.kind == "resource" and msg.version_id and msg.entries[0].rid:
            entry = msg.entries[0]
            candidate = f"{entry.resource_type}/{entry.rid}/_history/{msg.version_id}"
        else:
            return "sha256:" + hashlib.sha256(self.data).hexdigest()
        if len(candidate) > 200 or _DIGIT_RUN.search(candidate):
            return "sha256:" + hashlib.sha256(candidate.encode("utf-8")).hexdigest()
        return candidate

    # ------------------------------------------------------------------ subjects

    def _subject(self, entry: _Entry, reference: Any, path: str) -> NotTaken | None:
        """Resolve and remember the subject of `entry`'s facts; a NotTaken if it has none."""
        found = self._subject_of(entry, reference, path)
        if isinstance(found, NotTaken):
            return found
        self.subjects[id(entry)] = found
        return None

    def _subject_of(self, entry: _Entry, reference: Any, path: str) -> Subject | NotTaken:
        field_ = f"{entry.resource_type}.{path}"
        if reference is None:
            return NotTaken(
                entry.ref,
                "subject not identifiable: no patient reference",
                field=field_,
                rule="subject_not_identifiable",
            )
        target = self.resolve(reference)
        if target is not None:
            if target.resource_type != "Patient":
                return NotTaken(
                    entry.ref,
                    f"the subject is a {target.resource_type}, not a Patient",
                    field=field_,
                    rule="subject_not_patient",
                )
            subject = self._patient_subject(target)
            if isinstance(subject, NotTaken):
                return NotTaken(entry.ref, subject.reason, field=field_, rule=subject.rule)
            return subject
        ident = reference.identifier
        if ident is not None and ident.system == FHIR_NHS_NUMBER_SYSTEM and ident.value:
            nhs = fv.fit(ident.value, 32)
            if nhs is None:
                return NotTaken(
                    entry.ref,
                    "the NHS number is longer than 32 characters",
                    field=f"{field_}.identifier.value",
                    rule="max_length",
                )
            return Subject(nhs_number=nhs)
        kind = reference.type
        if kind is None and reference.reference:
            match = _REFERENCE_TAIL.search(reference.reference)
            kind = match.group(1) if match else None
        if kind not in (None, "Patient"):
            return NotTaken(
                entry.ref,
                f"the subject is a {fv.clip(kind, 64)}, not a Patient",
                field=field_,
                rule="subject_not_patient",
            )
        return NotTaken(
            entry.ref,
            "subject not identifiable: its Patient is not in the message and the reference "
            "carries no NHS number",
            field=field_,
            rule="subject_not_identifiable",
        )

    def _patient_subject(self, entry: _Entry) -> Subject | NotTaken:
        cached = self.subjects.get(id(entry))
        if cached is not None:
            return cached
        patient = entry.model
        nhs = _nhs_identifier(patient)
        name = fv.pick_name(patient.name)
        dob = patient.birthDate if isinstance(patient.birthDate, date) else None
        if dob is not None and dob > self.received_at.date():
            dob = None
        address = fv.pick_address(patient.address)
        given = fv.fit(name.given[0], 128) if name is not None and name.given else None
        family = fv.fit(name.family, 128) if name is not None else None
        nhs_value = fv.fit(nhs.value, 32) if nhs is not None else None
        subject: Subject | NotTaken
        if nhs_value is None and not (dob and (given or family)):
            subject = NotTaken(
                entry.ref,
                "subject not identifiable: the Patient has no NHS number, and no name with a "
                "date of birth",
                field="Patient.identifier",
                rule="subject_not_identifiable",
            )
        else:
            subject = Subject(
                nhs_number=nhs_value,
                given_name=given,
                family_name=family,
                date_of_birth=dob,
                postcode=fv.fit(address.postalCode, 16) if address is not None else None,
            )
        self.subjects[id(entry)] = subject
        return subject

    # ------------------------------------------------------------------ categories

    def encounter_category(self, reference: Any) -> str | None:
        target = self.resolve(reference)
        if target is None or target.resource_type != "Encounter":
            return None
        return self._encounter_category(target)

    def _encounter_category(self, target: _Entry) -> str | None:
        key = id(target)
        if key not in self.categories:
            self.categories[key] = None  # no cycles
            enc = target.model
            service = [*(enc.type or ()), enc.serviceType]
            diagnosis: list[str | None] = [codes.diagnosis_category(enc.reasonCode or ())]
            for d in enc.diagnosis or ():
                diagnosis.append(self.condition_category(d.condition))
            self.categories[key] = codes.strongest(codes.service_category(service), *diagnosis)
        return self.categories[key]

    def condition_category(self, reference: Any) -> str | None:
        target = self.resolve(reference)
        if target is None or target.resource_type != "Condition":
            return None
        return self._condition_category(target)

    def _condition_category(self, target: _Entry) -> str | None:
        key = id(target)
        if key not in self.categories:
            self.categories[key] = None
            cond = target.model
            self.categories[key] = codes.strongest(
                codes.diagnosis_category([cond.code]), self.encounter_category(cond.encounter)
            )
        return self.categories[key]

    # ------------------------------------------------------------------ payloads

    def _payload(
        self, entry: _Entry, cls: type[EventPayload], data: Json, ref: str | None = None
    ) -> EventPayload | NotTaken:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            reason = _clean_message(err["msg"], err.get("input"))
            return NotTaken(
                ref or entry.ref,
                f"cannot be recorded as {cls.event_type}: {reason}",
                field=f"{entry.resource_type} ({cls.event_type}.{loc})",
                rule=str(err["type"]),
            )

    def _status_problem(
        self, entry: _Entry, status: str | None, path: str, allowed: frozenset[str] | None = None
    ) -> NotTaken | None:
        if status == "entered-in-error":
            return NotTaken(
                entry.ref,
                "entered in error: nothing to record",
                field=f"{entry.resource_type}.{path}",
                rule="entered_in_error",
            )
        if allowed is not None and status not in allowed:
            return NotTaken(
                entry.ref,
                "not a code of its FHIR value set",
                field=f"{entry.resource_type}.{path}",
                rule="code_not_in_value_set",
            )
        return None

    def _coded_status(
        self, entry: _Entry, concept: Any, path: str, value_set: tuple[str, frozenset[str]]
    ) -> NotTaken | None:
        """A status CodeableConcept: entered-in-error, or a code of the HL7 system that is
        not in its value set, is not taken (codes of other systems are passed on)."""
        system, allowed = value_set
        for i, coding in enumerate(concept.coding or () if concept is not None else ()):
            if coding.code == "entered-in-error" or (
                coding.system == system and coding.code not in allowed
            ):
                return self._status_problem(entry, coding.code, f"{path}.coding[{i}].code", allowed)
        return None

    # ------------------------------------------------------------------ Patient

    def _patient(self, entry: _Entry, patient: Any) -> _Mapped:
        subject = self._patient_subject(entry)
        if isinstance(subject, NotTaken):
            yield subject
            return
        if patient.birthDate is not None and not isinstance(patient.birthDate, date):
            self.result.warnings.append(
                f"{entry.ref}: Patient.birthDate is a partial date; not carried"
            )
        if isinstance(patient.birthDate, date) and patient.birthDate > self.received_at.date():
            yield NotTaken(
                entry.ref, "is in the future", field="Patient.birthDate", rule="not_in_future"
            )
            return
        if patient.gender is not None and patient.gender not in _GENDERS:
            yield NotTaken(
                entry.ref,
                "not a code of its FHIR value set",
                field="Patient.gender",
                rule="code_not_in_value_set",
            )
            return
        nhs = _nhs_identifier(patient)
        verification = None
        if nhs is not None:
            for ext in nhs.extension or ():
                if ext.url == codes.NHS_NUMBER_VERIFICATION_URL and ext.valueCodeableConcept:
                    first = next(iter(ext.valueCodeableConcept.coding or ()), None)
                    verification = fv.coding(first) if first is not None else None
        name = fv.name_parts(fv.pick_name(patient.name))
        address = fv.pick_address(patient.address)
        deceased = None
        if patient.deceasedBoolean is not None:
            deceased = bool(patient.deceasedBoolean)
        elif patient.deceasedDateTime is not None:
            deceased = True
        gp_code = None
        for gp in patient.generalPractitioner or ():
            gp_code = self.ods(gp)
            if gp_code:
                break
        managing = self.ods(patient.managingOrganization)
        payload = self._payload(
            entry,
            PatientIdentified,
            {
                "patient_ref": self._canonical(entry),
                "nhs_number": subject.nhs_number,
                "nhs_number_verification": verification,
                "given_names": name["given_names"],
                "family_name": name["family_name"],
                "date_of_birth": subject.date_of_birth,
                "gender": patient.gender,
                "postcode": fv.fit(address.postalCode, 16) if address is not None else None,
                "deceased": deceased,
                "gp_practice_code": gp_code,
                "managing_organisation_code": managing,
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        when = self.fallback_time(patient)
        yield _Fact(payload, when, entry.ref, organisation=managing)
        for i, contact in enumerate(patient.contact or ()):
            ref = f"{entry.ref}.contact[{i}]"
            person = self._payload(
                entry,
                RelatedPersonRecorded,
                {
                    "related_person_ref": f"{self._canonical(entry)}#contact[{i}]",
                    "recorded_as": "patient_contact",
                    "relationships": fv.codings(contact.relationship),
                    **fv.name_parts(contact.name),
                    "contacts": fv.telecoms(contact.telecom),
                    "address": fv.postal_address(contact.address),
                },
                ref,
            )
            if isinstance(person, NotTaken):
                yield person
            else:
                yield _Fact(person, when, ref, organisation=managing)

    # ------------------------------------------------------------------ Condition

    def _condition(self, entry: _Entry, cond: Any) -> _Mapped:
        problem = (
            self._subject(entry, cond.subject, "subject")
            or self._coded_status(
                entry, cond.verificationStatus, "verificationStatus", CONDITION_VERIFICATION
            )
            or self._coded_status(entry, cond.clinicalStatus, "clinicalStatus", CONDITION_CLINICAL)
        )
        if problem is not None:
            yield problem
            return
        if cond.code is None:
            yield NotTaken(
                entry.ref,
                "required: the hub records coded conditions",
                field="Condition.code",
                rule="required",
            )
            return
        onset = fv.when(cond.onsetDateTime) or (
            fv.when(cond.onsetPeriod.start) if cond.onsetPeriod is not None else None
        )
        abatement = fv.when(cond.abatementDateTime) or (
            fv.when(cond.abatementPeriod.end) if cond.abatementPeriod is not None else None
        )
        if fv.ends_before_start(onset, abatement):
            yield NotTaken(
                entry.ref,
                "is before the onset",
                field="Condition.abatement[x]",
                rule="end_before_start",
            )
            return
        recorded = fv.when(cond.recordedDate)
        payload = self._payload(
            entry,
            ConditionRecorded,
            {
                "condition_ref": self._canonical(entry),
                "code": fv.concept(cond.code),
                "clinical_status": fv.first_code(cond.clinicalStatus),
                "verification_status": fv.first_code(cond.verificationStatus),
                "categories": fv.codings(cond.category),
                "severity": fv.concept(cond.severity),
                "onset": onset,
                "abatement": abatement,
                "recorded_date": recorded,
                "encounter_ref": self.ref_string(cond.encounter),
                "notes": fv.notes(cond.note),
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        occurred = fv.instant(recorded) or fv.instant(onset) or self.fallback_time(cond)
        yield _Fact(
            payload,
            occurred,
            entry.ref,
            organisation=None,
            category=self._condition_category(entry),
        )

    # ------------------------------------------------------------------ Encounter

    def _encounter(self, entry: _Entry, enc: Any) -> _Mapped:
        problem = self._subject(entry, enc.subject, "subject") or self._status_problem(
            entry, enc.status, "status", codes.ENCOUNTER_STATUSES
        )
        if problem is not None:
            yield problem
            return
        start = end = None
        if enc.period is not None:
            start, end = fv.when(enc.period.start), fv.when(enc.period.end)
            if fv.ends_before_start(start, end):
                yield NotTaken(
                    entry.ref,
                    "is before the start",
                    field="Encounter.period.end",
                    rule="end_before_start",
                )
                return
        signals = [enc.class_fhir] if enc.class_fhir is not None else []
        for ext in enc.extension or ():
            if ext.valueCoding is not None:
                signals.append(ext.valueCoding)
            if ext.valueCodeableConcept is not None:
                signals.extend(ext.valueCodeableConcept.coding or ())
        for cc in (*(enc.type or ()), *(enc.reasonCode or ())):
            signals.extend(cc.coding or ())
        provider = self.ods(enc.serviceProvider)
        payload = self._payload(
            entry,
            EncounterRecorded,
            {
                "encounter_ref": self._canonical(entry),
                "status": enc.status,
                "attendance": codes.attendance(enc.status, signals),
                "encounter_class": fv.coding(enc.class_fhir) if enc.class_fhir else None,
                "types": fv.concepts(enc.type),
                "service_type": fv.concept(enc.serviceType),
                "reasons": fv.concepts(enc.reasonCode),
                "start": start,
                "end": end,
                "service_provider_code": provider,
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        occurred = fv.instant(start) or fv.instant(end) or self.fallback_time(enc)
        yield _Fact(
            payload,
            occurred,
            entry.ref,
            organisation=provider,
            category=self._encounter_category(entry),
        )

    # ------------------------------------------------------------------ Observation

    def _observation(self, entry: _Entry, obs: Any) -> _Mapped:
        problem = self._subject(entry, obs.subject, "subject") or self._status_problem(
            entry, obs.status, "status", OBSERVATION_STATUSES
        )
        if problem is not None:
            yield problem
            return
        effective = fv.when(obs.effectiveDateTime) or fv.when(obs.effectiveInstant)
        effective_end = None
        if effective is None and obs.effectivePeriod is not None:
            effective = fv.when(obs.effectivePeriod.start)
            effective_end = fv.when(obs.effectivePeriod.end)
            if fv.ends_before_start(effective, effective_end):
                yield NotTaken(
                    entry.ref,
                    "is before the start",
                    field="Observation.effectivePeriod.end",
                    rule="end_before_start",
                )
                return
        components = tuple(
            {
                "code": fv.concept(c.code),
                "value": fv.observed_value(c, with_text=False),
                "data_absent_reason": fv.first_code(c.dataAbsentReason),
            }
            for c in obs.component or ()
        )
        payload = self._payload(
            entry,
            ObservationRecorded,
            {
                "observation_ref": self._canonical(entry),
                "status": obs.status,
                "categories": fv.codings(obs.category),
                "code": fv.concept(obs.code),
                "value": fv.observed_value(obs),
                "data_absent_reason": fv.first_code(obs.dataAbsentReason),
                "interpretation": fv.codings(obs.interpretation),
                "effective": effective,
                "effective_end": effective_end,
                "issued": fv.instant(obs.issued),
                "components": components,
                "members": tuple(r for r in (self.ref_string(m) for m in obs.hasMember or ()) if r),
                "encounter_ref": self.ref_string(obs.encounter),
                "notes": fv.notes(obs.note),
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        occurred = fv.instant(effective) or fv.instant(obs.issued) or self.fallback_time(obs)
        category = codes.strongest(
            self.encounter_category(obs.encounter),
            codes.diagnosis_category([obs.code, obs.valueCodeableConcept]),
        )
        yield _Fact(payload, occurred, entry.ref, category=category)

    # ------------------------------------------------------------------ CarePlan

    def _care_plan(self, entry: _Entry, plan: Any) -> _Mapped:
        problem = (
            self._subject(entry, plan.subject, "subject")
            or self._status_problem(entry, plan.status, "status", CARE_PLAN_STATUSES)
            or self._status_problem(entry, plan.intent, "intent", CARE_PLAN_INTENTS)
        )
        if problem is not None:
            yield problem
            return
        start = end = None
        if plan.period is not None:
            start, end = fv.when(plan.period.start), fv.when(plan.period.end)
            if fv.ends_before_start(start, end):
                yield NotTaken(
                    entry.ref,
                    "is before the start",
                    field="CarePlan.period.end",
                    rule="end_before_start",
                )
                return
        activities = []
        for act in plan.activity or ():
            detail = act.detail
            activities.append(
                {
                    "code": fv.concept(detail.code) if detail is not None else None,
                    "kind": fv.clip(detail.kind, 64) if detail is not None else None,
                    "status": fv.clip(detail.status, 32) if detail is not None else None,
                    "reference": self.ref_string(act.reference),
                }
            )
        created = fv.when(plan.created)
        payload = self._payload(
            entry,
            CarePlanRecorded,
            {
                "care_plan_ref": self._canonical(entry),
                "status": plan.status,
                "intent": plan.intent,
                "categories": fv.concepts(plan.category),
                "title": fv.clip(plan.title, 4000),
                "description": fv.clip(plan.description, 4000),
                "start": start,
                "end": end,
                "created": created,
                "addresses": tuple(
                    r for r in (self.ref_string(a) for a in plan.addresses or ()) if r
                ),
                "activities": tuple(activities),
                "notes": fv.notes(plan.note),
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        category = codes.strongest(
            codes.service_category(plan.category or ()),
            self.encounter_category(plan.encounter),
            *(self.condition_category(a) for a in plan.addresses or ()),
        )
        occurred = fv.instant(created) or fv.instant(start) or self.fallback_time(plan)
        yield _Fact(payload, occurred, entry.ref, category=category)
        # a CareTeam contained in the plan joins its practitioners to the plan's child
        contained = {f"#{c.id}": c for c in plan.contained or () if c.id}
        for i, team_ref in enumerate(plan.careTeam or ()):
            team = contained.get(team_ref.reference or "")
            if team is not None and team.get_resource_type() == "CareTeam":
                yield from self._team_members(
                    entry,
                    team,
                    f"{entry.ref}.careTeam[{i}](CareTeam{team_ref.reference})",
                    category,
                    fv.instant(start) or occurred,
                )

    # ------------------------------------------------------------------ CareTeam

    def _care_team(self, entry: _Entry, team: Any) -> _Mapped:
        problem = self._subject(entry, team.subject, "subject") or (
            self._status_problem(entry, team.status, "status", CARE_TEAM_STATUSES)
            if team.status is not None
            else None
        )
        if problem is not None:
            yield problem
            return
        if team.status == "proposed":
            yield NotTaken(
                entry.ref,
                "a proposed care team: nobody has joined it yet",
                kind="unsupported",
                field="CareTeam.status",
                rule="proposed",
            )
            return
        category = codes.strongest(
            codes.service_category(team.category or ()),
            codes.diagnosis_category(team.reasonCode or ()),
            self.encounter_category(team.encounter),
            *(self.condition_category(r) for r in team.reasonReference or ()),
        )
        yield from self._team_members(entry, team, entry.ref, category, self.fallback_time(team))

    def _team_members(
        self, entry: _Entry, team: Any, ref: str, category: str | None, undated: datetime
    ) -> _Mapped:
        """Each Practitioner (or PractitionerRole) member joins the team around the child;
        one whose period ends also leaves. `undated` is the day to use when no period
        says when they joined."""
        team_start = team_end = None
        if team.period is not None:
            team_start, team_end = fv.when(team.period.start), fv.when(team.period.end)
        team_org = self.ods(team.managingOrganization[0]) if team.managingOrganization else None
        for i, participant in enumerate(team.participant or ()):
            where = f"{ref}.participant[{i}]"
            practitioner_id, role_model = self.practitioner(participant.member)
            if practitioner_id is None:
                yield NotTaken(
                    where,
                    "only practitioners join the team around the child (this member is not a "
                    "Practitioner or PractitionerRole)",
                    kind="unsupported",
                    field="CareTeam.participant.member",
                    rule="member_not_practitioner",
                )
                continue
            start, end = team_start, team_end
            if participant.period is not None:
                start = fv.when(participant.period.start) or start
                end = fv.when(participant.period.end) or end
            if fv.ends_before_start(start, end):
                yield NotTaken(
                    where,
                    "is before the start",
                    field="CareTeam.participant.period.end",
                    rule="end_before_start",
                )
                continue
            concepts = list(participant.role or ())
            if role_model is not None:
                concepts.extend(role_model.code or ())
                concepts.extend(role_model.specialty or ())
            mapped = codes.role_from_concepts(concepts)
            role = mapped or codes.FALLBACK_ROLE
            if mapped is None:
                yield from self.unmapped_roles(where, participant, role_model)
            org = (
                self.ods(participant.onBehalfOf)
                or (self.ods(role_model.organization) if role_model is not None else None)
                or team_org
            )
            org_name = self._member_organisation_name(participant, role_model, team)
            fact_category = (
                codes.strongest(
                    category,
                    codes.ROLE_CATEGORY.get(role),
                    codes.service_category(concepts),
                )
                or "health"
            )
            since_at = fv.instant(start) or undated
            joined = self._payload(
                entry,
                PractitionerJoined,
                {
                    "practitioner_id": fv.clip(practitioner_id, 128),
                    "role": role,
                    "agency": "health",
                    "organisation_code": org,
                    "since": since_at.date(),
                    "contact": self.practitioner_contact(participant.member, role_model),
                    "name": self.practitioner_name(participant.member, role_model),
                    "organisation_name": org_name,
                },
                where,
            )
            if isinstance(joined, NotTaken):
                yield joined
                continue
            yield _Fact(joined, since_at, where, organisation=org, category=fact_category)
            if end is not None:
                until_at = fv.instant(end) or since_at
                left = self._payload(
                    entry,
                    PractitionerLeft,
                    {"practitioner_id": fv.clip(practitioner_id, 128), "until": until_at.date()},
                    where,
                )
                if isinstance(left, NotTaken):
                    yield left
                else:
                    yield _Fact(
                        left,
                        until_at,
                        f"{where}.period.end",
                        organisation=org,
                        category=fact_category,
                    )

    def _member_organisation_name(self, participant: Any, role: Any, team: Any) -> str | None:
        """The name of the organisation a member joins for, in the order the ODS code is
        chosen: on behalf of, the PractitionerRole's organisation, the managing one. The
        name of the reference that gave the code wins; without a code, the first name."""
        refs = [
            participant.onBehalfOf,
            role.organization if role is not None else None,
            team.managingOrganization[0] if team.managingOrganization else None,
        ]
        first: str | None = None
        for ref in refs:
            if ref is None:
                continue
            name = self.organisation_name(ref)
            if self.ods(ref) is not None:
                return name
            first = first or name
        return first

    # ------------------------------------------------------------------ DocumentReference

    def _document(self, entry: _Entry, doc: Any) -> _Mapped:
        problem = self._subject(entry, doc.subject, "subject") or self._status_problem(
            entry, doc.status, "status", DOCUMENT_STATUSES
        )
        if problem is not None:
            yield problem
            return
        context = doc.context
        encounters = list(context.encounter or ()) if context is not None else []
        related = list(context.related or ()) if context is not None else []
        service = [doc.type, *(doc.category or ())]
        if context is not None:
            service.extend([context.practiceSetting, context.facilityType])
        category = codes.strongest(
            codes.service_category(service),
            *(self.encounter_category(e) for e in encounters),
        )
        custodian = self.ods(doc.custodian)
        dated = fv.instant(doc.date)
        attachments = [c.attachment for c in doc.content or () if c.attachment is not None]
        occurred = (
            dated
            or next((t for t in (fv.instant(a.creation) for a in attachments) if t), None)
            or self.fallback_time(doc)
        )
        advice = self._advice(entry, doc, related, attachments, category, custodian, occurred)
        if advice is not None:
            yield advice
            return
        payload = self._payload(
            entry,
            DocumentRecorded,
            {
                "document_ref": self._canonical(entry),
                "status": doc.status,
                "doc_status": fv.clip(doc.docStatus, 32),
                "type": fv.concept(doc.type),
                "categories": fv.concepts(doc.category),
                "dated": dated,
                "custodian_code": custodian,
                "description": fv.clip(doc.description, 4000),
                "attachments": tuple(
                    {
                        "content_type": fv.clip(a.contentType, 128),
                        "url": fv.fit(a.url, 1024),
                        "title": fv.clip(a.title, 512),
                        "size": a.size if isinstance(a.size, int) and a.size >= 0 else None,
                        "created": fv.when(a.creation),
                    }
                    for a in attachments
                ),
                "related": tuple(r for r in (self.ref_string(x) for x in related) if r),
                "encounter_refs": tuple(r for r in (self.ref_string(e) for e in encounters) if r),
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        yield _Fact(payload, occurred, entry.ref, organisation=custodian, category=category)

    def _advice(
        self,
        entry: _Entry,
        doc: Any,
        related: list[Any],
        attachments: list[Any],
        category: str | None,
        custodian: str | None,
        occurred: datetime,
    ) -> _Fact | NotTaken | None:
        """`plan.advice_submitted` if the document answers an EHC advice request (see the
        module docstring for the rule), else None."""
        request_id: str | None = None
        plan_id: str | None = None
        is_advice = any(
            c.system == HUB_DOCUMENT_CATEGORY_SYSTEM and c.code == ADVICE_CATEGORY_CODE
            for cc in (*(doc.category or ()), doc.type)
            if cc is not None
            for c in cc.coding or ()
        )
        for reference in related:
            ident = reference.identifier
            if ident is not None and ident.value:
                if ident.system == ADVICE_REQUEST_SYSTEM:
                    request_id, is_advice = ident.value, True
                elif ident.system == PLAN_ID_SYSTEM:
                    plan_id = ident.value
            target = self.resolve(reference)
            if target is None or target.resource_type not in ("ServiceRequest", "Task"):
                continue
            request = target.model
            idents = {i.system: i.value for i in request.identifier or () if i.value}
            coded = [request.code, *(getattr(request, "category", None) or ())]
            marked = any(
                c.system == HUB_DOCUMENT_CATEGORY_SYSTEM and c.code == ADVICE_REQUEST_CODE
                for cc in coded
                if cc is not None
                for c in cc.coding or ()
            )
            if ADVICE_REQUEST_SYSTEM in idents or marked:
                target.used = True
                is_advice = True
                request_id = idents.get(ADVICE_REQUEST_SYSTEM) or request_id
                plan_id = idents.get(PLAN_ID_SYSTEM) or plan_id
                for based in getattr(request, "basedOn", None) or ():
                    if based.identifier is not None and based.identifier.system == PLAN_ID_SYSTEM:
                        plan_id = based.identifier.value or plan_id
        if not is_advice:
            return None
        author_id = None
        for author in doc.author or ():
            author_id, _ = self.practitioner(author)
            if author_id:
                break
        if author_id is None and custodian:
            author_id = f"ods:{custodian}"
        if author_id is None:
            return NotTaken(
                entry.ref,
                "EHC advice must name its author (a Practitioner or PractitionerRole) or a "
                "custodian organisation",
                field="DocumentReference.author",
                rule="required",
            )
        first = attachments[0] if attachments else None
        url = first.url if first is not None and first.url else None
        document_id = next(
            (i.value for i in (doc.masterIdentifier, *(doc.identifier or ())) if i and i.value),
            None,
        ) or self._canonical(entry)
        payload = self._payload(
            entry,
            AdviceSubmitted,
            {
                "advice_request_id": _as_reference(request_id),
                "practitioner_id": _as_reference(author_id),
                "agency": "health",
                "submitted_on": occurred.date(),
                "document": {
                    "document_id": _as_reference(self.mask(document_id)),
                    "system": self.system[:200] if self.system else None,
                    "url": url if url and url.startswith("https://") and len(url) < 2000 else None,
                    "title": fv.clip(
                        (first.title if first is not None else None) or doc.description, 200
                    ),
                },
                "advice_category": category or "health",
            },
        )
        if isinstance(payload, NotTaken):
            return payload
        return _Fact(
            payload,
            occurred,
            entry.ref,
            organisation=custodian,
            category=category or "health",
            plan_id=fv.fit(plan_id, 64),
            purposes=("ehc_assessment",),
            statutory_basis="reg6_ehc_advice" if request_id and not category else None,
        )

    # ------------------------------------------------------------------ Consent

    def _consent(self, entry: _Entry, consent: Any) -> _Mapped:
        problem = self._subject(entry, consent.patient, "patient")
        if problem is not None:
            yield problem
            return
        from hub.consent.fhir import consent_from_fhir

        capacity = None
        patient = self.resolve(consent.patient)
        for performer in consent.performer or ():
            target = self.resolve(performer)
            if target is not None and target is patient:
                capacity = "young_person"
        try:
            payload = consent_from_fhir(
                consent,
                policy=self._policy(),
                recorded_by=_RECORDED_BY_CHARS.sub("-", f"fhir-import:{self.agency}")[:128],
                consent_id=f"{self.agency}:{consent.id}"[:128] if consent.id else None,
                grantor_capacity=cast(Any, capacity),
            )
        except PermanentError as exc:
            yield NotTaken(
                entry.ref,
                f"the consent cannot be recorded: {exc.reason}",
                field=f"Consent.{exc.field}" if exc.field else "Consent",
                rule="consent_import",
            )
            return
        occurred = fv.instant(consent.dateTime) or self.fallback_time(consent)
        yield _Fact(payload, occurred, entry.ref, organisation=None)

    def _policy(self) -> SharingPolicy:
        if self.policy is None:
            if not _POLICY:
                from hub.consent.policy import load_policy

                _POLICY.append(load_policy())
            self.policy = _POLICY[0]
        return self.policy

    # ------------------------------------------------------------------ RelatedPerson

    def _related_person(self, entry: _Entry, person: Any) -> _Mapped:
        problem = self._subject(entry, person.patient, "patient")
        if problem is not None:
            yield problem
            return
        payload = self._payload(
            entry,
            RelatedPersonRecorded,
            {
                "related_person_ref": self._canonical(entry),
                "recorded_as": "related_person",
                "relationships": fv.codings(person.relationship),
                **fv.name_parts(fv.pick_name(person.name)),
                "contacts": fv.telecoms(person.telecom),
                "address": fv.postal_address(fv.pick_address(person.address)),
                "active": person.active,
            },
        )
        if isinstance(payload, NotTaken):
            yield payload
            return
        yield _Fact(payload, self.fallback_time(person), entry.ref)


# =========================================================================== helpers


def _type_name(resource_type: str) -> str:
    return resource_type if _TYPE_NAME.fullmatch(resource_type) else "this resource type"


def _valid_nhs_number(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def _nhs_identifier(patient: Any) -> Any:
    for ident in patient.identifier or ():
        if ident.system == FHIR_NHS_NUMBER_SYSTEM and ident.value:
            return ident
    return None


def _ods_of(organisation: Any) -> str | None:
    for ident in organisation.identifier or ():
        if ident.system in codes.FHIR_ODS_SYSTEMS and ident.value:
            return fv.fit(ident.value, 32)
    return None


def _human_name(name: Any) -> str | None:
    """A HumanName as one line: prefix, given and family names, else its text."""
    if name is None:
        return None
    parts = [*(name.prefix or ()), *(name.given or ()), name.family]
    text = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return fv.clip(text or (name.text or "").strip(), 200) or None


def _practitioner_identifier(identifiers: Iterable[Any]) -> str | None:
    others: list[str] = []
    for ident in identifiers:
        if ident is None or not ident.value:
            continue
        prefix = codes.PRACTITIONER_ID_SYSTEMS.get(ident.system or "")
        if prefix:
            return f"{prefix}:{ident.value}"[:128]
        if ident.system:
            others.append(f"{ident.system}|{ident.value}")
    return others[0][:128] if others else None


def _as_reference(value: str | None) -> str | None:
    """A value shaped for the plan events' opaque Reference type (no spaces)."""
    if value is None:
        return None
    cleaned = _NOT_REFERENCE_CHARS.sub("-", value).lstrip("-._:/|")
    return cleaned[:128] or None
