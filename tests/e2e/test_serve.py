"""`hub serve` as a person runs it: it answers, it survives kill -9 with every appended
event still there, `hub keys create` prints a working token alone on its last line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.log import LogName
from hub.projections import all_projections
from tests.support.broker import free_port
from tests.support.factories import mixed_events, record_of
from tests.support.processes import hub_env, kill_hard, start_hub, stop


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hub exited early: {log.read_text()[-3000:]}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s: {log.read_text()[-3000:]}")


def hub_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def append_events(data_dir: Path, n_children: int, per_child: int) -> int:
    from hub.log.sqlite import SqliteEventLog

    log = SqliteEventLog(data_dir / "log.db")
    await log.start()
    try:
        envs = mixed_events(n_children, per_child)
        await log.append(LogName.EVENTS, [record_of(e) for e in envs])
        return len(envs)
    finally:
        await log.close()


async def count_events(data_dir: Path) -> int:
    from hub.log.sqlite import SqliteEventLog

    log = SqliteEventLog(data_dir / "log.db")
    await log.start()
    try:
        total = 0
        for p in range(log.partitions(LogName.EVENTS)):
            off = 0
            while batch := await log.read(LogName.EVENTS, p, off, 1000):
                total += len(batch)
                off = batch[-1].offset + 1
        return total
    finally:
        await log.close()


def test_serve_answers_and_survives_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = hub_env()
    port = free_port()
    logfile = tmp_path / "serve.log"
    args = ["serve", "--data-dir", str(data), "--port", str(port)]
    proc = start_hub(args, env, logfile)
    try:
        health = wait_http(f"http://127.0.0.1:{port}/healthz", proc, logfile)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        appended = asyncio.run(append_events(data, 50, 20))

        def lag() -> int:
            body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
            return int(sum(body["projection_lag"].values()))

        deadline = time.monotonic() + 30
        while lag() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lag() == 0
    finally:
        kill_hard(proc)

    assert asyncio.run(count_events(data)) == appended
    proc = start_hub(args, env, logfile)
    try:
        ready = wait_http(f"http://127.0.0.1:{port}/readyz", proc, logfile)
        assert ready.status_code == 200, ready.text
        assert ready.json()["log"] == "ok" and ready.json()["store"] == "ok"
        assert sum(ready.json()["projection_lag"].values()) == 0
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 401
    finally:
        assert stop(proc) in (0, -15)
    assert asyncio.run(count_events(data)) == appended


def test_keys_create_prints_the_token_alone_on_its_last_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = hub_env()
    made = hub_cli(
        "keys", "create", "--role", "admin", "--name", "ops", "--data-dir", str(data), env=env
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("thk_") and " " not in token

    port = free_port()
    logfile = tmp_path / "serve.log"
    proc = start_hub(["serve", "--data-dir", str(data), "--port", str(port)], env, logfile)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, logfile)
        me = httpx.get(
            f"http://127.0.0.1:{port}/whoami",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "admin" and me.json()["name"] == "ops"
        metrics = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert metrics.status_code == 200
        assert "hub_projection_lag" in metrics.text

        revoked = hub_cli("keys", "revoke", "ops", "--data-dir", str(data), env=env)
        assert revoked.returncode == 0, revoked.stderr
        again = httpx.get(
            f"http://127.0.0.1:{port}/whoami",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert again.status_code == 401
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--role", "agency", "--name", "x"], "agency"),
        (["replay", "--projection", "nope"], "no projection named 'nope'"),
        (["replay"], "name projections with --projection NAME"),
        (["replay", "--all", "--projection", "event_counts"], "or give --all"),
        (["deadletter", "replay", "nope"], "no dead-letter with id nope"),
    ],
)
def test_cli_errors_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = hub_cli(*args, "--data-dir", str(tmp_path / "d"), env=hub_env())
    assert out.returncode == 2
    assert out.stderr.startswith("hub: error: ") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_help_lists_the_commands() -> None:
    out = hub_cli("--help", env=hub_env())
    assert out.returncode == 0
    for cmd in ("serve", "api", "projector", "replay", "deadletter", "keys"):
        assert cmd in out.stdout


def test_replay_and_dead_letters_from_the_command_line(tmp_path: Path) -> None:
    from hub.log import NewRecord
    from hub.log.sqlite import SqliteEventLog

    data = tmp_path / "data"
    env = hub_env()

    async def seed() -> None:
        log = SqliteEventLog(data / "log.db")
        await log.start()
        envs = mixed_events(3, 4)
        await log.append(LogName.EVENTS, [record_of(e) for e in envs])
        await log.append(LogName.EVENTS, [NewRecord(key="child-0000", value=b'{"event_type": 7}')])
        await log.close()

    asyncio.run(seed())
    replay = hub_cli("replay", "--projection", "event_counts", "--data-dir", str(data), env=env)
    assert replay.returncode == 0, replay.stderr
    assert "rebuilt event_counts from offset 0: 12 applied, 1 dead-lettered" in replay.stdout
    assert "13 log records read once for 1 projection(s)" in replay.stdout

    listed = hub_cli("deadletter", "list", "--data-dir", str(data), env=env)
    assert listed.returncode == 0, listed.stderr
    assert "event_type: missing or not a string" in listed.stdout
    assert "1 dead-letter(s)" in listed.stdout
    dlq_id = next(
        line.split()[1] for line in listed.stdout.splitlines() if "projection:event_counts" in line
    ).strip("│ ")

    again = hub_cli("deadletter", "replay", dlq_id, "--data-dir", str(data), env=env)
    assert again.returncode == 2
    assert "still failing: event_type: missing or not a string" in again.stderr

    # every projection in one pass: the bad record is dead-lettered by each that reads it
    every = hub_cli("replay", "--all", "--data-dir", str(data), env=env)
    assert every.returncode == 0, every.stderr
    assert "rebuilt team_around_child from offset 0: " in every.stdout
    assert "rebuilt event_counts from offset 0: 12 applied, 1 dead-lettered" in every.stdout
    assert f"log records read once for {len(all_projections())} projection(s)" in every.stdout
