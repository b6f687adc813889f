"""The hub's views as FHIR R4 resources (fhir.resources R4B models, UK Core where a
profile exists): the child as `Patient` (UK Core Patient), the team around the child as
one `CareTeam` with its members as contained `Practitioner`s, consents as `Consent`, trail
records as `AuditEvent` (reads in the IHE Basic Audit Log Patterns' PatientRead shape),
and search answers as `Bundle`s. Pure: each function maps a view the query layer has
already decided and audited; nothing here reads a store or decides what may be shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from hub import __version__
from hub.consent.policy import FhirSystems
from hub.projections.team_around_child import MemberOut, TeamView

FHIR_JSON = "application/fhir+json"
UK_CORE_PATIENT = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
BALP_PATIENT_READ = (
    "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
)
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
NHS_ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
UPN = "https://tac-hub.example/fhir/NamingSystem/upn"
ULN = "https://tac-hub.example/fhir/NamingSystem/uln"
LA_CHILD_ID = "https://tac-hub.example/fhir/NamingSystem/la-child-id"
PRACTITIONER_ID = "https://tac-hub.example/fhir/NamingSystem/practitioner-id"
AUDIT_KIND = "https://tac-hub.example/fhir/CodeSystem/audit-kind"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
KEY_WORKER = "key_worker_role"

_IDENTIFIER_SYSTEMS = {
    "nhs_number": NHS_NUMBER,
    "upn": UPN,
    "uln": ULN,
    "la_child_id": LA_CHILD_ID,
}
IDENTIFIER_KEYS = {v: k for k, v in _IDENTIFIER_SYSTEMS.items()}
"""A search's identifier system -> the hub's search key."""


def patient(view: TeamView, systems: FhirSystems) -> Patient:
    """The child as the caller may see them: the hub id always, and the identifiers,
    name and date of birth only where the view shows them."""
    child = view.child
    identifiers: list[dict[str, Any]] = [{"system": systems.child_id, "value": child.child_id}]
    identifiers += [
        {"system": _IDENTIFIER_SYSTEMS[i.system], "value": i.value} for i in child.identifiers
    ]
    data: dict[str, Any] = {
        "id": child.child_id,
        "meta": {"profile": [UK_CORE_PATIENT]},
        "identifier": identifiers,
    }
    if child.name:
        data["name"] = [{"use": "official", "text": child.name}]
        if child.preferred_name and child.preferred_name != child.name:
            data["name"].append({"use": "usual", "text": child.preferred_name})
    if child.date_of_birth:
        data["birthDate"] = child.date_of_birth.isoformat()
    return Patient.model_validate(data)


def _telecom(contact: str) -> dict[str, str]:
    plain = contact.strip()
    if "@" in plain and " " not in plain:
        return {"system": "email", "value": plain, "use": "work"}
    if plain.replace(" ", "").lstrip("+").isdigit():
        return {"system": "phone", "value": plain, "use": "work"}
    return {"system": "other", "value": plain, "use": "work"}


def _practitioner(ref: str, m: MemberOut) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": ref,
        "identifier": [{"system": PRACTITIONER_ID, "value": m.practitioner_id}],
    }
    if m.name:
        out["name"] = [{"text": m.name}]
    if m.contact:
        out["telecom"] = [_telecom(m.contact)]
    return out


def care_team(view: TeamView, systems: FhirSystems, today: date) -> CareTeam:
    """The team around the child: each member a participant with their role from the
    hub's vocabulary, their organisation, their period, and (contained) their name and
    work contact; the key worker's participant carries the key worker role as well."""
    key_workers = {k.practitioner_id for k in view.key_workers if k.practitioner_id}
    contained: list[dict[str, Any]] = []
    participants: list[dict[str, Any]] = []
    for group in view.agencies:
        for i, m in enumerate(group.members):
            ref = f"p-{group.agency}-{i}"
            contained.append(_practitioner(ref, m))
            roles = [
                {
                    "coding": [{"system": systems.role, "code": m.role, "display": m.role_label}],
                    "text": m.role_label,
                }
            ]
            if m.practitioner_id in key_workers:
                roles.append(
                    {
                        "coding": [{"system": systems.role, "code": KEY_WORKER}],
                        "text": "Key worker",
                    }
                )
            participant: dict[str, Any] = {
                "role": roles,
                "member": {"reference": f"#{ref}", "display": m.name or m.role_label},
                "period": {"start": m.since.isoformat()},
            }
            if m.until:
                participant["period"]["end"] = m.until.isoformat()
            if m.organisation_code or m.organisation_name:
                org: dict[str, Any] = {"display": m.organisation_name or m.organisation_code}
                if m.organisation_code:
                    org["identifier"] = {
                        "system": systems.organisation,
                        "value": m.organisation_code,
                    }
                participant["onBehalfOf"] = org
            participants.append(participant)
    data: dict[str, Any] = {
        "id": f"tac-{view.child_id}",
        "status": "active",
        "name": "Team around the child",
        "subject": {"reference": f"Patient/{view.child_id}"},
        "category": [{"text": "Team around the child (SEND)"}],
        "period": {"end": today.isoformat()} if not participants else None,
    }
    if contained:
        data["contained"] = contained
        data["participant"] = participants
    return CareTeam.model_validate({k: v for k, v in data.items() if v is not None})


def audit_event(record: Mapping[str, Any]) -> AuditEvent:
    """One trail record: a read in the PatientRead shape (who read which child's record
    through which route, and the outcome), any other kind by the hub's audit kind."""
    details: Mapping[str, Any] = record.get("details") or {}
    kind = str(record["kind"])
    child = record.get("child_id")
    shown = details.get("outcome") in (None, "shown")
    data: dict[str, Any] = {
        "id": str(record["record_id"]),
        "recorded": record["at"],
        "outcome": "0" if shown else "4",
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                "who": {"identifier": {"value": str(record["actor"])}},
                "requestor": True,
            }
        ],
        "source": {"observer": {"display": "TAC Hub"}},
    }
    if details.get("outcome"):
        data["outcomeDesc"] = str(details["outcome"])
    if kind == "read":
        data |= {
            "meta": {"profile": [BALP_PATIENT_READ]},
            "type": {"system": AUDIT_TYPE, "code": "rest", "display": "RESTful Operation"},
            "subtype": [{"system": RESTFUL, "code": "read"}],
            "action": "R",
        }
        if details.get("route"):
            data["agent"][0]["policy"] = [f"urn:tac-hub:route:{details['route']}"]
    else:
        data |= {"type": {"system": AUDIT_KIND, "code": kind}, "action": "E"}
    if child:
        data["entity"] = [
            {
                "what": {"reference": f"Patient/{child}"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        ]
    return AuditEvent.model_validate(data)


def searchset(
    base: str, resources: Iterable[Any], *, self_link: str, next_link: str | None = None
) -> Bundle:
    """A search answer: the resources as entries, with self and next links."""
    entries = [
        {
            "fullUrl": f"{base}/{r.get_resource_type()}/{r.id}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    links = [{"relation": "self", "url": self_link}]
    if next_link:
        links.append({"relation": "next", "url": next_link})
    return Bundle.model_validate(
        {"type": "searchset", "total": len(entries), "link": links, "entry": entries or None}
    )


def outcome(issues: Sequence[Mapping[str, Any]]) -> OperationOutcome:
    """An OperationOutcome: each issue with severity, code, words and, where known, the
    element it is about (FHIRPath in `expression`)."""
    out: list[dict[str, Any]] = []
    for i in issues:
        issue: dict[str, Any] = {
            "severity": i.get("severity", "error"),
            "code": i.get("code", "processing"),
            "diagnostics": i.get("diagnostics"),
        }
        if i.get("expression"):
            issue["expression"] = [i["expression"]]
        if i.get("rule"):
            issue["details"] = {"coding": [{"code": i["rule"]}], "text": i.get("diagnostics")}
        out.append({k: v for k, v in issue.items() if v is not None})
    if not out:
        out = [{"severity": "information", "code": "informational", "diagnostics": "ok"}]
    return OperationOutcome.model_validate({"issue": out})


def capability_statement(base: str) -> CapabilityStatement:
    """What `/fhir` serves: read and search of Patient, CareTeam, Consent and AuditEvent."""

    def resource(kind: str, params: list[tuple[str, str]], read: bool = True) -> dict[str, Any]:
        interactions = [{"code": "search-type"}] + ([{"code": "read"}] if read else [])
        out: dict[str, Any] = {
            "type": kind,
            "interaction": interactions,
            "searchParam": [{"name": n, "type": t} for n, t in params],
        }
        if kind == "Patient":
            out["supportedProfile"] = [UK_CORE_PATIENT]
        if kind == "AuditEvent":
            out["supportedProfile"] = [BALP_PATIENT_READ]
        return out

    return CapabilityStatement.model_validate(
        {
            "status": "active",
            "date": "2026-12-03",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "software": {"name": "TAC Hub", "version": __version__},
            "implementation": {"description": "TAC Hub FHIR read API", "url": base},
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Bearer credentials as the JSON API. Every read is "
                    "decided by the consent policy for the caller and audited. Search "
                    "Patient by identifier with POST Patient/_search (never in a URL).",
                    "security": {"service": [{"coding": [{"code": "OAuth", "display": "Bearer"}]}]},
                    "resource": [
                        resource("Patient", [("identifier", "token")]),
                        resource("CareTeam", [("patient", "reference")]),
                        resource("Consent", [("patient", "reference")], read=False),
                        resource(
                            "AuditEvent",
                            [("patient", "reference"), ("_count", "number")],
                            read=False,
                        ),
                    ],
                }
            ],
        }
    )


_SEVERITY = {
    "appended": ("information", "informational"),
    "duplicate": ("information", "duplicate"),
    "withheld": ("information", "suppressed"),
    "queued": ("warning", "incomplete"),
    "rejected": ("error", "invalid"),
}


def fhir_path(ref: str, field: str | None = None) -> str:
    """An adapter's element path as FHIRPath (`resource(CareTeam)` is `resource.ofType(
    CareTeam)`), with the field the rule is about."""
    path = re.sub(r"\.resource\((\w+)\)", r".resource.ofType(\1)", ref)
    simple = field is not None and re.fullmatch(r"[A-Za-z_]\w*", field) is not None
    return f"{path}.{field}" if simple and not path.endswith(f".{field}") else path


def ingest_outcome(answer: Mapping[str, Any]) -> OperationOutcome:
    """An ingest answer (`IngestAnswer` as JSON) as an OperationOutcome: one issue per
    fact (its status as severity and code, the rule and the element), one per part of
    the message not taken, and one per warning."""
    issues: list[dict[str, Any]] = []
    for r in answer.get("results", []):
        severity, code = _SEVERITY.get(r["status"], ("information", "informational"))
        words = f"{r.get('event_type') or 'fact'}: {r['status']}"
        if r.get("reason"):
            words += f" ({r['reason']})"
        issues.append(
            {
                "severity": severity,
                "code": code,
                "diagnostics": words,
                "expression": fhir_path(r["ref"], r.get("field")),
                "rule": r.get("rule"),
            }
        )
    for n in answer.get("not_taken", []):
        issues.append(
            {
                "severity": "warning",
                "code": "not-supported" if n["kind"] == "unsupported" else n["kind"],
                "diagnostics": n["reason"],
                "expression": fhir_path(n["ref"], n.get("field")),
                "rule": n.get("rule"),
            }
        )
    issues += [
        {"severity": "warning", "code": "informational", "diagnostics": w}
        for w in answer.get("warnings", [])
    ]
    return outcome(issues)


def problem_outcome(problem: Mapping[str, Any]) -> OperationOutcome:
    """A refusal (problem details) as an OperationOutcome naming the element."""
    return outcome(
        [
            {
                "severity": "error",
                "code": "invalid" if problem.get("status") in (400, 422) else "processing",
                "diagnostics": problem.get("detail") or problem.get("title"),
                "expression": problem.get("field"),
                "rule": problem.get("rule"),
            }
        ]
    )
