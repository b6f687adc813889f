"""Signed audit heads through the running service and the command line: IG exports the
signed heads (`GET /audit/heads`, `hub audit heads`) and checks them offline with the
public key alone; after someone with the data files cuts the tail off a chain, both
`GET /audit/verify` and `hub audit verify` name that chain as truncated, and
`hub audit verify --heads` with the saved export names it as rewound."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import orjson

from hub.consent.audit_heads import check_export
from tests.e2e.test_cli_governance import seed
from tests.e2e.test_serve import hub_cli, wait_http
from tests.support.broker import free_port
from tests.support.processes import hub_env, start_hub, stop


def test_truncating_a_chain_is_named_by_verify_over_http_and_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(seed(data))
    env = hub_env()
    made = hub_cli("keys", "create", "--role", "ig_auditor", "--name", "ig", "--data-dir",
                   str(data), env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    auditor = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

    port = free_port()
    logfile = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    proc = start_hub(["serve", "--data-dir", str(data), "--port", str(port)], env, logfile)
    try:
        wait_http(f"{url}/healthz", proc, logfile)
        fine = httpx.get(f"{url}/audit/verify", headers=auditor, timeout=10).json()
        assert fine["ok"] and fine["problems"] == [] and fine["heads"] >= 1, fine
        heads = httpx.get(f"{url}/audit/heads", headers=auditor, timeout=10)
        assert heads.status_code == 200, heads.text
        export = heads.json()
        assert export["algorithm"] == "Ed25519"
        assert check_export(export, public_key=export["public_key"]) == []
        longest = max(export["heads"], key=lambda h: h["seq"])
        assert longest["seq"] >= 1
        part = int(longest["chain"].rsplit("/", 1)[1])

        with sqlite3.connect(data / "log.db") as db:  # the attacker, with the log file
            db.execute("DROP TRIGGER IF EXISTS log_hub_audit_no_delete")
            db.execute(
                "DELETE FROM log_hub_audit WHERE partition = ? AND offset >= ?",
                (part, longest["seq"] - 1),
            )

        broken = httpx.get(f"{url}/audit/verify", headers=auditor, timeout=10).json()
        assert not broken["ok"]
        [problem] = broken["problems"]
        assert problem["chain"] == longest["chain"] and problem["reason"].startswith("truncated")
        assert (problem["head_seq"], problem["found"]) == (longest["seq"], longest["seq"] - 1)
    finally:
        assert stop(proc) in (0, -15)

    cli = hub_cli("audit", "verify", "--data-dir", str(data), env=env)
    assert cli.returncode == 1
    assert f"audit trail BROKEN: {longest['chain']}: truncated" in cli.stdout
    saved = tmp_path / "heads.json"
    saved.write_bytes(orjson.dumps(export))
    against = hub_cli("audit", "verify", "--heads", str(saved), "--data-dir", str(data), env=env)
    assert against.returncode == 1
    assert f"audit trail BROKEN: {longest['chain']}: rewound" in against.stdout
    printed = hub_cli("audit", "heads", "--data-dir", str(data), env=env)
    assert printed.returncode == 0, printed.stderr
    assert orjson.loads(printed.stdout)["heads"] == export["heads"]  # the head is not moved
