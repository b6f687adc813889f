"""What a sender may claim about a fact: its category, a statutory basis, an organisation.

A sender's credential says what kind of agency it is (`sender`, one of the policy's
`senders`) and which organisation codes it publishes as; the policy says which categories
a fact of each event type may be sent under (`categories.*.may_be_sent_as`) and which
statutory bases each kind of sender may claim (`senders.*.statutory_bases`).
`judge_claims` answers None when a fact's claims hold, else a `ClaimRefusal` naming the
rule, the field and why (never a value of the fact). It is pure: the service layer applies
it on every path facts enter by (HTTP, Kafka, the CLI, the LA's own routes) before the
consent gate, and audits every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.consent.policy import SharingPolicy

CATEGORY_RULE = "sender.category_not_permitted"
BASIS_RULE = "sender.basis_not_claimable"
ORGANISATION_RULE = "sender.organisation_not_allowed"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who publishes: the agency of the credential, its kind of sender (None: claims no
    statutory basis), and the organisation codes it may name. `bound` is False for a
    credential issued before organisation codes were recorded: it may name none that
    another credential is bound to (`taken_elsewhere`, filled by the service layer)."""

    agency: str
    kind: str | None = None
    organisations: frozenset[str] = frozenset()
    taken_elsewhere: frozenset[str] = frozenset()

    @property
    def bound(self) -> bool:
        return bool(self.organisations)


@dataclass(frozen=True, slots=True)
class ClaimRefusal:
    rule: str
    field: str
    reason: str


def judge_claims(
    policy: SharingPolicy,
    sender: Sender,
    *,
    event_type: str,
    type_category: str,
    category: str | None,
    statutory_basis: str | None,
    organisation_code: str | None,
) -> ClaimRefusal | None:
    """None when the sender may send this fact as it claims, else why not."""
    return (
        _category(policy, event_type, type_category, category)
        or _basis(policy, sender, statutory_basis)
        or _organisation(sender, organisation_code)
    )


def _category(
    policy: SharingPolicy, event_type: str, type_category: str, category: str | None
) -> ClaimRefusal | None:
    if category is None or category == type_category:
        return None
    allowed = policy.may_send_as(event_type, type_category)
    if category in allowed:
        return None
    listed = ", ".join(allowed) or "no other"
    return ClaimRefusal(
        CATEGORY_RULE,
        "category",
        f"a fact of this event type is {type_category} data; the policy lets it be sent "
        f"as {listed}, not as {category!r}",
    )


def _basis(policy: SharingPolicy, sender: Sender, basis: str | None) -> ClaimRefusal | None:
    if basis is None:
        return None
    spec = policy.senders.get(sender.kind) if sender.kind else None
    if spec is not None and basis in spec.statutory_bases:
        return None
    who = f"a {sender.kind} sender" if spec is not None else "a credential with no sender kind"
    may = ", ".join(spec.statutory_bases) if spec is not None and spec.statutory_bases else None
    return ClaimRefusal(
        BASIS_RULE,
        "statutory_basis",
        f"{who} may not claim the statutory basis {basis!r}"
        + (f" (it may claim {may})" if may else " (it may claim none)"),
    )


def _organisation(sender: Sender, code: str | None) -> ClaimRefusal | None:
    if code is None:
        return None
    if sender.bound:
        if code in sender.organisations:
            return None
        return ClaimRefusal(
            ORGANISATION_RULE,
            "source.organisation_code",
            "this credential may publish only as its own organisations",
        )
    if code in sender.taken_elsewhere:
        return ClaimRefusal(
            ORGANISATION_RULE,
            "source.organisation_code",
            "this organisation code belongs to another credential",
        )
    return None
