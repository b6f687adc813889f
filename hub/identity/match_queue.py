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
name the children it may be about. `MatchQueue` is the port (items, the facts each holds,
fingerprints seen on linked records); `MemoryMatchQueue` keeps it in dicts, the SQL one
lives with the stores; both seal and fingerprint through `SubjectKeys`. One contract
suite runs against each.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

from hub.consent.crypto import KeyStore, decrypt_value, encrypt_value
from hub.consent.opener import data_key_id
from hub.events.envelope import new_event_id
from hub.events.identity import MatchReason
from hub.identity.identifiers import (
    Identifier,
    InvalidIdentifier,
    check_la_child_id,
    check_nhs_number,
    check_upn,
)
from hub.identity.subject import Subject

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


def strong_identifiers(subject: Subject) -> tuple[list[Identifier], list[InvalidIdentifier]]:
    """The subject's valid strong identifiers, and the rule each invalid one breaks."""
    if not (subject.upn or subject.former_upn or subject.la_child_id or subject.la_code):
        if not subject.nhs_number:  # most senders name the child by NHS number alone
            return [], []
        try:
            return [check_nhs_number(subject.nhs_number)], []
        except InvalidIdentifier as exc:
            return [], [exc]
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


def new_item_ids() -> tuple[str, str]:
    """A fresh (item id, provisional child id) pair, sharing one time-ordered suffix."""
    suffix = new_event_id().hex
    return ITEM_PREFIX + suffix, PROVISIONAL_PREFIX + suffix


class SubjectKeys:
    """What every queue does with keys: demographic fingerprints under the hub's
    fingerprint secret (in the key store, wrapped by the master key), and each item's
    subject sealed with its provisional child's `identity` data key, so that shredding
    that child's keys makes the sealed copy unreadable."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        self._secret: bytes | None = None

    async def fingerprint(self, subject: Subject) -> str | None:
        """A keyed hash of the normalised given name, family name and date of birth, or
        None when the subject lacks one of them. Never reversible without the key."""
        if not (subject.given_name and subject.family_name and subject.date_of_birth):
            return None
        given, family = _normal(subject.given_name), _normal(subject.family_name)
        if not given or not family:
            return None
        if self._secret is None:
            self._secret = await self._keys.create(FINGERPRINT_KEY_ID)
        msg = f"{given}|{family}|{subject.date_of_birth.isoformat()}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    async def seal(self, subject: Subject, provisional_child_id: str) -> bytes:
        """The subject encrypted with the provisional child's `identity` key (made now)."""
        key = await self._keys.create(data_key_id(provisional_child_id, "identity"))
        return orjson.dumps(
            encrypt_value(
                subject.model_dump(mode="json"), key, aad=provisional_child_id, field=SUBJECT_FIELD
            )
        )

    async def open(self, item: QueueItem) -> Subject | None:
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


SEALED_NOTHING = orjson.dumps(None)
"""What a resolved item keeps in place of its sealed subject."""


class MatchQueue(Protocol):
    """The match queue port (memory, SQLite and PostgreSQL; one contract suite): items,
    the idempotency keys of the facts each holds, and the (fingerprint, child) pairs seen
    on linked records."""

    async def fingerprint(self, subject: Subject) -> str | None:
        """The subject's demographic fingerprint (see `SubjectKeys.fingerprint`)."""
        ...

    async def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record (fingerprint, child id) pairs seen on linked records."""
        ...

    async def forget(self, child_id: str) -> None:
        """Drop every fingerprint seen with the child, and those of queue items that were
        or became the child (its erasure: nothing is left to say such a child existed)."""
        ...

    async def children_with(self, fingerprint: str | None) -> tuple[str, ...]:
        """The children seen with this fingerprint, in id order."""
        ...

    async def item_for_keys(self, dedupe_keys: Sequence[str]) -> QueueItem | None:
        """The item already holding any of these facts (a message delivered again)."""
        ...

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
        """A new pending item with a fresh provisional child, the subject sealed with that
        child's `identity` data key — or, when another taker queued any of these facts
        meanwhile, that item (the facts' keys are locked across processes while this is
        decided); with whether this call created the item."""
        ...

    async def add_facts(
        self, item_id: str, dedupe_keys: Sequence[str], held_types: dict[str, int]
    ) -> None:
        """More facts of a pending item's record (the same message, sent again with more);
        facts held already are not counted twice."""
        ...

    async def get(self, item_id: str) -> QueueItem | None: ...

    async def items(
        self,
        *,
        status: Status | None = "pending",
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[QueueItem]:
        """Items in the order they were queued, (created at, item id) (all statuses when
        `status` is None); with `after`, only those that sort after that pair (paging)."""
        ...

    async def open_subject(self, item: QueueItem) -> Subject | None:
        """The sealed subject, or None once the provisional child's key is gone or the
        item was resolved."""
        ...

    async def mark_resolved(
        self, item_id: str, *, decision: Decision, child_id: str, actor: str, now: datetime
    ) -> None:
        """Record the decision; the sealed subject is dropped (its key is shredded too)."""
        ...


class MemoryMatchQueue:
    """`MatchQueue` in dicts, for unit tests and single-process tools."""

    def __init__(self, keys: KeyStore) -> None:
        self._subjects = SubjectKeys(keys)
        self._items: dict[str, QueueItem] = {}
        self._facts: dict[str, str] = {}  # dedupe key -> item id
        self._seen: set[tuple[str, str]] = set()  # (fingerprint, child id)

    async def fingerprint(self, subject: Subject) -> str | None:
        return await self._subjects.fingerprint(subject)

    async def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._seen.update(pairs)

    async def forget(self, child_id: str) -> None:
        self._seen = {(f, c) for f, c in self._seen if c != child_id}

    async def children_with(self, fingerprint: str | None) -> tuple[str, ...]:
        return tuple(sorted(c for f, c in self._seen if f == fingerprint))

    async def item_for_keys(self, dedupe_keys: Sequence[str]) -> QueueItem | None:
        held = {self._facts[k] for k in dedupe_keys if k in self._facts}
        return self._items[min(held)] if held else None

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
        held = next((self._facts[k] for k in sorted(set(dedupe_keys)) if k in self._facts), None)
        if held is not None:
            return self._items[held], False
        item_id, provisional = new_item_ids()
        sealed = await self._subjects.seal(subject, provisional)
        item = QueueItem(
            item_id=item_id,
            provisional_child_id=provisional,
            reason=unlinked.reason,
            rule=unlinked.rule,
            candidates=tuple(unlinked.candidates),
            agency=agency,
            message_id=message_id,
            held_types=dict(held_types),
            facts_held=len(set(dedupe_keys)),
            status="pending",
            created_at=now.isoformat(),
            sealed_subject=sealed,
        )
        self._items[item_id] = item
        for k in sorted(set(dedupe_keys)):
            self._facts.setdefault(k, item_id)
        return item, True

    async def add_facts(
        self, item_id: str, dedupe_keys: Sequence[str], held_types: dict[str, int]
    ) -> None:
        fresh = [k for k in sorted(set(dedupe_keys)) if k not in self._facts]
        for k in fresh:
            self._facts[k] = item_id
        item = self._items.get(item_id)
        if fresh and item is not None:
            types = dict(item.held_types)
            for t, n in held_types.items():
                types[t] = types.get(t, 0) + n
            self._items[item_id] = replace(
                item, facts_held=item.facts_held + len(fresh), held_types=types
            )

    async def get(self, item_id: str) -> QueueItem | None:
        return self._items.get(item_id)

    async def items(
        self,
        *,
        status: Status | None = "pending",
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[QueueItem]:
        chosen = [
            i
            for i in self._items.values()
            if (status is None or i.status == status)
            and (after is None or (i.created_at, i.item_id) > after)
        ]
        return sorted(chosen, key=lambda i: (i.created_at, i.item_id))[:limit]

    async def open_subject(self, item: QueueItem) -> Subject | None:
        return await self._subjects.open(item)

    async def mark_resolved(
        self, item_id: str, *, decision: Decision, child_id: str, actor: str, now: datetime
    ) -> None:
        item = self._items.get(item_id)
        if item is not None:
            self._items[item_id] = replace(
                item,
                status="resolved",
                decision=decision,
                resolved_child_id=child_id,
                resolved_by=actor[:256],
                resolved_at=now.isoformat(),
                sealed_subject=SEALED_NOTHING,
            )
