"""The person index port: strong identifiers mapped to one hub child id.

Identifier values are never kept in the clear: an index holds an HMAC-SHA-256 of
`system:value` under a key derived from the master key (`IdentifierHash`), so it links
records without disclosing NHS numbers or UPNs. A child is created on first sight of a
strong identifier; a record carrying two identifiers that already belong to two different
children is a conflict, never a merge (a person decides in the match queue). Erasure
forgets a child's identifiers and date of birth, and remembers (hashed) that they were
erased. `PersonIndex` is the port; `MemoryPersonIndex` keeps it in dicts, the SQL one
lives with the stores. One contract suite runs against each.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from hub.events.envelope import new_event_id
from hub.identity.identifiers import Identifier

NO_IDENTIFIER = "no valid strong identifier"
CONFLICT = "the identifiers belong to different children; a person must confirm the match"


def new_child_id() -> str:
    return "hc-" + new_event_id().hex


@dataclass
class Resolution:
    child_id: str | None
    created: bool = False
    linked: list[Identifier] = field(default_factory=list)
    conflict: str | None = None


class IdentifierHash:
    """The keyed hash an index stores in place of an identifier's value."""

    __slots__ = ("_key", "_made")

    _KEEP = 8192
    """How many hashes are kept (a child is named on many facts, batch after batch)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"hub-person-index|" + secret).digest()
        self._made: dict[Identifier, str] = {}

    def __call__(self, ident: Identifier) -> str:
        made = self._made.get(ident)
        if made is None:
            if len(self._made) >= self._KEEP:
                self._made.clear()
            # HMAC-SHA256 in one C call (`hmac.new(...).hexdigest()` builds Python objects)
            made = self._made[ident] = hmac.digest(
                self._key, f"{ident.system.value}:{ident.value}".encode(), "sha256"
            ).hex()
        return made

    def __repr__(self) -> str:
        return "IdentifierHash(<hidden>)"


class PersonIndex(Protocol):
    """Who is who: the person index port (memory, SQLite and PostgreSQL)."""

    async def lookup(self, ident: Identifier) -> str | None:
        """The child holding this identifier, if any."""
        ...

    async def resolve(self, idents: Sequence[Identifier], *, create: bool = True) -> Resolution:
        """The hub child these identifiers name; links the new ones; creates a child when
        none is known (unless `create` is false). Two identifiers of two different
        children is a conflict. Decided per identifier across processes: two writers
        seeing one new NHS number at once make one child."""
        ...

    async def link(self, idents: Sequence[Identifier], child_id: str) -> list[Identifier]:
        """Link to `child_id` those of `idents` no child holds yet (a person's decision in
        the match queue); an identifier another child holds stays with that child.
        Returns the identifiers linked now."""
        ...

    async def suppressed(self, idents: Sequence[Identifier]) -> bool:
        """Whether any of these identifiers belonged to a child whose record was erased."""
        ...

    async def exists(self, child_id: str) -> bool:
        """Whether the child is known and not erased."""
        ...

    async def ensure(self, child_id: str) -> None:
        """Know the child (a new child by a person's decision); no-op when known."""
        ...

    async def date_of_birth(self, child_id: str) -> date | None: ...

    async def set_date_of_birth(self, child_id: str, dob: date) -> None:
        """Record the child's date of birth (a known child; nothing happens otherwise)."""
        ...

    async def erase(self, child_id: str) -> None:
        """Forget the child's identifiers and date of birth; keep the id as erased, and
        its identifiers (hashed) as suppressed."""
        ...

    async def children_with_dob(self) -> list[tuple[str, date]]:
        """Every child not erased whose date of birth is recorded (retention)."""
        ...

    async def resolve_many(self, groups: Sequence[Sequence[Identifier]]) -> list[Resolution]:
        """`resolve` for several subjects at once, in order (a later group sees what an
        earlier one linked), under one lock per identifier across processes."""
        ...

    async def known(
        self, idents: Sequence[Identifier]
    ) -> tuple[dict[Identifier, str], set[Identifier]]:
        """For a whole batch: who holds each identifier (those held), and which
        identifiers belonged to a child whose record was erased."""
        ...

    async def existing(self, child_ids: Sequence[str]) -> set[str]:
        """Those of the children the hub knows and has not erased."""
        ...

    async def dates_of_birth(self, child_ids: Sequence[str]) -> dict[str, date]:
        """The recorded date of birth of each of the children that has one."""
        ...

    async def record_dates_of_birth(self, dobs: dict[str, date]) -> None:
        """Record each child's date of birth where none is recorded."""
        ...


@dataclass
class _Person:
    date_of_birth: date | None = None
    erased: bool = False


class MemoryPersonIndex:
    """`PersonIndex` in dicts, for unit tests and single-process tools. Each call runs
    without awaiting, so concurrent calls in one event loop are decided one at a time."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._hash = IdentifierHash(secret if secret is not None else os.urandom(32))
        self._people: dict[str, _Person] = {}
        self._identifiers: dict[str, str] = {}  # id hash -> child id
        self._suppressed: set[str] = set()

    async def lookup(self, ident: Identifier) -> str | None:
        return self._identifiers.get(self._hash(ident))

    async def resolve(self, idents: Sequence[Identifier], *, create: bool = True) -> Resolution:
        if not idents:
            return Resolution(None, conflict=NO_IDENTIFIER)
        found: dict[str, list[Identifier]] = {}
        unknown: list[Identifier] = []
        for ident in idents:
            owner = self._identifiers.get(self._hash(ident))
            if owner is None:
                unknown.append(ident)
            else:
                found.setdefault(owner, []).append(ident)
        if len(found) > 1:
            return Resolution(None, conflict=CONFLICT)
        created = False
        if found:
            child_id = next(iter(found))
        elif create:
            child_id = new_child_id()
            created = True
            self._people.setdefault(child_id, _Person())
        else:
            return Resolution(None)
        for ident in unknown:
            self._identifiers.setdefault(self._hash(ident), child_id)
        return Resolution(child_id, created=created, linked=unknown)

    async def link(self, idents: Sequence[Identifier], child_id: str) -> list[Identifier]:
        linked: list[Identifier] = []
        for ident in idents:
            h = self._hash(ident)
            if h not in self._identifiers:
                self._identifiers[h] = child_id
                linked.append(ident)
        return linked

    async def suppressed(self, idents: Sequence[Identifier]) -> bool:
        return any(self._hash(i) in self._suppressed for i in idents)

    async def exists(self, child_id: str) -> bool:
        person = self._people.get(child_id)
        return person is not None and not person.erased

    async def ensure(self, child_id: str) -> None:
        self._people.setdefault(child_id, _Person())

    async def date_of_birth(self, child_id: str) -> date | None:
        person = self._people.get(child_id)
        return None if person is None else person.date_of_birth

    async def set_date_of_birth(self, child_id: str, dob: date) -> None:
        person = self._people.get(child_id)
        if person is not None:
            person.date_of_birth = dob

    async def erase(self, child_id: str) -> None:
        held = [h for h, c in self._identifiers.items() if c == child_id]
        self._suppressed.update(held)
        for h in held:
            del self._identifiers[h]
        person = self._people.get(child_id)
        if person is not None:
            person.date_of_birth, person.erased = None, True

    async def children_with_dob(self) -> list[tuple[str, date]]:
        return [
            (c, p.date_of_birth)
            for c, p in self._people.items()
            if p.date_of_birth is not None and not p.erased
        ]

    async def resolve_many(self, groups: Sequence[Sequence[Identifier]]) -> list[Resolution]:
        return [await self.resolve(g) for g in groups]

    async def known(
        self, idents: Sequence[Identifier]
    ) -> tuple[dict[Identifier, str], set[Identifier]]:
        owners = {i: c for i in idents if (c := self._identifiers.get(self._hash(i)))}
        return owners, {i for i in idents if self._hash(i) in self._suppressed}

    async def existing(self, child_ids: Sequence[str]) -> set[str]:
        return {c for c in child_ids if (p := self._people.get(c)) and not p.erased}

    async def dates_of_birth(self, child_ids: Sequence[str]) -> dict[str, date]:
        return {
            c: dob for c in child_ids if (p := self._people.get(c)) and (dob := p.date_of_birth)
        }

    async def record_dates_of_birth(self, dobs: dict[str, date]) -> None:
        for child_id, dob in dobs.items():
            person = self._people.get(child_id)
            if person is not None and person.date_of_birth is None:
                person.date_of_birth = dob
