"""The notice: what one recipient is told, derived once however often it is derived.

A notice names what it is about only by the hub's own opaque ids (the child's hub id and
the plan id, as the web pages' addresses already carry them), a due date and a link path
to the page; its wording says what kind of thing needs attention and nothing else: no
names, no dates of birth, no clinical detail, no agency identifiers. Whoever follows the
link signs in, and the page shows what their role may see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

NoticeKind = Literal[
    "advice_due_soon",
    "advice_overdue",
    "milestone_due_soon",
    "milestone_overdue",
    "child_unassigned",
    "key_worker_handover",
    "consent_changed",
]
KINDS: tuple[NoticeKind, ...] = (
    "advice_due_soon",
    "advice_overdue",
    "milestone_due_soon",
    "milestone_overdue",
    "child_unassigned",
    "key_worker_handover",
    "consent_changed",
)

Channel = Literal["email", "notify", "webhook", "mailbox", "none"]
"""How a recipient is told: SMTP email, GOV.UK Notify, a signed webhook (agency
systems), the local mailbox of the embedded default, or not at all."""

CHANNELS: tuple[Channel, ...] = ("email", "notify", "webhook", "mailbox", "none")


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing one recipient is told."""

    id: str
    kind: NoticeKind
    recipient: str
    """`coordinator:<principal>` or `agency:<agency>`."""
    child_id: str
    plan_id: str | None
    about: str
    """What it is about: a milestone key, or the event id it was derived from."""
    due_on: date | None
    link: str
    """The page's path in the hub (`/plan/{id}` or `/child/{id}`)."""


def notice_id(kind: str, recipient: str, child_id: str, about: str, due_on: date | None) -> str:
    """The notice's id: the same inputs always give the same id, so a notice derived again
    (by another sweep, another process, after a restart) is the same notice."""
    text = "\x1f".join((kind, recipient, child_id, about, due_on.isoformat() if due_on else ""))
    return "ntc-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def digest_id(recipient: str, day: date) -> str:
    """The id of a recipient's digest of one day: one a day, however often built."""
    return "dgs-" + hashlib.sha256(f"digest\x1f{recipient}\x1f{day}".encode()).hexdigest()[:32]


def make_notice(
    kind: NoticeKind,
    recipient: str,
    child_id: str,
    about: str,
    *,
    plan_id: str | None = None,
    due_on: date | None = None,
) -> Notice:
    link = f"/plan/{plan_id}" if plan_id else f"/child/{child_id}"
    return Notice(
        id=notice_id(kind, recipient, child_id, about, due_on),
        kind=kind,
        recipient=recipient,
        child_id=child_id,
        plan_id=plan_id,
        about=about,
        due_on=due_on,
        link=link,
    )


@dataclass(frozen=True, slots=True)
class Preference:
    """How one recipient wants to be told."""

    recipient: str
    channel: Channel
    address: str | None = None
    """An email address (email, notify) or a webhook URL (webhook); none for the mailbox."""
    digest: bool = False
    """True: one message a day listing what is due, instead of one per notice."""


_SUBJECTS: dict[str, str] = {
    "advice_due_soon": "Advice for an EHC needs assessment is due soon",
    "advice_overdue": "Advice for an EHC needs assessment is overdue",
    "milestone_due_soon": "A statutory time limit is due soon",
    "milestone_overdue": "A statutory time limit has passed",
    "child_unassigned": "A child is on nobody's caseload",
    "key_worker_handover": "A key worker handover has started",
    "consent_changed": "Consent to share has changed",
}

_LINES: dict[str, str] = {
    "advice_due_soon": "Advice requested for a child's EHC needs assessment is due on {due}.",
    "advice_overdue": "Advice requested for a child's EHC needs assessment was due on {due}"
    " and has not been recorded.",
    "milestone_due_soon": "A statutory time limit on a child's EHC plan falls on {due}.",
    "milestone_overdue": "A statutory time limit on a child's EHC plan fell on {due}"
    " and has not been met.",
    "child_unassigned": "A child the hub has heard of is not on any coordinator's caseload.",
    "key_worker_handover": "Key working for a child is passing to a new key worker.",
    "consent_changed": "Consent to share a child's information was recorded or withdrawn.",
}

PRIVACY_LINE = (
    "This message holds no personal details. Sign in to the hub to see what your role may see."
)


def subject(notice: Notice) -> str:
    return f"TAC Hub: {_SUBJECTS[notice.kind]}"


def render(notice: Notice, base_url: str) -> tuple[str, str]:
    """The subject and plain-text body of one notice: its kind, its due date and the link."""
    due = notice.due_on.isoformat() if notice.due_on else ""
    body = "\n".join(
        (
            _LINES[notice.kind].format(due=due),
            "",
            f"Open it in the hub: {base_url.rstrip('/')}{notice.link}",
            "",
            PRIVACY_LINE,
            f"Reference: {notice.id}",
            "",
        )
    )
    return subject(notice), body


def render_digest(notices: Sequence[Notice], day: date, base_url: str) -> tuple[str, str]:
    """One day's digest: a line per notice, each with its link."""
    lines = [f"What needs attention on {day.isoformat()} ({len(notices)} item(s)):", ""]
    for n in sorted(notices, key=lambda n: (n.due_on or day, n.kind, n.id)):
        when = f" (due {n.due_on.isoformat()})" if n.due_on else ""
        lines.append(f"- {_SUBJECTS[n.kind]}{when}: {base_url.rstrip('/')}{n.link}")
    lines += ["", PRIVACY_LINE, ""]
    return f"TAC Hub: {len(notices)} item(s) need attention on {day.isoformat()}", "\n".join(lines)


def webhook_body(notice: Notice, base_url: str) -> dict[str, object]:
    """What an agency system is sent: ids, kind, due date and link, no personal data."""
    return {
        "notice_id": notice.id,
        "kind": notice.kind,
        "child_id": notice.child_id,
        "plan_id": notice.plan_id,
        "due_on": notice.due_on.isoformat() if notice.due_on else None,
        "link": f"{base_url.rstrip('/')}{notice.link}",
    }
