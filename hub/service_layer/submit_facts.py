"""Submit facts: the consent gate on the ingest path, for every adapter and route.

For each `InboundFact` the handler resolves the child (person index, or the match queue
when only a person may decide), claims the fact's idempotency key (a fact taken before,
or being taken by another request, is a duplicate), asks `decide_sharing` whether it may
be shared now, and writes: the decision to `hub.audit` first, then the fact — sealed with
the child's data key for its category — to `hub.events` (permitted) or `hub.withheld`
(withheld). A batch's facts about one child that get the same decision (same category,
source, sharing context and consents in force: `DecisionMemo`) share one decision
record, which names each fact (`event_ids`, with `decision_ids` and `event_types` in the
same order). Consent and casework events are the family's and the LA's own records: they
are always kept, and a consent change has `ReconsiderWithheld` release what it now covers.
Bad input is answered per fact with the field and the rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ValidationError

from hub.consent.audit_chain import AuditKind
from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.authority import ConsentAuthorityError, check_grantor_authority
from hub.consent.crypto import KeyErasedError, KeyStore, data_cipher
from hub.consent.decision import Decision, DecisionMemo
from hub.consent.opener import data_key_id
from hub.consent.policy import SharingPolicy
from hub.consent.sealing import personal_fields, seal_envelope
from hub.consent.state import ConsentState
from hub.errors import PermanentError
from hub.events import Envelope, Sharing, Source, encode
from hub.events.codec import DOC_OPTIONS, envelope_doc, payload_json
from hub.events.consent import CapacityAssessed, ConsentRecorded
from hub.events.identity import IdentifierLinked, MatchQueued
from hub.events.trusted import trusted
from hub.identity.identifiers import Identifier, InvalidIdentifier
from hub.identity.match_queue import MatchQueue, QueueItem, Unlinked, strong_identifiers
from hub.identity.person_index import PersonIndex, Resolution
from hub.identity.subject import Subject
from hub.ingest.claims import Claim, IngestClaims, ours
from hub.ingest.model import FactOutcome, InboundFact
from hub.ingest.natural_keys import child_named, restatement_key
from hub.log import EventLog, LogName, NewRecord
from hub.projections.gate_views import DEDUPE_HEADER, landed_keys
from hub.service_layer.reconsider import ReconsiderWithheld
from hub.service_layer.views import GateViews
from hub.store import ReadStore

log = structlog.get_logger(__name__)

GOVERNANCE_PREFIXES = ("consent.", "casework.", "identity.")
ERASED_REASON = "this child's record was erased; the hub takes nothing more about them"
_TAKEN_BEFORE = "this message was taken before"
MATCH_HEADER = "x-match-queue-item"
"""On a fact held for the match queue: the queue item it waits on."""


@dataclass
class _DecisionGroup:
    """One decision record in the making: the decision its facts share, and each fact."""

    child_id: str
    at: datetime
    actor: str
    shared: dict[str, object]
    event_ids: list[str] = field(default_factory=list)
    decision_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)

    def add(self, event_id: str, decision_id: str, event_type: str) -> None:
        self.event_ids.append(event_id)
        self.decision_ids.append(decision_id)
        self.event_types.append(event_type)

    def drop(self, event_ids: set[str]) -> None:
        kept = [i for i, e in enumerate(self.event_ids) if e not in event_ids]
        self.event_ids = [self.event_ids[i] for i in kept]
        self.decision_ids = [self.decision_ids[i] for i in kept]
        self.event_types = [self.event_types[i] for i in kept]

    def entry(self) -> AuditEntry:
        return AuditEntry(
            kind="decision",
            actor=self.actor,
            child_id=self.child_id,
            at=self.at,
            details={
                **self.shared,
                "event_ids": self.event_ids,
                "decision_ids": self.decision_ids,
                "event_types": self.event_types,
            },
        )


@dataclass
class _Pending:
    """What one submit call will append, in order, per log."""

    audit: list[AuditEntry | _DecisionGroup] = field(default_factory=list)
    groups: dict[tuple[object, ...], _DecisionGroup] = field(default_factory=dict)
    """The batch's decision records by child and decision, as facts join them."""
    events: list[NewRecord] = field(default_factory=list)
    withheld: list[NewRecord] = field(default_factory=list)
    consent_children: set[str] = field(default_factory=set)
    decisions: DecisionMemo | None = None
    """The batch's consent decisions, made once per consents in force and sharing key."""
    claims: list[Claim] = field(default_factory=list)
    """The idempotency keys the appends will take, claimed just before them."""
    parts: dict[int, tuple[BaseModel, Any]] = field(default_factory=dict)
    """The JSON forms of the batch's sources and sharing contexts (`envelope_doc`)."""
    ciphers: dict[bytes, AESGCM] = field(default_factory=dict)
    """The batch's data-key ciphers, by key: built once per key, dropped with the batch."""
    _details: dict[int, tuple[Decision, tuple[object, ...]]] = field(default_factory=dict)
    """What each shared decision's record says of it (`_shared_details`), by identity."""

    def note_claim(
        self, key: str, outcome: FactOutcome, resolved: _Resolved, now: datetime
    ) -> None:
        """Note the claim a fact that is taken (appended, withheld or held) will need."""
        if outcome.status in ("appended", "withheld", "queued") and outcome.event_id:
            holder = resolved.queued.provisional_child_id if resolved.queued else resolved.child_id
            if holder is not None:
                self.claims.append(Claim(key, outcome.event_id, holder, now))

    def drop(self, keys: set[str], event_ids: set[str]) -> None:
        """Leave out the facts of `keys` (another taker holds them) and their decisions."""

        def kept(record: NewRecord) -> bool:
            return dict(record.headers).get(DEDUPE_HEADER, b"").decode() not in keys

        self.events = [r for r in self.events if kept(r)]
        self.withheld = [r for r in self.withheld if kept(r)]
        for group in self.groups.values():
            group.drop(event_ids)
        self.audit = [
            a
            for a in self.audit
            if (
                a.event_ids
                if isinstance(a, _DecisionGroup)
                else a.details.get("event_id") not in event_ids
            )
        ]
        self.claims = [c for c in self.claims if c.dedupe_key not in keys]

    def decided(
        self,
        decision: Decision,
        decision_id: str,
        envelope: Envelope,
        event_id: str,
        actor: str,
        now: datetime,
    ) -> _DecisionGroup:
        """Note a fact's decision (`decision`: the one its kind of fact shares, and its
        own id) in its child's record of that decision (everything the record says of it
        the same)."""
        known = self._details.get(id(decision))
        if known is None:  # kept with the decision: its id is not reused
            known = self._details[id(decision)] = (
                decision,
                (
                    decision.outcome,
                    decision.relied_on_kind,
                    decision.relied_on,
                    decision.art6,
                    decision.art9,
                    decision.confidentiality,
                    decision.audience.roles,
                    decision.reason,
                    decision.consent_state_version,
                    decision.policy_version,
                ),
            )
        # everything `_shared_details` says
        key = (envelope.child_id, actor, envelope.category, envelope.source.agency, known[1])
        group = self.groups.get(key)
        if group is None:
            shared = _shared_details(decision, envelope)
            group = self.groups[key] = _DecisionGroup(envelope.child_id, now, actor, shared)
            self.audit.append(group)
        group.add(event_id, decision_id, envelope.event_type)
        return group

    def entries(self) -> list[AuditEntry]:
        return [
            a.entry() if isinstance(a, _DecisionGroup) else a
            for a in self.audit
            if not isinstance(a, _DecisionGroup) or a.event_ids
        ]


_Answer = tuple[str | None, list[Identifier], str | None, str | None] | Unlinked


@dataclass
class _Resolved:
    """Identity resolution of one subject, for every fact of the batch about it."""

    child_id: str | None
    reason: str | None = None
    rule: str | None = None
    field: str | None = "subject"
    queued: QueueItem | None = None
    """Set when the facts are held for the match queue under `child_id` (provisional)."""
    unlinked: Unlinked | None = None
    also_catch_up: tuple[str, ...] = ()


def dedupe_key(
    fact: InboundFact,
    named: dict[str, object] | None = None,
    *,
    secret: bytes | None = None,
    content: dict[str, Any] | None = None,
) -> str:
    """The fact's idempotency key: its natural key and content when its type has one
    (`hub.ingest.natural_keys`: a restatement in a later message is the same fact; keyed
    by `secret`), else its place in its message. `named`: `child_named(fact.subject)`,
    when known; `content`: the payload's JSON form, when known."""
    natural = (
        restatement_key(fact, secret=secret, content=content)
        if named is None
        else restatement_key(fact, named, secret=secret, content=content)
    )
    if natural is not None:
        return natural
    message = fact.source.message_id or "-"
    return f"{fact.source.agency}|{message}|{fact.ref or fact.payload.event_type}"


@dataclass
class _Book:
    """What one batch's identity resolution knows of the person index as it goes."""

    owners: dict[Identifier, str]
    dobs: dict[str, date]
    waiting: set[Identifier] = field(default_factory=set)
    new_dobs: dict[str, date] = field(default_factory=dict)

    def judge(self, subject: Subject, good: list[Identifier]) -> _Answer | None:
        """The answer for a subject all of whose identifiers are known (or that cannot be
        linked), else None: it brings a new identifier and is to be linked."""
        owners = self.owners
        if len(good) == 1:  # most subjects: one strong identifier
            one = owners.get(good[0])
            held = set() if one is None else {one}
            unknown = one is None
        else:
            found = [owners.get(i) for i in good]
            held = {o for o in found if o is not None}
            unknown = None in found
        if len(held) > 1:
            return Unlinked("identity_conflict", tuple(sorted(held)))
        dob = subject.date_of_birth
        recorded = self.dobs.get(next(iter(held))) if held and dob else None
        if recorded is not None and recorded != dob:
            return Unlinked("dob_mismatch", tuple(held))
        if not held or unknown:
            return None
        child_id = next(iter(held))
        self._note_dob(subject, child_id, created=False, recorded=recorded)
        return (child_id, [], None, None)

    def linked(self, subject: Subject, good: list[Identifier], res: Resolution) -> _Answer:
        held = {self.owners[i] for i in good if i in self.owners}
        if res.child_id is None:  # another writer linked them meanwhile
            return Unlinked("identity_conflict", tuple(sorted(held)))
        recorded = self.dobs.get(res.child_id)
        self.owners.update((i, res.child_id) for i in good)
        self._note_dob(subject, res.child_id, created=res.created, recorded=recorded)
        return (res.child_id, res.linked, None, None)

    def _note_dob(
        self, subject: Subject, child_id: str, *, created: bool, recorded: date | None
    ) -> None:
        dob = subject.date_of_birth
        if dob and (recorded is None or created) and child_id not in self.dobs:
            self.new_dobs[child_id] = self.dobs[child_id] = dob


class SubmitFacts:
    def __init__(
        self,
        *,
        log: EventLog,
        store: ReadStore,
        keys: KeyStore,
        policy: SharingPolicy,
        persons: PersonIndex,
        matches: MatchQueue,
        trail: AuditTrail,
        claims: IngestClaims,
        views: GateViews,
        reconsider: ReconsiderWithheld,
        natural_key_secret: bytes | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.keys = keys
        self.policy = policy
        self.persons = persons
        self.matches = matches
        self.trail = trail
        self.claims = claims
        self.views = views
        self.reconsider = reconsider
        self.natural_key_secret = natural_key_secret
        """Keys the restatement digests (`hub.ingest.natural_keys.restatement_key`)."""
        self._lock = asyncio.Lock()
        """One submit at a time in this process (what one decides, the next reads); across
        processes the claims and the person index's locks keep the invariants."""

    def key_of(self, fact: InboundFact) -> str:
        """The idempotency key this handler claims for `fact` (`dedupe_key`, keyed)."""
        return dedupe_key(fact, secret=self.natural_key_secret)

    async def __call__(
        self, facts: Sequence[InboundFact], *, actor: str, now: datetime | None = None
    ) -> list[FactOutcome]:
        """Take facts through identity, idempotency and the consent decision, in order.
        I/O is done per phase for the whole batch: each distinct subject is resolved once,
        the idempotency view is caught up once per partition and queried in bulk."""
        async with self._lock:
            now = now or datetime.now(UTC)
            pending = _Pending()
            resolved: dict[str, _Resolved] = {}
            by_subject: dict[str, list[InboundFact]] = {}
            subject_keys, named = _subject_keys(facts)
            for fact, skey in zip(facts, subject_keys, strict=True):
                by_subject.setdefault(skey, []).append(fact)
            fingerprints: list[tuple[str, str]] = []
            answers = await self._resolve_all([g[0].subject for g in by_subject.values()])
            for (skey, group), answer in zip(by_subject.items(), answers, strict=True):
                subject = group[0].subject
                if isinstance(answer, Unlinked):
                    resolved[skey] = await self._hold_for_match(
                        subject, answer, group, now, pending, actor
                    )
                    continue
                child_id, linked, reason, rule = answer
                resolved[skey] = _Resolved(child_id, reason, rule)
                if child_id is None:
                    continue
                for ident in linked:
                    record = self._linked_record(child_id, ident, group[0].source, now)
                    pending.events.append(record)
                # a fingerprint needs both names and the date of birth (`SubjectKeys`)
                if (
                    not subject.hub_child_id
                    and subject.given_name
                    and subject.family_name
                    and subject.date_of_birth
                ):
                    fingerprint = await self.matches.fingerprint(subject)
                    if fingerprint is not None:
                        fingerprints.append((fingerprint, child_id))
            await self.matches.remember(fingerprints)
            held = {r.child_id for r in resolved.values() if r.queued is not None and r.child_id}
            children = {r.child_id for r in resolved.values() if r.child_id} - held
            extra = {c for r in resolved.values() for c in r.also_catch_up}
            secret = self.natural_key_secret
            # each payload's JSON form, made once: for its key and for its sealed record
            contents = [payload_json(f.payload) for f in facts]
            dedupe_keys = [
                dedupe_key(f, n, secret=secret, content=c)
                for f, n, c in zip(facts, named, contents, strict=True)
            ]
            known = await self._taken(dedupe_keys, children | held | extra, now)
            outcomes: list[FactOutcome] = []
            # only the children with a fact not taken before are decided on: a child whose
            # facts are all duplicates needs no consent state (one is read if one does)
            deciding = {
                c
                for k, key in zip(subject_keys, dedupe_keys, strict=True)
                if key not in known and (c := resolved[k].child_id) in children
            }
            states = await self.views.consent_states(deciding)
            seen_keys: set[str] = set()
            await self._prepare_keys(
                facts,
                {
                    i: r.child_id
                    for i, k in enumerate(subject_keys)
                    if (r := resolved[k]).child_id and known.get(dedupe_keys[i]) is None
                },
            )
            for fact, skey, key, content in zip(
                facts, subject_keys, dedupe_keys, contents, strict=True
            ):
                who = resolved[skey]
                taken = known.get(key)
                if taken is not None and who.child_id is not None and key not in seen_keys:
                    # taken before (most of a restated batch): what `_one` answers, no claim
                    outcomes.append(
                        FactOutcome(
                            fact.ref,
                            "duplicate",
                            fact.payload.event_type,
                            event_id=taken,
                            child_id=None if who.queued is not None else who.child_id,
                            reason=_TAKEN_BEFORE,
                        )
                    )
                    continue
                outcome = await self._one(
                    fact, key, who, actor, now, pending, states, seen_keys, known, content
                )
                pending.note_claim(key, outcome, who, now)
                outcomes.append(outcome)
            outcomes = await self._claim(pending, outcomes)
            try:
                await self._flush(pending)
            except BaseException:
                await self.claims.release(*_keys_and_ids(pending.claims))
                raise
            await self.claims.mark_appended(*_keys_and_ids(pending.claims))
            for child in sorted(pending.consent_children):
                await self.reconsider(child, actor, now)
            return outcomes

    def _linked_record(
        self, child_id: str, ident: Identifier, source: Source, now: datetime
    ) -> NewRecord:
        env = Envelope.wrap(
            IdentifierLinked(system=ident.system.value, reason="first seen on an inbound fact"),
            child_id=child_id,
            source=source,
            occurred_at=now,
        )
        return NewRecord(key=child_id, value=encode(env))

    async def _taken(
        self, keys: Sequence[str], children: Iterable[str], now: datetime
    ) -> dict[str, str]:
        """Event id per key that another taking holds (on the log, or being appended by a
        live taker). A claim whose taker died before appending is not taken, unless the
        log shows that its fact did land."""
        holders = await self.claims.holders(keys)
        stale = {k: c for k, c in holders.items() if c.stale(now)}
        if stale:  # rare: ask the log (through its idempotency view) what landed
            await self.views.catch_up(
                ["ingest_dedupe"], {*children, *(c.child_id for c in stale.values())}
            )
            landed = await landed_keys(self.store, sorted(stale))
            await self.claims.mark_appended(*_keys_and_ids([stale[k] for k in landed]))
            for key in set(stale) - set(landed):
                del holders[key]
        return {k: c.event_id for k, c in holders.items()}

    async def _claim(self, pending: _Pending, outcomes: list[FactOutcome]) -> list[FactOutcome]:
        """Claim what the batch takes; what another taker claimed first is left out of the
        appends and answered as a duplicate of the holder's event."""
        wanted = list(pending.claims)
        holders = await self.claims.claim(wanted)
        won = ours(wanted, holders)
        lost = {w.dedupe_key: w.event_id for w in wanted if w.dedupe_key not in won}
        if not lost:
            return outcomes
        pending.drop(set(lost), set(lost.values()))
        by_event = {event_id: key for key, event_id in lost.items()}
        log.info("ingest.claimed_elsewhere", facts=len(lost))
        return [
            o
            if o.event_id not in by_event
            else FactOutcome(
                o.ref,
                "duplicate",
                o.event_type,
                event_id=holders[by_event[o.event_id]].event_id,
                child_id=o.child_id,
                reason="taken at the same time by another request",
            )
            for o in outcomes
        ]

    async def _resolve_all(self, subjects: Sequence[Subject]) -> list[_Answer]:
        """For each subject: (child id, newly linked identifiers, reason, rule), or
        `Unlinked` when only a person may decide (the match queue): no valid strong
        identifier, identifiers of two different children, or a date of birth that
        contradicts the one recorded. Nothing is linked before those checks pass.

        What the person index holds is read for the whole batch at once (who holds each
        identifier, which belonged to an erased child, the recorded dates of birth), and
        the subjects that bring new identifiers are linked together in one transaction —
        as if one after the other: a subject sharing an identifier with one waiting to be
        linked is judged only after it is."""
        strong = [strong_identifiers(s) if not s.hub_child_id else ([], []) for s in subjects]
        idents = list({i for good, _ in strong for i in good})
        owners, suppressed = await self.persons.known(idents)
        book = _Book(owners, await self.persons.dates_of_birth(sorted(set(owners.values()))))
        existing = await self.persons.existing([s.hub_child_id for s in subjects if s.hub_child_id])
        out: list[_Answer | None] = [None] * len(subjects)
        waiting: list[tuple[int, Subject, list[Identifier]]] = []

        async def link_waiting() -> None:
            groups = [good for _, _, good in waiting]
            for (n, subject, good), res in zip(
                waiting, await self.persons.resolve_many(groups), strict=True
            ):
                out[n] = book.linked(subject, good, res)
            waiting.clear()

        for n, (subject, (good, bad)) in enumerate(zip(subjects, strong, strict=True)):
            if subject.hub_child_id:
                known = subject.hub_child_id in existing
                out[n] = (
                    (subject.hub_child_id, [], None, None)
                    if known
                    else (None, [], "no child with this hub child id", "unknown_child")
                )
            elif not good:
                out[n] = await self._without_identifier(subject, bad)
            elif suppressed and not suppressed.isdisjoint(good):
                out[n] = (None, [], ERASED_REASON, "erased")
            else:
                if book.waiting and not book.waiting.isdisjoint(good):
                    await link_waiting()
                    book.waiting.clear()
                answer = book.judge(subject, good)
                if answer is None:  # a new identifier: linked with the others at the end
                    waiting.append((n, subject, good))
                    book.waiting.update(good)
                else:
                    out[n] = answer
        await link_waiting()
        await self.persons.record_dates_of_birth(book.new_dobs)
        return [a for a in out if a is not None]

    async def _without_identifier(
        self, subject: Subject, bad: Sequence[InvalidIdentifier]
    ) -> Unlinked:
        candidates = await self.matches.children_with(await self.matches.fingerprint(subject))
        if bad:
            first = bad[0]
            return Unlinked(
                "invalid_identifier",
                candidates,
                rule=f"{first.system.value}.{first.rule}",
                detail=f"{first.system.value}: {first.message}",
            )
        return Unlinked("no_identifier", candidates)

    async def _hold_for_match(
        self,
        subject: Subject,
        unlinked: Unlinked,
        group: Sequence[InboundFact],
        now: datetime,
        pending: _Pending,
        actor: str,
    ) -> _Resolved:
        """Where the facts of a subject that needs a person go: a new queue item with a
        provisional child (and `identity.match_queued`), the item that already holds them
        (a message delivered again), or — once that item was decided — the chosen child."""
        keys = [self.key_of(f) for f in group]
        item = await self.matches.item_for_keys(keys)
        types: dict[str, int] = {}
        for f in group:
            types[f.payload.event_type] = types.get(f.payload.event_type, 0) + 1
        created = False
        if item is None:
            taken = await self._known_children(keys)
            if taken is not None:  # every fact was taken before, under another resolution
                return _Resolved(taken)
            item, created = await self.matches.enqueue(
                subject,
                unlinked,
                agency=group[0].source.agency,
                message_id=group[0].source.message_id,
                dedupe_keys=keys,
                held_types=types,
                now=now,
            )
        if created:
            queued = MatchQueued(
                item_id=item.item_id,
                reason=unlinked.reason,
                rule=unlinked.rule,
                candidate_child_ids=unlinked.candidates[:50],
                facts_held=len(set(keys)),
            )
            env = Envelope.wrap(
                queued,
                child_id=item.provisional_child_id,
                source=group[0].source,
                occurred_at=now,
            )
            pending.events.append(NewRecord(key=item.provisional_child_id, value=encode(env)))
            pending.audit.append(
                AuditEntry(
                    kind="decision",
                    actor=actor,
                    child_id=item.provisional_child_id,
                    at=now,
                    details={
                        "event_id": str(env.event_id),
                        "event_type": MatchQueued.event_type,
                        "item_id": item.item_id,
                        "agency": group[0].source.agency,
                        "candidate_child_ids": list(unlinked.candidates),
                        "reason": unlinked.reason,
                        "outcome": "queued",
                    },
                )
            )
            log.info(
                "match.queued",
                item_id=item.item_id,
                reason=unlinked.reason,
                candidates=len(unlinked.candidates),
                facts=len(keys),
            )
        elif item.status == "pending":
            await self.matches.add_facts(item.item_id, keys, types)
        else:  # decided: the record's facts belong to the chosen child now
            return _Resolved(item.resolved_child_id, also_catch_up=(item.provisional_child_id,))
        return _Resolved(item.provisional_child_id, queued=item, unlinked=unlinked)

    async def _known_children(self, keys: Sequence[str]) -> str | None:
        """The child every one of `keys` was taken for, when all were taken before."""
        holders = await self.claims.holders(keys)
        if len(holders) < len(set(keys)):
            return None
        return min(c.child_id for c in holders.values()) if holders else None

    async def _one(
        self,
        fact: InboundFact,
        key: str,
        resolved: _Resolved,
        actor: str,
        now: datetime,
        pending: _Pending,
        states: dict[str, ConsentState],
        seen_keys: set[str],
        known: dict[str, str],
        content: dict[str, Any] | None = None,
    ) -> FactOutcome:
        """One fact's outcome, its records noted in `pending`. `content`: its payload's
        JSON form (`payload_json`), when made already."""
        event_type = fact.payload.event_type
        child_id = resolved.child_id
        if child_id is None:
            return FactOutcome(
                fact.ref,
                "rejected",
                event_type,
                reason=resolved.reason,
                field=resolved.field,
                rule=resolved.rule,
            )
        shown_child = None if resolved.queued is not None else child_id
        if key in seen_keys:
            return FactOutcome(
                fact.ref,
                "duplicate",
                event_type,
                child_id=shown_child,
                reason="repeated within this message",
            )
        if key in known:
            return FactOutcome(
                fact.ref,
                "duplicate",
                event_type,
                event_id=known[key],
                child_id=shown_child,
                reason=_TAKEN_BEFORE,
            )
        seen_keys.add(key)
        try:
            envelope = Envelope.wrap(
                fact.payload,
                child_id=child_id,
                source=fact.source,
                occurred_at=fact.occurred_at,
                plan_id=fact.plan_id,
                sharing=Sharing.of(fact.purposes, fact.statutory_basis),
                **({"category": fact.category} if fact.category else {}),
            )
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            return FactOutcome(
                fact.ref,
                "rejected",
                event_type,
                child_id=child_id,
                reason=err["msg"],
                field=".".join(str(p) for p in err["loc"]),
            )
        event_id = str(envelope.event_id)
        if envelope.category not in self.policy.categories:
            return FactOutcome(
                fact.ref,
                "rejected",
                event_type,
                child_id=child_id,
                reason=f"unknown data category {envelope.category!r}",
                field="category",
            )
        headers = ((DEDUPE_HEADER, key.encode()),)
        if resolved.queued is not None:
            return await self._hold(fact, envelope, resolved, headers, actor, now, pending, content)
        if event_type.startswith(GOVERNANCE_PREFIXES):
            problem = await self._check_governance(envelope, states)
            if problem is not None:
                return FactOutcome(
                    fact.ref,
                    "rejected",
                    event_type,
                    child_id=child_id,
                    reason=problem,
                    field="payload",
                )
            pending.events.append(
                NewRecord(
                    key=child_id,
                    value=await self._seal(envelope, pending, content),
                    headers=headers,
                )
            )
            kind: AuditKind = "decision"
            if event_type.startswith("consent."):
                kind = "consent_change"
            elif event_type.startswith("casework."):
                kind = "coordinator_change"
            pending.audit.append(
                AuditEntry(
                    kind=kind,
                    actor=actor,
                    child_id=child_id,
                    at=now,
                    details={
                        "event_id": event_id,
                        "event_type": event_type,
                        "agency": fact.source.agency,
                        "outcome": "recorded",
                    },
                )
            )
            if event_type.startswith("consent."):
                pending.consent_children.add(child_id)
                states.pop(child_id, None)
            return FactOutcome(fact.ref, "appended", event_type, event_id, child_id)

        state = states.get(child_id)
        if state is None:
            state = states[child_id] = await self.views.consent_state(child_id)
        memo = pending.decisions or DecisionMemo(self.policy, now)
        pending.decisions = memo
        decision, decision_id = memo.decide_envelope(envelope, state)
        group = pending.decided(decision, str(decision_id), envelope, event_id, actor, now)
        try:
            if decision.permitted:
                # the envelope was validated; so is the reference: no need to check again
                ref = decision.consent_ref(decision_id)
                shared = trusted(Envelope, {**envelope.__dict__, "consent": ref})
                sealed = await self._seal(shared, pending, content)
                pending.events.append(NewRecord(key=child_id, value=sealed, headers=headers))
                return FactOutcome(fact.ref, "appended", event_type, event_id, child_id)
            sealed = await self._seal(envelope, pending, content)
        except KeyErasedError:
            group.drop({event_id})
            return FactOutcome(
                fact.ref,
                "rejected",
                event_type,
                child_id=child_id,
                reason="this child's record was erased; nothing more is taken for it",
                rule="erased",
            )
        pending.withheld.append(NewRecord(key=child_id, value=sealed, headers=headers))
        return FactOutcome(
            fact.ref,
            "withheld",
            event_type,
            event_id,
            child_id,
            reason=decision.reason,
        )

    async def _hold(
        self,
        fact: InboundFact,
        envelope: Envelope,
        resolved: _Resolved,
        headers: tuple[tuple[str, bytes], ...],
        actor: str,
        now: datetime,
        pending: _Pending,
        content: dict[str, Any] | None = None,
    ) -> FactOutcome:
        """Hold a fact of a queued record on `hub.withheld`, sealed with the provisional
        child's key, until a person decides who it is about; the hold is audited."""
        item, unlinked = resolved.queued, resolved.unlinked
        assert item is not None and unlinked is not None  # set together by _hold_for_match
        sealed = await self._seal(envelope, pending, content)
        pending.withheld.append(
            NewRecord(
                key=item.provisional_child_id,
                value=sealed,
                headers=(*headers, (MATCH_HEADER, item.item_id.encode())),
            )
        )
        pending.audit.append(
            AuditEntry(
                kind="decision",
                actor=actor,
                child_id=item.provisional_child_id,
                at=now,
                details={
                    "event_id": str(envelope.event_id),
                    "event_type": envelope.event_type,
                    "category": envelope.category,
                    "agency": fact.source.agency,
                    "item_id": item.item_id,
                    "outcome": "held",
                    "reason": "who the record is about awaits a person's decision",
                },
            )
        )
        return FactOutcome(
            fact.ref,
            "queued",
            envelope.event_type,
            str(envelope.event_id),
            reason=f"{unlinked.describe()}: held in the match queue as {item.item_id} until a "
            "coordinator links it to a child or keeps it separate",
            field="subject",
            rule=f"match_queue.{unlinked.reason}",
        )

    async def _check_governance(
        self, envelope: Envelope, states: dict[str, ConsentState]
    ) -> str | None:
        payload = envelope.payload
        if isinstance(payload, ConsentRecorded):
            dob = await self.persons.date_of_birth(envelope.child_id)
            if dob is None:
                return (
                    "the child's date of birth is not known to the hub, so who may consent "
                    "cannot be checked; send it with the consent"
                )
            state = states.get(envelope.child_id) or await self.views.consent_state(
                envelope.child_id
            )
            capacity: CapacityAssessed | None = None
            day = payload.given_on
            capacity = state.capacity_at(day)
            try:
                check_grantor_authority(
                    dob,
                    day,
                    payload.grantor.capacity,
                    capacity,
                    grantor_reference=payload.grantor.reference,
                )
            except ConsentAuthorityError as exc:
                return str(exc)
            try:
                self.policy.check_consent(payload)
            except PermanentError as exc:
                return str(exc)
            holder = await self.claims.claim_consent_id(payload.consent_id, envelope.child_id)
            if holder != envelope.child_id:
                return (
                    f"consent id {payload.consent_id!r} is already in use; consent ids are "
                    "unique across the hub"
                )
        return None

    async def _prepare_keys(self, facts: Sequence[InboundFact], children: dict[int, str]) -> None:
        """Create the data keys a batch will seal with, in one transaction (where the key
        store has them); facts whose category is decided later fall back to one at a time."""
        ids = []
        for i, fact in enumerate(facts):
            child = children.get(i)
            if child is None or personal_fields(type(fact.payload)) == ():
                continue
            ids.append(data_key_id(child, fact.category or type(fact.payload).category))
        if ids:
            await self.keys.create_many(ids)

    async def _seal(
        self,
        envelope: Envelope,
        pending: _Pending,
        content: dict[str, Any] | None = None,
    ) -> bytes:
        """The envelope's record: sealed with its child's data key for its category (the
        JSON form `encode` writes, personal fields encrypted), reusing the JSON forms and
        ciphers its batch made so far; `content`: the payload's JSON form
        (`payload_json`), when made already (for the fact's idempotency key)."""
        if personal_fields(type(envelope.payload)) == ():
            return encode(envelope)  # nothing about the child (casework, identity): ids only
        key = await self.keys.create(data_key_id(envelope.child_id, envelope.category))
        data = envelope_doc(envelope, payload=content, parts=pending.parts)
        cipher = pending.ciphers.get(key)
        if cipher is None:
            cipher = pending.ciphers[key] = data_cipher(key)
        return orjson.dumps(seal_envelope(data, key, cipher=cipher), option=DOC_OPTIONS)

    async def _flush(self, pending: _Pending) -> None:
        # the decision first: a fact is never on a log without its decision in the trail
        entries = pending.entries()
        if entries:
            await self.trail.append(entries)
        # then both logs at once (the embedded log writes them in one transaction)
        await asyncio.gather(
            self.log.append(LogName.EVENTS, pending.events),
            self.log.append(LogName.WITHHELD, pending.withheld),
        )


def _shared_details(decision: Decision, envelope: Envelope) -> dict[str, object]:
    """What a decision record says of the decision its facts share."""
    return {
        "category": envelope.category,
        "agency": envelope.source.agency,
        "outcome": decision.outcome,
        "relied_on": decision.lawful_basis,
        "art6": decision.art6,
        "art9": decision.art9,
        "confidentiality": decision.confidentiality,
        "audience": list(decision.audience.roles),
        "reason": decision.reason,
        "consent_state_version": decision.consent_state_version,
        "policy_version": decision.policy_version,
    }


def _subject_keys(
    facts: Sequence[InboundFact],
) -> tuple[list[str], list[dict[str, object] | None]]:
    """Per fact, its subject as a grouping key and as its natural key names the child:
    made once per subject object (an adapter's facts about one child share it)."""
    made: dict[int, tuple[str, dict[str, object] | None]] = {}
    keys: list[str] = []
    named: list[dict[str, object] | None] = []
    for fact in facts:
        known = made.get(id(fact.subject))
        if known is None:  # its fields but the unset ones tell one subject from another
            subject = fact.subject
            name = child_named(subject)
            known = made[id(subject)] = (
                orjson.dumps(name, option=orjson.OPT_SORT_KEYS).decode(),
                name,
            )
        keys.append(known[0])
        named.append(known[1])
    return keys, named


def _keys_and_ids(claims: Sequence[Claim]) -> tuple[list[str], list[str]]:
    return [c.dedupe_key for c in claims], [c.event_id for c in claims]
