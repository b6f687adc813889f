"""The projections the consent gate and the record routes read.

- `consent_state`: every consent event of each child (bodies as logged), folded on read.
- `caseload`: which coordinator holds which child (casework events).
- `withheld_index`: facts on `hub.withheld`, in order, and whether each was released
  (a released fact appears on `hub.events` with the same event id).
- `ingest_dedupe`: the idempotency keys of every fact taken (`x-dedupe-key` header).
- `shared_record`: every permitted fact per child, sealed as logged, for view-time
  decisions (`GET /children/{id}/record`).
- `audit_index`: the audit trail indexed by child, kind and time for IG queries.

Each drops the child's rows on an erasure tombstone (`identity.child_erased`), and the
record views drop a category's rows on `identity.category_erased`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.events.identity import CategoryErased, ChildErased
from hub.log import LogName
from hub.projections.base import Applied, sharing_columns
from hub.store import ReadStore, Tx

DEDUPE_HEADER = "x-dedupe-key"
RELEASED_HEADER = "x-released-from"


def _erased_child(a: Applied) -> str | None:
    return a.envelope.child_id if isinstance(a.envelope.payload, ChildErased) else None


def _header_text(a: Applied, name: str) -> str | None:
    raw = a.header(name)
    return None if raw is None else raw.decode("utf-8", "replace")


def _open_consent_id(a: Applied) -> str | None:
    """A consent event's id, an open field (`open_fields`): read from the record as logged,
    beside the sealed rest this metadata-only view does not open."""
    found = getattr(a.envelope.payload, "consent_id", None)  # a record of an older writer
    if found is None:
        payload = orjson.loads(a.raw).get("payload")
        found = payload.get("consent_id") if isinstance(payload, dict) else None
    return found if isinstance(found, str) else None


class ConsentStateProjection:
    metadata_only = True  # stores sealed records; never reads payloads it cannot see
    name = "consent_state"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("consent_event",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows = []
        for a in events:
            if a.envelope.event_type.startswith("consent."):
                rows.append(
                    (
                        str(a.envelope.event_id),
                        a.envelope.child_id,
                        a.position.partition,
                        a.position.offset,
                        _open_consent_id(a),
                        a.raw,
                    )
                )
            elif (child := _erased_child(a)) is not None:
                # rows gathered earlier in this batch go in first, so the tombstone drops them
                await self._insert(tx, rows)
                rows = []
                await tx.execute("DELETE FROM consent_event WHERE child_id = ?", (child,))
        await self._insert(tx, rows)

    @staticmethod
    async def _insert(tx: Tx, rows: list[tuple[Any, ...]]) -> None:
        await tx.executemany(
            "INSERT INTO consent_event (event_id, child_id, part, log_offset, consent_id, body)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )


class CaseloadProjection:
    metadata_only = True  # stores sealed records; never reads payloads it cannot see
    name = "caseload"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("caseload",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        for a in events:
            env = a.envelope
            if env.event_type == "casework.coordinator_assigned":
                await tx.execute(
                    "INSERT INTO caseload (coordinator, child_id, since) VALUES (?, ?, ?)"
                    " ON CONFLICT (coordinator, child_id) DO NOTHING",
                    (env.payload.coordinator, env.child_id, env.occurred_at.isoformat()),  # type: ignore[attr-defined]
                )
            elif env.event_type == "casework.coordinator_unassigned":
                await tx.execute(
                    "DELETE FROM caseload WHERE coordinator = ? AND child_id = ?",
                    (env.payload.coordinator, env.child_id),  # type: ignore[attr-defined]
                )
            elif (child := _erased_child(a)) is not None:
                await tx.execute("DELETE FROM caseload WHERE child_id = ?", (child,))


class WithheldIndexProjection:
    metadata_only = True  # stores sealed records; never reads payloads it cannot see
    name = "withheld_index"
    logs: tuple[LogName, ...] = (LogName.WITHHELD, LogName.EVENTS)
    tables: tuple[str, ...] = ("withheld_fact", "withheld_release", "withheld_erasure")
    """The two logs are followed independently live, and a rebuild reads one after the
    other, so neither order may matter: `withheld_release` remembers each release seen on
    hub.events and `withheld_erasure` each erasure (of a child, category "*", or of one
    category, with when it was recorded; the child by a hash of its id, so no row names
    an erased child), and a withheld fact applied after them is marked released or
    dropped as if it had come first."""

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        for a in events:
            env = a.envelope
            if a.log is LogName.WITHHELD:
                await self._withheld(tx, a)
            elif (child := _erased_child(a)) is not None:
                await self._erased(tx, child, "*", env.recorded_at)
            elif isinstance(env.payload, CategoryErased):
                await self._erased(tx, env.child_id, env.payload.erased_category, env.recorded_at)
            elif a.header(RELEASED_HEADER) is not None:
                await tx.execute(
                    "INSERT INTO withheld_release (event_id, child_id, category) VALUES (?, ?, ?)"
                    " ON CONFLICT (event_id) DO NOTHING",
                    (str(env.event_id), env.child_id, env.category),
                )
                await tx.execute(
                    "UPDATE withheld_fact SET released = 1 WHERE event_id = ?", (str(env.event_id),)
                )

    async def _withheld(self, tx: Tx, a: Applied) -> None:
        env = a.envelope
        erased = await tx.fetchone(  # an erasure recorded after this fact covers it
            "SELECT 1 FROM withheld_erasure WHERE child_hash = ? AND category IN ('*', ?)"
            " AND erased_at >= ?",
            (_child_hash(env.child_id), env.category, _instant(env.recorded_at)),
        )
        if erased:
            return
        await tx.execute(
            "INSERT INTO withheld_fact (event_id, child_id, part, log_offset, category, body,"
            " headers, released) VALUES (?, ?, ?, ?, ?, ?, ?, CASE WHEN EXISTS"
            " (SELECT 1 FROM withheld_release WHERE event_id = ?) THEN 1 ELSE 0 END)"
            " ON CONFLICT (event_id) DO NOTHING",
            (
                str(env.event_id),
                env.child_id,
                a.position.partition,
                a.position.offset,
                env.category,
                a.raw,
                orjson.dumps([[k, v.hex()] for k, v in a.headers]),
                str(env.event_id),
            ),
        )

    async def _erased(self, tx: Tx, child: str, category: str, at: datetime) -> None:
        await tx.execute(
            "INSERT INTO withheld_erasure (child_hash, category, erased_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (_child_hash(child), category, _instant(at)),
        )
        if category == "*":  # the child is gone for good
            for table in ("withheld_fact", "withheld_release"):
                await tx.execute(f"DELETE FROM {table} WHERE child_id = ?", (child,))  # noqa: S608
            return
        # a category: the releases before it on hub.events (the same partition as the
        # erasure, so in order), and the facts recorded up to it (a later one has a new key)
        await tx.execute(
            "DELETE FROM withheld_release WHERE child_id = ? AND category = ?", (child, category)
        )
        rows = await tx.fetchall(
            "SELECT event_id, body FROM withheld_fact WHERE child_id = ? AND category = ?",
            (child, category),
        )
        cutoff = _instant(at)
        for event_id, body in rows:
            recorded = orjson.loads(bytes(body)).get("recorded_at")
            if not isinstance(recorded, str) or _instant(_parse(recorded)) <= cutoff:
                await tx.execute("DELETE FROM withheld_fact WHERE event_id = ?", (event_id,))


def _child_hash(child_id: str) -> str:
    return hashlib.sha256(b"withheld-erasure|" + child_id.encode("utf-8")).hexdigest()


def _parse(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _instant(at: datetime) -> str:
    """A sortable text form of an instant (UTC, fixed width), compared as text."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DedupeProjection:
    metadata_only = True  # stores sealed records; never reads payloads it cannot see
    name = "ingest_dedupe"
    logs: tuple[LogName, ...] = (LogName.EVENTS, LogName.WITHHELD)
    tables: tuple[str, ...] = ("ingest_dedupe",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows = []
        for a in events:
            key = _header_text(a, DEDUPE_HEADER)
            if key is not None and a.header(RELEASED_HEADER) is None:
                rows.append((key, str(a.envelope.event_id), a.envelope.child_id, a.log.value))
        await tx.executemany(
            "INSERT INTO ingest_dedupe (dedupe_key, event_id, child_id, log) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            rows,
        )


class SharedRecordProjection:
    metadata_only = True  # stores sealed records; never reads payloads it cannot see
    name = "shared_record"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("shared_fact",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows: list[tuple[Any, ...]] = []
        for a in events:
            env = a.envelope
            if (child := _erased_child(a)) is not None:
                # rows gathered earlier in this batch go in first, so the tombstone drops them
                await self._insert(tx, rows)
                rows = []
                await tx.execute("DELETE FROM shared_fact WHERE child_id = ?", (child,))
                continue
            if isinstance(env.payload, CategoryErased):
                await self._insert(tx, rows)
                rows = []
                await tx.execute(
                    "DELETE FROM shared_fact WHERE child_id = ? AND category = ?",
                    (env.child_id, env.payload.erased_category),
                )
                continue
            if env.event_type.startswith(("consent.", "casework.", "identity.")):
                continue  # shown by their own routes, not as shared facts
            rows.append(
                (
                    str(env.event_id),
                    env.child_id,
                    a.position.partition,
                    a.position.offset,
                    env.event_type,
                    env.category,
                    env.source.agency,
                    env.occurred_at.isoformat(),
                    *sharing_columns(env),
                    a.raw,
                )
            )
        await self._insert(tx, rows)

    @staticmethod
    async def _insert(tx: Tx, rows: list[tuple[Any, ...]]) -> None:
        await tx.executemany(
            "INSERT INTO shared_fact (event_id, child_id, part, log_offset, event_type, category,"
            " agency, occurred_at, purposes, basis_claimed, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )


class AuditIndexProjection:
    name = "audit_index"
    logs: tuple[LogName, ...] = (LogName.AUDIT,)
    tables: tuple[str, ...] = ("audit_entry",)

    raw_records = True

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows = []
        for a in events:
            rec = orjson.loads(a.raw)
            details = rec.get("details") or {}
            rows.append(
                (
                    rec["record_id"],
                    rec["chain"],
                    rec["seq"],
                    rec["kind"],
                    rec["at"],
                    rec["actor"],
                    rec.get("child_id"),
                    details.get("agency"),
                    details.get("outcome"),
                    a.position.partition,
                    a.position.offset,
                    a.raw,
                )
            )
        await tx.executemany(
            "INSERT INTO audit_entry (record_id, chain, seq, kind, at, actor, child_id, agency,"
            " outcome, part, log_offset, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (record_id) DO NOTHING",
            rows,
        )


# -- reading the gate's views (for the service layer) ------------------------------------
def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


async def consent_bodies(store: ReadStore, child_ids: Sequence[str]) -> dict[str, list[bytes]]:
    """Each child's consent events as stored, in log order (500 children a query)."""
    bodies: dict[str, list[bytes]] = {c: [] for c in child_ids}
    for i in range(0, len(child_ids), 500):
        chunk = list(child_ids[i : i + 500])
        rows = await store.fetchall(
            f"SELECT child_id, body FROM consent_event WHERE child_id IN ({_marks(chunk)})"  # noqa: S608
            " ORDER BY part, log_offset",
            chunk,
        )
        for child, body in rows:
            bodies[str(child)].append(bytes(body))
    return bodies


async def children_with_consents(store: ReadStore) -> list[str]:
    rows = await store.fetchall("SELECT DISTINCT child_id FROM consent_event")
    return sorted(str(r[0]) for r in rows)


async def consent_children(store: ReadStore, consent_id: str) -> list[str]:
    """The children with a consent of this id (consent ids are scoped per child, so
    there may be several), in id order."""
    rows = await store.fetchall(
        "SELECT DISTINCT child_id FROM consent_event WHERE consent_id = ? ORDER BY child_id",
        (consent_id,),
    )
    return [str(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class WithheldRow:
    event_id: str
    body: bytes
    headers: tuple[tuple[str, bytes], ...]
    part: int
    offset: int

    def header(self, name: str) -> bytes | None:
        return dict(self.headers).get(name)


async def withheld_rows(
    store: ReadStore, child_id: str, *, unreleased: bool = False
) -> list[WithheldRow]:
    """The facts withheld for a child (only those not yet released, if asked), in order."""
    where = " AND released = 0" if unreleased else ""
    rows = await store.fetchall(
        "SELECT event_id, body, headers, part, log_offset FROM withheld_fact"  # noqa: S608
        f" WHERE child_id = ?{where} ORDER BY part, log_offset",
        (child_id,),
    )
    return [
        WithheldRow(
            str(event_id),
            bytes(body),
            tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(bytes(raw or b"[]"))),
            int(part),
            int(offset),
        )
        for event_id, body, raw, part, offset in rows
    ]


async def children_with_withheld(store: ReadStore) -> list[str]:
    rows = await store.fetchall("SELECT DISTINCT child_id FROM withheld_fact WHERE released = 0")
    return sorted(str(r[0]) for r in rows)


async def shared_rows(
    store: ReadStore, child_id: str
) -> list[tuple[bytes, str | None, str | None]]:
    """(body, purposes, claimed basis) of each fact in the child's shared record, in order."""
    rows = await store.fetchall(
        "SELECT body, purposes, basis_claimed FROM shared_fact WHERE child_id = ?"
        " ORDER BY part, log_offset",
        (child_id,),
    )
    return [(bytes(b), p, c) for b, p, c in rows]


async def last_shared_on(store: ReadStore, child_id: str, category: str) -> str | None:
    row = await store.fetchone(
        "SELECT MAX(occurred_at) FROM shared_fact WHERE child_id = ? AND category = ?",
        (child_id, category),
    )
    return str(row[0]) if row and row[0] else None


async def landed_keys(store: ReadStore, keys: Sequence[str]) -> list[str]:
    """Which idempotency keys the log shows taken (from `ingest_dedupe`)."""
    if not keys:
        return []
    rows = await store.fetchall(
        f"SELECT dedupe_key FROM ingest_dedupe WHERE dedupe_key IN ({_marks(keys)})",  # noqa: S608
        list(keys),
    )
    return [str(r[0]) for r in rows]
