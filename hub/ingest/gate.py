"""The consent gate in the ingest path: every inbound fact, from every adapter and route.

For each `InboundFact` the gate resolves the child (person index), drops a fact it has
taken before (idempotency key: source agency, message id and the fact's place in the
message), asks `decide_sharing` whether it may be shared now, and writes: the decision
to `hub.audit` first, then the fact — sealed with the child's data key for its
category — to `hub.events` (permitted) or `hub.withheld` (withheld). Consent and
casework events are the family's and the LA's own records: they are always kept, and a
consent change releases withheld facts it now covers (in their original order) or
audits the redaction of facts it no longer covers. Erasure deletes the child's data keys
and appends a tombstone. Bad input is answered per fact with the field and the rule.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from hub.consent.audit_chain import AuditKind
from hub.consent.authority import ConsentAuthorityError, check_grantor_authority
from hub.consent.crypto import KeyErasedError, KeyStore
from hub.consent.decision import Decision, Fact, decide_sharing
from hub.consent.opener import EnvelopeOpener, data_key_id
from hub.consent.policy import SharingPolicy
from hub.consent.sealing import ErasedPayload, seal_envelope
from hub.consent.state import ConsentState
from hub.consent.trail import AuditEntry, AuditTrail
from hub.errors import PermanentError
from hub.events import Envelope, Source, decode, encode
from hub.events.consent import CapacityAssessed, ConsentRecorded
from hub.events.envelope import EventPayload
from hub.events.identity import CategoryErased, ChildErased, IdentifierLinked, MatchQueued
from hub.identity.identifiers import Identifier
from hub.identity.match_queue import MatchQueue, QueueItem, Unlinked, strong_identifiers
from hub.identity.person_index import PersonIndex
from hub.ingest.claims import Claim, IngestClaims, ours
from hub.ingest.model import FactOutcome, InboundFact, Subject
from hub.log import EventLog, LogName, NewRecord, partition_for
from hub.projections.gate_views import (
    BASIS_HEADER,
    DEDUPE_HEADER,
    PURPOSES_HEADER,
    RELEASED_HEADER,
)
from hub.projections.runner import ProjectionRunner
from hub.store import ReadStore

log = structlog.get_logger(__name__)

DEFAULT_PURPOSES = ("ehc_assessment", "plan_delivery", "review")
GOVERNANCE_PREFIXES = ("consent.", "casework.", "identity.")


@dataclass
class _Pending:
    """What one submit call will append, in order, per log."""

    audit: list[AuditEntry] = field(default_factory=list)
    events: list[NewRecord] = field(default_factory=list)
    withheld: list[NewRecord] = field(default_factory=list)
    consent_children: set[str] = field(default_factory=set)
    claims: list[Claim] = field(default_factory=list)
    """The idempotency keys the appends will take, claimed just before them."""

    def drop(self, keys: set[str], event_ids: set[str]) -> None:
        """Leave out the facts of `keys` (another taker holds them) and their decisions."""

        def kept(record: NewRecord) -> bool:
            return dict(record.headers).get(DEDUPE_HEADER, b"").decode() not in keys

        self.events = [r for r in self.events if kept(r)]
        self.withheld = [r for r in self.withheld if kept(r)]
        self.audit = [a for a in self.audit if a.details.get("event_id") not in event_ids]
        self.claims = [c for c in self.claims if c.dedupe_key not in keys]


_subject_identifiers = strong_identifiers  # kept for callers of the old name

MATCH_HEADER = "x-match-queue-item"
"""On a fact held for the match queue: the queue item it waits on."""


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


def dedupe_key(fact: InboundFact) -> str:
    message = fact.source.message_id or "-"
    return f"{fact.source.agency}|{message}|{fact.ref or fact.payload.event_type}"


class ConsentGate:
    def __init__(
        self,
        *,
        log: EventLog,
        store: ReadStore,
        keys: KeyStore,
        policy: SharingPolicy,
        persons: PersonIndex,
        trail: AuditTrail,
        runners: dict[str, ProjectionRunner],
        claims: IngestClaims,
        matches: MatchQueue | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.keys = keys
        self.policy = policy
        self.persons = persons
        self.trail = trail
        self.runners = runners
        self.claims = claims
        self.opener = EnvelopeOpener(keys)
        self.view_decisions: dict[tuple[object, ...], bool] = {}
        """Who may see what, as the views decide at read time: (policy digest, what of
        the consents in force can change a decision, the fact's category/source/purposes/
        basis, the caller's role and agency) -> allowed. A decision depends on nothing
        else, so it is kept for later reads (bounded; cleared when full)."""
        self.matches = matches or MatchQueue(store, keys)
        self._lock = asyncio.Lock()

    # -- catching up the gate's own views ------------------------------------------------
    async def _catch_up(self, names: Iterable[str], children: Iterable[str]) -> None:
        """Bring the named projections up to date on the children's partitions."""
        n = self.log.partitions(LogName.EVENTS)
        parts = sorted({partition_for(c, n) for c in children})
        if parts:
            await self.catch_up_partitions(names, parts)

    async def catch_up_partitions(
        self, names: Iterable[str], parts: Sequence[int] | None = None
    ) -> None:
        """Bring the named projections up to date on `parts` (None: every partition of
        every log they read). Usually they are current: one query reads all their stored
        offsets and one log read per partition (from the lowest of them, all at once)
        shows there is nothing new; only then does each runner catch up itself."""
        runners = [self.runners[name] for name in dict.fromkeys(names)]
        if not runners:
            return
        marks = ", ".join("?" for _ in runners)
        where = f" WHERE projection IN ({marks})"  # placeholders only
        rows = await self.store.fetchall(
            "SELECT projection, log, part, applied_offset FROM projection_offset" + where,  # noqa: S608
            [r.name for r in runners],
        )
        stored = {(str(p), str(lg), int(pt)): int(o) for p, lg, pt, o in rows}
        checks: list[tuple[LogName, int, list[ProjectionRunner]]] = []
        for log_name in dict.fromkeys(lg for r in runners for lg in r.projection.logs):
            readers = [r for r in runners if log_name in r.projection.logs]
            for part in range(self.log.partitions(log_name)) if parts is None else parts:
                checks.append((log_name, part, readers))

        async def behind(log_name: LogName, part: int, readers: list[ProjectionRunner]) -> bool:
            lowest = min(stored.get((r.name, log_name.value, part), -1) for r in readers)
            return bool(await self.log.read(log_name, part, lowest + 1, 1))

        found = await asyncio.gather(*(behind(*check) for check in checks))
        for (log_name, part, readers), new in zip(checks, found, strict=True):
            if new:  # else every one of them has applied all there is
                for runner in readers:
                    await runner.catch_up(log_name, part)

    async def consent_state(self, child_id: str, *, fresh: bool = True) -> ConsentState:
        return (await self.consent_states([child_id], fresh=fresh))[child_id]

    async def consent_states(
        self, child_ids: Iterable[str], *, fresh: bool = True
    ) -> dict[str, ConsentState]:
        """Consent states of several children, with one catch-up per partition and one
        query per 500 children."""
        wanted = sorted(set(child_ids))
        if fresh:
            await self._catch_up(["consent_state"], wanted)
        bodies: dict[str, list[bytes]] = {c: [] for c in wanted}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.store.fetchall(
                f"SELECT child_id, body FROM consent_event WHERE child_id IN ({marks})"  # noqa: S608
                " ORDER BY part, log_offset",
                chunk,
            )
            for child, body in rows:
                bodies[str(child)].append(bytes(body))
        out: dict[str, ConsentState] = {}
        for child, values in bodies.items():
            opened = await self.opener.open_values(values)
            out[child] = ConsentState.fold(
                child, [e for e in opened if not isinstance(e, PermanentError)]
            )
        return out

    # -- submitting facts -------------------------------------------------------------
    async def submit(
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
            for fact in facts:
                by_subject.setdefault(fact.subject.model_dump_json(), []).append(fact)
            fingerprints: list[tuple[str, str]] = []
            for skey, group in by_subject.items():
                subject = group[0].subject
                answer = await self._resolve(subject)
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
                if not subject.hub_child_id:
                    fingerprint = await self.matches.fingerprint(subject)
                    if fingerprint is not None:
                        fingerprints.append((fingerprint, child_id))
            await self.matches.remember(fingerprints)
            held = {r.child_id for r in resolved.values() if r.queued is not None and r.child_id}
            children = {r.child_id for r in resolved.values() if r.child_id} - held
            extra = {c for r in resolved.values() for c in r.also_catch_up}
            known = await self._taken([dedupe_key(f) for f in facts], children | held | extra, now)
            outcomes: list[FactOutcome] = []
            states = await self.consent_states(children)
            seen_keys: set[str] = set()
            subject_keys = [f.subject.model_dump_json() for f in facts]
            await self._prepare_keys(
                facts,
                {
                    i: r.child_id
                    for i, k in enumerate(subject_keys)
                    if (r := resolved[k]).child_id and known.get(dedupe_key(facts[i])) is None
                },
            )
            for fact, skey in zip(facts, subject_keys, strict=True):
                outcome = await self._claimed_one(
                    fact,
                    resolved[skey],
                    actor,
                    now,
                    pending,
                    states,
                    seen_keys,
                    known,
                )
                outcomes.append(outcome)
            outcomes = await self._claim(pending, outcomes)
            try:
                await self._flush(pending)
            except BaseException:
                await self.claims.release(*_keys_and_ids(pending.claims))
                raise
            await self.claims.mark_appended(*_keys_and_ids(pending.claims))
            for child in sorted(pending.consent_children):
                await self._after_consent_change(child, actor, now)
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
            await self._catch_up(
                ["ingest_dedupe"], {*children, *(c.child_id for c in stale.values())}
            )
            landed = await self._landed(sorted(stale))
            await self.claims.mark_appended(*_keys_and_ids([stale[k] for k in landed]))
            for key in set(stale) - set(landed):
                del holders[key]
        return {k: c.event_id for k, c in holders.items()}

    async def _landed(self, keys: Sequence[str]) -> list[str]:
        marks = ", ".join("?" for _ in keys)
        rows = await self.store.fetchall(
            f"SELECT dedupe_key FROM ingest_dedupe WHERE dedupe_key IN ({marks})",  # noqa: S608
            keys,
        )
        return [str(r[0]) for r in rows]

    async def _claimed_one(
        self,
        fact: InboundFact,
        resolved: _Resolved,
        actor: str,
        now: datetime,
        pending: _Pending,
        states: dict[str, ConsentState],
        seen_keys: set[str],
        known: dict[str, str],
    ) -> FactOutcome:
        """`_one`, noting the claim a fact it takes will need."""
        outcome = await self._one(fact, resolved, actor, now, pending, states, seen_keys, known)
        if outcome.status in ("appended", "withheld", "queued") and outcome.event_id:
            holder = resolved.queued.provisional_child_id if resolved.queued else resolved.child_id
            if holder is not None:
                pending.claims.append(Claim(dedupe_key(fact), outcome.event_id, holder, now))
        return outcome

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

    async def _resolve(
        self, subject: Subject
    ) -> tuple[str | None, list[Identifier], str | None, str | None] | Unlinked:
        """(child id, newly linked identifiers, reason, rule) for a subject, or `Unlinked`
        when only a person may decide (the match queue): no valid strong identifier,
        identifiers of two different children, or a date of birth that contradicts the
        one recorded. Nothing is linked before those checks pass."""
        if subject.hub_child_id:
            if await self.persons.exists(subject.hub_child_id):
                return subject.hub_child_id, [], None, None
            return None, [], "no child with this hub child id", "unknown_child"
        good, bad = strong_identifiers(subject)
        if not good:
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
        if await self.persons.suppressed(good):
            return (
                None,
                [],
                "this child's record was erased; the hub takes nothing more about them",
                "erased",
            )
        owners: set[str] = set()
        for ident in good:
            owner = await self.persons.lookup(ident)
            if owner is not None:
                owners.add(owner)
        if len(owners) > 1:
            return Unlinked("identity_conflict", tuple(sorted(owners)))
        recorded = None
        if owners and subject.date_of_birth:
            recorded = await self.persons.date_of_birth(next(iter(owners)))
        if recorded is not None and recorded != subject.date_of_birth:
            return Unlinked("dob_mismatch", tuple(owners))
        resolution = await self.persons.resolve(good)
        if resolution.child_id is None:  # another writer linked them meanwhile
            return Unlinked("identity_conflict", tuple(sorted(owners)))
        if subject.date_of_birth and (recorded is None or resolution.created):
            if await self.persons.date_of_birth(resolution.child_id) is None:
                await self.persons.set_date_of_birth(resolution.child_id, subject.date_of_birth)
        return resolution.child_id, resolution.linked, None, None

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
        keys = [dedupe_key(f) for f in group]
        item = await self.matches.item_for_keys(keys)
        types: dict[str, int] = {}
        for f in group:
            types[f.payload.event_type] = types.get(f.payload.event_type, 0) + 1
        if item is None:
            taken = await self._known_children(keys)
            if taken is not None:  # every fact was taken before, under another resolution
                return _Resolved(taken)
            item = await self.matches.enqueue(
                subject,
                unlinked,
                agency=group[0].source.agency,
                message_id=group[0].source.message_id,
                dedupe_keys=keys,
                held_types=types,
                now=now,
            )
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

    async def release_held(
        self, provisional_child_id: str, child_id: str, *, actor: str
    ) -> list[FactOutcome]:
        """Submit the facts held under a provisional child again, for `child_id`: opened
        with the provisional keys, decided and sealed for the chosen child (in the order
        they were held). Idempotent: each release is keyed by the held fact's event id."""
        n = self.log.partitions(LogName.WITHHELD)
        runner = self.runners["withheld_index"]
        await runner.catch_up(LogName.WITHHELD, partition_for(provisional_child_id, n))
        rows = await self.store.fetchall(
            "SELECT event_id, body, headers FROM withheld_fact WHERE child_id = ?"
            " ORDER BY part, log_offset",
            (provisional_child_id,),
        )
        facts: list[InboundFact] = []
        for event_id, body, raw_headers in rows:
            try:
                env = await self.opener.open_value(bytes(body))
            except PermanentError:
                continue
            if isinstance(env.payload, ErasedPayload):
                continue  # released before, and its provisional copy shredded
            pairs = orjson.loads(bytes(raw_headers or b"[]"))
            headers = {k: bytes.fromhex(v) for k, v in pairs}
            purposes = headers.get(PURPOSES_HEADER, b"").decode() or ",".join(DEFAULT_PURPOSES)
            basis = headers.get(BASIS_HEADER)
            facts.append(
                InboundFact(
                    subject=Subject(hub_child_id=child_id),
                    payload=env.payload,
                    occurred_at=env.occurred_at,
                    source=env.source,
                    ref=f"released:{event_id}",
                    plan_id=env.plan_id,
                    category=env.category,
                    purposes=tuple(purposes.split(",")),
                    statutory_basis=basis.decode() if basis else None,
                )
            )
        return await self.submit(facts, actor=actor) if facts else []

    async def _one(
        self,
        fact: InboundFact,
        resolved: _Resolved,
        actor: str,
        now: datetime,
        pending: _Pending,
        states: dict[str, ConsentState],
        seen_keys: set[str],
        known: dict[str, str],
    ) -> FactOutcome:
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
        key = dedupe_key(fact)
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
                reason="this message was taken before",
            )
        seen_keys.add(key)
        try:
            envelope = Envelope.wrap(
                fact.payload,
                child_id=child_id,
                source=fact.source,
                occurred_at=fact.occurred_at,
                plan_id=fact.plan_id,
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
        if envelope.category not in self.policy.categories:
            return FactOutcome(
                fact.ref,
                "rejected",
                event_type,
                child_id=child_id,
                reason=f"unknown data category {envelope.category!r}",
                field="category",
            )
        headers = (
            (DEDUPE_HEADER, key.encode()),
            (PURPOSES_HEADER, ",".join(fact.purposes or DEFAULT_PURPOSES).encode()),
            *(((BASIS_HEADER, fact.statutory_basis.encode()),) if fact.statutory_basis else ()),
        )
        if resolved.queued is not None:
            return await self._hold(fact, envelope, resolved, headers, actor, now, pending)
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
                NewRecord(key=child_id, value=await self._seal(envelope), headers=headers)
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
                        "event_id": str(envelope.event_id),
                        "event_type": event_type,
                        "agency": fact.source.agency,
                        "outcome": "recorded",
                    },
                )
            )
            if event_type.startswith("consent."):
                pending.consent_children.add(child_id)
                states.pop(child_id, None)
            return FactOutcome(fact.ref, "appended", event_type, str(envelope.event_id), child_id)

        state = states.get(child_id)
        if state is None:
            state = states[child_id] = await self.consent_state(child_id)
        decision = decide_sharing(
            Fact.from_envelope(
                envelope,
                purposes=fact.purposes or DEFAULT_PURPOSES,  # type: ignore[arg-type]
                basis_claimed=fact.statutory_basis,
            ),
            state,
            self.policy,
            at=now,
        )
        pending.audit.append(self._decision_entry(decision, envelope, actor, now))
        try:
            if decision.permitted:
                sealed = await self._seal(
                    envelope.model_copy(update={"consent": decision.consent_ref()})
                )
                pending.events.append(NewRecord(key=child_id, value=sealed, headers=headers))
                return FactOutcome(
                    fact.ref, "appended", event_type, str(envelope.event_id), child_id
                )
            sealed = await self._seal(envelope)
        except KeyErasedError:
            pending.audit.pop()
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
            str(envelope.event_id),
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
    ) -> FactOutcome:
        """Hold a fact of a queued record on `hub.withheld`, sealed with the provisional
        child's key, until a person decides who it is about; the hold is audited."""
        item, unlinked = resolved.queued, resolved.unlinked
        assert item is not None and unlinked is not None  # set together by _hold_for_match
        sealed = await self._seal(envelope)
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
            state = states.get(envelope.child_id) or await self.consent_state(envelope.child_id)
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

    def _decision_entry(
        self, decision: Decision, envelope: Envelope, actor: str, now: datetime
    ) -> AuditEntry:
        return AuditEntry(
            kind="decision",
            actor=actor,
            child_id=envelope.child_id,
            at=now,
            details={
                "decision_id": str(decision.decision_id),
                "event_id": str(envelope.event_id),
                "event_type": envelope.event_type,
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
            },
        )

    async def _prepare_keys(self, facts: Sequence[InboundFact], children: dict[int, str]) -> None:
        """Create the data keys a batch will seal with, in one transaction (when the key
        store can); facts whose category is decided later fall back to one at a time."""
        from hub.consent.sealing import personal_fields

        create_many = getattr(self.keys, "create_many", None)
        if create_many is None:
            return
        ids = []
        for i, fact in enumerate(facts):
            child = children.get(i)
            event_type = fact.payload.event_type
            if child is None or event_type.startswith(GOVERNANCE_PREFIXES):
                continue
            if personal_fields(type(fact.payload)) == ():
                continue
            ids.append(data_key_id(child, fact.category or type(fact.payload).category))
        if ids:
            await create_many(ids)

    async def _seal(self, envelope: Envelope) -> bytes:
        from hub.consent.sealing import personal_fields

        if (
            envelope.event_type.startswith(GOVERNANCE_PREFIXES)
            or personal_fields(type(envelope.payload)) == ()
        ):
            return encode(envelope)  # ids and decisions only: readable by the IG trail
        data = orjson.loads(encode(envelope))
        key = await self.keys.create(data_key_id(envelope.child_id, envelope.category))
        return orjson.dumps(seal_envelope(data, key))

    async def _flush(self, pending: _Pending) -> None:
        # the decision first: a fact is never on a log without its decision in the trail
        if pending.audit:
            await self.trail.append(pending.audit)
        if pending.events:
            await self.log.append(LogName.EVENTS, pending.events)
        if pending.withheld:
            await self.log.append(LogName.WITHHELD, pending.withheld)

    # -- consent changes ----------------------------------------------------------------
    async def _after_consent_change(
        self, child_id: str, actor: str, now: datetime | None = None
    ) -> None:
        """Release withheld facts a consent now covers; audit facts it no longer covers."""
        await self._catch_up(["consent_state", "withheld_index", "shared_record"], [child_id])
        state = await self.consent_state(child_id, fresh=False)
        now = now or datetime.now(UTC)
        rows = await self.store.fetchall(
            "SELECT event_id, body, headers, part, log_offset FROM withheld_fact"
            " WHERE child_id = ? AND released = 0 ORDER BY part, log_offset",
            (child_id,),
        )
        released: list[NewRecord] = []
        audit: list[AuditEntry] = []
        for event_id, body, raw_headers, part, offset in rows:
            data = orjson.loads(bytes(body))
            headers = tuple(
                (k, bytes.fromhex(v)) for k, v in orjson.loads(bytes(raw_headers or b"[]"))
            )
            purposes = dict(headers).get(PURPOSES_HEADER, b"").decode() or ",".join(
                DEFAULT_PURPOSES
            )
            basis = dict(headers).get(BASIS_HEADER)
            fact = _fact_from_data(data, purposes.split(","), basis.decode() if basis else None)
            decision = decide_sharing(fact, state, self.policy, at=now)
            if not decision.permitted:
                continue
            data["consent"] = {
                "decision_id": str(decision.decision_id),
                "lawful_basis": decision.lawful_basis,
            }
            released.append(
                NewRecord(
                    key=child_id,
                    value=orjson.dumps(data),
                    headers=(*headers, (RELEASED_HEADER, f"{part}:{offset}".encode())),
                )
            )
            audit.append(
                AuditEntry(
                    kind="release",
                    actor=actor,
                    child_id=child_id,
                    at=now,
                    details={
                        "decision_id": str(decision.decision_id),
                        "event_id": str(event_id),
                        "outcome": "permit",
                        "relied_on": decision.lawful_basis,
                        "reason": decision.reason,
                        "withheld_at": f"{part}:{offset}",
                    },
                )
            )
        hidden = await self._now_hidden(child_id, state, now)
        if hidden:
            audit.append(
                AuditEntry(
                    kind="redaction",
                    actor=actor,
                    child_id=child_id,
                    at=now,
                    details={
                        "event_ids": hidden,
                        "outcome": "hidden",
                        "reason": "no consent or statutory basis covers these facts any more",
                    },
                )
            )
        if audit:
            await self.trail.append(audit)
        if released:
            await self.log.append(LogName.EVENTS, released)  # original order kept

    async def _now_hidden(self, child_id: str, state: ConsentState, now: datetime) -> list[str]:
        """Facts in the shared record no coordinator may see any more."""
        rows = await self.store.fetchall(
            "SELECT body, purposes, basis_claimed FROM shared_fact WHERE child_id = ?"
            " ORDER BY part, log_offset",
            (child_id,),
        )
        out = []
        for body, purposes, basis in rows:
            data = orjson.loads(bytes(body))
            fact = _fact_from_data(data, (purposes or ",".join(DEFAULT_PURPOSES)).split(","), basis)
            if not decide_sharing(fact, state, self.policy, at=now).allows("coordinator"):
                out.append(str(data["event_id"]))
        return out

    # -- erasure ------------------------------------------------------------------------
    async def erase(self, child_id: str, *, actor: str, reason: str) -> int:
        """Crypto-shred every data key of the child, tombstone, audit. Returns keys deleted."""
        async with self._lock:
            deleted = 0
            for category in self.policy.categories:
                if await self.keys.delete(data_key_id(child_id, category)):
                    deleted += 1
            await self.persons.erase(child_id)
            await self._checkpoint()
            await self._tombstone(
                child_id,
                ChildErased(reason=reason[:200] or "erasure", requested_by=actor[:128]),
                actor=actor,
                kind="erasure",
                details={"keys_deleted": deleted},
            )
            return deleted

    async def _tombstone(
        self,
        child_id: str,
        payload: EventPayload,
        *,
        actor: str,
        kind: AuditKind,
        details: dict[str, Any],
    ) -> None:
        """Append the tombstone `payload` for the child and audit it (`outcome: erased`)."""
        now = datetime.now(UTC)
        tombstone = Envelope.wrap(
            payload,
            child_id=child_id,
            source=Source(agency="hub", system="tac-hub"),
            occurred_at=now,
        )
        await self.trail.append(
            [
                AuditEntry(
                    kind=kind,
                    actor=actor,
                    child_id=child_id,
                    at=now,
                    details={"event_id": str(tombstone.event_id), **details, "outcome": "erased"},
                )
            ]
        )
        await self.log.append(LogName.EVENTS, [NewRecord(key=child_id, value=encode(tombstone))])

    async def _checkpoint(self) -> None:
        """Fold the store's write-ahead log into its files, where the store has one."""
        checkpoint = getattr(self.store, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint()

    async def review_consents(
        self, *, at: datetime | None = None, actor: str = "system:consent-review"
    ) -> dict[str, int]:
        """The daily consent housekeeping: record `consent.expired` for every consent whose
        period has ended (`period_ended`) or whose grantor may no longer give it — a
        parent's once the young person is over compulsory school age (`grantor_authority_ended`)
        — and re-decide every child's withheld facts, so a consent whose period has just
        begun releases what it covers. Expiries are audited as consent changes, and the
        facts they stop covering as redactions."""
        from hub.consent.authority import lapsed_consents
        from hub.events.consent import ConsentExpired

        at = at or datetime.now(UTC)
        rows = await self.store.fetchall("SELECT DISTINCT child_id FROM consent_event")
        children = sorted(str(r[0]) for r in rows)
        states = await self.consent_states(children)
        facts: list[InboundFact] = []
        for child in children:
            state = states[child]
            ended: dict[str, str] = {}
            for record in state.records:
                if record.ended_by is None and record.status_at(at) == "period_ended":
                    ended[record.consent_id] = "period_ended"
            dob = await self.persons.date_of_birth(child)
            if dob is not None:
                for consent_id in lapsed_consents(state, dob, at):
                    ended.setdefault(consent_id, "grantor_authority_ended")
            for consent_id, reason in sorted(ended.items()):
                facts.append(
                    InboundFact(
                        subject=Subject(hub_child_id=child),
                        payload=ConsentExpired(consent_id=consent_id, reason=reason),
                        occurred_at=at,
                        source=Source(agency="local_authority", system="tac-hub"),
                        ref=f"expire:{child}:{consent_id}",
                    )
                )
        outcomes = await self.submit(facts, actor=actor, now=at) if facts else []
        expired = sum(1 for o in outcomes if o.status == "appended")
        withheld = await self.store.fetchall(
            "SELECT DISTINCT child_id FROM withheld_fact WHERE released = 0"
        )
        for (child,) in withheld:
            async with self._lock:
                await self._after_consent_change(str(child), actor, at)
        return {"expired": expired, "children_reviewed": len(children)}

    async def apply_retention(
        self, *, today: date, actor: str = "system:retention"
    ) -> list[tuple[str, str]]:
        """Crypto-shred every (child, category) whose retention rule has run out by `today`:
        delete that category's data key, append a `identity.category_erased` tombstone and
        audit it. Returns the (child, category) pairs erased now."""
        done: list[tuple[str, str]] = []
        for child_id, dob in await self.persons.children_with_dob():
            for category in self.policy.categories:
                kid = data_key_id(child_id, category)
                if await self.keys.get(kid) is None:
                    continue  # nothing held under this category (or already shredded)
                row = await self.store.fetchone(
                    "SELECT MAX(occurred_at) FROM shared_fact WHERE child_id = ? AND category = ?",
                    (child_id, category),
                )
                last = date.fromisoformat(str(row[0])[:10]) if row and row[0] else None
                rule = self.policy.retention_for(category)
                keep_until = rule.keep_until(date_of_birth=dob, last_event_on=last)
                if today <= keep_until:
                    continue
                async with self._lock:
                    await self.keys.delete(kid)
                    await self._tombstone(
                        child_id,
                        CategoryErased(
                            erased_category=category, rule=f"keep until {keep_until.isoformat()}"
                        ),
                        actor=actor,
                        kind="retention",
                        details={"category": category, "keep_until": keep_until.isoformat()},
                    )
                done.append((child_id, category))
        if done:
            await self._checkpoint()
        return done


def _fact_from_data(data: dict[str, Any], purposes: Sequence[str], basis: str | None) -> Fact:
    source = data.get("source") or {}
    return Fact(
        event_id=data["event_id"],
        child_id=data["child_id"],
        category=data["category"],
        source_agency=source.get("agency") or "unknown",
        source_organisation=source.get("organisation_code"),
        purposes=tuple(purposes),
        occurred_at=data["occurred_at"],
        basis_claimed=basis,
    )


def _keys_and_ids(claims: Sequence[Claim]) -> tuple[list[str], list[str]]:
    return [c.dedupe_key for c in claims], [c.event_id for c in claims]


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_ = (date, decode, ErasedPayload)
