"""FHIR R4 `Consent` (fhir.resources R4B) to and from the hub's `consent.recorded` payload.

Mapping: `Consent.policyRule` OPTIN/OPTOUT (or a root `provision.type`) is the decision;
the root provision's `actor` (hub role codes; agencies and organisations by identifier),
`purpose`, `class` (the hub's data-category code system, or foreign codes the policy
maps) and `period` are the scope; nested provisions, each of the opposite type, are the
exceptions; `dateTime` is the day the grantor decided; `performer` is the grantor, with
their capacity, the capture method, witness and recorder in hub extensions. The code
systems are declared in the policy (`fhir.systems`). Anything an import cannot map
faithfully — an unknown code, a restriction the hub cannot enforce — raises
`PermanentError` naming the FHIR path, because ignoring part of a consent could widen
it. XML is screened with defusedxml (no DTDs, no entities) before fhir.resources parses
it with a hardened lxml parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, cast
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring
from fhir.resources.R4B.consent import Consent, ConsentProvision
from pydantic import ValidationError

from hub.consent.policy import SharingPolicy
from hub.errors import PermanentError
from hub.events.consent import (
    CaptureMethod,
    ConsentDecision,
    ConsentException,
    ConsentRecorded,
    ConsentScope,
    GrantorCapacity,
)
from hub.events.envelope import Purpose

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
PATIENT_CONSENT_LOINC = "59284-0"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
NHS_ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SHARING_ACTIONS = frozenset({"access", "use", "disclose"})
_POLICY_RULE = {"OPTIN": "permit", "OPTINR": "permit", "OPTOUT": "deny", "OPTOUTE": "deny"}
_UNSUPPORTED = ("code", "data", "dataPeriod", "securityLabel")
_TYPED_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$")

_GRANTOR_CAPACITIES: tuple[str, ...] = (
    "parent_with_pr",
    "young_person",
    "deputy",
    "representative",
)
_CAPTURE_METHODS: tuple[str, ...] = ("form", "verbal_witnessed", "fhir_import")


def _ext_url(policy: SharingPolicy, name: str) -> str:
    return f"{policy.fhir.systems.extension_base}{name}"


# --------------------------------------------------------------------------- export


def _coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def _scope_to_provision(scope: ConsentScope, policy: SharingPolicy) -> dict[str, Any]:
    systems = policy.fhir.systems
    node: dict[str, Any] = {}
    actors: list[dict[str, Any]] = [
        {"role": {"coding": [_coding(systems.role, role)]}, "reference": {"display": role}}
        for role in scope.roles
    ]
    for system, values in (
        (systems.agency, scope.agencies),
        (systems.organisation, scope.organisations),
    ):
        actors.extend(
            {
                "role": {"coding": [_coding(PARTICIPATION_SYSTEM, "IRCP")]},
                "reference": {"identifier": {"system": system, "value": value}},
            }
            for value in values
        )
    if actors:
        node["actor"] = actors
    if scope.purposes:
        node["purpose"] = [_coding(systems.purpose, p) for p in scope.purposes]
    if scope.categories:
        node["class"] = [_coding(systems.data_category, c) for c in scope.categories]
    return node


def _exception_to_provision(exc: ConsentException, policy: SharingPolicy) -> dict[str, Any]:
    node = {"type": exc.decision, **_scope_to_provision(exc.scope, policy)}
    if exc.exceptions:
        node["provision"] = [_exception_to_provision(e, policy) for e in exc.exceptions]
    return node


def consent_to_fhir(consent: ConsentRecorded, *, child_id: str, policy: SharingPolicy) -> Consent:
    """The FHIR R4 `Consent` for a recorded grant or refusal about `child_id`."""
    systems = policy.fhir.systems
    root = _scope_to_provision(consent.scope, policy)
    period: dict[str, str] = {"start": consent.period.start.isoformat()}
    if consent.period.end is not None:
        period["end"] = consent.period.end.isoformat()
    root = {"period": period, **root}
    if consent.exceptions:
        root["provision"] = [_exception_to_provision(e, policy) for e in consent.exceptions]
    grantor_ref = consent.grantor.reference
    performer: dict[str, Any] = (
        {"reference": grantor_ref}
        if _TYPED_REFERENCE.match(grantor_ref)
        else {"identifier": {"system": systems.grantor, "value": grantor_ref}}
    )
    extensions: list[dict[str, str]] = [
        {"url": _ext_url(policy, "grantor-capacity"), "valueCode": consent.grantor.capacity},
        {"url": _ext_url(policy, "capture-method"), "valueCode": consent.capture_method},
        {"url": _ext_url(policy, "recorded-by"), "valueString": consent.recorded_by},
    ]
    if consent.witness is not None:
        extensions.append({"url": _ext_url(policy, "witness"), "valueString": consent.witness})
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "extension": extensions,
        "identifier": [{"system": systems.consent_id, "value": consent.consent_id}],
        "status": "active",
        "scope": {"coding": [_coding(CONSENT_SCOPE_SYSTEM, "patient-privacy")]},
        "category": [{"coding": [_coding(LOINC, PATIENT_CONSENT_LOINC)]}],
        "patient": {"identifier": {"system": systems.child_id, "value": child_id}},
        "dateTime": consent.given_on.isoformat(),
        "performer": [performer],
        "policyRule": {
            "coding": [
                _coding(ACT_CODE_SYSTEM, "OPTIN" if consent.decision == "permit" else "OPTOUT")
            ]
        },
        "provision": root,
    }
    return Consent.model_validate(resource)


# --------------------------------------------------------------------------- import


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(resource: Consent | Mapping[str, Any] | str | bytes) -> Consent:
    if isinstance(resource, Consent):
        return resource
    try:
        if isinstance(resource, str | bytes):
            return Consent.model_validate_json(resource)
        if resource.get("resourceType") != "Consent":
            raise PermanentError("expected a Consent resource", field="resourceType")
        return Consent.model_validate(dict(resource))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise PermanentError(
            f"not a valid FHIR R4 Consent: {err['msg']}", field=_loc(tuple(err["loc"])) or None
        ) from None


def parse_consent_xml(xml: bytes | str) -> Consent:
    """A FHIR XML `Consent`, parsed safely: defusedxml refuses DTDs and entities first,
    then fhir.resources parses with an lxml parser that resolves no entities and never
    touches the network."""
    raw = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        defused_fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PermanentError(f"unsafe XML refused ({exc.__class__.__name__})") from None
    except ParseError as exc:
        raise PermanentError(f"not well-formed XML: {exc}") from None
    # fhir.resources' XML support needs lxml (no stubs are installed for it)
    from lxml import etree  # type: ignore[import-untyped]

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    try:
        return Consent.model_validate_xml(raw, xmlparser=parser)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise PermanentError(
            f"not a valid FHIR R4 Consent: {err['msg']}", field=_loc(tuple(err["loc"])) or None
        ) from None
    except (ValueError, etree.XMLSyntaxError) as exc:
        raise PermanentError(f"not a valid FHIR R4 Consent in XML: {exc}") from None


def _extension(resource: Consent, url: str) -> Any:
    for ext in resource.extension or ():
        if ext.url == url:
            return ext.valueCode or ext.valueString
    return None


def _as_date(value: date | datetime | str | None) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class _Node:
    """A provision mapped to hub terms, before it becomes a scope with exceptions."""

    def __init__(
        self,
        decision: ConsentDecision,
        scope: ConsentScope,
        children: list[_Node],
    ) -> None:
        self.decision = decision
        self.scope = scope
        self.children = children


def _dedupe(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _map_scope(node: ConsentProvision, path: str, policy: SharingPolicy) -> ConsentScope:
    systems = policy.fhir.systems
    for name in _UNSUPPORTED:
        if getattr(node, name, None):
            raise PermanentError(
                "not supported by the hub (ignoring it would change what the consent covers)",
                field=f"{path}.{name}",
            )
    if node.action:
        codes = {
            c.code
            for cc in node.action
            for c in (cc.coding or ())
            if c.system == CONSENT_ACTION_SYSTEM
        }
        if not codes & SHARING_ACTIONS:
            raise PermanentError(
                "the hub records consent to share (access, use or disclose); other actions "
                "are not supported",
                field=f"{path}.action",
            )
    roles: list[str] = []
    agencies: list[str] = []
    organisations: list[str] = []
    for i, actor in enumerate(node.actor or ()):
        where = f"{path}.actor[{i}]"
        role_codes = [c.code for c in (actor.role.coding or ()) if c.system == systems.role]
        if role_codes:
            for code in role_codes:
                if code not in policy.roles:
                    raise PermanentError(f"unknown hub role {code!r}", field=f"{where}.role")
                roles.append(code)
            continue
        ident = actor.reference.identifier if actor.reference is not None else None
        if ident is not None and ident.system == systems.agency and ident.value:
            agencies.append(ident.value)
        elif (
            ident is not None
            and ident.system in (systems.organisation, NHS_ODS_SYSTEM)
            and ident.value
        ):
            organisations.append(ident.value)
        else:
            raise PermanentError(
                "an actor must be a hub role (role code) or an agency or organisation "
                "(reference identifier) the hub knows",
                field=where,
            )
    purposes: list[str] = []
    for i, coding in enumerate(node.purpose or ()):
        where = f"{path}.purpose[{i}]"
        if coding.system == systems.purpose:
            if coding.code not in policy.purposes:
                raise PermanentError(f"unknown purpose {coding.code!r}", field=where)
            purposes.append(str(coding.code))
            continue
        mapped = policy.fhir.purpose_codes.get(coding.system or "", {}).get(coding.code or "")
        if mapped is None:
            raise PermanentError(
                f"purpose {coding.code!r} of {coding.system!r} does not map to a hub purpose",
                field=where,
            )
        purposes.append(mapped)
    categories: list[str] = []
    for i, coding in enumerate(node.class_fhir or ()):
        where = f"{path}.class[{i}]"
        if coding.system == systems.data_category:
            if coding.code not in policy.categories:
                raise PermanentError(f"unknown data category {coding.code!r}", field=where)
            categories.append(str(coding.code))
            continue
        mapped_cat = policy.fhir.class_codes.get(coding.system or "", {}).get(coding.code or "")
        if mapped_cat is None:
            raise PermanentError(
                f"class {coding.code!r} of {coding.system!r} does not map to a hub data category",
                field=where,
            )
        categories.append(mapped_cat)
    try:
        return ConsentScope(
            roles=_dedupe(roles),
            agencies=_dedupe(agencies),
            organisations=_dedupe(organisations),
            categories=_dedupe(categories),
            purposes=cast(tuple[Purpose, ...], _dedupe(purposes)),
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        axis = str(err["loc"][0]) if err["loc"] else ""
        fhir_axis = {"categories": "class", "purposes": "purpose"}.get(axis, "actor")
        raise PermanentError(
            f"not a valid hub code: {err['msg']}", field=f"{path}.{fhir_axis}"
        ) from None


def _is_empty(scope: ConsentScope) -> bool:
    return not (
        scope.roles or scope.agencies or scope.organisations or scope.categories or scope.purposes
    )


def _map_node(
    node: ConsentProvision, decision: ConsentDecision, path: str, policy: SharingPolicy
) -> _Node:
    scope = _map_scope(node, path, policy)
    nested = list(node.provision or ())
    # "Permit, specifically this": a provision with no scope of its own whose only nested
    # provision has the same type (as in HL7's SMART-on-FHIR example) is that provision.
    if _is_empty(scope) and len(nested) == 1 and nested[0].type == decision:
        inner_path = f"{path}.provision[0]"
        if nested[0].period is not None:
            raise PermanentError(
                "a period on a nested provision is not supported", field=f"{inner_path}.period"
            )
        return _map_node(nested[0], decision, inner_path, policy)
    children: list[_Node] = []
    for i, child in enumerate(nested):
        where = f"{path}.provision[{i}]"
        if child.type not in ("permit", "deny"):
            raise PermanentError(
                "a nested provision needs a type (permit or deny)", field=f"{where}.type"
            )
        if child.type == decision:
            raise PermanentError(
                f"a nested provision must be the opposite of its parent ({decision}): the hub "
                "models nested provisions as exceptions",
                field=f"{where}.type",
            )
        if child.period is not None:
            raise PermanentError(
                "a period on a nested provision is not supported", field=f"{where}.period"
            )
        children.append(_map_node(child, cast(ConsentDecision, child.type), where, policy))
    return _Node(decision, scope, children)


def _to_exception(node: _Node) -> ConsentException:
    return ConsentException(
        decision=node.decision,
        scope=node.scope,
        exceptions=tuple(_to_exception(c) for c in node.children),
    )


def _hub_path_to_fhir(message: str) -> tuple[str | None, str]:
    """Turn "exceptions[0].exceptions[1].scope.categories: ..." into a FHIR path."""
    match = re.match(r"^((?:exceptions\[\d+\]\.?)+)(?:scope\.(\w+)|decision)?: (.*)$", message)
    if not match:
        return None, message
    indexes = re.findall(r"\[(\d+)\]", match.group(1))
    path = "provision" + "".join(f".provision[{i}]" for i in indexes)
    axis = match.group(2)
    if axis:
        path += "." + {"categories": "class", "purposes": "purpose"}.get(axis, "actor")
    return path, match.group(3)


def consent_from_fhir(
    resource: Consent | Mapping[str, Any] | str | bytes,
    *,
    policy: SharingPolicy,
    recorded_by: str,
    consent_id: str | None = None,
    grantor_capacity: GrantorCapacity | None = None,
) -> ConsentRecorded:
    """A `consent.recorded` payload from a FHIR R4 `Consent` (resource, dict or JSON).

    `recorded_by` is the hub principal importing it. The consent id is the resource's
    identifier in the hub's consent-id system, else `consent_id`, else the resource id.
    The grantor's capacity comes from the hub extension, else `grantor_capacity`. The
    capture method is the hub extension's, else `fhir_import`. The child is not taken
    from `patient`: the caller links the resource to a hub child."""
    fhir = _validate(resource)
    systems = policy.fhir.systems
    if fhir.status != "active":
        raise PermanentError(
            f"only an active consent can be recorded (this one is {fhir.status!r})", field="status"
        )
    # consent id
    cid = next(
        (i.value for i in fhir.identifier or () if i.system == systems.consent_id and i.value),
        None,
    )
    cid = cid or consent_id or fhir.id
    if not cid:
        raise PermanentError(
            "no consent id (hub identifier, argument or resource id)", field="identifier"
        )
    # the day the grantor decided
    given_on = _as_date(fhir.dateTime)
    if given_on is None:
        raise PermanentError("required: the date the grantor decided", field="dateTime")
    # grantor
    performers = list(fhir.performer or ())
    if len(performers) != 1:
        raise PermanentError("exactly one performer (the grantor) is required", field="performer")
    perf = performers[0]
    grantor_ref = perf.reference or (perf.identifier.value if perf.identifier else None)
    if not grantor_ref:
        raise PermanentError("the grantor has no reference or identifier", field="performer[0]")
    capacity = _extension(fhir, _ext_url(policy, "grantor-capacity")) or grantor_capacity
    if capacity is None:
        raise PermanentError(
            "the grantor's capacity is unknown (no grantor-capacity extension, none given)",
            field="performer[0]",
        )
    if capacity not in _GRANTOR_CAPACITIES:
        raise PermanentError(f"unknown grantor capacity {capacity!r}", field="extension")
    method = _extension(fhir, _ext_url(policy, "capture-method")) or "fhir_import"
    if method not in _CAPTURE_METHODS:
        raise PermanentError(f"unknown capture method {method!r}", field="extension")
    witness = _extension(fhir, _ext_url(policy, "witness"))
    # decision
    root = fhir.provision
    if root is None:
        raise PermanentError(
            "required: the hub needs the provision that says what is covered", field="provision"
        )
    decision: str | None = root.type
    if decision is None and fhir.policyRule is not None:
        for coding in fhir.policyRule.coding or ():
            if coding.system == ACT_CODE_SYSTEM and coding.code in _POLICY_RULE:
                decision = _POLICY_RULE[coding.code]
                break
    if decision not in ("permit", "deny"):
        raise PermanentError(
            "absent, and no policyRule (OPTIN or OPTOUT) says whether this is a permit or a deny",
            field="provision.type",
        )
    node = _map_node(root, cast(ConsentDecision, decision), "provision", policy)
    # period (on the root provision)
    start = _as_date(root.period.start) if root.period else None
    end = _as_date(root.period.end) if root.period else None
    start = start or given_on
    if end is not None and end < start:
        raise PermanentError("before start", field="provision.period.end")
    try:
        return ConsentRecorded(
            consent_id=cid,
            decision=cast(ConsentDecision, decision),
            grantor={"reference": grantor_ref, "capacity": cast(GrantorCapacity, capacity)},
            given_on=given_on,
            scope=node.scope,
            period={"start": start, "end": end},
            capture_method=cast(CaptureMethod, method),
            witness=witness,
            recorded_by=recorded_by,
            exceptions=tuple(_to_exception(c) for c in node.children),
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = _loc(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        fhir_path, reason = _hub_path_to_fhir(msg)
        if fhir_path is not None:
            raise PermanentError(reason, field=fhir_path) from None
        if not loc and ": " in msg:
            loc, msg = msg.split(": ", 1)
        field = {
            "grantor.reference": "performer[0]",
            "witness": "extension",
            "recorded_by": "recorded_by",
            "consent_id": "identifier",
        }.get(loc, loc or None)
        raise PermanentError(msg, field=field) from None


def consent_from_fhir_xml(
    xml: bytes | str,
    *,
    policy: SharingPolicy,
    recorded_by: str,
    consent_id: str | None = None,
    grantor_capacity: GrantorCapacity | None = None,
) -> ConsentRecorded:
    """As `consent_from_fhir`, from FHIR XML (parsed safely, see `parse_consent_xml`)."""
    return consent_from_fhir(
        parse_consent_xml(xml),
        policy=policy,
        recorded_by=recorded_by,
        consent_id=consent_id,
        grantor_capacity=grantor_capacity,
    )
