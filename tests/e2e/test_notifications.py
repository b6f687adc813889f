"""Notifications against real receivers: an SMTP server process (aiosmtpd, on loopback,
writing a maildir) and a webhook receiver process, with `hub notify` run as a real
process. Derived from a real log (the demo cohort, loaded through the real routes):
overdue and due-soon advice and milestones to the coordinator by email, the same to an
agency's signed webhook, nothing personal in either, nothing sent twice. A notifier
killed mid-run and restarted delivers every notice (counted by Message-ID); an SMTP
server that is down means retries, then a dead-letter line with the reason; two
notifiers at once on PostgreSQL never send one notice twice."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.log import LogName
from hub.notify.model import make_notice
from hub.settings import Settings
from hub.store.notify_outbox import SqlOutbox
from tests.support.mail import (
    free_port,
    messages,
    requests,
    smtp_server,
    wait_until,
    webhook_receiver,
)
from tests.support.processes import hub_env, kill_hard, start_hub, stop

SECRET = "a-webhook-secret-of-the-education-agency"
AGENCIES = ("eastbrook-primary", "larkfield-school", "eastbrook-community-health")


def hub_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small demo cohort, loaded once through the real routes (copied per test)."""
    from hub.demo import prepare_demo_dir, run_demo_load

    base = prepare_demo_dir(tmp_path_factory.mktemp("notify") / "demo")
    settings = Settings(data_dir=base, sqlite_synchronous="NORMAL", _env_file=None)
    cohort, result = asyncio.run(run_demo_load(settings, children=6, seed=11))
    return base, (cohort, result)


def _copy(demo: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(demo, data)
    return data


def test_coordinators_by_email_and_agencies_by_signed_webhook_once_each_without_personal_data(
    demo_dir: tuple[Path, Any], tmp_path: Path
) -> None:
    from hub.demo import COORDINATOR

    data = _copy(demo_dir[0], tmp_path)
    cohort, _ = demo_dir[1]
    maildir, hooks = tmp_path / "maildir", tmp_path / "hooks.jsonl"
    with (
        smtp_server(maildir, tmp_path / "smtp.log") as smtp,
        webhook_receiver(hooks, tmp_path / "hook.log") as hook,
    ):
        env = hub_env(data_dir=str(data), notify_smtp_host="127.0.0.1", notify_smtp_port=str(smtp),
                      notify_base_url="https://hub.example.org")  # fmt: skip
        r = hub_cli(["notify", "prefs", COORDINATOR, "--channel", "email",
                     "--address", "coordinator@la.example.org"], env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        for agency in AGENCIES:  # the demo's schools and community health service
            r = hub_cli(["notify", "webhook", agency, "--url",
                         f"http://127.0.0.1:{hook}/hub", "--secret", SECRET], env)  # fmt: skip
            assert r.returncode == 0, r.stderr
        r = hub_cli(["notify", "once"], env)
        assert r.returncode == 0, r.stderr
        sent = int(re.search(r"; (\d+) sent", r.stdout).group(1))  # type: ignore[union-attr]
        mails = messages(maildir)
        posts = requests(hooks)
        assert sent == len(mails) + len(posts) and mails and posts, r.stdout

        # the coordinator: one message per notice, Message-ID the notice id, a link, no names
        subjects = Counter(m["Subject"] for m in mails)
        assert any("Advice for an EHC needs assessment is overdue" in s for s in subjects)
        assert any("Consent to share has changed" in s for s in subjects)  # from the log
        assert {m["To"] for m in mails} == {"coordinator@la.example.org"}
        ids = [m["Message-ID"] for m in mails]
        assert len(ids) == len(set(ids))
        names = {n for c in cohort.children for n in (c.given, c.family)}
        for m in mails:
            body = m.get_payload(decode=True).decode()
            assert re.search(r"https://hub\.example\.org/(plan|child)/[\w-]+", body), body
            assert not any(n in body or n in m["Subject"] for n in names), body
            assert re.search(r"\b\d{10}\b", body) is None  # no NHS number, no UPN digits

        # the agency: signed with its secret over timestamp + body, idempotency key = notice id
        for post in posts:
            head = {k.lower(): v for k, v in post["headers"].items()}
            stamp, sig = re.fullmatch(
                r"t=(\d+),v1=([0-9a-f]{64})", head["x-hub-signature"]
            ).groups()  # type: ignore[union-attr]
            want = hmac.new(SECRET.encode(), f"{stamp}.{post['body']}".encode(), hashlib.sha256)
            assert hmac.compare_digest(sig, want.hexdigest())
            body = json.loads(post["body"])
            assert head["idempotency-key"] == body["notice_id"]
            assert set(body) == {"notice_id", "kind", "child_id", "plan_id", "due_on", "link"}
            assert not any(n in post["body"] for n in names)

        # derived again, by a second run: the same notices, nothing sent twice
        r = hub_cli(["notify", "once"], env)
        assert r.returncode == 0 and "0 new notice(s)" in r.stdout and "; 0 sent" in r.stdout
        assert len(messages(maildir)) == len(mails) and len(requests(hooks)) == len(posts)

    # every send is in the audit trail
    async def audited() -> int:
        from hub.bootstrap import open_hub

        the_hub = await open_hub(Settings(data_dir=data, _env_file=None))
        try:
            runner = the_hub.runner("audit_index")
            for part in range(the_hub.log.partitions(LogName.AUDIT)):
                await runner.catch_up(LogName.AUDIT, part)
            row = await the_hub.store.fetchone(
                "SELECT COUNT(*) FROM audit_entry WHERE kind = 'notification'"
            )
            return int(row[0]) if row else 0
        finally:
            await the_hub.close()

    assert asyncio.run(audited()) == sent


# ------------------------------------------------------------ delivery: restart, failure


async def _seed(
    settings: Settings, n: int, *, recipient: str = "coordinator:c@la.example.org"
) -> list[str]:
    from hub.store.postgres import PostgresReadStore
    from hub.store.sqlite import SqliteReadStore

    if settings.store_backend == "postgres":
        assert settings.postgres_dsn is not None
        store: Any = PostgresReadStore(settings.postgres_dsn.get_secret_value(),
                                       schema=settings.postgres_schema)  # fmt: skip
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = SqliteReadStore(settings.store_path)
    await store.start()
    try:
        notices = [
            make_notice(
                "milestone_overdue",
                recipient,
                f"child-{i:04d}",
                f"final_plan:{i}",
                plan_id=f"plan-{i:04d}",
                due_on=date(2026, 11, 1),
            )
            for i in range(n)
        ]
        assert await SqlOutbox(store).add(notices, datetime.now(UTC)) == n
        assert await SqlOutbox(store).add(notices, datetime.now(UTC)) == 0  # once by id
        return [n.id for n in notices]
    finally:
        await store.close()


def _message_ids(maildir: Path) -> Counter[str]:
    return Counter(m["Message-ID"].strip("<>").split("@")[0] for m in messages(maildir))


def test_a_notifier_killed_mid_run_and_restarted_delivers_every_notice_once(tmp_path: Path) -> None:
    data, maildir = tmp_path / "data", tmp_path / "maildir"
    ids = asyncio.run(_seed(Settings(data_dir=data, _env_file=None), 120))
    with smtp_server(maildir, tmp_path / "smtp.log") as smtp:
        env = hub_env(data_dir=str(data), notify_smtp_host="127.0.0.1",
                      notify_smtp_port=str(smtp), notify_batch="1", notify_lease_seconds="2",
                      notify_interval_seconds="0.2")  # fmt: skip
        first = start_hub(["notify", "run"], env, tmp_path / "first.log")
        try:
            wait_until(lambda: len(messages(maildir)) >= 20, "20 messages delivered")
        finally:
            kill_hard(first)
        delivered = sum(_message_ids(maildir).values())
        assert 20 <= delivered < len(ids), "killed mid-run, after some but not all"
        second = start_hub(["notify", "run"], env, tmp_path / "second.log")
        try:
            wait_until(lambda: set(_message_ids(maildir)) >= set(ids), "every notice", 120)
        finally:
            assert stop(second) == 0
    counts = _message_ids(maildir)
    assert set(counts) == set(ids)
    # each notice exactly once by Message-ID, except at most the one in flight when the
    # first process was killed (accepted by the server, not yet recorded as sent): that
    # one is sent again with the same Message-ID, for the receiver to drop
    again = [i for i, n in counts.items() if n > 1]
    assert len(again) <= 1 and all(counts[i] == 2 for i in again), counts.most_common(3)


def test_an_smtp_server_that_is_down_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    [notice] = asyncio.run(_seed(Settings(data_dir=data, _env_file=None), 1))
    env = hub_env(data_dir=str(data), notify_smtp_host="127.0.0.1",
                  notify_smtp_port=str(free_port()), notify_max_attempts="3",
                  notify_backoff_seconds="0", notify_smtp_timeout_seconds="2")  # fmt: skip
    r = hub_cli(["notify", "once"], env)
    assert r.returncode == 0, r.stderr
    assert "0 sent" in r.stdout and "2 to retry, 1 dead-lettered" in r.stdout, r.stdout
    r = hub_cli(["notify", "status"], env)
    assert r.stdout.strip() == "1 dead", r.stdout
    r = hub_cli(["deadletter", "list"], env)
    assert r.returncode == 0 and "notifier" in r.stdout and notice in r.stdout, r.stdout
    assert "smtp:" in r.stdout
    # after the fix, the dead-letter is replayed: queued again, once
    [dlq] = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", r.stdout)
    r = hub_cli(["deadletter", "replay", dlq], env)
    assert r.returncode == 0 and "queued to be sent again" in r.stdout, r.stdout + r.stderr
    assert hub_cli(["notify", "status"], env).stdout.strip() == "1 pending"
    assert hub_cli(["deadletter", "replay", dlq], env).returncode == 1
    # a backoff keeps the next attempt in the outbox: not tried again before it is due
    data2 = tmp_path / "data2"
    asyncio.run(_seed(Settings(data_dir=data2, _env_file=None), 1))
    env2 = {**env, "HUB_DATA_DIR": str(data2), "HUB_NOTIFY_BACKOFF_SECONDS": "3600"}
    r = hub_cli(["notify", "once"], env2)
    assert "1 to retry, 0 dead-lettered" in r.stdout, r.stdout
    r = hub_cli(["notify", "once"], env2)
    assert "0 sent, 0 held for digests, 0 to retry" in r.stdout, r.stdout
    assert hub_cli(["notify", "status"], env2).stdout.strip() == "1 pending"


@pytest.mark.postgres
def test_two_notifiers_at_once_on_postgresql_never_send_a_notice_twice(
    tmp_path: Path, postgres_dsn: str, postgres_schema: str
) -> None:
    maildir = tmp_path / "maildir"
    pg = {"store_backend": "postgres", "postgres_dsn": postgres_dsn,
          "postgres_schema": postgres_schema}  # fmt: skip
    ids = asyncio.run(_seed(Settings(**pg, _env_file=None), 150))  # type: ignore[arg-type]
    with smtp_server(maildir, tmp_path / "smtp.log") as smtp:
        procs = []
        for i in range(2):
            env = hub_env(data_dir=str(tmp_path / "data"), notify_smtp_host="127.0.0.1",
                          notify_smtp_port=str(smtp), notify_batch="5",
                          notify_interval_seconds="0.2", **pg)  # fmt: skip
            procs.append(start_hub(["notify", "run"], env, tmp_path / f"n{i}.log"))
        try:
            wait_until(lambda: set(_message_ids(maildir)) >= set(ids), "every notice", 120)
        finally:
            codes = [stop(p) for p in procs]  # every one stopped, whatever the first says
        assert codes == [0, 0], codes
    counts = _message_ids(maildir)
    assert set(counts) == set(ids) and max(counts.values()) == 1, counts.most_common(3)
    both = [(tmp_path / f"n{i}.log").read_text().count("sent ntc-") for i in range(2)]
    assert sum(both) == len(ids) and min(both) > 0, both  # both took part


# ------------------------------------------------------------------ preferences over HTTP


async def test_a_coordinator_sets_their_own_preference_and_the_notifier_uses_it(
    tmp_path: Path,
) -> None:
    from tests.support.api import embedded, running_api

    settings = embedded(tmp_path)
    async with running_api(settings) as api:
        await api.key("cm.one", "coordinator")
        await api.key("cm.two", "coordinator")
        r = await api.client.get("/me/notification-preferences", headers=api.auth("cm.one"))
        assert r.status_code == 200, r.text
        assert r.json() == {"channel": "mailbox", "address": None, "digest": False,
                            "default": True}  # fmt: skip
        r = await api.client.put(
            "/me/notification-preferences", headers=api.auth("cm.one"),
            json={"channel": "email", "address": "one@la.example.org", "digest": True},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["channel"] == "email" and r.json()["default"] is False
        # each coordinator's own: the other's is untouched
        r = await api.client.get("/me/notification-preferences", headers=api.auth("cm.two"))
        assert r.json()["default"] is True
        # bad input: a clear problem naming the field
        for body, field in (
            ({"channel": "email"}, "address"),
            ({"channel": "pigeon"}, "channel"),
            ({"channel": "email", "address": "not an address"}, "address"),
            ({"channel": "none", "extra": 1}, "extra"),
        ):
            r = await api.client.put(
                "/me/notification-preferences", headers=api.auth("cm.one"), json=body
            )
            assert r.status_code == 422 and field in r.text, (body, r.text)
        pref = await SqlOutbox(api.hub.store).preference("coordinator:cm.one")
        assert pref is not None and pref.address == "one@la.example.org" and pref.digest


def test_hub_serve_runs_the_notifier_when_enabled(tmp_path: Path) -> None:
    data, maildir = tmp_path / "data", tmp_path / "maildir"
    ids = asyncio.run(_seed(Settings(data_dir=data, _env_file=None), 3))
    with smtp_server(maildir, tmp_path / "smtp.log") as smtp:
        env = hub_env(data_dir=str(data), notify_enabled="true", notify_smtp_host="127.0.0.1",
                      notify_smtp_port=str(smtp), notify_interval_seconds="0.2")  # fmt: skip
        proc = start_hub(["serve", "--port", str(free_port())], env, tmp_path / "serve.log")
        try:
            wait_until(lambda: set(_message_ids(maildir)) >= set(ids), "the seeded notices", 120)
        finally:
            assert stop(proc) in (0, -15), (tmp_path / "serve.log").read_text()[-2000:]
    assert sorted(_message_ids(maildir).elements()) == sorted(ids)
