"""Finding a child: by NHS number, UPN, LA child id, or name and date of birth, among the
children in the caller's reach.

The search matches on the hashed person index, never on stored values: an identifier is
validated (`hub.identity.identifiers`: an NHS number's check digit, a UPN's check letter,
an LA child id's LA code) and looked up by its keyed hash; a name and date of birth are
turned into the demographic fingerprint (`SubjectKeys.fingerprint`, a keyed hash) that
linked records left behind, and the children seen with it are the candidates. Candidates
erased or outside the caller's reach are dropped (`_within_reach`), so a child the caller
may not see is simply not in the answer — the same answer as for a child the hub does not
know. Each search is one audited read: which kind of key was searched and how many
children were found (and their ids), never the searched value. The value travels in a
POST body, so it is in no URL or access log either.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from hub.auth.principal import Principal
from hub.consent.audit_trail import AuditEntry
from hub.errors import InvalidQuery
from hub.identity.identifiers import (
    Identifier,
    InvalidIdentifier,
    check_la_child_id,
    check_nhs_number,
    check_upn,
)
from hub.identity.subject import Subject
from hub.queries.context import Reads, children_in_reach, viewer_for
from hub.queries.joined import child_names

SearchKey = Literal["nhs_number", "upn", "la_child_id", "name_and_date_of_birth"]
SEARCH_ROUTE = "POST /children/search"


class Fingerprints(Protocol):
    """The part of the match queue port a name and date-of-birth search reads."""

    async def fingerprint(self, subject: Subject) -> str | None: ...

    async def children_with(self, fingerprint: str | None) -> tuple[str, ...]: ...


_KEY_FIELDS = (
    ("nhs_number",),
    ("upn",),
    ("la_code", "la_child_id"),
    ("given_name", "family_name", "date_of_birth"),
)


_GIVEN: dict[str, Any] = {"not": {"type": "null"}}
_NAMED: dict[str, Any] = {"type": "string", "pattern": "[^\\W_]"}
"""A name searched for has a letter or digit (`_has_letters`)."""


def _one_key_variants() -> list[Any]:
    """JSON Schema of "exactly one key, whole": each variant gives one key's fields and
    none of the others'."""
    every = [f for fields in _KEY_FIELDS for f in fields]

    def given(field: str) -> dict[str, Any]:
        if field == "la_code":
            return {"type": "string", "pattern": "^[0-9]{3}$"}
        return _NAMED if field in ("given_name", "family_name") else _GIVEN

    return [
        {
            "required": list(fields),
            "properties": {f: given(f) if f in fields else {"type": "null"} for f in every},
        }
        for fields in _KEY_FIELDS
    ]


class ChildSearch(BaseModel):
    """One search key: an NHS number, a UPN, an LA code with the LA's child id, or a given
    name, family name and date of birth (all three)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [{"nhs_number": "943 476 5919"}],
            "oneOf": _one_key_variants(),  # what `key()` checks, said in the schema
        },
    )

    nhs_number: str | None = Field(default=None, max_length=32, description="10 digits")
    upn: str | None = Field(default=None, max_length=32, description="Unique pupil number")
    la_code: str | None = Field(default=None, max_length=8, description="With la_child_id")
    la_child_id: str | None = Field(
        default=None, max_length=64, description="The LA's own child id (with la_code)"
    )
    given_name: str | None = Field(default=None, max_length=128)
    family_name: str | None = Field(default=None, max_length=128)
    date_of_birth: date | None = None

    def key(self) -> SearchKey:
        """Which kind of key this is; `InvalidQuery` unless it is exactly one, whole."""
        given: list[SearchKey] = []
        if self.nhs_number is not None:
            given.append("nhs_number")
        if self.upn is not None:
            given.append("upn")
        if self.la_code is not None or self.la_child_id is not None:
            given.append("la_child_id")
        demographics = (self.given_name, self.family_name, self.date_of_birth)
        if any(v is not None for v in demographics):
            given.append("name_and_date_of_birth")
        if len(given) != 1:
            raise InvalidQuery(
                "body",
                "search.one_key",
                "give exactly one key: nhs_number, upn, la_code with la_child_id, or "
                "given_name with family_name and date_of_birth",
            )
        if given[0] == "name_and_date_of_birth":
            for name, value in zip(
                ("given_name", "family_name", "date_of_birth"), demographics, strict=True
            ):
                if value is None:
                    raise InvalidQuery(
                        name,
                        "search.name_and_date_of_birth",
                        "a name search needs given_name, family_name and date_of_birth",
                    )
        return given[0]


class FoundChild(BaseModel):
    model_config = ConfigDict(frozen=True)

    child_id: str
    name: str | None = Field(
        default=None,
        description="The child's name as the caller may see it (as on the caseload); none "
        "when no visible record names the child",
    )


class SearchResults(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: SearchKey = Field(description="Which kind of key was searched")
    count: int
    children: list[FoundChild] = Field(description="In child id order")


async def find_children(reads: Reads, caller: Principal, search: ChildSearch) -> SearchResults:
    """The children in the caller's reach that the key names (none, for a key the hub
    does not know or a child out of reach: the same answer). One audited read."""
    key = search.key()
    candidates = await _candidates(reads, reads.matches, search, key)
    known = await reads.persons.existing(candidates) if candidates else set()
    found = await _within_reach(reads, caller, sorted(known))
    now = datetime.now(UTC)
    names: dict[str, tuple[str | None, list[str]]] = {}
    if found:
        await reads.views.catch_up(["team_around_child"], found)
        viewer = await viewer_for(reads, caller, now, found, fresh=True)
        names = await child_names(reads, viewer, found)
    await reads.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=caller.actor,
                child_id=found[0] if len(found) == 1 else None,
                at=now,
                details={
                    "route": SEARCH_ROUTE,
                    "search_key": key,
                    "results": len(found),
                    "child_ids": found,
                    "event_ids": sorted({i for c in found for i in names[c][1]}),
                    "agency": caller.agency,
                    "outcome": "shown" if found else "not_found",
                },
            )
        ]
    )
    return SearchResults(
        key=key,
        count=len(found),
        children=[FoundChild(child_id=c, name=names[c][0]) for c in found],
    )


async def _candidates(
    reads: Reads, fingerprints: Fingerprints, search: ChildSearch, key: SearchKey
) -> list[str]:
    if key == "name_and_date_of_birth":
        subject = Subject(
            given_name=search.given_name,
            family_name=search.family_name,
            date_of_birth=search.date_of_birth,
        )
        fingerprint = await fingerprints.fingerprint(subject)
        if fingerprint is None:
            raise InvalidQuery(
                "given_name" if not _has_letters(search.given_name) else "family_name",
                "search.name_and_date_of_birth",
                "a name needs at least one letter or digit",
            )
        return list(await fingerprints.children_with(fingerprint))
    owner = await reads.persons.lookup(_identifier(search, key))
    return [] if owner is None else [owner]


def _has_letters(name: str | None) -> bool:
    return any(ch.isalnum() for ch in name or "")


def _identifier(search: ChildSearch, key: SearchKey) -> Identifier:
    """The validated identifier; `InvalidQuery` naming the field and the rule it breaks."""
    try:
        if key == "nhs_number":
            return check_nhs_number(search.nhs_number or "")
        if key == "upn":
            return check_upn(search.upn or "")
        return check_la_child_id(search.la_code or "", search.la_child_id or "")
    except InvalidIdentifier as exc:
        field = key if key != "la_child_id" or exc.rule != "la_code" else "la_code"
        raise InvalidQuery(field, f"{exc.system.value}.{exc.rule}", exc.message) from None


async def _within_reach(reads: Reads, caller: Principal, candidates: Sequence[str]) -> list[str]:
    """Those of the candidates the caller reaches now, in child id order: the one place
    the search decides reach (`hub.queries.context.children_in_reach`)."""
    return await children_in_reach(reads, caller, candidates)
