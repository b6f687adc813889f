"""The README's run command (`hub demo`): it comes up, and a restart serves the same
data — everything appended is still there — until `--fresh` reloads it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.test_serve import count_events, wait_http
from tests.support.broker import free_port
from tests.support.processes import hub_env, start_hub, stop


def test_demo_restarts_on_its_own_data(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    port = free_port()
    logfile = tmp_path / "demo.log"
    args = ["demo", "--data-dir", str(data), "--port", str(port), "--children", "3"]
    proc = start_hub(args, hub_env(), logfile)
    try:
        health = wait_http(f"http://127.0.0.1:{port}/healthz", proc, logfile, timeout=180)
        assert health.status_code == 200
    finally:
        assert stop(proc) in (0, -15)
    first = asyncio.run(count_events(data))
    assert first > 0
    tokens = (data / "demo-keys.txt").read_text()
    assert_prints_a_sign_in_for_each_role(logfile.read_text(), tokens, port)

    proc = start_hub(args, hub_env(), logfile)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, logfile, timeout=60)
        coordinator = next(
            line.split("\t")[1]
            for line in tokens.splitlines()
            if line.startswith("demo-coordinator\t")
        )
        caseload = httpx.get(
            f"http://127.0.0.1:{port}/caseload",
            headers={"Authorization": f"Bearer {coordinator}"},
            timeout=10,
        )
        assert caseload.status_code == 200, caseload.text
        assert len(caseload.json()["children"]) == 3
    finally:
        assert stop(proc) in (0, -15)
    assert "kept" in logfile.read_text()
    assert_prints_a_sign_in_for_each_role(logfile.read_text(), tokens, port)
    assert asyncio.run(count_events(data)) == first
    assert (data / "demo-keys.txt").read_text() == tokens


def assert_prints_a_sign_in_for_each_role(printed: str, tokens: str, port: int) -> None:
    """The web pages' sign-in address, and a credential for each role that has pages."""
    assert f"http://127.0.0.1:{port}/sign-in" in printed, printed
    by_name = dict(line.split("\t", 1) for line in tokens.splitlines() if "\t" in line)
    for name in ("demo-coordinator", "demo-ig-auditor", "demo-practitioner", "demo-parent"):
        assert by_name[name] in printed, name
