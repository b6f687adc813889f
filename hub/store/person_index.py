"""`PersonIndex` in the read store's database (SQLite or PostgreSQL).

Tables `person` (one row per hub child: date of birth, erased mark), `person_identifier`
(identifier hash -> child) and `person_suppressed` (hashes of erased children's
identifiers). Identifier values are never stored: only their keyed hash
(`hub.identity.person_index.IdentifierHash`). `resolve` and `link` decide under a lock per
identifier (`Tx.lock`), so two processes seeing one new NHS number at once make one
child, the second finding the first one's link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from hub.identity.identifiers import Identifier
from hub.identity.person_index import (
    CONFLICT,
    NO_IDENTIFIER,
    IdentifierHash,
    Resolution,
    new_child_id,
)
from hub.store.base import ReadStore


class SqlPersonIndex:
    """The index's tables in the read store, and this process's cache of known links."""

    def __init__(self, store: ReadStore, secret: bytes) -> None:
        self._store = store
        self._hash = IdentifierHash(secret)
        self._known: dict[
            str, str
        ] = {}  # id hash -> child id (links are never undone but by erasure)

    async def lookup(self, ident: Identifier) -> str | None:
        h = self._hash(ident)
        cached = self._known.get(h)
        if cached is not None:
            return cached
        row = await self._store.fetchone(
            "SELECT child_id FROM person_identifier WHERE id_hash = ?", (h,)
        )
        return None if row is None else str(row[0])

    async def resolve(self, idents: Sequence[Identifier], *, create: bool = True) -> Resolution:
        """The hub child these identifiers name; links the new ones; creates a child when
        none is known. Two identifiers of two different children is a conflict."""
        if not idents:
            return Resolution(None, conflict=NO_IDENTIFIER)
        cached = {self._known.get(self._hash(i)) for i in idents}
        if len(cached) == 1 and None not in cached:
            return Resolution(cached.pop())
        async with self._store.transaction() as tx:
            # decided under a lock per identifier: two processes seeing one new NHS number
            # at once make one child, the second finding the first one's link
            await tx.lock([f"person:{self._hash(i)}" for i in idents])
            found: dict[str, list[Identifier]] = {}
            unknown: list[Identifier] = []
            for ident in idents:
                row = await tx.fetchone(
                    "SELECT child_id FROM person_identifier WHERE id_hash = ?", (self._hash(ident),)
                )
                if row is None:
                    unknown.append(ident)
                else:
                    found.setdefault(str(row[0]), []).append(ident)
            if len(found) > 1:
                return Resolution(None, conflict=CONFLICT)
            created = False
            if found:
                child_id = next(iter(found))
            elif create:
                child_id = new_child_id()
                created = True
                await tx.execute(
                    "INSERT INTO person (child_id, created_at) VALUES (?, ?)",
                    (child_id, datetime.now(UTC).isoformat()),
                )
            else:
                return Resolution(None)
            for ident in unknown:
                await tx.execute(
                    "INSERT INTO person_identifier (id_hash, system, child_id) VALUES (?, ?, ?)"
                    " ON CONFLICT (id_hash) DO NOTHING",
                    (self._hash(ident), ident.system.value, child_id),
                )
        if len(self._known) > 100_000:
            self._known.clear()
        for ident in idents:
            self._known[self._hash(ident)] = child_id
        return Resolution(child_id, created=created, linked=unknown)

    async def link(self, idents: Sequence[Identifier], child_id: str) -> list[Identifier]:
        """Link to `child_id` those of `idents` no child holds yet (a person's decision in
        the match queue); an identifier another child holds stays with that child.
        Returns the identifiers linked now."""
        linked: list[Identifier] = []
        async with self._store.transaction() as tx:
            await tx.lock([f"person:{self._hash(i)}" for i in idents])
            for ident in idents:
                h = self._hash(ident)
                row = await tx.fetchone(
                    "SELECT child_id FROM person_identifier WHERE id_hash = ?", (h,)
                )
                if row is None:
                    await tx.execute(
                        "INSERT INTO person_identifier (id_hash, system, child_id) VALUES (?, ?, ?)"
                        " ON CONFLICT (id_hash) DO NOTHING",
                        (h, ident.system.value, child_id),
                    )
                    linked.append(ident)
        for ident in linked:
            self._known[self._hash(ident)] = child_id
        return linked

    async def suppressed(self, idents: Sequence[Identifier]) -> bool:
        """Whether any of these identifiers belonged to a child whose record was erased."""
        if not idents:
            return False
        marks = ", ".join("?" for _ in idents)
        row = await self._store.fetchone(
            f"SELECT 1 FROM person_suppressed WHERE id_hash IN ({marks})",  # noqa: S608 - placeholders
            [self._hash(i) for i in idents],
        )
        return row is not None

    async def exists(self, child_id: str) -> bool:
        row = await self._store.fetchone(
            "SELECT 1 FROM person WHERE child_id = ? AND erased_at IS NULL", (child_id,)
        )
        return row is not None

    async def ensure(self, child_id: str) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO person (child_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (child_id, datetime.now(UTC).isoformat()),
            )

    async def date_of_birth(self, child_id: str) -> date | None:
        row = await self._store.fetchone(
            "SELECT date_of_birth FROM person WHERE child_id = ?", (child_id,)
        )
        return None if row is None or row[0] is None else date.fromisoformat(str(row[0]))

    async def set_date_of_birth(self, child_id: str, dob: date) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE person SET date_of_birth = ? WHERE child_id = ?",
                (dob.isoformat(), child_id),
            )

    def forget_cached(self, child_id: str) -> None:
        """Drop this process's cached links to the child (after its erasure elsewhere)."""
        self._known = {h: c for h, c in self._known.items() if c != child_id}

    async def erase(self, child_id: str) -> None:
        """Forget the child's identifiers and date of birth; keep the id as erased."""
        self.forget_cached(child_id)
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO person_suppressed (id_hash, erased_at)"
                " SELECT id_hash, ? FROM person_identifier WHERE child_id = ?"
                " ON CONFLICT (id_hash) DO NOTHING",
                (datetime.now(UTC).isoformat(), child_id),
            )
            await tx.execute("DELETE FROM person_identifier WHERE child_id = ?", (child_id,))
            await tx.execute(
                "UPDATE person SET date_of_birth = NULL, erased_at = ? WHERE child_id = ?",
                (datetime.now(UTC).isoformat(), child_id),
            )

    async def children_with_dob(self) -> list[tuple[str, date]]:
        rows = await self._store.fetchall(
            "SELECT child_id, date_of_birth FROM person"
            " WHERE date_of_birth IS NOT NULL AND erased_at IS NULL"
        )
        return [(str(c), date.fromisoformat(str(d))) for c, d in rows]

    async def resolve_many(self, groups: Sequence[Sequence[Identifier]]) -> list[Resolution]:
        """`resolve` for several subjects in one transaction, in order (a later group sees
        what an earlier one linked), under one lock per identifier across processes."""
        if not groups:
            return []
        hash_of = {i: self._hash(i) for g in groups for i in g}  # each identifier hashed once
        hashes = sorted(set(hash_of.values()))
        now = datetime.now(UTC).isoformat()
        async with self._store.transaction() as tx:
            await tx.lock([f"person:{h}" for h in hashes])
            owner: dict[str, str] = {}
            for i in range(0, len(hashes), 500):
                chunk = hashes[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = await tx.fetchall(
                    f"SELECT id_hash, child_id FROM person_identifier WHERE id_hash IN ({marks})",  # noqa: S608 - placeholders
                    chunk,
                )
                owner.update((str(h), str(c)) for h, c in rows)
            people: list[tuple[str, str]] = []
            links: list[tuple[str, str, str]] = []
            out: list[Resolution] = []
            for group in groups:
                if not group:
                    out.append(Resolution(None, conflict="no valid strong identifier"))
                    continue
                found = {owner[h] for i in group if (h := hash_of[i]) in owner}
                if len(found) > 1:
                    out.append(
                        Resolution(None, conflict="the identifiers belong to different children")
                    )
                    continue
                created = not found
                child_id = found.pop() if found else new_child_id()
                if created:
                    people.append((child_id, now))
                unknown = [i for i in group if hash_of[i] not in owner]
                for ident in unknown:
                    owner[hash_of[ident]] = child_id
                    links.append((hash_of[ident], ident.system.value, child_id))
                out.append(Resolution(child_id, created=created, linked=unknown))
            await tx.executemany("INSERT INTO person (child_id, created_at) VALUES (?, ?)", people)
            await tx.executemany(
                "INSERT INTO person_identifier (id_hash, system, child_id) VALUES (?, ?, ?)"
                " ON CONFLICT (id_hash) DO NOTHING",
                links,
            )
        for h, c in owner.items():
            self._known[h] = c
        return out

    async def known(
        self, idents: Sequence[Identifier]
    ) -> tuple[dict[Identifier, str], set[Identifier]]:
        """For a whole batch, in two queries: who holds each identifier (those held), and
        which identifiers belonged to a child whose record was erased."""
        by_hash = {self._hash(i): i for i in idents}
        owners: dict[Identifier, str] = {}
        suppressed: set[Identifier] = set()
        hashes = sorted(by_hash)
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store.fetchall(
                f"SELECT id_hash, child_id FROM person_identifier WHERE id_hash IN ({marks})",  # noqa: S608 - placeholders
                chunk,
            )
            owners.update((by_hash[str(h)], str(c)) for h, c in rows)
            rows = await self._store.fetchall(
                f"SELECT id_hash FROM person_suppressed WHERE id_hash IN ({marks})",  # noqa: S608 - placeholders
                chunk,
            )
            suppressed.update(by_hash[str(h)] for (h,) in rows)
        return owners, suppressed

    async def existing(self, child_ids: Sequence[str]) -> set[str]:
        """Those of the children the hub knows and has not erased."""
        out: set[str] = set()
        ids = sorted(set(child_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store.fetchall(
                f"SELECT child_id FROM person WHERE child_id IN ({marks}) AND erased_at IS NULL",  # noqa: S608 - placeholders
                chunk,
            )
            out.update(str(r[0]) for r in rows)
        return out

    async def dates_of_birth(self, child_ids: Sequence[str]) -> dict[str, date]:
        """The recorded date of birth of each of the children that has one."""
        out: dict[str, date] = {}
        ids = sorted(set(child_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store.fetchall(
                f"SELECT child_id, date_of_birth FROM person WHERE child_id IN ({marks})"  # noqa: S608 - placeholders
                " AND date_of_birth IS NOT NULL",
                chunk,
            )
            out.update((str(c), date.fromisoformat(str(d))) for c, d in rows)
        return out

    async def record_dates_of_birth(self, dobs: dict[str, date]) -> None:
        """Record each child's date of birth where none is recorded (one transaction)."""
        if dobs:
            async with self._store.transaction() as tx:
                await tx.executemany(
                    "UPDATE person SET date_of_birth = ?"
                    " WHERE child_id = ? AND date_of_birth IS NULL",
                    [(d.isoformat(), c) for c, d in sorted(dobs.items())],
                )
