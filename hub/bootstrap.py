"""The composition root: builds the log, the read store, every port, the projection
runners and the service layer's handlers from `Settings`. Nothing else in the hub knows
every piece; nothing is built at import."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import structlog

from hub.log import EventLog, LogName, NewRecord, Position
from hub.observability import Metrics, create_metrics
from hub.projections import ProjectionRunner, all_projections
from hub.settings import Settings
from hub.store import ReadStore

if TYPE_CHECKING:
    from pathlib import Path

    from hub.auth.invitations import FamilyInvitations
    from hub.auth.keys import ApiKeys
    from hub.consent.audit_trail import AuditTrail
    from hub.consent.crypto import KeyStore, MasterKey
    from hub.consent.opener import EnvelopeOpener
    from hub.consent.policy import SharingPolicy
    from hub.identity.match_queue import MatchQueue
    from hub.identity.person_index import PersonIndex
    from hub.ingest.claims import IngestClaims
    from hub.notify.ports import Delivery, Outbox
    from hub.queries.context import Reads
    from hub.service_layer.consent_review import ReviewConsents
    from hub.service_layer.erasure import ApplyRetention, EraseChild
    from hub.service_layer.family_consent import FamilyConsent
    from hub.service_layer.la_records import RecordAsLocalAuthority
    from hub.service_layer.matching import ResolveMatch
    from hub.service_layer.notify import DeriveNotices, SendNotices, SendReport
    from hub.service_layer.plan_steps import RecordPlanSteps
    from hub.service_layer.reconsider import ReconsiderWithheld
    from hub.service_layer.sender_claims import SubmitAsSender
    from hub.service_layer.submit_facts import SubmitFacts
    from hub.service_layer.views import GateViews

log = structlog.get_logger(__name__)


def create_log(settings: Settings) -> EventLog:
    if settings.log_backend == "kafka":
        from hub.log.kafka import KafkaEventLog

        return KafkaEventLog(
            settings.kafka_bootstrap_servers,
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.log_partitions,
            replication_factor=settings.kafka_replication_factor,
            enable_idempotence=settings.kafka_enable_idempotence,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=(
                settings.kafka_sasl_password.get_secret_value()
                if settings.kafka_sasl_password
                else None
            ),
            ssl_cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            ssl_certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            ssl_keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    from hub.log.sqlite import SqliteEventLog

    return SqliteEventLog(
        settings.log_path,
        partitions=settings.log_partitions,
        synchronous=settings.sqlite_synchronous,
    )


def create_store(settings: Settings) -> ReadStore:
    if settings.store_backend == "postgres":
        from hub.store.postgres import PostgresReadStore

        if settings.postgres_dsn is None:  # the settings validator already refuses this
            raise ValueError("HUB_POSTGRES_DSN is required for the postgres store")
        return PostgresReadStore(
            settings.postgres_dsn.get_secret_value(), schema=settings.postgres_schema
        )
    from hub.store.sqlite import SqliteReadStore

    return SqliteReadStore(settings.store_path)


class CountingLog:
    """Decorates an `EventLog` so that appends are counted in the process's metrics."""

    def __init__(self, inner: EventLog, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def append(self, log_name: LogName, records: Sequence[NewRecord]) -> list[Position]:
        positions = await self._inner.append(log_name, records)
        self._metrics.events_appended.labels(log=log_name.value).inc(len(positions))
        return positions


NATURAL_KEYS_PURPOSE = b"natural-keys"
"""What the key of the restatement digests is derived for (`MasterKey.derive`)."""


def load_master_key(settings: Settings) -> MasterKey:
    """The master key from settings; on the embedded default, one generated on first start
    and kept (mode 0600) in the data directory."""
    from hub.consent.crypto import MasterKey

    if settings.master_key is not None:
        return MasterKey.from_base64(settings.master_key.get_secret_value())
    path = settings.data_dir / "master.key"
    if not path.exists():
        if settings.log_backend != "sqlite" or settings.store_backend != "sqlite":
            log.warning(
                "master_key.generated", where="data_dir", hint="set HUB_MASTER_KEY in production"
            )
        _create_once(path, MasterKey.generate_base64())
    return MasterKey.from_base64(path.read_text().strip())


def _create_once(path: Path, text: str) -> None:
    """Write `text` to `path` (mode 0600) unless it exists, so that processes starting
    at once on one data directory agree: the text goes to a file of this process's own,
    then is linked into place, which fails for all but the first; nobody reads a
    half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(mine, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the key
    finally:
        mine.unlink(missing_ok=True)


@dataclass(frozen=True)
class Handlers:
    """The write side's use cases, each built with the ports it needs."""

    submit_facts: SubmitFacts
    submit_as_sender: SubmitAsSender
    """Every path an agency's facts enter by (HTTP, Kafka, `hub ingest`) and the LA's own
    recorded facts: the sender's claims checked, then `submit_facts`."""
    reconsider_withheld: ReconsiderWithheld
    erase_child: EraseChild
    apply_retention: ApplyRetention
    review_consents: ReviewConsents
    resolve_match: ResolveMatch
    record_plan_steps: RecordPlanSteps
    family_consent: FamilyConsent
    la_records: RecordAsLocalAuthority
    """What the local authority records itself: consent as captured, coordinators."""


@dataclass
class Hub:
    """Every long-lived piece of one hub process: the ports, the handlers built on them,
    and the projection runners."""

    settings: Settings
    log: EventLog
    store: ReadStore
    metrics: Metrics
    policy: SharingPolicy
    keys: KeyStore
    persons: PersonIndex
    matches: MatchQueue
    trail: AuditTrail
    claims: IngestClaims
    opener: EnvelopeOpener
    views: GateViews
    handlers: Handlers
    reads: Reads
    """The query layer's ports."""
    outbox: Outbox
    """Notices waiting to be sent, preferences and webhooks (webhook secrets sealed)."""
    api_keys: ApiKeys
    """The credentials the hub issues (`hub keys`, family invitations)."""
    invitations: FamilyInvitations
    runners: list[ProjectionRunner] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_projector(self) -> None:
        for runner in self.runners:
            await runner.setup()
        self._tasks = [asyncio.create_task(r.run(self._stop)) for r in self.runners]
        log.info("projector.started", projections=[r.name for r in self.runners])

    async def stop_projector(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def runner(self, name: str) -> ProjectionRunner:
        for r in self.runners:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.runners)
        raise KeyError(f"no projection named {name!r} (known: {known})")

    async def close(self) -> None:
        await self.stop_projector()
        await self.store.close()
        await self.log.close()


@contextlib.contextmanager
def startup_frozen() -> Iterator[None]:
    """What start-up built (modules, the policy, the composed hub) lives as long as the
    process: keep it out of the garbage collector's full passes, which otherwise traverse
    all of it again and again while the process works (collected first, so no garbage is
    frozen; thawed on the way out)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def open_hub(settings: Settings, metrics: Metrics | None = None) -> Hub:
    """Connect the log and the store (the store migrates its schema as it starts), then
    build the ports, the projection runners and the handlers. `metrics` is the process's
    registry when the caller made it first (the API records HTTP metrics in it)."""
    metrics = metrics or create_metrics()
    event_log = create_log(settings)
    store = create_store(settings)
    await event_log.start()
    try:
        await store.start()
    except BaseException:
        await event_log.close()
        raise
    counted: EventLog = CountingLog(event_log, metrics)  # type: ignore[assignment]
    try:
        the_hub = _compose(settings, counted, store, metrics)
        for r in the_hub.runners:
            await r.setup()
    except BaseException:
        await store.close()
        await event_log.close()
        raise
    return the_hub


def _compose(settings: Settings, event_log: EventLog, store: ReadStore, metrics: Metrics) -> Hub:
    """The composition root: every port built once, and each handler given its own."""
    from hub.consent.audit_heads import HeadSigner
    from hub.consent.opener import EnvelopeOpener, child_of_key
    from hub.consent.policy import load_policy
    from hub.notify.secret_box import PURPOSE as SECRETS_PURPOSE
    from hub.notify.secret_box import SecretBox
    from hub.queries.context import Reads
    from hub.queries.opened import OpenedFacts
    from hub.service_layer.consent_review import ReviewConsents
    from hub.service_layer.erasure import ApplyRetention, EraseChild
    from hub.service_layer.family_consent import FamilyConsent
    from hub.service_layer.la_records import RecordAsLocalAuthority
    from hub.service_layer.matching import ResolveMatch
    from hub.service_layer.plan_steps import RecordPlanSteps
    from hub.service_layer.reconsider import ReconsiderWithheld
    from hub.service_layer.sender_claims import SubmitAsSender
    from hub.service_layer.submit_facts import SubmitFacts
    from hub.service_layer.views import GateViews
    from hub.store.api_keys import SqlApiKeys
    from hub.store.audit_trail import LogAuditTrail
    from hub.store.claims import SqlIngestClaims
    from hub.store.family_invitations import SqlFamilyInvitations
    from hub.store.keystore import SqlKeyStore
    from hub.store.match_queue import SqlMatchQueue
    from hub.store.notify_outbox import SqlOutbox
    from hub.store.person_index import SqlPersonIndex

    policy = load_policy(settings.consent_policy)
    master = load_master_key(settings)
    opened = OpenedFacts()
    keys = SqlKeyStore(
        store, master, on_delete=lambda key_id: opened.forget_child(child_of_key(key_id))
    )
    persons = SqlPersonIndex(store, master.derive(b"person-index"))
    matches = SqlMatchQueue(store, keys)
    trail = LogAuditTrail(event_log, store, signer=HeadSigner.from_master(master))
    claims = SqlIngestClaims(store)
    opener = EnvelopeOpener(keys)
    outbox = SqlOutbox(store, SecretBox(master.derive(SECRETS_PURPOSE)))
    api_keys = SqlApiKeys(store)
    invitations = SqlFamilyInvitations(store, api_keys)

    async def after_tombstone(children: Sequence[str]) -> None:
        # an erasure (by this process or another): no cached key or link outlives it, and
        # the rows the projections just deleted are folded out of the SQLite files
        for child_id in children:
            keys.forget_child(child_id)
            persons.forget_cached(child_id)
            opened.forget_child(child_id)  # what this process opened of them, too
        checkpoint = getattr(store, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint()

    runners = [
        ProjectionRunner(
            p,
            event_log,
            store,
            batch_size=settings.projector_batch,
            retries=settings.projector_retries,
            backoff=settings.projector_backoff_seconds,
            opener=opener,
            after_tombstone=after_tombstone,
        )
        for p in all_projections()
    ]
    views = GateViews(event_log, store, opener, {r.name: r for r in runners})
    reconsider = ReconsiderWithheld(
        log=event_log, store=store, trail=trail, policy=policy, views=views, claims=claims
    )
    submit = SubmitFacts(
        log=event_log,
        store=store,
        keys=keys,
        policy=policy,
        persons=persons,
        matches=matches,
        trail=trail,
        claims=claims,
        views=views,
        reconsider=reconsider,
        natural_key_secret=master.derive(NATURAL_KEYS_PURPOSE),
    )
    shredding = {
        "log": event_log, "store": store, "keys": keys, "policy": policy, "persons": persons,
        "trail": trail,
    }  # fmt: skip
    erase = EraseChild(
        **shredding,  # type: ignore[arg-type]
        credentials=invitations,
        fingerprints=matches,
    )
    as_sender = SubmitAsSender(
        submit=submit,
        policy=policy,
        trail=trail,
        persons=persons,
        batch_facts=settings.ingest_batch_facts,
    )
    handlers = Handlers(
        submit_facts=submit,
        submit_as_sender=as_sender,
        reconsider_withheld=reconsider,
        erase_child=erase,
        apply_retention=ApplyRetention(**shredding),  # type: ignore[arg-type]
        review_consents=ReviewConsents(
            store=store, persons=persons, views=views, submit=submit, reconsider=reconsider
        ),
        resolve_match=ResolveMatch(
            store=store,
            matches=matches,
            persons=persons,
            trail=trail,
            views=views,
            submit=submit,
            erase=erase,
        ),
        record_plan_steps=RecordPlanSteps(store=store, views=views, claims=claims, submit=submit),
        family_consent=FamilyConsent(submit=submit, persons=persons, views=views),
        la_records=RecordAsLocalAuthority(submit=as_sender, persons=persons),
    )
    return Hub(
        settings=settings,
        log=event_log,
        store=store,
        metrics=metrics,
        policy=policy,
        keys=keys,
        persons=persons,
        matches=matches,
        trail=trail,
        claims=claims,
        opener=opener,
        views=views,
        handlers=handlers,
        reads=Reads(
            store=store,
            views=views,
            opener=opener,
            persons=persons,
            trail=trail,
            policy=policy,
            matches=matches,
            opened=opened,
        ),
        runners=runners,
        outbox=outbox,
        api_keys=api_keys,
        invitations=invitations,
    )


# -- notifications ---------------------------------------------------------------------
NOTIFY_READS = ("caseload", "caseload_view", "notify_outbox", "consent_state")
"""The projections the notifier derives from (caught up before each sweep)."""


@dataclass
class Notifier:
    """The notifier of one process: derives due notices and sends them."""

    hub: Hub
    derive: DeriveNotices
    send: SendNotices

    async def once(self, today: date | None = None) -> tuple[int, int, SendReport]:
        """Catch up the projections it reads, derive today's notices, make the day's
        digests, send everything due. Returns (new notices, digests made, send report)."""
        derive, send = self.derive, self.send
        for name in NOTIFY_READS:
            runner = self.hub.runner(name)
            for part in range(self.hub.log.partitions(LogName.EVENTS)):
                await runner.catch_up(LogName.EVENTS, part)
        now = datetime.now(UTC)
        day = today or now.date()
        new = await derive(day, now)
        digests = await send.make_digests(day)
        report = await send.run_once()
        return new, digests, report


def notify_channels(settings: Settings) -> dict[str, Delivery]:
    """The delivery channels the settings configure (webhooks are per agency, built when
    sent)."""
    from hub.adapters.delivery import MailboxDelivery, NotifyDelivery, SmtpDelivery

    channels: dict[str, Delivery] = {
        "mailbox": MailboxDelivery(settings.mailbox_dir, settings.notify_from)
    }
    if settings.notify_smtp_host:
        channels["email"] = SmtpDelivery(
            settings.notify_smtp_host,
            settings.notify_smtp_port,
            settings.notify_from,
            timeout=settings.notify_smtp_timeout_seconds,
            starttls=settings.notify_smtp_starttls,
        )
    if settings.notify_govuk_api_key and settings.notify_govuk_template_id:
        channels["notify"] = NotifyDelivery(
            settings.notify_govuk_api_key.get_secret_value(),
            settings.notify_govuk_template_id,
            base_url=settings.notify_govuk_base_url,
        )
    return channels


def build_notifier(the_hub: Hub, *, owner: str | None = None) -> Notifier:
    from hub.service_layer.notify import ConsentReads, DeriveNotices, NotifyConfig, SendNotices

    s = the_hub.settings
    config = NotifyConfig(
        base_url=s.notify_base_url,
        default_channel=s.notify_default_channel or ("email" if s.notify_smtp_host else "mailbox"),
        max_attempts=s.notify_max_attempts,
        backoff_seconds=s.notify_backoff_seconds,
        lease_seconds=s.notify_lease_seconds,
        batch=s.notify_batch,
        lookback_days=s.notify_lookback_days,
        unassigned_after_days=s.notify_unassigned_after_days,
        triage=tuple(s.notify_triage),
    )
    outbox = the_hub.outbox
    return Notifier(
        hub=the_hub,
        derive=DeriveNotices(
            the_hub.store,
            outbox,
            config,
            ConsentReads(the_hub.views, the_hub.policy, the_hub.reads.decisions),
        ),
        send=SendNotices(
            outbox=outbox,
            log=the_hub.log,
            trail=the_hub.trail,
            config=config,
            channels=notify_channels(s),
            owner=owner,
        ),
    )


async def run_notifier(
    notifier: Notifier, stop: asyncio.Event, say: Callable[[str], None] | None = None
) -> None:
    """Sweep and send every `notify_interval_seconds` until `stop` is set; a failed
    sweep is logged and the next one comes as usual."""
    interval = notifier.hub.settings.notify_interval_seconds
    while not stop.is_set():
        try:
            new, digests, report = await notifier.once()
            if say is not None:
                say(f"notify: {new} new notice(s), {digests} digest(s); {report.line()}")
        except Exception as exc:
            log.error("notify.sweep_failed", exception_type=type(exc).__name__)
        try:  # asyncio.timeout: a cancellation is never swallowed (see hub.log.sqlite)
            async with asyncio.timeout(interval):
                await stop.wait()
        except TimeoutError:
            pass
