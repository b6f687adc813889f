"""The decision point: may this fact be shared, with whom, and on what lawful basis?

`decide_sharing(fact, state, policy, at=...)` is pure and deterministic: the same fact,
consent state (version), policy and time always give the same `Decision`, including its
`decision_id`. It fails closed — with no consent or statutory basis covering the fact's
category and purpose it withholds, and says why. A refusal beats any grant for the
viewers it covers unless the sender claims a statutory basis that overrides refusal
(safeguarding), which also narrows the audience to that basis's own. Nested exceptions
carve out of the consent they belong to; the audience is always capped by the roles the
policy lets ever see the category. Decisions are re-made at view time (`visible_now`),
so a withdrawal or expiry hides from that moment what it used to cover.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import product
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from hub.consent.policy import CategoryPolicy, SharingPolicy, StatutoryBasis
from hub.consent.state import GRANTOR_WORDS, ConsentRecord, ConsentState, utc
from hub.events.consent import ConsentDecision, ConsentException, ConsentScope
from hub.events.envelope import DEFAULT_PURPOSES, ConsentRef, Envelope, Purpose, Sharing
from hub.events.trusted import trusted, trusted_uuid

_PURPOSES = frozenset(get_args(Purpose))

DECISION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://tac-hub.example/consent/decision")

Outcome = Literal["permit", "withhold"]
GroundKind = Literal["consent", "statutory_basis"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fact(_Frozen):
    """What the gate needs to know about one fact; never its content."""

    event_id: uuid.UUID
    child_id: str = Field(min_length=1, max_length=64)
    category: str = Field(min_length=1, max_length=64)
    source_agency: str = Field(min_length=1, max_length=64)
    source_organisation: str | None = None
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    occurred_at: datetime
    basis_claimed: str | None = Field(
        default=None, description="A statutory basis the sender claims (e.g. reg6_ehc_advice)"
    )

    @classmethod
    def of(cls, envelope: Envelope) -> Fact:
        """The fact as the gate decides on it: from the envelope alone, its sharing
        context included (an envelope without one — of version 1 not upcast with its
        record's headers, or the hub's own — is shared for the default purposes). Raises
        pydantic's `ValidationError` for a purpose the policy's vocabulary lacks."""
        sharing = envelope.sharing or _NO_SHARING
        purposes = sharing.purposes
        if cls is Fact and all(type(p) is str and p in _PURPOSES for p in purposes):
            # the rest comes from a validated envelope, which holds to the same rules
            return trusted(
                cls,
                {
                    "event_id": envelope.event_id,
                    "child_id": envelope.child_id,
                    "category": envelope.category,
                    "source_agency": envelope.source.agency,
                    "source_organisation": envelope.source.organisation_code,
                    "purposes": purposes,
                    "occurred_at": envelope.occurred_at,
                    "basis_claimed": sharing.basis_claimed,
                },
            )
        return cls(
            event_id=envelope.event_id,
            child_id=envelope.child_id,
            category=envelope.category,
            source_agency=envelope.source.agency,
            source_organisation=envelope.source.organisation_code,
            purposes=tuple(purposes),
            occurred_at=envelope.occurred_at,
            basis_claimed=sharing.basis_claimed,
        )

    @classmethod
    def from_stored(
        cls,
        data: Mapping[str, Any],
        *,
        purposes: Iterable[str] = (),
        basis_claimed: str | None = None,
    ) -> Fact:
        """From a stored record's JSON, sealed fields left sealed (none is read), as
        `of` would give for it opened. Its `sharing` is the sharing context; a version 1
        record has none, and `purposes` and `basis_claimed` are what its headers (or the
        view's columns copied from them) said — see `hub.events.upcast_envelope_data`."""
        source = data.get("source") or {}
        sharing = data.get("sharing")
        if isinstance(sharing, Mapping):
            purposes = sharing.get("purposes") or DEFAULT_PURPOSES
            basis_claimed = sharing.get("basis_claimed")
        return cls(
            event_id=data["event_id"],
            child_id=data["child_id"],
            category=data["category"],
            source_agency=source.get("agency") or "unknown",
            source_organisation=source.get("organisation_code"),
            purposes=tuple(purposes) or DEFAULT_PURPOSES,
            occurred_at=data["occurred_at"],
            basis_claimed=basis_claimed or None,
        )


_NO_SHARING = Sharing()


# --------------------------------------------------------------------------- audience


class ViewerRule(_Frozen):
    """One provision as it applies to viewers; an empty axis matches any viewer."""

    effect: ConsentDecision
    roles: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()

    def matches(self, role: str, agency: str | None, organisation: str | None) -> bool:
        if self.roles and role not in self.roles:
            return False
        if self.agencies and agency not in self.agencies:
            return False
        return not (self.organisations and organisation not in self.organisations)


class Clause(_Frozen):
    """The viewer rules one consent (for one purpose) or one statutory basis yields.
    The last matching rule decides; no matching rule means the clause says nothing."""

    kind: GroundKind
    source: str
    purpose: Purpose | None = None
    rules: tuple[ViewerRule, ...]
    subject_to_refusals: bool = True

    def effect_for(
        self, role: str, agency: str | None, organisation: str | None
    ) -> ConsentDecision | None:
        effect: ConsentDecision | None = None
        for rule in self.rules:
            if rule.matches(role, agency, organisation):
                effect = rule.effect
        return effect


class Audience(_Frozen):
    """Who may see a fact: a role in `roles` (the most that may ever see it), let in by
    some grant, and — unless that grant overrides refusals — denied by no refusal."""

    roles: tuple[str, ...] = ()
    grants: tuple[Clause, ...] = ()
    refusals: tuple[Clause, ...] = ()

    @classmethod
    def nobody(cls) -> Audience:
        return cls()

    def grant_for(
        self, role: str, agency: str | None = None, organisation: str | None = None
    ) -> Clause | None:
        """The first grant that lets this viewer see the fact, or None."""
        if role not in self.roles:
            return None
        refused: bool | None = None
        for grant in self.grants:
            if grant.effect_for(role, agency, organisation) != "permit":
                continue
            if not grant.subject_to_refusals:
                return grant
            if refused is None:
                refused = any(
                    r.effect_for(role, agency, organisation) == "deny" for r in self.refusals
                )
            if not refused:
                return grant
        return None

    def allows(self, role: str, agency: str | None = None, organisation: str | None = None) -> bool:
        return self.grant_for(role, agency, organisation) is not None

    def _representatives(self) -> list[tuple[str, str | None, str | None]]:
        """One viewer per distinguishable kind: rules only test membership, so the
        values they name plus None stand for every agency and organisation."""
        agencies: set[str] = set()
        organisations: set[str] = set()
        for clause in (*self.grants, *self.refusals):
            for rule in clause.rules:
                agencies.update(rule.agencies)
                organisations.update(rule.organisations)
        return list(product(self.roles, [None, *sorted(agencies)], [None, *sorted(organisations)]))

    def _allowed(self) -> dict[tuple[str, str | None, str | None], bool]:
        return {v: self.allows(*v) for v in self._representatives()}

    def lets_anyone_in(self, grant: Clause) -> bool:
        """Whether `grant` on its own lets at least one viewer see the fact."""
        for role, agency, organisation in self._representatives():
            if grant.effect_for(role, agency, organisation) != "permit":
                continue
            if not grant.subject_to_refusals or not any(
                r.effect_for(role, agency, organisation) == "deny" for r in self.refusals
            ):
                return True
        return False

    def is_empty(self) -> bool:
        return not any(self.allows(*viewer) for viewer in self._representatives())

    def allowed_roles(self) -> tuple[str, ...]:
        """Roles that at least some viewer holding them may see the fact in."""
        return _roles_of(self._allowed())

    def describe(self) -> str:
        allowed = self._allowed()
        roles = _roles_of(allowed)
        if not roles:
            return "nobody"
        conditional = any(not ok for v, ok in allowed.items() if v[0] in roles)
        text = ", ".join(roles)
        if conditional:
            text += " (some only within particular agencies or organisations)"
        return text


def _roles_of(allowed: dict[tuple[str, str | None, str | None], bool]) -> tuple[str, ...]:
    return tuple(sorted({viewer[0] for viewer, ok in allowed.items() if ok}))


# --------------------------------------------------------------------------- decision


class Ground(_Frozen):
    """A consent or statutory basis a decision rests on, with what it cites."""

    kind: GroundKind
    name: str
    art6: str
    art9: str | None
    confidentiality: str


class Decision(_Frozen):
    """The gate's answer about one fact: permit or withhold, why, for whom, on what basis."""

    decision_id: uuid.UUID
    event_id: uuid.UUID
    child_id: str
    category: str
    purposes: tuple[Purpose, ...]
    outcome: Outcome
    relied_on: str | None
    relied_on_kind: GroundKind | None
    art6: str | None
    art9: str | None
    confidentiality: str | None
    grounds: tuple[Ground, ...] = ()
    refusals: tuple[str, ...] = Field(
        default=(), description="Refusals covering the fact (applied, or overridden)"
    )
    refusal_overridden_by: str | None = None
    audience: Audience
    reason: str
    decided_at: datetime
    consent_state_version: int
    policy_version: int
    policy_digest: str

    @property
    def permitted(self) -> bool:
        return self.outcome == "permit"

    @property
    def lawful_basis(self) -> str:
        """A short citation for the envelope (`consent:<id>` or `statutory_basis:<name>`);
        the full citations are in this decision, which the audit trail keeps."""
        if self.relied_on is None or self.relied_on_kind is None:
            return "none"
        return f"{self.relied_on_kind}:{self.relied_on}"

    def allows(self, role: str, agency: str | None = None, organisation: str | None = None) -> bool:
        return self.outcome == "permit" and self.audience.allows(role, agency, organisation)

    def ground_for(
        self, role: str, agency: str | None = None, organisation: str | None = None
    ) -> Ground | None:
        """Which ground lets this viewer see the fact (what a read's audit should cite)."""
        if self.outcome != "permit":
            return None
        clause = self.audience.grant_for(role, agency, organisation)
        if clause is None:
            return None
        for ground in self.grounds:
            if ground.kind == clause.kind and ground.name == clause.source:
                return ground
        return None

    def consent_ref(self, decision_id: uuid.UUID | None = None) -> ConsentRef:
        """The envelope's consent reference; only a permit has one. `decision_id`: the
        fact's own, when this decision is one its kind of fact shares
        (`DecisionMemo.decide_envelope`)."""
        if self.outcome != "permit":
            raise ValueError("a withheld fact carries no consent reference")
        basis = self.lawful_basis
        ref_id = self.decision_id if decision_id is None else decision_id
        if type(ref_id) is uuid.UUID and 1 <= len(basis) <= 256:  # as validation would find
            return trusted(ConsentRef, {"decision_id": ref_id, "lawful_basis": basis})
        return ConsentRef(decision_id=ref_id, lawful_basis=basis)


def visible_to(
    decision: Decision, role: str, agency: str | None = None, organisation: str | None = None
) -> bool:
    """Whether a viewer may see the fact under this (already made) decision."""
    return decision.allows(role, agency, organisation)


def visible_now(
    fact: Fact,
    state: ConsentState,
    policy: SharingPolicy,
    *,
    at: datetime,
    role: str,
    agency: str | None = None,
    organisation: str | None = None,
) -> bool:
    """Re-decide at view time: withdrawal, expiry or a new refusal hide the fact from then."""
    return decide_sharing(fact, state, policy, at=at).allows(role, agency, organisation)


def decision_id_for(
    fact: Fact, state: ConsentState, policy: SharingPolicy, at: datetime
) -> uuid.UUID:
    name = f"{fact.event_id}|{state.version}|{utc(at).isoformat()}|{policy.digest}"
    return uuid.uuid5(DECISION_NAMESPACE, name)


_NAMESPACE_BYTES = DECISION_NAMESPACE.bytes
_V5_CLEAR = ~((0xF << 76) | (0b11 << 62))
_V5_BITS = (0x5 << 76) | (0b10 << 62)


def _decision_uuid(name: str) -> uuid.UUID:
    """`uuid.uuid5(DECISION_NAMESPACE, name)`, the namespace's bytes taken once."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()
    return trusted_uuid((int.from_bytes(digest[:16], "big") & _V5_CLEAR) | _V5_BITS)


# --------------------------------------------------------------------------- compiling


def _compile_node(
    decision: ConsentDecision,
    scope: ConsentScope,
    exceptions: tuple[ConsentException, ...],
    *,
    category: str,
    purpose: Purpose,
    named: bool,
    named_only: bool,
    inherited: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    out: list[ViewerRule],
    blocked_unnamed: list[bool],
) -> None:
    """Append the viewer rules of this provision and its exceptions (pre-order, each
    with its ancestors' viewer axes folded in) if it covers (category, purpose)."""
    if scope.categories:
        if category not in scope.categories:
            return
        named = True
    if scope.purposes and purpose not in scope.purposes:
        return
    if decision == "permit" and named_only and not named:
        blocked_unnamed.append(True)
        return
    roles = scope.roles or inherited[0]
    agencies = scope.agencies or inherited[1]
    organisations = scope.organisations or inherited[2]
    out.append(
        ViewerRule(effect=decision, roles=roles, agencies=agencies, organisations=organisations)
    )
    for exc in exceptions:
        _compile_node(
            exc.decision,
            exc.scope,
            exc.exceptions,
            category=category,
            purpose=purpose,
            named=named,
            named_only=named_only,
            inherited=(roles, agencies, organisations),
            out=out,
            blocked_unnamed=blocked_unnamed,
        )


def compile_consent(
    record: ConsentRecord, category: str, purpose: Purpose, cat: CategoryPolicy
) -> tuple[Clause | None, bool]:
    """The clause one consent yields for (category, purpose), or None if it does not
    cover them; and whether a permit in it failed only for not naming the category."""
    rules: list[ViewerRule] = []
    blocked: list[bool] = []
    c = record.consent
    _compile_node(
        c.decision,
        c.scope,
        c.exceptions,
        category=category,
        purpose=purpose,
        named=False,
        named_only=cat.named_consent_only,
        inherited=((), (), ()),
        out=rules,
        blocked_unnamed=blocked,
    )
    if not rules:
        return None, bool(blocked)
    return (
        Clause(kind="consent", source=c.consent_id, purpose=purpose, rules=tuple(rules)),
        bool(blocked),
    )


def _basis_clause(name: str, basis: StatutoryBasis) -> Clause:
    return Clause(
        kind="statutory_basis",
        source=name,
        rules=(
            ViewerRule(
                effect="permit", roles=basis.audience.roles, agencies=basis.audience.agencies
            ),
        ),
        subject_to_refusals=not basis.overrides_refusal,
    )


def _basis_ground(name: str, basis: StatutoryBasis, cat: CategoryPolicy) -> Ground:
    return Ground(
        kind="statutory_basis",
        name=name,
        art6=basis.art6,
        art9=basis.art9 if cat.special else None,
        confidentiality=basis.confidentiality,
    )


def _consent_ground(consent_id: str, cat: CategoryPolicy) -> Ground:
    return Ground(
        kind="consent",
        name=consent_id,
        art6=cat.consent_basis.art6,
        art9=cat.consent_basis.art9,
        confidentiality=cat.consent_basis.confidentiality,
    )


def _ids(ids: Iterable[str]) -> str:
    items = list(dict.fromkeys(ids))
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- deciding


def decide_sharing(
    fact: Fact,
    consent_state: ConsentState,
    policy: SharingPolicy,
    *,
    at: datetime,
    decision_id: uuid.UUID | None = None,
) -> Decision:
    """Decide whether `fact` may be shared at `at`, given the child's consents and the
    policy. Pure: no I/O, no clock; the same inputs give the same decision."""
    if fact.child_id != consent_state.child_id:
        raise ValueError(f"fact {fact.event_id} is about another child than this consent state")
    at = utc(at)
    purposes_words = " or ".join(fact.purposes)
    what = f"{fact.category} for {purposes_words}"

    def make(
        outcome: Outcome,
        reason: str,
        *,
        audience: Audience | None = None,
        grounds: tuple[Ground, ...] = (),
        refusals: tuple[str, ...] = (),
        overridden_by: str | None = None,
    ) -> Decision:
        primary = grounds[0] if outcome == "permit" and grounds else None
        return Decision(
            decision_id=decision_id or decision_id_for(fact, consent_state, policy, at),
            event_id=fact.event_id,
            child_id=fact.child_id,
            category=fact.category,
            purposes=fact.purposes,
            outcome=outcome if primary is not None else "withhold",
            relied_on=primary.name if primary else None,
            relied_on_kind=primary.kind if primary else None,
            art6=primary.art6 if primary else None,
            art9=primary.art9 if primary else None,
            confidentiality=primary.confidentiality if primary else None,
            grounds=grounds if primary else (),
            refusals=refusals,
            refusal_overridden_by=overridden_by if primary else None,
            audience=audience if (primary and audience is not None) else Audience.nobody(),
            reason=reason,
            decided_at=at,
            consent_state_version=consent_state.version,
            policy_version=policy.policy_version,
            policy_digest=policy.digest,
        )

    cat = policy.category(fact.category)
    if cat is None:
        return make(
            "withhold",
            f"withheld: data category {fact.category!r} is not in the sharing policy (fail closed)",
        )
    cap = cat.visible_to

    # The basis the sender claims, if it applies to this fact.
    basis_name = fact.basis_claimed
    basis: StatutoryBasis | None = None
    basis_note = ""
    if basis_name is not None:
        candidate = policy.statutory_bases.get(basis_name)
        if candidate is None:
            basis_note = f"; the claimed basis {basis_name!r} is not in the policy"
        elif fact.category not in candidate.categories:
            basis_note = f"; the claimed basis {basis_name} does not cover {fact.category}"
        elif not set(fact.purposes) & set(candidate.purposes):
            basis_note = f"; the claimed basis {basis_name} does not cover {purposes_words}"
        else:
            basis = candidate

    # What the consents in force say about this category and these purposes.
    grants: list[Clause] = []
    refusals: list[Clause] = []
    unnamed: list[str] = []
    for record in consent_state.effective(at):
        for purpose in fact.purposes:
            clause, blocked = compile_consent(record, fact.category, purpose, cat)
            if blocked and record.decision == "permit":
                unnamed.append(record.consent_id)
            if clause is None:
                continue
            if record.decision == "deny":
                refusals.append(clause)
            if any(rule.effect == "permit" for rule in clause.rules):
                grants.append(clause)
    refusal_ids = tuple(dict.fromkeys(c.source for c in refusals))

    # 1. A claimed basis that overrides refusal (safeguarding) decides alone, narrowly.
    if basis is not None and basis_name is not None and basis.overrides_refusal:
        audience = Audience(
            roles=cap, grants=(_basis_clause(basis_name, basis),), refusals=tuple(refusals)
        )
        if not audience.is_empty():
            overrides = f"; it overrides refusal {_ids(refusal_ids)}" if refusal_ids else ""
            return make(
                "permit",
                f"permitted under statutory basis {basis_name} ({basis.title}), which covers "
                f"{what}{overrides}; visible only to {audience.describe()}",
                audience=audience,
                grounds=(_basis_ground(basis_name, basis, cat),),
                refusals=refusal_ids,
                overridden_by=basis_name if refusal_ids else None,
            )

    # 2. Otherwise: the claimed basis (if any) first, then every consent that grants.
    clauses: list[Clause] = []
    if basis is not None and basis_name is not None and not basis.overrides_refusal:
        clauses.append(_basis_clause(basis_name, basis))
    clauses.extend(grants)
    audience = Audience(roles=cap, grants=tuple(clauses), refusals=tuple(refusals))
    if clauses and not audience.is_empty():
        live: list[Ground] = []
        seen: set[tuple[str, str]] = set()
        for clause in clauses:
            key = (clause.kind, clause.source)
            if key in seen or not audience.lets_anyone_in(clause):
                continue
            seen.add(key)
            if clause.kind == "statutory_basis" and basis is not None:
                live.append(_basis_ground(clause.source, basis, cat))
            else:
                live.append(_consent_ground(clause.source, cat))
        primary = live[0]
        if primary.kind == "statutory_basis" and basis is not None:
            head = (
                f"permitted under statutory basis {primary.name} ({basis.title}), which "
                f"covers {what}"
            )
        else:
            granting = consent_state.record(primary.name)
            by = GRANTOR_WORDS[granting.consent.grantor.capacity] if granting else "unknown"
            head = f"permitted: consent {primary.name} (given by {by}) covers {what}"
        others = [g.name for g in live[1:]]
        also = f"; also covered by {_ids(others)}" if others else ""
        narrowed = (
            f"; refusal {_ids(refusal_ids)} keeps it from the viewers it covers"
            if refusal_ids
            else ""
        )
        return make(
            "permit",
            f"{head}{also}{narrowed}; visible to {audience.describe()}{basis_note}",
            audience=audience,
            grounds=tuple(live),
            refusals=refusal_ids,
        )

    # 3. Withhold, saying why.
    if clauses and not Audience(roles=cap, grants=tuple(clauses)).is_empty():
        reason = (
            f"withheld: refusal {_ids(refusal_ids)} covers {what} for every viewer that "
            f"{_ids(c.source for c in clauses)} would allow, and a refusal beats a grant; "
            "no claimed basis that overrides a refusal applies"
        )
    elif clauses:
        reason = (
            f"withheld: {_ids(c.source for c in clauses)} covers {what}, but allows none of "
            f"the roles that may ever see {fact.category}"
        )
    else:
        reason = f"withheld: no consent covers {what}"
        if unnamed:
            reason += (
                f" ({_ids(unnamed)} does not name {fact.category}, which only a consent "
                "naming it can cover)"
            )
        if refusal_ids:
            reason += f"; refusal {_ids(refusal_ids)} also covers it"
    return make("withhold", reason + basis_note, refusals=refusal_ids)


class DecisionMemo:
    """`decide_sharing` for many facts at one instant (one submit's batch), made once per
    (the child's consents in force, the fact's sharing key). A decision depends on the
    fact's category, source, purposes and claimed basis and on the consents in force —
    their content and ids, which its reason and grounds name — never on the fact's
    content; each fact then gets its own ids (`decision_id`, `event_id`, `child_id`), as
    `decide_sharing` itself would give them."""

    def __init__(self, policy: SharingPolicy, at: datetime) -> None:
        self.policy = policy
        self.at = utc(at)
        self._made: dict[tuple[object, ...], Decision] = {}
        self._name_tail = f"{self.at.isoformat()}|{policy.digest}"
        self._signatures: dict[tuple[str, int], tuple[str, ...]] = {}

    def _signature(self, state: ConsentState) -> tuple[str, ...]:
        key = (state.child_id, state.version)
        sig = self._signatures.get(key)
        if sig is None:
            sig = self._signatures[key] = tuple(
                r.consent.model_dump_json() for r in state.effective(self.at)
            )
        return sig

    def decide(self, fact: Fact, state: ConsentState) -> Decision:
        made, decision_id = self._shared(
            state,
            fact.category,
            fact.source_agency,
            fact.source_organisation,
            fact.purposes,
            fact.basis_claimed,
            fact.event_id,
            fact.child_id,
            lambda: fact,
        )
        if decision_id is None:
            return made
        return trusted(
            Decision,
            {
                **made.__dict__,
                "decision_id": decision_id,
                "event_id": fact.event_id,
                "child_id": fact.child_id,
            },
        )

    def decide_envelope(
        self, envelope: Envelope, state: ConsentState
    ) -> tuple[Decision, uuid.UUID]:
        """`decide(Fact.of(envelope), state)` without a `Decision` of its own: the
        decision shared by every fact of its kind in the batch (whose `decision_id`,
        `event_id` and `child_id` are the first such fact's: read only what they share)
        and this fact's `decision_id`. The fact is built only for the first of its kind."""
        sharing = envelope.sharing or _NO_SHARING
        source = envelope.source
        made, decision_id = self._shared(
            state,
            envelope.category,
            source.agency,
            source.organisation_code,
            sharing.purposes,
            sharing.basis_claimed,
            envelope.event_id,
            envelope.child_id,
            lambda: Fact.of(envelope),
        )
        return made, made.decision_id if decision_id is None else decision_id

    def _shared(
        self,
        state: ConsentState,
        category: str,
        agency: str,
        organisation: str | None,
        purposes: tuple[Purpose, ...],
        basis_claimed: str | None,
        event_id: uuid.UUID,
        child_id: str,
        fact: Callable[[], Fact],
    ) -> tuple[Decision, uuid.UUID | None]:
        """The decision of this kind of fact, made for the first one, and the fact's own
        decision id (None: the fact is the one it was made for)."""
        key = (
            self._signature(state),
            state.version,
            category,
            agency,
            organisation,
            purposes,
            basis_claimed,
        )
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = decide_sharing(fact(), state, self.policy, at=self.at)
            return made, None
        if child_id != state.child_id:
            raise ValueError(f"fact {event_id} is about another child than this consent state")
        # `decision_id_for`, with the part that is the same for the whole batch made once
        return made, _decision_uuid(f"{event_id}|{state.version}|{self._name_tail}")
