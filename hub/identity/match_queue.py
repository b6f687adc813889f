"""The match queue: records the hub will not link to a child without a person's judgement.

A record whose subject carries no valid strong identifier (a Synthea patient named only by
name, date of birth and postcode), whose identifiers belong to two different children, or
whose date of birth contradicts the one recorded for the child its identifiers name, is
never guessed: the gate gives it a provisional child id (`hp-...`), holds its facts on
`hub.withheld` sealed with that provisional child's keys, appends `identity.match_queued`
(ids and the reason only) and keeps a queue item here — the subject's identifiers and
demographics sealed with the provisional child's `identity` key, the idempotency keys of
the held facts, the candidate children. A coordinator compares the sealed demographics
with what the hub knows of the candidates (`review_queue`, an audited read) and decides
(`resolve_match`): link to a child or keep separate as a new child. The decision links
the record's unowned identifiers, releases the held facts through the consent gate for
the chosen child (decrypted with the provisional key, re-sealed with the chosen child's),
appends `identity.match_resolved`, and crypto-shreds the provisional copies. Name and
date-of-birth fingerprints (keyed HMACs, never the values) let a demographics-only record
name the children it may be about. Tables live in the read store, through its port.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from hub.consent.crypto import KeyStore, decrypt_value, encrypt_value
from hub.consent.opener import data_key_id
from hub.events.identity import MatchReason
from hub.identity.identifiers import (
    Identifier,
    InvalidIdentifier,
    check_la_child_id,
    check_nhs_number,
    check_upn,
)
from hub.ingest.model import Subject
from hub.store.base import ReadStore, Tx

PROVISIONAL_PREFIX = "hp-"
ITEM_PREFIX = "mq-"
FINGERPRINT_KEY_ID = "hub/match-queue-fingerprint"
"""Key-store id of the secret behind demographic fingerprints (wrapped by the master key)."""
SUBJECT_FIELD = "match_subject"
Decision = Literal["link", "keep_separate"]
Status = Literal["pending", "resolved"]

_REASONS: dict[str, str] = {
    "no_identifier": "the record carries no strong identifier (NHS number, UPN, or LA code "
    "+ LA child id); demographics alone are never used to link",
    "invalid_identifier": "the record's only identifiers break their rules",
    "identity_conflict": "the record's identifiers belong to different children",
    "dob_mismatch": "the record's date of birth differs from the one recorded for the child "
    "its identifiers name",
}


MatchProblem = Literal["no_such_item", "no_such_child", "decided_already", "invalid"]


class MatchError(Exception):
    """A resolution that cannot be made; `problem` says which kind."""

    def __init__(self, reason: str, *, problem: MatchProblem = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.problem = problem


@dataclass(frozen=True)
class Unlinked:
    """Identity resolution's answer for a record a person must match."""

    reason: MatchReason
    candidates: tuple[str, ...] = ()
    rule: str | None = None
    detail: str | None = None
    """Which identifier broke which rule (never its value), when that is the reason."""

    def describe(self) -> str:
        text = _REASONS[self.reason]
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class QueueItem:
    item_id: str
    provisional_child_id: str
    reason: MatchReason
    rule: str | None
    candidates: tuple[str, ...]
    agency: str
    message_id: str | None
    held_types: dict[str, int]
    facts_held: int
    status: Status
    created_at: str
    decision: Decision | None = None
    resolved_child_id: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None
    sealed_subject: bytes = field(default=b"", repr=False)

    def describe(self) -> str:
        return _REASONS.get(self.reason, self.reason)


_COLUMNS = (
    "item_id, provisional_child_id, reason, rule, candidates, agency, message_id, held_types,"
    " facts_held, status, created_at, decision, resolved_child_id, resolved_by, resolved_at,"
    " subject"
)


def _item(row: Sequence[Any]) -> QueueItem:
    return QueueItem(
        item_id=str(row[0]),
        provisional_child_id=str(row[1]),
        reason=row[2],
        rule=row[3],
        candidates=tuple(orjson.loads(row[4])),
        agency=str(row[5]),
        message_id=row[6],
        held_types=dict(orjson.loads(row[7])),
        facts_held=int(row[8]),
        status=row[9],
        created_at=str(row[10]),
        decision=row[11],
        resolved_child_id=row[12],
        resolved_by=row[13],
        resolved_at=row[14],
        sealed_subject=bytes(row[15]),
    )


def strong_identifiers(subject: Subject) -> tuple[list[Identifier], list[InvalidIdentifier]]:
    """The subject's valid strong identifiers, and the rule each invalid one breaks."""
    good: list[Identifier] = []
    bad: list[InvalidIdentifier] = []
    checks: list[tuple[str | None, Any]] = [
        (subject.nhs_number, check_nhs_number),
        (subject.upn, check_upn),
        (subject.former_upn, check_upn),
    ]
    for value, check in checks:
        if value:
            try:
                good.append(check(value))
            except InvalidIdentifier as exc:
                bad.append(exc)
    if subject.la_child_id or subject.la_code:
        try:
            good.append(check_la_child_id(subject.la_code or "", subject.la_child_id or ""))
        except InvalidIdentifier as exc:
            bad.append(exc)
    return good, bad


def _normal(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


class MatchQueue:
    """The queue's tables in the read store, and the demographic fingerprints."""

    def __init__(self, store: ReadStore, keys: KeyStore) -> None:
        self._store = store
        self._keys = keys
        self._secret: bytes | None = None
        self._ready = False
        self.deciding = asyncio.Lock()
        """Held while a decision is carried out, so two people cannot decide one item at
        once in this process (across processes, the second finds it decided, or repeats
        the idempotent release)."""

    async def setup(self) -> None:
        if self._ready:
            return
        self._secret = await self._keys.create(FINGERPRINT_KEY_ID)
        self._ready = True

    # -- fingerprints ----------------------------------------------------------------
    async def fingerprint(self, subject: Subject) -> str | None:
        """A keyed hash of the normalised given name, family name and date of birth, or
        None when the subject lacks one of them. Never reversible without the key."""
        if not (subject.given_name and subject.family_name and subject.date_of_birth):
            return None
        given, family = _normal(subject.given_name), _normal(subject.family_name)
        if not given or not family:
            return None
        await self.setup()
        assert self._secret is not None
        msg = f"{given}|{family}|{subject.date_of_birth.isoformat()}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    async def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record (fingerprint, child id) pairs seen on linked records."""
        rows = sorted(set(pairs))
        if not rows:
            return
        await self.setup()
        async with self._store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO match_fingerprint (fingerprint, child_id) VALUES (?, ?)"
                " ON CONFLICT (fingerprint, child_id) DO NOTHING",
                rows,
            )

    async def children_with(self, fingerprint: str | None) -> tuple[str, ...]:
        if fingerprint is None:
            return ()
        await self.setup()
        rows = await self._store.fetchall(
            "SELECT child_id FROM match_fingerprint WHERE fingerprint = ? ORDER BY child_id",
            (fingerprint,),
        )
        return tuple(str(r[0]) for r in rows)

    # -- items -----------------------------------------------------------------------
    async def item_for_keys(self, dedupe_keys: Sequence[str]) -> QueueItem | None:
        """The item already holding any of these facts (a message delivered again)."""
        await self.setup()
        unique = sorted(set(dedupe_keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            row = await self._store.fetchone(
                f"SELECT item_id FROM match_queue_fact WHERE dedupe_key IN ({marks})"  # noqa: S608
                " ORDER BY item_id LIMIT 1",
                chunk,
            )
            if row is not None:
                return await self.get(str(row[0]))
        return None

    async def enqueue(
        self,
        subject: Subject,
        unlinked: Unlinked,
        *,
        agency: str,
        message_id: str | None,
        dedupe_keys: Sequence[str],
        held_types: dict[str, int],
        now: datetime,
    ) -> tuple[QueueItem, bool]:
        """A new item with a fresh provisional child, the subject sealed with that child's
        `identity` data key — or, when another taker queued the same facts meanwhile (the
        facts' keys are locked across processes while this is decided), that item; with
        whether this call created it."""
        from hub.events.envelope import new_event_id

        await self.setup()
        suffix = new_event_id().hex
        item_id, provisional = ITEM_PREFIX + suffix, PROVISIONAL_PREFIX + suffix
        key = await self._keys.create(data_key_id(provisional, "identity"))
        sealed = orjson.dumps(
            encrypt_value(
                subject.model_dump(mode="json"), key, aad=provisional, field=SUBJECT_FIELD
            )
        )
        fingerprint = await self.fingerprint(subject)
        keys = sorted(set(dedupe_keys))
        item = (
            item_id, provisional, unlinked.reason, unlinked.rule,
            orjson.dumps(list(unlinked.candidates)).decode(), agency, message_id, sealed,
            fingerprint, orjson.dumps(held_types).decode(), len(keys), now.isoformat(),
        )  # fmt: skip
        async with self._store.transaction() as tx:
            await tx.lock([f"match-fact:{k}" for k in keys])
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                row = await tx.fetchone(
                    f"SELECT item_id FROM match_queue_fact WHERE dedupe_key IN ({marks})"  # noqa: S608
                    " ORDER BY item_id LIMIT 1",
                    chunk,
                )
                if row is not None:
                    break
            if row is None:
                await self._insert_item(tx, item, keys)
        if row is not None:  # queued by another taker meanwhile
            found = await self.get(str(row[0]))
            if found is None:
                raise RuntimeError(f"match queue item {row[0]} vanished")
            return found, False
        created = await self.get(item_id)
        if created is None:
            raise RuntimeError(f"match queue item {item_id} was not stored")
        return created, True

    @staticmethod
    async def _insert_item(tx: Tx, item: tuple[Any, ...], keys: Sequence[str]) -> None:
        await tx.execute(
            "INSERT INTO match_queue_item (item_id, provisional_child_id, reason, rule,"
            " candidates, agency, message_id, subject, fingerprint, held_types, facts_held,"
            " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            item,
        )
        await tx.executemany(
            "INSERT INTO match_queue_fact (dedupe_key, item_id) VALUES (?, ?)"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            [(k, item[0]) for k in keys],
        )

    async def add_facts(
        self, item_id: str, dedupe_keys: Sequence[str], held_types: dict[str, int]
    ) -> None:
        """More facts of a pending item's record (the same message, sent again with more)."""
        await self.setup()
        async with self._store.transaction() as tx:
            fresh = 0
            for k in sorted(set(dedupe_keys)):
                row = await tx.fetchone("SELECT 1 FROM match_queue_fact WHERE dedupe_key = ?", (k,))
                if row is None:
                    await tx.execute(
                        "INSERT INTO match_queue_fact (dedupe_key, item_id) VALUES (?, ?)",
                        (k, item_id),
                    )
                    fresh += 1
            if fresh:
                row = await tx.fetchone(
                    "SELECT held_types FROM match_queue_item WHERE item_id = ?", (item_id,)
                )
                types: dict[str, int] = dict(orjson.loads(row[0])) if row else {}
                for t, n in held_types.items():
                    types[t] = types.get(t, 0) + n
                await tx.execute(
                    "UPDATE match_queue_item SET facts_held = facts_held + ?, held_types = ?"
                    " WHERE item_id = ?",
                    (fresh, orjson.dumps(types).decode(), item_id),
                )

    async def get(self, item_id: str) -> QueueItem | None:
        await self.setup()
        row = await self._store.fetchone(
            f"SELECT {_COLUMNS} FROM match_queue_item WHERE item_id = ?",  # noqa: S608
            (item_id,),
        )
        return None if row is None else _item(row)

    async def items(
        self, *, status: Status | None = "pending", limit: int = 100
    ) -> list[QueueItem]:
        await self.setup()
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = await self._store.fetchall(
            f"SELECT {_COLUMNS} FROM match_queue_item {where}"  # noqa: S608
            " ORDER BY created_at, item_id LIMIT ?",
            [*params, limit],
        )
        return [_item(r) for r in rows]

    async def open_subject(self, item: QueueItem) -> Subject | None:
        """The sealed subject, or None once the provisional child's key is gone."""
        key = await self._keys.get(data_key_id(item.provisional_child_id, "identity"))
        value = decrypt_value(
            orjson.loads(item.sealed_subject),
            key,
            aad=item.provisional_child_id,
            field=SUBJECT_FIELD,
        )
        if not isinstance(value, dict):
            return None
        return Subject.model_validate(value)

    async def mark_resolved(
        self, item_id: str, *, decision: Decision, child_id: str, actor: str, now: datetime
    ) -> None:
        """Record the decision; the sealed subject is dropped (its key is shredded too)."""
        await self.setup()
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE match_queue_item SET status = 'resolved', decision = ?,"
                " resolved_child_id = ?, resolved_by = ?, resolved_at = ?, subject = ?"
                " WHERE item_id = ?",
                (decision, child_id, actor[:256], now.isoformat(), orjson.dumps(None), item_id),
            )


# -- reading the queue (an audited read) ---------------------------------------------------
