"""Notifications: derive the notices due, and send them once each.

`DeriveNotices` reads what the projections already keep, and never re-implements the
statutory clock: every plan's open milestones from the caseload view (`caseload_plan`,
with each milestone's state on the day applied by `caseload_view.state_on`; a plan with a
recorded exception is recomputed from its stored facts as the caseload does), the
caseload (who holds which child), and the `notify_outbox` projection (handovers and
consent changes, the children the log names and the agencies publishing about them). Each
notice gets its deterministic id (`hub.notify.notice_id`), so the outbox keeps it once
however often, and by however many processes, it is derived.

`SendNotices` claims due notices under a lease, sends each by its recipient's channel,
marks it sent, and audits the send; a failure is tried again after a growing delay (the
next attempt's time is in the outbox, so a restart keeps it) and, after the configured
attempts or at once when trying again cannot help, is marked dead with a line on
`hub.deadletter` saying why. A recipient who asked for a daily digest has its notices
held and one message a day made of them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import structlog

from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.policy import SharingPolicy
from hub.consent.viewer import DecisionCache, Viewer
from hub.deadletter import dead_letter_for
from hub.log import EventLog, LogName
from hub.notify.model import (
    Notice,
    NoticeKind,
    Preference,
    digest_id,
    make_notice,
    render,
    render_digest,
    webhook_body,
)
from hub.notify.ports import Claimed, Delivery, DeliveryFailed, Message, Outbox
from hub.plans.clock import compute_clock
from hub.projections.caseload_view import PlanSummary, load_clock_facts, split_plans, state_on
from hub.service_layer.views import GateViews
from hub.store import ReadStore

log = structlog.get_logger(__name__)

COORDINATOR = "coordinator:"
AGENCY = "agency:"
DIGEST_KIND = "digest"


def coordinator(name: str) -> str:
    return f"{COORDINATOR}{name}"


@dataclass(frozen=True)
class NotifyConfig:
    base_url: str = "http://127.0.0.1:8000"
    default_channel: str = "mailbox"
    max_attempts: int = 5
    backoff_seconds: float = 30
    lease_seconds: float = 120
    batch: int = 50
    lookback_days: int = 7
    unassigned_after_days: int = 1
    triage: tuple[str, ...] = ()


# ------------------------------------------------------------------------ derivation


def _milestone_kind(rule: str, state: str) -> NoticeKind | None:
    if state == "overdue":
        return "advice_overdue" if rule == "advice" else "milestone_overdue"
    if state == "due_soon":
        return "advice_due_soon" if rule == "advice" else "milestone_due_soon"
    return None


@dataclass(frozen=True)
class _Open:
    key: str
    rule: str
    kind: str
    state: str
    due_on: date


def _open_from_summary(summary: PlanSummary, today: date) -> list[_Open]:
    return [
        _Open(m.key, m.rule, m.kind, state_on(m.kind, m.due_on, today), m.due_on)
        for m in summary.open
        if not (m.rule == "phase_transfer" and today < m.starts_on)
    ]


@dataclass(frozen=True)
class ConsentReads:
    """What a coordinator's view-time consent decisions need (the caseload's own)."""

    views: GateViews
    policy: SharingPolicy
    decisions: DecisionCache


class DeriveNotices:
    """Every notice due on a day, for every recipient, from the projections."""

    def __init__(
        self,
        store: ReadStore,
        outbox: Outbox,
        config: NotifyConfig,
        consent: ConsentReads | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.consent = consent

    async def __call__(self, today: date, at: datetime) -> int:
        holders = await self._holders()
        notices = [
            *await self._milestones(holders, today, at),
            *await self._sources(holders, today),
            *await self._unassigned(holders, today),
        ]
        notices += await self._agencies(notices)
        return await self.outbox.add(notices, at)

    async def _holders(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for who, child in await self.store.fetchall(
            "SELECT coordinator, child_id FROM caseload ORDER BY child_id, coordinator"
        ):
            out.setdefault(str(child), []).append(str(who))
        return out

    async def _viewer(self, children: Sequence[str], at: datetime) -> Viewer | None:
        """A coordinator as the caseload judges one (every coordinator alike: the policy
        decides by role), with the children's consent states loaded."""
        if self.consent is None:
            return None
        viewer = Viewer(
            self.consent.policy, self.consent.decisions, role="coordinator", agency=None, now=at
        )
        if children:
            viewer.add(await self.consent.views.consent_states(sorted(children), fresh=True))
        return viewer

    async def _milestones(
        self, holders: Mapping[str, list[str]], today: date, at: datetime
    ) -> list[Notice]:
        """Each plan's open milestones as the caseload shows them to its coordinators:
        from the stored summary when every fact it rests on is visible to a coordinator
        and no exception moves its dates, else recomputed from the visible stored facts."""
        rows = await self.store.fetchall(
            "SELECT child_id, plan_id, summary FROM caseload_plan ORDER BY child_id, plan_id"
        )
        held = [(str(c), str(p), PlanSummary.model_validate_json(s)) for c, p, s in rows
                if str(c) in holders]  # fmt: skip
        viewer = await self._viewer(sorted({c for c, _, _ in held}), at)
        notices: list[Notice] = []
        slow: list[tuple[str, str]] = []
        for child, plan, summary in held:
            fast = not summary.has_exceptions and (
                viewer is None or all(viewer.sees_key(child, k) for k in summary.keys)
            )
            if fast:
                notices += self._for_plan(holders, child, plan, _open_from_summary(summary, today))
            else:
                slow.append((child, plan))
        for child, plan, opened in await self._recomputed(slow, today, viewer):
            notices += self._for_plan(holders, child, plan, opened)
        return notices

    async def _recomputed(
        self, plans: Sequence[tuple[str, str]], today: date, viewer: Viewer | None
    ) -> list[tuple[str, str, list[_Open]]]:
        """The clock on `today` from the stored facts a coordinator may see."""
        if not plans:
            return []
        facts = await load_clock_facts(self.store, [c for c, _ in plans])
        out = []
        for child, plan in plans:
            visible = [f for f in facts[child] if viewer is None or viewer.sees_key(child, f.key)]
            by_plan, dob = split_plans(visible)
            if not by_plan.get(plan):
                continue
            clock = compute_clock(
                [f.payload() for f in by_plan[plan]],
                today=today,
                date_of_birth=dob.date_of_birth if dob else None,
            )
            opened = [
                _Open(m.key, m.rule, m.kind, m.state, m.due_on)
                for m in clock.milestones
                if m.state not in ("met", "not_applicable")
            ]
            out.append((child, plan, opened))
        return out

    @staticmethod
    def _for_plan(
        holders: Mapping[str, list[str]], child: str, plan: str, opened: Sequence[_Open]
    ) -> list[Notice]:
        out = []
        for m in opened:
            kind = _milestone_kind(m.rule, m.state) if m.kind == "statutory" else None
            if kind is None:
                continue
            for who in holders[child]:
                out.append(
                    make_notice(kind, coordinator(who), child, m.key, plan_id=plan, due_on=m.due_on)
                )
        return out

    async def _sources(self, holders: Mapping[str, list[str]], today: date) -> list[Notice]:
        since = (today - timedelta(days=self.config.lookback_days)).isoformat()
        rows = await self.store.fetchall(
            "SELECT event_id, child_id, kind FROM notify_source WHERE occurred_on >= ?"
            " ORDER BY event_id",
            (since,),
        )
        return [
            make_notice(str(kind), coordinator(who), str(child), str(event_id))  # type: ignore[arg-type]
            for event_id, child, kind in rows
            for who in holders.get(str(child), [])
        ]

    async def _unassigned(self, holders: Mapping[str, list[str]], today: date) -> list[Notice]:
        cutoff = (today - timedelta(days=self.config.unassigned_after_days)).isoformat()
        rows = await self.store.fetchall(
            "SELECT child_id, MIN(first_seen) FROM notify_child WHERE child_id <> '-'"
            " GROUP BY child_id HAVING MIN(first_seen) <= ? ORDER BY child_id",
            (cutoff,),
        )
        waiting = [str(c) for c, _ in rows if str(c) not in holders]
        if not waiting:
            return []
        triage = list(self.config.triage) or sorted({w for ws in holders.values() for w in ws})
        return [
            make_notice("child_unassigned", coordinator(who), child, "unassigned")
            for child in waiting
            for who in triage
        ]

    async def _agencies(self, notices: Sequence[Notice]) -> list[Notice]:
        """The same notices for each agency with a webhook that publishes about the child
        (one per agency, not per coordinator)."""
        hooked = set(await self.outbox.webhook_agencies())
        if not hooked or not notices:
            return []
        children = sorted({n.child_id for n in notices})
        publishers: dict[str, set[str]] = {}
        for i in range(0, len(children), 500):
            chunk = children[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for child, agency in await self.store.fetchall(
                f"SELECT child_id, agency FROM notify_child WHERE child_id IN ({marks})",  # noqa: S608 - placeholders
                chunk,
            ):
                if str(agency) in hooked:
                    publishers.setdefault(str(child), set()).add(str(agency))
        out: dict[str, Notice] = {}
        for n in notices:
            for agency in sorted(publishers.get(n.child_id, ())):
                a = make_notice(
                    n.kind, f"{AGENCY}{agency}", n.child_id, n.about,
                    plan_id=n.plan_id, due_on=n.due_on,
                )  # fmt: skip
                out[a.id] = a
        return list(out.values())


# ---------------------------------------------------------------------------- sending


@dataclass
class SendReport:
    sent: int = 0
    held: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        channels = ", ".join(f"{n} by {c}" for c, n in sorted(self.by_channel.items()))
        return (
            f"{self.sent} sent" + (f" ({channels})" if channels else "")
            + f", {self.held} held for digests, {self.retried} to retry, {self.dead} dead-lettered"
            + (f", {self.skipped} not wanted" if self.skipped else "")
        )  # fmt: skip


DeliveryFor = Callable[[str, Preference | None], Any]


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SendNotices:
    """Claim, send, mark, audit; retry with backoff; dead-letter."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        log: EventLog,
        trail: AuditTrail,
        config: NotifyConfig,
        channels: Mapping[str, Delivery],
        owner: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox = outbox
        self.log = log
        self.trail = trail
        self.config = config
        self.channels = channels
        self.owner = owner or new_owner()
        self.clock = clock
        self.on_sent: Callable[[Notice, str], None] | None = None

    async def make_digests(self, today: date) -> int:
        """One digest a day per recipient who asked for it, of the notices held for it."""
        made = 0
        for recipient in await self.outbox.held_recipients():
            items = await self.outbox.held(recipient)
            if not items:
                continue
            digest = Notice(
                id=digest_id(recipient, today),
                kind="advice_due_soon",
                recipient=recipient,
                child_id="-",
                plan_id=None,
                about=today.isoformat(),
                due_on=None,
                link="/",
            )  # fmt: skip  (stored with kind "digest": `Outbox.digested` writes it so)
            made += (
                1 if await self.outbox.digested(digest, [n.id for n in items], self.clock()) else 0
            )
        return made

    async def run_once(self) -> SendReport:
        """Send everything due now, batch by batch, until nothing is left to claim."""
        report = SendReport()
        while True:
            claimed = await self.outbox.claim(
                self.owner, self.clock(), self.config.lease_seconds, self.config.batch
            )
            if not claimed:
                return report
            for c in claimed:
                await self._one(c, report)

    async def _one(self, claimed: Claimed, report: SendReport) -> None:
        notice = claimed.notice
        pref = await self.outbox.preference(notice.recipient)
        if pref is not None and pref.digest and notice.kind != DIGEST_KIND:
            await self.outbox.hold(notice.id, self.owner)
            report.held += 1
            return
        channel = await self._channel(notice, pref)
        if channel == "none":
            await self.outbox.sent(notice.id, self.owner, self.clock(), "none")
            report.skipped += 1
            return
        try:
            message = await self._message(notice, pref, channel)
            delivery = await self._delivery(notice, channel)
            await delivery.send(message)
        except DeliveryFailed as exc:
            return await self._failed(claimed, channel, exc, report)
        if await self.outbox.sent(notice.id, self.owner, self.clock(), channel):
            report.sent += 1
            report.by_channel[channel] = report.by_channel.get(channel, 0) + 1
            await self._audit(notice, channel, "sent", claimed.attempts)
            if self.on_sent is not None:
                self.on_sent(notice, channel)

    async def _channel(self, notice: Notice, pref: Preference | None) -> str:
        if notice.recipient.startswith(AGENCY):
            return "webhook" if pref is None or pref.channel != "none" else "none"
        return pref.channel if pref is not None else self.config.default_channel

    async def _message(self, notice: Notice, pref: Preference | None, channel: str) -> Message:
        if notice.kind == DIGEST_KIND:
            items = await self.outbox.digest_items(notice.id)
            subject, body = render_digest(
                items, date.fromisoformat(notice.about), self.config.base_url
            )
            data: dict[str, object] = {
                "notice_id": notice.id,
                "kind": DIGEST_KIND,
                "items": [webhook_body(n, self.config.base_url) for n in items],
            }
        else:
            subject, body = render(notice, self.config.base_url)
            data = webhook_body(notice, self.config.base_url)
        return Message(notice.id, self._address(notice, pref, channel), subject, body, data)

    @staticmethod
    def _address(notice: Notice, pref: Preference | None, channel: str) -> str:
        who = notice.recipient.split(":", 1)[1]
        if pref is not None and pref.address:
            return pref.address
        if channel in ("email", "notify") and "@" not in who:
            raise DeliveryFailed("no email address for the recipient", permanent=True)
        return who if "@" in who else f"{who}@hub.invalid"

    async def _delivery(self, notice: Notice, channel: str) -> Delivery:
        if channel == "webhook":
            from hub.adapters.delivery import WebhookDelivery

            agency = notice.recipient.split(":", 1)[1]
            hook = await self.outbox.webhook(agency)
            if hook is None:
                raise DeliveryFailed(f"no webhook set for agency {agency}", permanent=True)
            return WebhookDelivery(*hook)
        delivery = self.channels.get(channel)
        if delivery is None:
            raise DeliveryFailed(f"channel {channel} is not configured", permanent=True)
        return delivery

    async def _failed(
        self, claimed: Claimed, channel: str, exc: DeliveryFailed, report: SendReport
    ) -> None:
        notice = claimed.notice
        if exc.permanent or claimed.attempts >= self.config.max_attempts:
            await self.outbox.failed(notice.id, self.owner, exc.reason, None)
            await self._dead_letter(notice, channel, exc, claimed.attempts)
            await self._audit(notice, channel, "dead", claimed.attempts, exc.reason)
            report.dead += 1
            return
        delay = self.config.backoff_seconds * 2 ** (claimed.attempts - 1)
        await self.outbox.failed(
            notice.id, self.owner, exc.reason, self.clock() + timedelta(seconds=delay)
        )
        await self._audit(notice, channel, "retry", claimed.attempts, exc.reason)
        report.retried += 1
        log.warning(
            "notify.retry", notice_id=notice.id, channel=channel, attempts=claimed.attempts,
            reason=exc.reason, next_in_seconds=delay,
        )  # fmt: skip

    async def _dead_letter(
        self, notice: Notice, channel: str, exc: DeliveryFailed, attempts: int
    ) -> None:
        value = orjson.dumps(
            {**webhook_body(notice, self.config.base_url), "channel": channel,
             "recipient": notice.recipient}
        )  # fmt: skip
        reason = f"notification {notice.id} by {channel}: {exc.reason}"
        await self.log.append(
            LogName.DEADLETTER,
            [
                dead_letter_for(
                    key=f"notify:{notice.id}",
                    value=value,
                    reason=reason,
                    exception_type=type(exc).__name__,
                    consumer="notifier",
                    attempts=attempts,
                    source_topic="notify_outbox",
                )
            ],
        )
        log.warning("notify.dead_lettered", notice_id=notice.id, channel=channel, attempts=attempts)

    async def _audit(
        self, notice: Notice, channel: str, outcome: str, attempts: int, reason: str | None = None
    ) -> None:
        details: dict[str, object] = {
            "notice_id": notice.id, "notice_kind": notice.kind, "recipient": notice.recipient,
            "channel": channel, "outcome": outcome, "attempts": attempts,
        }  # fmt: skip
        if notice.plan_id:
            details["plan_id"] = notice.plan_id
        if reason:
            details["reason"] = reason
        child = None if notice.child_id == "-" else notice.child_id
        await self.trail.append(
            [AuditEntry(kind="notification", actor="notifier", child_id=child, details=details)]
        )
