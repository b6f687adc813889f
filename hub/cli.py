"""The `hub` command: serve, api, projector, migrate, replay, deadletter, keys, ...

Every subcommand takes `--data-dir` (the embedded default's files); everything else
comes from `HUB_*` settings. Heavy modules are imported inside the commands so that
`hub --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.auth.keys import ApiKeys
    from hub.bootstrap import Hub
    from hub.settings import Settings


class CliError(Exception):
    """A failure to report in one line, without a traceback (exit status 2)."""


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    from pydantic import ValidationError

    from hub.settings import Settings

    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise CliError(f"invalid settings: {where}: {first['msg']}") from None


def _configure_logging(settings: Settings) -> None:
    from hub.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def _with_hub(args: argparse.Namespace, fn: Callable[[Hub], Awaitable[int]]) -> int:
    settings = _settings(args)
    _configure_logging(settings)

    async def run() -> int:
        from hub.api.server import one_line
        from hub.bootstrap import open_hub, startup_frozen

        try:
            the_hub = await open_hub(settings)
        except Exception as exc:  # one line, never a traceback
            raise CliError(f"cannot start: {type(exc).__name__}: {one_line(exc)}") from None
        try:
            with startup_frozen():  # e.g. `hub ingest` of a big file: no full pass over it
                return await fn(the_hub)
        finally:
            await the_hub.close()

    return asyncio.run(run())


# -- serve / api / projector -------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, *, run_projector: bool = True) -> int:
    from hub.api.app import create_app
    from hub.api.server import StartupFailed, one_line, serve

    settings = _settings(args, host=args.host, port=args.port)
    _configure_logging(settings)
    where = "embedded SQLite" if settings.log_backend == "sqlite" else "Kafka"

    def ready(port: int) -> None:
        print(  # noqa: T201 - the one line a person starting the hub looks for
            f"TAC Hub on http://{settings.host}:{port} "
            f"(log: {where}; data dir: {settings.data_dir.resolve()})",
            flush=True,
        )

    try:
        app = create_app(settings, run_projector=run_projector)
    except Exception as exc:  # one line, never a traceback
        raise CliError(f"cannot start: {type(exc).__name__}: {one_line(exc)}") from None
    try:
        asyncio.run(serve(app, settings, ready))
    except StartupFailed as exc:
        raise CliError(f"cannot start: {exc}") from None
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    return cmd_serve(args, run_projector=False)


def cmd_projector(args: argparse.Namespace) -> int:
    import signal

    async def run(the_hub: Hub) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await the_hub.start_projector()
        print("projector running; Ctrl-C to stop", flush=True)  # noqa: T201
        await stop.wait()
        await the_hub.stop_projector()
        return 0

    return _with_hub(args, run)


# -- replay ---------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from hub.projections.runner import rebuild_together

        if args.all == bool(args.projection):
            raise CliError("name projections with --projection NAME (repeatable), or give --all")
        try:
            runners = (
                list(the_hub.runners)
                if args.all
                else [the_hub.runner(name) for name in dict.fromkeys(args.projection)]
            )
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
        logs = dict.fromkeys(n for r in runners for n in r.projection.logs)
        total = 0
        for log_name in logs:
            total += sum((await the_hub.log.end_offsets(log_name)).values())
        names = ", ".join(r.name for r in runners)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task(f"rebuilding {names}", total=total or None)
            read = await rebuild_together(runners, lambda n: progress.advance(task, n))
            progress.update(task, total=read, completed=read)
        for runner in runners:
            print(  # noqa: T201
                f"rebuilt {runner.name} from offset 0: {runner.stats.applied} applied, "
                f"{runner.stats.dead_lettered} dead-lettered"
            )
        print(f"{read} log records read once for {len(runners)} projection(s)")  # noqa: T201
        return 0

    return _with_hub(args, run)


# -- dead letters ---------------------------------------------------------------------------
async def _dead_letters(the_hub: Hub) -> list[Any]:
    from hub.deadletter import DeadLetterEntry
    from hub.log import LogName

    out: list[DeadLetterEntry] = []
    for part in range(the_hub.log.partitions(LogName.DEADLETTER)):
        offset = 0
        while True:
            batch = await the_hub.log.read(LogName.DEADLETTER, part, offset, 500)
            if not batch:
                break
            out.extend(DeadLetterEntry.from_record(r) for r in batch)
            offset = batch[-1].offset + 1
    out.sort(key=lambda e: e.at)
    return out


def cmd_deadletter_list(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        entries = await _dead_letters(the_hub)
        if not entries:
            print("no dead-letters")  # noqa: T201
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "at", "consumer", "source", "attempts", "reason")
        for e in entries[-args.limit :]:
            source = (
                f"{e.source_topic} {e.source_partition}:{e.source_offset}"
                if e.source_partition is not None
                else (e.source_topic or "-")
            )
            table.add_row(e.id, e.at, e.consumer, source, str(e.attempts), e.reason)
        Console(width=200).print(table)
        print(f"{len(entries)} dead-letter(s)")  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_deadletter_replay(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        entries = {e.id: e for e in await _dead_letters(the_hub)}
        entry = entries.get(args.id)
        if entry is None:
            raise CliError(f"no dead-letter with id {args.id} (see `hub deadletter list`)")
        if entry.consumer == "notifier":
            return await _replay_notice(the_hub, entry, args.id)
        kind, _, name = entry.consumer.partition(":")
        if kind != "projection":
            raise CliError(f"dead-letters of consumer {entry.consumer!r} cannot be replayed yet")
        try:
            runner = the_hub.runner(name)
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
        from hub.errors import PermanentError

        try:
            outcome = await runner.apply_dead_letter(entry)
        except PermanentError as exc:
            raise CliError(f"still failing: {exc}") from None
        print(f"{args.id}: {outcome}")  # noqa: T201
        return 0 if outcome == "applied" else 1

    return _with_hub(args, run)


async def _replay_notice(the_hub: Hub, entry: Any, dlq_id: str) -> int:
    """A dead notification is queued to be sent again, its attempts counted afresh."""
    from datetime import UTC, datetime

    import orjson

    notice = orjson.loads(entry.record.value).get("notice_id")
    if not isinstance(notice, str):
        raise CliError(f"dead-letter {dlq_id} names no notice")
    again = await the_hub.outbox.revive(notice, datetime.now(UTC))
    print(f"{dlq_id}: " + ("queued to be sent again" if again else "not dead (replayed before)"))  # noqa: T201
    return 0 if again else 1


# -- schema ---------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the read store's schema to the newest revision (every process also does this
    at start-up, under the same lock); says what it applied."""
    settings = _settings(args)
    _configure_logging(settings)

    async def run() -> int:
        from hub.store import schema

        if settings.store_backend == "postgres":
            if settings.postgres_dsn is None:  # the settings validator already refuses this
                raise CliError("HUB_POSTGRES_DSN is required for the postgres store")
            dsn = settings.postgres_dsn.get_secret_value()
            report = await schema.migrate_postgres(dsn, settings.postgres_schema)
        else:
            report = await schema.migrate_sqlite(settings.store_path)
        if report.applied:
            done = ", ".join(report.applied)
            print(f"schema migrated from {report.before or 'empty'} to {report.head}: {done}")  # noqa: T201
        else:
            print(f"schema is current (revision {report.head})")  # noqa: T201
        return 0

    return asyncio.run(run())


# -- keys -----------------------------------------------------------------------------
def _with_keys(args: argparse.Namespace, fn: Callable[[ApiKeys], Awaitable[int]]) -> int:
    """Run `fn` on the hub's API key store (set up first)."""

    async def run(the_hub: Hub) -> int:
        return await fn(the_hub.api_keys)

    return _with_hub(args, run)


def cmd_keys_create(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from hub.auth.keys import Identity, Publishing

        agency, identity, publishing = args.agency, None, None
        organisations: list[str] = args.organisation or []
        try:
            if args.role == "practitioner":
                if not args.practitioner_id or not args.policy_role:
                    raise ValueError(
                        "a practitioner key needs --practitioner-id (as team events name "
                        "them, e.g. gmc:C9900010) and --policy-role (e.g. senco)"
                    )
                if len(organisations) > 1:
                    raise ValueError("a practitioner key names one --organisation")
                agency, identity = Identity.practitioner(
                    the_hub.policy,
                    args.practitioner_id,
                    args.policy_role,
                    organisations[0] if organisations else None,
                )
            elif args.practitioner_id or args.policy_role:
                raise ValueError("--practitioner-id and --policy-role are for --role practitioner")
            elif args.role == "agency":
                if args.sender is not None and args.sender not in the_hub.policy.senders:
                    kinds = ", ".join(the_hub.policy.senders)
                    raise ValueError(f"--sender must be one of the policy's senders: {kinds}")
                publishing = Publishing(args.sender, tuple(organisations))
            elif organisations or args.sender:
                raise ValueError(
                    "--organisation is for --role practitioner or agency; --sender for agency"
                )
            if args.role == "family":
                raise ValueError(
                    "family keys come from an invitation: a coordinator issues one with "
                    "POST /children/{id}/invitations and the family redeems it"
                )
            key_id, token = await the_hub.api_keys.create(
                args.role, args.name, agency, identity, publishing
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
        agency_words = f", agency {agency}" if agency else ""
        print(f"created key {key_id} for {args.name} (role {args.role}{agency_words})")  # noqa: T201
        print("the token is shown once; store it now:")  # noqa: T201
        print(token)  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def run(keys: ApiKeys) -> int:
        n = await keys.revoke(args.key)
        if n == 0:
            raise CliError(f"no active key with id or name {args.key!r}")
        print(f"revoked {n} key(s)")  # noqa: T201
        return 0

    return _with_keys(args, run)


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def run(keys: ApiKeys) -> int:
        for k in await keys.list():
            state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
            print(f"{k.key_id}\t{k.role}\t{k.agency or '-'}\t{k.name}\t{state}")  # noqa: T201
        return 0

    return _with_keys(args, run)


# -- consent and information governance ---------------------------------------------------
def cmd_erase(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from hub.errors import NotFound

        try:
            deleted = await the_hub.handlers.erase_child(
                args.child_id, actor=f"cli:{args.by}", reason=args.reason
            )
        except NotFound as exc:
            raise CliError(str(exc)) from None
        print(f"erased {args.child_id}: {deleted} data key(s) deleted; tombstone appended")  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    exported = None
    if args.heads is not None:
        from pydantic import ValidationError

        from hub.consent.audit_heads import HeadsExport

        try:
            exported = HeadsExport.model_validate_json(args.heads.read_bytes())
        except (OSError, ValidationError) as exc:
            raise CliError(f"cannot read exported heads from {args.heads}: {exc}") from None

    async def run(the_hub: Hub) -> int:
        from hub.queries.audit import verify_trail

        result = await verify_trail(the_hub.reads, exported)
        for note in result.notes:
            print(f"note: {note}")  # noqa: T201
        if result.ok:
            print(  # noqa: T201
                f"audit trail verifies: {result.checked} records in {result.chains} chain(s), "
                f"{result.heads} signed head(s) match"
            )
            return 0
        b = result.first_broken
        if b is not None:
            where = f"{b.chain} record {b.index} (seq {b.seq}, id {b.record_id})"
            print(f"audit trail BROKEN at {where}: {b.reason}")  # noqa: T201
        for problem in result.problems:
            print(f"audit trail BROKEN: {problem.chain}: {problem.reason}")  # noqa: T201
        return 1

    return _with_hub(args, run)


def cmd_audit_heads(args: argparse.Namespace) -> int:
    """Print every chain's signed head and the public key, as JSON (for IG to keep)."""

    async def run(the_hub: Hub) -> int:
        from hub.queries.audit import signed_heads

        export = await signed_heads(the_hub.reads)
        print(export.model_dump_json(indent=2))  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_audit_trail(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from hub.queries.audit import operator_child_trail

        rows = await operator_child_trail(the_hub.reads, args.child)
        for rec in rows:
            d = rec["details"]
            what = d.get("outcome") or ""
            extra = d.get("reason") or d.get("route") or d.get("event_type") or ""
            print(f"{rec['at']}  {rec['kind']:<18} {what:<9} {rec['actor']:<28} {extra}")  # noqa: T201
        print(f"{len(rows)} record(s)")  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_consent_review(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from datetime import UTC, datetime

        at = datetime.fromisoformat(args.at).astimezone(UTC) if args.at else None
        result = await the_hub.handlers.review_consents(at=at)
        print(  # noqa: T201
            f"consents reviewed for {result['children_reviewed']} child(ren): "
            f"{result['expired']} expired; withheld facts re-decided"
        )
        return 0

    return _with_hub(args, run)


def cmd_retention_run(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from datetime import date

        today = date.fromisoformat(args.today) if args.today else date.today()
        done = await the_hub.handlers.apply_retention(today=today)
        for child, category in done:
            print(f"erased {category} of {child}")  # noqa: T201
        print(f"retention as of {today.isoformat()}: {len(done)} category record(s) erased")  # noqa: T201
        return 0

    return _with_hub(args, run)


# -- demo -----------------------------------------------------------------------------
def _demo_load_and_describe(
    args: argparse.Namespace,
    settings: Settings,
    data_dir: Path,
    url: str,
    say: Callable[[str], None],
) -> list[str]:
    """Load the synthetic cohort into a fresh demo dir; the lines to print about it."""
    import os

    from hub.demo import COORDINATOR, IG_AUDITOR, DemoLoadError, run_demo_load

    say(f"loading {args.children} synthetic children (seed {args.seed}) into {data_dir.resolve()}")
    try:
        cohort, result = asyncio.run(
            run_demo_load(settings, children=args.children, seed=args.seed, progress=say)
        )
    except DemoLoadError as exc:
        raise CliError(f"the demo could not be loaded: {exc}") from None
    keys_file = data_dir / "demo-keys.txt"
    fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(f"{name}\t{token}\n" for name, token in result.keys.tokens.items())
    big = result.child_id(cohort.big_team_child)
    counts = ", ".join(f"{n} {k}" for k, n in result.outcomes.most_common() if n)
    coordinator, auditor = result.keys.coordinator, result.keys.ig_auditor
    lines = [
        "",
        f"loaded in {result.seconds:.1f} s: {len(cohort.children)} children, "
        f"{len(result.plan_ids)} EHC plans, {sum(result.outcomes.values())} facts from agency "
        f"systems ({counts})",
        "",
        f"TAC Hub demo on {url}   (API docs: {url}/docs; data dir: {data_dir.resolve()})",
        "",
        f"demo coordinator ({COORDINATOR}, all {len(cohort.children)} children on the caseload):",
        coordinator,
        "",
        f"IG auditor ({IG_AUDITOR}):",
        auditor,
        "",
        *_team_token_lines(result.keys.tokens, big),
        f"(admin and agency tokens: {keys_file.resolve()})",
        "",
        *_web_sign_in_lines(url),
        *_demo_notify_lines(settings),
        "try:",
        f'  curl -H "Authorization: Bearer {coordinator}" {url}/caseload',
        f'  curl -H "Authorization: Bearer {coordinator}" {url}/children/{big}/team',
        f'  curl -H "Authorization: Bearer {auditor}" {url}/audit/verify',
        *_team_try_lines(result.keys.tokens, url, big),
        "",
        "Ctrl-C stops it; `hub demo` again serves the same data (`--fresh` reloads it).",
    ]
    return lines


def _demo_notify_lines(settings: Settings) -> list[str]:
    """Run the notifier once over the loaded demo (into the local mailbox) and say where
    the demo coordinator's overdue-advice notification is."""
    from hub.demo import COORDINATOR
    from hub.demo.notices import send_demo_notices

    out = asyncio.run(send_demo_notices(settings, COORDINATOR))
    lines = [f"notifications: {out.sent} written to the local mailbox {out.mailbox}"]
    if out.overdue_advice is not None:
        lines.append(f"an overdue-advice notification: {out.overdue_advice}")
    return [*lines, ""]


def _web_sign_in_lines(url: str) -> list[str]:
    """Where a person signs in to the web pages, and with what."""
    return [
        f"web pages: open {url}/sign-in and sign in with any token above (coordinator, IG",
        "auditor, practitioner, parent): each sees the pages of its role (the practitioner",
        f"also their actions and advice due at {url}/my-work; the parent who can see what at",
        "/our-child/<id>/sharing, and the forms to give consent, add views and comment on a draft)",
        "",
    ]


def _team_token_lines(tokens: dict[str, str], child: str | None) -> list[str]:
    """The practitioner's and the parent's tokens, for the demo's printout."""
    from hub.demo import PARENT, PRACTITIONER

    lines = []
    if PRACTITIONER in tokens:
        lines += [f"a practitioner ({PRACTITIONER}: the SENCo on child {child}'s team):",
                  tokens[PRACTITIONER], ""]  # fmt: skip
    if PARENT in tokens:
        lines += [f"a parent ({PARENT}: of child {child}, from a redeemed invitation):",
                  tokens[PARENT], ""]  # fmt: skip
    return lines


def _team_try_lines(tokens: dict[str, str], url: str, child: str | None) -> list[str]:
    from hub.demo import PARENT, PRACTITIONER

    lines = []
    if PRACTITIONER in tokens:
        lines.append(f'  curl -H "Authorization: Bearer {tokens[PRACTITIONER]}" {url}/me/children')
        if child:
            lines.append(
                f'  curl -H "Authorization: Bearer {tokens[PRACTITIONER]}" '
                f'"{url}/fhir/CareTeam?patient={child}"'
            )
    if PARENT in tokens and child:
        lines.append(
            f'  curl -H "Authorization: Bearer {tokens[PARENT]}" {url}/children/{child}/access-log'
        )
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the hub on a fresh demo data dir, load the synthetic cohort through the real
    adapters and routes in-process, print the URL and tokens, then serve it like `serve`."""
    import socket

    from hub.api.app import create_app
    from hub.api.server import StartupFailed, serve
    from hub.demo import (
        COORDINATOR,
        IG_AUDITOR,
        DemoDirError,
        prepare_demo_dir,
    )

    if args.children < 1:
        raise CliError("--children must be at least 1")
    from hub.demo import MARKER

    keys_file = args.data_dir / "demo-keys.txt"
    reuse = not args.fresh and (args.data_dir / MARKER).is_file() and keys_file.is_file()
    if not reuse:
        try:
            data_dir = prepare_demo_dir(args.data_dir)
        except DemoDirError as exc:
            raise CliError(str(exc)) from None
    else:
        data_dir = args.data_dir
    settings = _settings(
        argparse.Namespace(data_dir=data_dir), host=args.host, port=args.port,
        log_backend="sqlite", store_backend="sqlite", sqlite_synchronous="NORMAL",
        log_level="WARNING", notify_default_channel="mailbox",
        notify_base_url=f"http://{args.host}:{args.port}",
    )  # fmt: skip
    _configure_logging(settings)
    with socket.socket() as probe:  # fail before loading, not after, if the port is taken
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            raise CliError(f"cannot listen on {where}: {exc.strerror}") from None

    def say(line: str) -> None:
        print(f"  {line}", flush=True)  # noqa: T201

    url = f"http://{settings.host}:{settings.port}"
    if reuse:
        tokens = dict(
            line.split("\t", 1)
            for line in keys_file.read_text(encoding="utf-8").splitlines()
            if "\t" in line
        )
        coordinator, auditor = tokens.get(COORDINATOR, "?"), tokens.get(IG_AUDITOR, "?")
        lines = [
            "",
            f"TAC Hub demo on {url}   (API docs: {url}/docs; data dir: {data_dir.resolve()})",
            "(the demo loaded before is kept, with everything added since; --fresh reloads it)",
            "",
            f"demo coordinator ({COORDINATOR}):",
            coordinator,
            "",
            f"IG auditor ({IG_AUDITOR}):",
            auditor,
            "",
            *_team_token_lines(tokens, None),
            f"(admin and agency tokens: {keys_file.resolve()})",
            "",
            *_web_sign_in_lines(url),
            "try:",
            f'  curl -H "Authorization: Bearer {coordinator}" {url}/caseload',
            f'  curl -H "Authorization: Bearer {auditor}" {url}/audit/verify',
            *_team_try_lines(tokens, url, None),
            "",
        ]
    else:
        lines = _demo_load_and_describe(args, settings, data_dir, url, say)
    print("\n".join(lines), flush=True)  # noqa: T201
    try:
        asyncio.run(serve(create_app(settings), settings, lambda _port: None))
    except StartupFailed as exc:
        raise CliError(f"cannot start: {exc}") from None
    return 0


# -- ingest, match queue, Kafka inbound -----------------------------------------------------
INGEST_FORMATS = (
    "ctf", "fhir", "cin", "ssda903", "json", "school-mis-json", "social-care-json", "family-json",
)  # fmt: skip


def _content_type_for(fmt: str, path: Path, data: bytes) -> tuple[str, str]:
    """(adapter format, content type) for a bulk file: `json` is told apart by its keys,
    FHIR and SSDA903 by the file's extension (XML, ndjson, CSV)."""
    suffix = path.suffix.lower()
    if fmt == "json":
        from hub.adapters.registry import format_for

        return format_for("any", "application/json", data), "application/json"
    if fmt == "fhir":
        kinds = {".xml": "application/fhir+xml", ".ndjson": "application/fhir+ndjson"}
        return "fhir", kinds.get(suffix, "application/fhir+json")
    if fmt == "ssda903":
        return "ssda903", "application/xml" if suffix == ".xml" else "text/csv"
    from hub.adapters.registry import DEFAULT_CONTENT_TYPE

    return fmt, DEFAULT_CONTENT_TYPE[fmt]


def _batches(facts: Sequence[Any], size: int) -> list[list[Any]]:
    """Batches of about `size` facts that never split one subject's facts (so a record
    for the match queue is one item), each subject's facts in their order."""
    by_subject: dict[str, list[Any]] = {}
    for fact in facts:
        by_subject.setdefault(fact.subject.model_dump_json(), []).append(fact)
    out: list[list[Any]] = [[]]
    for group in by_subject.values():
        if out[-1] and len(out[-1]) + len(group) > size:
            out.append([])
        out[-1].extend(group)
    return [b for b in out if b]


def cmd_ingest(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        data = path.read_bytes()
        header = args.header.read_bytes() if args.header is not None else None
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if header is not None and args.format != "ssda903":
        raise CliError("--header is the SSDA903 Header table: only with --format ssda903")
    if not args.as_key:
        raise CliError(
            "hub ingest needs --as KEY: the agency's API key (its name or key id, see `hub "
            "keys list`) the file is sent as; its sender kind and organisation codes say "
            "what the file's facts may claim (`hub keys create --role agency --sender KIND "
            "--organisation CODE ...`)"
        )

    async def run(the_hub: Hub) -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from hub.adapters.registry import check_format, parse
        from hub.auth.keys import sender_of
        from hub.errors import PermanentError

        keys = the_hub.api_keys
        try:
            publisher = await keys.publisher(args.as_key)
        except LookupError as exc:
            raise CliError(f"--as: {exc}") from None
        agency = publisher.agency or ""
        if args.agency is not None and args.agency != agency:
            raise CliError(
                f"--agency {args.agency!r} is not the agency of key {args.as_key!r} "
                f"({agency!r}): a file is sent as its key's agency"
            )
        sender = await sender_of(keys, publisher, also_bound=the_hub.settings.inbound_bound_codes)

        try:
            fmt, content_type = _content_type_for(args.format, path, data)
            # a file of another format is refused, never read as this one (a CTF as CIN)
            check_format(fmt, data, accepted=(fmt,), where=f"--format {args.format}")
            result = parse(
                fmt,
                data,
                content_type,
                agency,
                la_code=args.la_code,
                header=header,
                policy=the_hub.policy,
            )
        except PermanentError as exc:
            raise CliError(f"{path.name} cannot be read as {args.format}: {exc}") from None
        except (ValueError, TypeError, LookupError, ArithmeticError, RecursionError) as exc:
            raise CliError(
                f"{path.name}: the {args.format} adapter failed on it ({type(exc).__name__})"
            ) from None
        counts = dict.fromkeys(("appended", "withheld", "queued", "rejected", "duplicate"), 0)
        problems: list[str] = []
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task(f"{path.name} ({fmt})", total=len(result.facts))
            for batch in _batches(result.facts, args.batch):
                outcomes = await the_hub.handlers.submit_as_sender(
                    batch, sender=sender, actor=f"cli:{args.by}", batch_facts=len(batch)
                )
                for o in outcomes:
                    counts[o.status] += 1
                    if o.status == "rejected":
                        problems.append(f"rejected {o.ref}: {o.field or 'fact'}: {o.reason}")
                progress.advance(task, len(batch))
        if args.details:
            for line in problems:
                print(line)  # noqa: T201
            for n in result.not_taken:
                print(f"not taken {n.ref}: {n.field or '-'}: {n.reason} [{n.rule or n.kind}]")  # noqa: T201
        print(  # noqa: T201
            f"{path.name}: {len(result.facts)} facts read as {fmt}: "
            + ", ".join(f"{n} {status}" for status, n in counts.items())
            + f"; {len(result.not_taken)} not taken"
            + (
                ""
                if args.details or not (problems or result.not_taken)
                else " (--details lists why)"
            )
        )
        return 0

    return _with_hub(args, run)


def cmd_match_list(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from rich.console import Console
        from rich.table import Table

        from hub.queries.match_queue import review_queue

        items = await review_queue(
            the_hub.reads,
            actor=f"cli:{args.by}", route="hub match list",
            status=None if args.all else "pending", limit=args.limit,
        )  # fmt: skip
        if not items:
            print("the match queue is empty")  # noqa: T201
            return 0
        table = Table("item", "queued at", "reason", "from", "facts", "record", "candidates")
        for it in items:
            rec = it.get("record") or {}
            record = (
                " ".join(
                    str(rec.get(k) or "-")
                    for k in ("given_name", "family_name", "date_of_birth", "postcode")
                )
                if rec.get("readable") else f"{it.get('decision')} -> {it.get('child_id')}"
            )  # fmt: skip
            cands = ", ".join(
                f"{c['child_id']} (dob {c['recorded_date_of_birth'] or '?'}"
                + (", name+dob match" if c["name_and_date_of_birth_match"] else "") + ")"
                for c in it["candidates"]
            ) or "-"  # fmt: skip
            table.add_row(it["item_id"], it["queued_at"][:19], it["reason"], it["agency"],
                          str(it["facts_held"]), record, cands)  # fmt: skip
        Console(width=220).print(table)
        print(f"{len(items)} item(s); this read is in the audit trail")  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_match_resolve(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from hub.identity.match_queue import MatchError

        try:
            out = await the_hub.handlers.resolve_match(
                args.id,
                decision="link" if args.link else "keep_separate",
                child_id=args.link, actor=f"cli:{args.by}",
            )  # fmt: skip
        except MatchError as exc:
            raise CliError(exc.reason) from None
        statuses: dict[str, int] = {}
        for o in out.released:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        verb = "linked to" if out.decision == "link" else "kept separate as"
        print(  # noqa: T201
            f"{out.item_id} {verb} {out.child_id}: {len(out.released)} held fact(s) released ("
            + (", ".join(f"{n} {s}" for s, n in statuses.items()) or "none")
            + "); identifiers linked: "
            + (", ".join(out.identifiers_linked) or "none")
        )
        return 0

    return _with_hub(args, run)


def cmd_inbound(args: argparse.Namespace) -> int:
    from hub.adapters.inbound_kafka import asyncapi_yaml, create_inbound_app

    settings = _settings(args)
    if args.asyncapi:
        print(asyncapi_yaml(settings), end="")  # noqa: T201
        return 0
    _configure_logging(settings)
    if not settings.inbound_senders:
        raise CliError(
            "no inbound senders are configured: set HUB_INBOUND_SENDERS to say who publishes "
            'on each topic ({"<agency>": {"sender": KIND, "organisations": [CODE, ...]}}); '
            "a message on a topic without one is dead-lettered unread"
        )
    from hub.consent.policy import PolicyError

    try:
        app, _ = create_inbound_app(settings, agencies=args.agency or ())
    except (ValueError, PolicyError) as exc:
        raise CliError(str(exc)) from None
    topics = ", ".join(f"hub.inbound.{a}" for a in args.agency) if args.agency else "hub.inbound.*"
    print(f"inbound: consuming {topics} from {settings.kafka_bootstrap_servers}; Ctrl-C to stop",  # noqa: T201
          flush=True)  # fmt: skip
    asyncio.run(app.run())
    return 0


# -- notifications --------------------------------------------------------------------------
def cmd_notify_once(args: argparse.Namespace) -> int:
    from datetime import date

    async def run(the_hub: Hub) -> int:
        from hub.bootstrap import build_notifier

        today = date.fromisoformat(args.today) if args.today else None
        new, digests, report = await build_notifier(the_hub).once(today)
        print(f"notify: {new} new notice(s), {digests} digest(s); {report.line()}", flush=True)  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_notify_run(args: argparse.Namespace) -> int:
    import signal

    async def run(the_hub: Hub) -> int:
        from hub.bootstrap import build_notifier, run_notifier

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        notifier = build_notifier(the_hub)

        def say(line: str) -> None:
            print(line, flush=True)  # noqa: T201

        notifier.send.on_sent = lambda n, ch: say(f"sent {n.id} {n.kind} by {ch}")
        say(
            f"notifier running every {the_hub.settings.notify_interval_seconds:g} s; Ctrl-C to stop"
        )
        await run_notifier(notifier, stop, say)
        return 0

    return _with_hub(args, run)


def cmd_notify_prefs(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:
        from datetime import UTC, datetime

        from hub.notify.model import Preference

        outbox = the_hub.outbox
        recipient = args.recipient if ":" in args.recipient else f"coordinator:{args.recipient}"
        if args.channel is None:
            pref = await outbox.preference(recipient)
            if pref is None:
                print(f"{recipient}: no preference (the default channel applies)")  # noqa: T201
            else:
                print(f"{recipient}: {pref.channel}" + (" daily digest" if pref.digest else "")  # noqa: T201
                      + (" (address set)" if pref.address else ""))  # fmt: skip
            return 0
        pref = Preference(recipient, args.channel, args.address, args.digest)
        await outbox.set_preference(pref, datetime.now(UTC))
        print(f"{recipient}: {args.channel}" + (" daily digest" if args.digest else ""))  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_notify_webhook(args: argparse.Namespace) -> int:
    import os

    async def run(the_hub: Hub) -> int:
        from datetime import UTC, datetime

        if not args.url.startswith(("https://", "http://")):
            raise CliError("--url: must be an http(s) URL")
        secret = args.secret or os.environ.get("HUB_NOTIFY_WEBHOOK_SECRET")
        if not secret or len(secret) < 16:
            raise CliError("--secret (or HUB_NOTIFY_WEBHOOK_SECRET): 16 characters or more")
        await the_hub.outbox.set_webhook(args.agency, args.url, secret, datetime.now(UTC))
        print(f"agency {args.agency}: webhook set (signed with its secret)")  # noqa: T201
        return 0

    return _with_hub(args, run)


def cmd_notify_status(args: argparse.Namespace) -> int:
    async def run(the_hub: Hub) -> int:

        counts = await the_hub.outbox.counts()
        print(", ".join(f"{n} {s}" for s, n in counts.items()) or "the outbox is empty")  # noqa: T201
        return 0

    return _with_hub(args, run)


def _add_notify_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    notify = sub.add_parser("notify", help="notifications: send, preferences, webhooks")
    nsub = notify.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = nsub.add_parser(
        "once", help="derive today's notices and send what is due", parents=[common]
    )
    p.add_argument("--today", default=None, help="as of this date (YYYY-MM-DD; default today)")
    p.set_defaults(fn=cmd_notify_once)
    p = nsub.add_parser("run", help="run the notifier loop alone", parents=[common])
    p.set_defaults(fn=cmd_notify_run)
    p = nsub.add_parser("prefs", help="show or set how a recipient is told", parents=[common])
    p.add_argument("recipient", help="a coordinator's name (or coordinator:NAME, agency:NAME)")
    p.add_argument("--channel", choices=("email", "notify", "mailbox", "webhook", "none"))
    p.add_argument("--address", default=None, help="email address for email / notify")
    p.add_argument("--digest", action="store_true", help="one message a day instead of each")
    p.set_defaults(fn=cmd_notify_prefs)
    p = nsub.add_parser("webhook", help="set an agency's webhook URL and secret", parents=[common])
    p.add_argument("agency")
    p.add_argument("--url", required=True)
    p.add_argument("--secret", default=None, help="signing secret (or HUB_NOTIFY_WEBHOOK_SECRET)")
    p.set_defaults(fn=cmd_notify_webhook)
    p = nsub.add_parser("status", help="notices in the outbox by status", parents=[common])
    p.set_defaults(fn=cmd_notify_status)


# -- parser ---------------------------------------------------------------------------
ROLES = ("agency", "coordinator", "practitioner", "ig_auditor", "admin")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory of the embedded default's files (default: $HUB_DATA_DIR or ./data)",
    )
    parser = argparse.ArgumentParser(
        prog="hub",
        description="TAC Hub: the shared picture of the team around a child with SEND.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, help_: str, fn: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(fn=fn)
        return p

    for name, help_, fn in (
        ("serve", "run the API and the projector in one process", cmd_serve),
        ("api", "run the HTTP API only (scale-out)", cmd_api),
    ):
        p = add(name, help_, fn)
        p.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
        )
        p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    add("projector", "run the projections only (scale-out)", cmd_projector)
    add("migrate", "bring the read store's schema to the newest revision", cmd_migrate)
    p = sub.add_parser(
        "demo",
        help="run the hub on a synthetic demo cohort (loaded on first run, then kept)",
        description="Start the hub on the embedded default in a fresh demo data directory, "
        "load a synthetic cohort through the real adapters and routes, print the URL and the "
        "demo coordinator's and IG auditor's tokens, and serve it.",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("demo-data"),
        help="demo data directory (default ./demo-data); kept across runs",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="wipe the demo data directory and load the cohort again",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--children", type=int, default=40, help="children in the cohort (default 40)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic cohort (default 7)")
    p.set_defaults(fn=cmd_demo)
    p = add("replay", "rebuild projections from offset 0", cmd_replay)
    p.add_argument(
        "--projection",
        action="append",
        default=[],
        help="projection name, e.g. event_counts (repeat for several)",
    )
    p.add_argument("--all", action="store_true", help="every projection, in one pass over the logs")

    dl = sub.add_parser("deadletter", help="inspect and replay dead-letters")
    dl_sub = dl.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = dl_sub.add_parser("list", help="list dead-letters with their reasons", parents=[common])
    p.add_argument("--limit", type=int, default=100, help="show the newest N (default 100)")
    p.set_defaults(fn=cmd_deadletter_list)
    p = dl_sub.add_parser("replay", help="apply one dead-letter again", parents=[common])
    p.add_argument("id", help="dead-letter id from `hub deadletter list`")
    p.set_defaults(fn=cmd_deadletter_replay)

    p = add("erase", "erase a child's personal data (deletes their data keys)", cmd_erase)
    p.add_argument("child_id", help="hub child id")
    p.add_argument("--reason", required=True, help="why (e.g. the erasure request reference)")
    p.add_argument("--by", default="admin", help="who asked (recorded in the audit trail)")
    audit = sub.add_parser("audit", help="verify and read the audit trail")
    audit_sub = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = audit_sub.add_parser("verify", help="check every hash of the trail", parents=[common])
    p.add_argument(
        "--heads", type=Path, default=None,
        help="heads exported earlier (`hub audit heads`): no chain may hold less than then",
    )  # fmt: skip
    p.set_defaults(fn=cmd_audit_verify)
    p = audit_sub.add_parser(
        "heads", help="the signed chain heads and public key, as JSON", parents=[common]
    )
    p.set_defaults(fn=cmd_audit_heads)
    p = audit_sub.add_parser("trail", help="one child's trail, in order", parents=[common])
    p.add_argument("--child", required=True, help="hub child id")
    p.set_defaults(fn=cmd_audit_trail)
    consent = sub.add_parser("consent", help="consent housekeeping")
    consent_sub = consent.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = consent_sub.add_parser(
        "review",
        help="expire ended or lapsed consents and re-decide withheld facts (run daily)",
        parents=[common],
    )
    p.add_argument("--at", default=None, help="as of this time (ISO 8601; default now)")
    p.set_defaults(fn=cmd_consent_review)
    retention = sub.add_parser("retention", help="apply the retention rules of the policy")
    retention_sub = retention.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = retention_sub.add_parser(
        "run", help="erase categories past their retention", parents=[common]
    )
    p.add_argument("--today", default=None, help="as of this date (YYYY-MM-DD; default today)")
    p.set_defaults(fn=cmd_retention_run)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = keys_sub.add_parser(
        "create", help="create an API key; prints the token once", parents=[common]
    )
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", required=True, help="who or what holds the key")
    p.add_argument("--agency", default=None, help="the agency an `agency` key publishes as")
    p.add_argument(
        "--practitioner-id",
        default=None,
        help="a practitioner key: their id as team events name them (e.g. gmc:C9900010)",
    )
    p.add_argument(
        "--policy-role",
        default=None,
        help="a practitioner key: their role in the policy's vocabulary (e.g. senco)",
    )
    p.add_argument(
        "--organisation",
        action="append",
        default=None,
        help="a practitioner key: their ODS/URN code; an agency key: an organisation code it "
        "publishes as (repeat for each; a key with none may not name a code bound to another key)",
    )
    p.add_argument(
        "--sender",
        default=None,
        help="an agency key: its kind of sender in the policy's `senders` (education, health, "
        "social_care, local_authority, ...), which says the statutory bases it may claim; "
        "without it the key claims none",
    )
    p.set_defaults(fn=cmd_keys_create)
    p = keys_sub.add_parser("revoke", help="revoke a key by id or name", parents=[common])
    p.add_argument("key", help="key id or name")
    p.set_defaults(fn=cmd_keys_revoke)
    p = keys_sub.add_parser("list", help="list keys (never their secrets)", parents=[common])
    p.set_defaults(fn=cmd_keys_list)
    p = add("ingest", "ingest a bulk file through its adapter and the consent gate", cmd_ingest)
    p.add_argument("file", type=Path, help="the file: CTF, FHIR, CIN, SSDA903 or a JSON form")
    p.add_argument(
        "--format",
        required=True,
        choices=INGEST_FORMATS,
        help="its format (json: the school MIS, social care or family form, told apart "
        "by its keys; fhir and ssda903: XML, ndjson or CSV by the file's extension)",
    )
    p.add_argument(
        "--as",
        dest="as_key",
        metavar="KEY",
        default=None,
        help="required: the agency API key (name or key id) the file is sent as; its agency, "
        "sender kind and organisation codes say what the facts may claim, as on HTTP",
    )
    p.add_argument(
        "--agency", default=None, help="the agency that sent it (must be the --as key's)"
    )
    p.add_argument(
        "--la-code",
        default=None,
        help="the LA's 3-digit code (SSDA903; CIN files without an LEA in their header)",
    )
    p.add_argument(
        "--header",
        type=Path,
        default=None,
        help="SSDA903: the Header table CSV sent with an Episodes CSV (its UPN and date of "
        "birth name each child in the episodes too)",
    )
    p.add_argument("--batch", type=int, default=2000, help="facts per gate batch (default 2000)")
    p.add_argument(
        "--details", action="store_true", help="list every fact rejected and every part not taken"
    )
    p.add_argument("--by", default="admin", help="who ran it (recorded in the audit trail)")
    _add_notify_parser(sub, common)
    match = sub.add_parser(
        "match", help="the match queue: records waiting for a person to confirm who they are about"
    )
    match_sub = match.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = match_sub.add_parser(
        "list", help="the waiting records and their candidates (audited)", parents=[common]
    )
    p.add_argument("--all", action="store_true", help="decided items too")
    p.add_argument("--limit", type=int, default=100, help="at most N items (default 100)")
    p.add_argument("--by", default="admin", help="who is reading (recorded in the audit trail)")
    p.set_defaults(fn=cmd_match_list)
    p = match_sub.add_parser(
        "resolve", help="link a record to a child, or keep it separate", parents=[common]
    )
    p.add_argument("id", help="match queue item id (mq-...)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--link", metavar="CHILD", help="the hub child id the record is about")
    how.add_argument("--keep-separate", action="store_true", help="a new child of its own")
    p.add_argument("--by", default="admin", help="who decided (recorded in the audit trail)")
    p.set_defaults(fn=cmd_match_resolve)
    p = add("inbound", "consume the hub.inbound.<agency> Kafka topics", cmd_inbound)
    p.add_argument(
        "--agency",
        action="append",
        default=[],
        help="consume this agency's topic (repeatable; default: all hub.inbound.*)",
    )
    p.add_argument("--asyncapi", action="store_true", help="print the AsyncAPI document and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.fn(args)
        return result
    except CliError as exc:
        print(f"hub: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
