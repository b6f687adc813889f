"""The FHIR R4 read API under `/fhir`: what the JSON API shows, as FHIR resources.

`GET /fhir/metadata` (public) is the CapabilityStatement. `Patient/{id}`,
`CareTeam?patient=` (and `CareTeam/tac-{id}`) and `Consent?patient=` are for the roles
that read a child's shared view (a coordinator for their caseload, a practitioner on the
child's team, the family for their own child), decided by the consent policy for the
caller at read time and audited exactly as the JSON routes are; `AuditEvent?patient=` is
the child's trail for the IG auditor, a page at a time (`_count`, and the `next` link).
Searching a Patient by identifier takes a form body (`POST /fhir/Patient/_search`), so
an NHS number never travels in a URL. Answers are `application/fhir+json`; a search
that is not valid, or a child that is not in the caller's reach, is an OperationOutcome
(400 / 404: the same answer for a child that does not exist).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.convertors import Convertor, register_url_convertor

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import reads_of
from hub.api.fhir_out import (
    FHIR_JSON,
    IDENTIFIER_KEYS,
    audit_event,
    capability_statement,
    care_team,
    outcome,
    patient,
    searchset,
)
from hub.consent.fhir import consent_to_fhir
from hub.errors import InvalidQuery, NotFound
from hub.queries.audit import TRAIL_MAX_LIMIT, child_trail_view
from hub.queries.joined import team_view
from hub.queries.record import consent_records
from hub.queries.search import ChildSearch, find_children


class _LogicalId(Convertor[str]):
    """A FHIR logical id: never `_search` and the like (FHIR's `_` names), so
    `POST Patient/_search` is not also `GET Patient/{id}`."""

    regex = "[A-Za-z0-9][A-Za-z0-9.:-]{0,79}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fhir_id", _LogicalId())
LogicalId = Annotated[str, Path(pattern=f"^{_LogicalId.regex}$")]

router = APIRouter(prefix="/fhir", tags=["fhir"])
_IDENTIFIER_PATTERN = (
    r"^(https://fhir\.nhs\.uk/Id/nhs-number|"
    r"https://tac-hub\.example/fhir/NamingSystem/(upn|la-child-id))\|[A-Za-z0-9: ]{1,64}$"
)
Reader = Annotated[Principal, Depends(require_roles("coordinator", "practitioner", "family"))]
Auditor = Annotated[Principal, Depends(require_roles("ig_auditor"))]

_FHIR: dict[str, Any] = {"content": {FHIR_JSON: {}}}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    200: {"description": "The resource or search Bundle", **_FHIR},
    400: {"description": "Not a valid search (OperationOutcome)", **_FHIR},
    422: {
        "description": "A search value that cannot be a real identifier (a check digit "
        "fails) or a cursor the hub did not issue (OperationOutcome); problem details for "
        "a parameter of the wrong type",
        "content": {FHIR_JSON: {}, "application/problem+json": {}},
    },
    404: {"description": "No such child in your reach (OperationOutcome)", **_FHIR},
}
_BY_ID: dict[int | str, dict[str, Any]] = {
    **_ANSWERS,
    404: {
        "description": "No such child in your reach (OperationOutcome); problem details "
        "when the path's id is not a FHIR logical id at all",
        "content": {FHIR_JSON: {}, "application/problem+json": {}},
    },
}
PatientRef = Annotated[
    str,
    Query(
        alias="patient",
        max_length=80,
        description="The child: `Patient/{id}` or the hub child id",
    ),
]


def _fhir(resource: Any, status: int = 200) -> Response:
    body = resource.model_dump_json(by_alias=True, exclude_none=True)
    return Response(body, status_code=status, media_type=FHIR_JSON)


def _refused(status: int, code: str, words: str, expression: str | None = None) -> Response:
    issue = {"severity": "error", "code": code, "diagnostics": words, "expression": expression}
    return _fhir(outcome([issue]), status)


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
    return str(exc)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _child_of(ref: str) -> str:
    return ref.removeprefix("Patient/")


@router.get(
    "/metadata",
    summary="The FHIR CapabilityStatement of the read API (public: shapes, not data)",
    response_class=Response,
    responses={200: {"description": "CapabilityStatement", **_FHIR}},
)
async def metadata(request: Request) -> Response:
    return _fhir(capability_statement(_base(request)))


@router.get(
    "/Patient/{child_id:fhir_id}",
    summary="The child as a UK Core Patient, as the caller may see them (coordinator, "
    "practitioner, family)",
    response_class=Response,
    responses=_BY_ID,
)
async def read_patient(request: Request, child_id: LogicalId, principal: Reader) -> Response:
    try:
        view = await team_view(
            reads_of(request), principal, child_id, route="GET /fhir/Patient/{id}"
        )
    except NotFound:
        return _refused(404, "not-found", "no such patient in your reach")
    return _fhir(patient(view, reads_of(request).policy.fhir.systems))


@router.post(
    "/Patient/_search",
    summary="Find a child in your reach by identifier (form body `identifier=system|value`; "
    "NHS number, UPN, ULN or LA child id) (coordinator, practitioner, family)",
    response_class=Response,
    responses=_ANSWERS,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "identifier": {
                                "type": "string",
                                "pattern": _IDENTIFIER_PATTERN,
                                "description": "system|value",
                            }
                        },
                        "required": ["identifier"],
                    }
                }
            }
        }
    },
)
async def search_patient(request: Request, principal: Reader) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = form.get("identifier") or []
    if len(given) != 1 or "|" not in given[0]:
        return _refused(
            400, "invalid", "give one identifier as system|value", "Parameters.identifier"
        )
    system, value = given[0].split("|", 1)
    key = IDENTIFIER_KEYS.get(system)
    if key is None or key == "uln":
        known = ", ".join(s for s, k in IDENTIFIER_KEYS.items() if k != "uln")
        return _refused(400, "not-supported", f"search by {known}", "Parameters.identifier.system")
    try:
        if key == "la_child_id":
            la_code, _, local = value.partition(":")
            search = ChildSearch(la_code=la_code, la_child_id=local or None)
        else:
            search = ChildSearch.model_validate({key: value})
        found = await find_children(reads_of(request), principal, search)
    except (InvalidQuery, ValidationError) as exc:
        return _refused(422, "invalid", _words(exc), "Parameters.identifier.value")
    systems = reads_of(request).policy.fhir.systems
    resources = [
        {"resourceType": "Patient", "id": c.child_id, "identifier": [
            {"system": systems.child_id, "value": c.child_id}]}
        for c in found.children
    ]  # fmt: skip
    from fhir.resources.R4B.patient import Patient

    bundle = searchset(
        _base(request),
        [Patient.model_validate(r) for r in resources],
        self_link=f"{_base(request)}/Patient/_search",
    )
    return _fhir(bundle)


@router.get(
    "/CareTeam",
    summary="The team around the child as one CareTeam (search by `patient`): members, "
    "roles, organisations, work contacts and the key worker, as the policy lets the "
    "caller see them (coordinator, practitioner, family)",
    response_class=Response,
    responses=_ANSWERS,
)
async def search_care_team(
    request: Request, principal: Reader, patient_ref: PatientRef
) -> Response:
    return await _care_team(request, principal, _child_of(patient_ref), search=True)


@router.get(
    "/CareTeam/{care_team_id:fhir_id}",
    summary="The team around the child (`tac-{child id}`) (coordinator, practitioner, family)",
    response_class=Response,
    responses=_BY_ID,
)
async def read_care_team(request: Request, care_team_id: LogicalId, principal: Reader) -> Response:
    if not care_team_id.startswith("tac-"):
        return _refused(404, "not-found", "no such care team in your reach")
    return await _care_team(request, principal, care_team_id.removeprefix("tac-"), search=False)


async def _care_team(
    request: Request, principal: Principal, child_id: str, *, search: bool
) -> Response:
    reads = reads_of(request)
    try:
        view = await team_view(reads, principal, child_id, route="GET /fhir/CareTeam")
    except NotFound:
        if search:
            return _fhir(searchset(_base(request), [], self_link=str(request.url)))
        return _refused(404, "not-found", "no such care team in your reach")
    team = care_team(view, reads.policy.fhir.systems, datetime.now(UTC).date())
    if not search:
        return _fhir(team)
    return _fhir(searchset(_base(request), [team], self_link=str(request.url)))


@router.get(
    "/Consent",
    summary="The child's recorded consents and refusals as FHIR Consent (search by "
    "`patient`) (coordinator, practitioner, family)",
    response_class=Response,
    responses=_ANSWERS,
)
async def search_consent(request: Request, principal: Reader, patient_ref: PatientRef) -> Response:
    reads = reads_of(request)
    child_id = _child_of(patient_ref)
    try:
        records, now = await consent_records(reads, principal, child_id, route="GET /fhir/Consent")
    except NotFound:
        return _fhir(searchset(_base(request), [], self_link=str(request.url)))
    consents = []
    for r in records:
        c = consent_to_fhir(r.consent, child_id=child_id, policy=reads.policy)
        status = "active" if r.status_at(now) == "effective" else "inactive"
        consents.append(c.model_copy(update={"status": status}))
    return _fhir(searchset(_base(request), consents, self_link=str(request.url)))


@router.get(
    "/AuditEvent",
    summary="The child's trail as AuditEvents, reads in the IHE BALP PatientRead shape "
    "(search by `patient`; `_count` a page, the `next` link for more) (IG auditor)",
    response_class=Response,
    responses=_ANSWERS,
)
async def search_audit_events(
    request: Request,
    principal: Auditor,
    patient_ref: PatientRef,
    count: Annotated[int, Query(alias="_count", ge=1, le=TRAIL_MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(alias="_cursor", max_length=512)] = None,
) -> Response:
    child_id = _child_of(patient_ref)
    try:
        page = await child_trail_view(
            reads_of(request), principal, child_id, limit=count, cursor=cursor
        )
    except InvalidQuery as exc:
        return _refused(422, "invalid", str(exc), "_cursor")
    base = _base(request)
    query = {"patient": patient_ref, "_count": count}
    next_link = None
    if page.next_cursor:
        next_link = f"{base}/AuditEvent?{urlencode({**query, '_cursor': page.next_cursor})}"
    events = [audit_event(r) for r in page.records]
    return _fhir(
        searchset(
            base, events, self_link=f"{base}/AuditEvent?{urlencode(query)}", next_link=next_link
        )
    )
