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
from hub.events.identity import CategoryErased, ChildErased, IdentifierLinked
from hub.identity.identifiers import (
    Identifier,
    InvalidIdentifier,
    check_la_child_id,
    check_nhs_number,
    check_upn,
)
from hub.identity.person_index import PersonIndex
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


def _subject_identifiers(subject: Subject) -> tuple[list[Identifier], list[InvalidIdentifier]]:
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
    ) -> None:
        self.log = log
        self.store = store
        self.keys = keys
        self.policy = policy
        self.persons = persons
        self.trail = trail
        self.runners = runners
        self.opener = EnvelopeOpener(keys)
        self._lock = asyncio.Lock()

    # -- catching up the gate's own views ------------------------------------------------
    async def _catch_up(self, names: Iterable[str], children: Iterable[str]) -> None:
        n = self.log.partitions(LogName.EVENTS)
        parts = {partition_for(c, n) for c in children}
        for name in names:
            runner = self.runners[name]
            for log_name in runner.projection.logs:
                for part in parts:
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
            out[child] = ConsentState.fold(child, [e for e in opened if not isinstance(e, PermanentError)])
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
            resolved: dict[str, tuple[str | None, str | None, str | None]] = {}
            for fact in facts:
                skey = fact.subject.model_dump_json()
                if skey in resolved:
                    continue
                child_id, linked, reason, rule = await self._resolve(fact.subject)
                resolved[skey] = (child_id, reason, rule)
                for ident in linked:
                    pending.events.append(self._linked_record(child_id, ident, fact.source, now))  # type: ignore[arg-type]
            children = {c for c, _, _ in resolved.values() if c}
            await self._catch_up(["ingest_dedupe"], children)
            known = await self._known_dedupe_keys([dedupe_key(f) for f in facts])
            outcomes: list[FactOutcome] = []
            states = await self.consent_states(children)
            seen_keys: set[str] = set()
            for fact in facts:
                child_id, reason, rule = resolved[fact.subject.model_dump_json()]
                outcome = await self._one(
                    fact, child_id, reason, rule, actor, now, pending, states, seen_keys, known
                )
                outcomes.append(outcome)
            await self._flush(pending)
            for child in sorted(pending.consent_children):
                await self._after_consent_change(child, actor)
            return outcomes

    def _linked_record(self, child_id: str, ident: Identifier, source: Source, now: datetime) -> NewRecord:
        env = Envelope.wrap(
            IdentifierLinked(system=ident.system.value, reason="first seen on an inbound fact"),
            child_id=child_id,
            source=source,
            occurred_at=now,
        )
        return NewRecord(key=child_id, value=encode(env))

    async def _known_dedupe_keys(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = sorted(set(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.store.fetchall(
                f"SELECT dedupe_key, event_id FROM ingest_dedupe WHERE dedupe_key IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update({str(k): str(e) for k, e in rows})
        return found

    async def _resolve(self, subject: Subject) -> tuple[str | None, list[Identifier], str | None, str | None]:
        """(child id, newly linked identifiers, reason, rule) for a subject."""
        if subject.hub_child_id:
            if await self.persons.exists(subject.hub_child_id):
                return subject.hub_child_id, [], None, None
            return None, [], "no child with this hub child id", "unknown_child"
        good, bad = _subject_identifiers(subject)
        if not good:
            if bad:
                first = bad[0]
                return None, [], f"{first.system.value}: {first.message}", first.rule
            return None, [], "the subject carries no strong identifier (NHS number, UPN, or LA code + LA child id)", "no_identifier"
        resolution = await self.persons.resolve(good)
        if resolution.child_id is None:
            return None, [], resolution.conflict or "cannot link", "identity_conflict"
        if subject.date_of_birth and await self.persons.date_of_birth(resolution.child_id) is None:
            await self.persons.set_date_of_birth(resolution.child_id, subject.date_of_birth)
        return resolution.child_id, resolution.linked, None, None

    async def _one(
        self,
        fact: InboundFact,
        child_id: str | None,
        reason: str | None,
        rule: str | None,
        actor: str,
        now: datetime,
        pending: _Pending,
        states: dict[str, ConsentState],
        seen_keys: set[str],
        known: dict[str, str],
    ) -> FactOutcome:
        event_type = fact.payload.event_type
        if child_id is None:
            return FactOutcome(fact.ref, "rejected", event_type, reason=reason, field="subject", rule=rule)
        key = dedupe_key(fact)
        if key in seen_keys:
            return FactOutcome(fact.ref, "duplicate", event_type, child_id=child_id, reason="repeated within this message")
        if key in known:
            return FactOutcome(
                fact.ref, "duplicate", event_type, event_id=known[key], child_id=child_id,
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
                fact.ref, "rejected", event_type, child_id=child_id,
                reason=err["msg"], field=".".join(str(p) for p in err["loc"]),
            )
        if envelope.category not in self.policy.categories:
            return FactOutcome(
                fact.ref, "rejected", event_type, child_id=child_id,
                reason=f"unknown data category {envelope.category!r}", field="category",
            )
        headers = (
            (DEDUPE_HEADER, key.encode()),
            (PURPOSES_HEADER, ",".join(fact.purposes or DEFAULT_PURPOSES).encode()),
            *(((BASIS_HEADER, fact.statutory_basis.encode()),) if fact.statutory_basis else ()),
        )
        if event_type.startswith(GOVERNANCE_PREFIXES):
            problem = await self._check_governance(envelope, states)
            if problem is not None:
                return FactOutcome(fact.ref, "rejected", event_type, child_id=child_id, reason=problem, field="payload")
            pending.events.append(NewRecord(key=child_id, value=await self._seal(envelope), headers=headers))
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
                    details={"event_id": str(envelope.event_id), "event_type": event_type,
                             "agency": fact.source.agency, "outcome": "recorded"},
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
                sealed = await self._seal(envelope.model_copy(update={"consent": decision.consent_ref()}))
                pending.events.append(NewRecord(key=child_id, value=sealed, headers=headers))
                return FactOutcome(fact.ref, "appended", event_type, str(envelope.event_id), child_id)
            sealed = await self._seal(envelope)
        except KeyErasedError:
            pending.audit.pop()
            return FactOutcome(
                fact.ref, "rejected", event_type, child_id=child_id,
                reason="this child's record was erased; nothing more is taken for it",
                rule="erased",
            )
        pending.withheld.append(NewRecord(key=child_id, value=sealed, headers=headers))
        return FactOutcome(fact.ref, "withheld", event_type, str(envelope.event_id), child_id, reason=decision.reason)

    async def _check_governance(self, envelope: Envelope, states: dict[str, ConsentState]) -> str | None:
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
                    dob, day, payload.grantor.capacity, capacity,
                    grantor_reference=payload.grantor.reference,
                )
            except ConsentAuthorityError as exc:
                return str(exc)
            try:
                self.policy.check_consent(payload)
            except PermanentError as exc:
                return str(exc)
        return None

    def _decision_entry(self, decision: Decision, envelope: Envelope, actor: str, now: datetime) -> AuditEntry:
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

    async def _seal(self, envelope: Envelope) -> bytes:
        from hub.consent.sealing import personal_fields

        if envelope.event_type.startswith(GOVERNANCE_PREFIXES) or personal_fields(type(envelope.payload)) == ():
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
    async def _after_consent_change(self, child_id: str, actor: str) -> None:
        """Release withheld facts a consent now covers; audit facts it no longer covers."""
        await self._catch_up(["consent_state", "withheld_index", "shared_record"], [child_id])
        state = await self.consent_state(child_id, fresh=False)
        now = datetime.now(UTC)
        rows = await self.store.fetchall(
            "SELECT event_id, body, headers, part, log_offset FROM withheld_fact"
            " WHERE child_id = ? AND released = 0 ORDER BY part, log_offset",
            (child_id,),
        )
        released: list[NewRecord] = []
        audit: list[AuditEntry] = []
        for event_id, body, raw_headers, part, offset in rows:
            data = orjson.loads(bytes(body))
            headers = tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(bytes(raw_headers or b"[]")))
            purposes = dict(headers).get(PURPOSES_HEADER, b"").decode() or ",".join(DEFAULT_PURPOSES)
            basis = dict(headers).get(BASIS_HEADER)
            fact = _fact_from_data(data, purposes.split(","), basis.decode() if basis else None)
            decision = decide_sharing(fact, state, self.policy, at=now)
            if not decision.permitted:
                continue
            data["consent"] = {"decision_id": str(decision.decision_id), "lawful_basis": decision.lawful_basis}
            released.append(
                NewRecord(
                    key=child_id,
                    value=orjson.dumps(data),
                    headers=(*headers, (RELEASED_HEADER, f"{part}:{offset}".encode())),
                )
            )
            audit.append(
                AuditEntry(
                    kind="release", actor=actor, child_id=child_id, at=now,
                    details={"decision_id": str(decision.decision_id), "event_id": str(event_id),
                             "outcome": "permit", "relied_on": decision.lawful_basis,
                             "reason": decision.reason, "withheld_at": f"{part}:{offset}"},
                )
            )
        hidden = await self._now_hidden(child_id, state, now)
        if hidden:
            audit.append(
                AuditEntry(
                    kind="redaction", actor=actor, child_id=child_id, at=now,
                    details={"event_ids": hidden, "outcome": "hidden",
                             "reason": "no consent or statutory basis covers these facts any more"},
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
            checkpoint = getattr(self.store, "checkpoint", None)
            if checkpoint is not None:
                await checkpoint()
            now = datetime.now(UTC)
            tombstone = Envelope.wrap(
                ChildErased(reason=reason[:200] or "erasure", requested_by=actor[:128]),
                child_id=child_id,
                source=Source(agency="hub", system="tac-hub"),
                occurred_at=now,
            )
            await self.trail.append(
                [AuditEntry(kind="erasure", actor=actor, child_id=child_id, at=now,
                            details={"event_id": str(tombstone.event_id), "keys_deleted": deleted,
                                     "outcome": "erased"})]
            )
            await self.log.append(LogName.EVENTS, [NewRecord(key=child_id, value=encode(tombstone))])
            return deleted


    async def apply_retention(self, *, today: date, actor: str = "system:retention") -> list[tuple[str, str]]:
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
                    now = datetime.now(UTC)
                    tombstone = Envelope.wrap(
                        CategoryErased(erased_category=category, rule=f"keep until {keep_until.isoformat()}"),
                        child_id=child_id,
                        source=Source(agency="hub", system="tac-hub"),
                        occurred_at=now,
                    )
                    await self.trail.append(
                        [AuditEntry(kind="retention", actor=actor, child_id=child_id, at=now,
                                    details={"event_id": str(tombstone.event_id), "category": category,
                                             "keep_until": keep_until.isoformat(), "outcome": "erased"})]
                    )
                    await self.log.append(LogName.EVENTS, [NewRecord(key=child_id, value=encode(tombstone))])
                done.append((child_id, category))
        checkpoint = getattr(self.store, "checkpoint", None)
        if done and checkpoint is not None:
            await checkpoint()
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


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_ = (date, decode, ErasedPayload)
