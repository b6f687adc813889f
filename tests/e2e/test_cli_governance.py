"""The IG commands on a real data directory: `hub audit verify`, `hub audit trail`,
`hub retention run` and `hub erase`, as a person runs them."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

from hub.bootstrap import open_hub
from hub.events import Source
from hub.events.education import SenStatusRecorded
from hub.ingest.model import InboundFact, Subject
from hub.settings import Settings
from tests.e2e.test_serve import hub_cli
from tests.support.processes import hub_env


async def seed(data: Path) -> str:
    the_hub = await open_hub(Settings(data_dir=data, _env_file=None))  # type: ignore[call-arg]
    try:
        [out] = await the_hub.handlers.submit_facts(
            [
                InboundFact(
                    subject=Subject(upn="H801200001001", date_of_birth=date(2000, 1, 1)),
                    payload=SenStatusRecorded(sen_provision="K", start_date=date(2010, 9, 1)),
                    occurred_at=datetime(2010, 9, 2, tzinfo=UTC),
                    source=Source(agency="oak-school", message_id="m1"),
                    ref="sen",
                )
            ],
            actor="test",
        )
        assert out.child_id
        return out.child_id
    finally:
        await the_hub.close()


def test_audit_retention_and_erase_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = asyncio.run(seed(data))
    env = hub_env()

    ok = hub_cli("audit", "verify", "--data-dir", str(data), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "audit trail verifies:" in ok.stdout

    trail = hub_cli("audit", "trail", "--child", child, "--data-dir", str(data), env=env)
    assert trail.returncode == 0, trail.stderr
    assert "decision" in trail.stdout and "withhold" in trail.stdout

    # nothing is due yet in 2020 (DOB 2000 + 25 years)
    early = hub_cli("retention", "run", "--today", "2020-01-01", "--data-dir", str(data), env=env)
    assert early.returncode == 0, early.stderr
    assert "0 category record(s) erased" in early.stdout

    due = hub_cli("retention", "run", "--today", "2099-01-01", "--data-dir", str(data), env=env)
    assert due.returncode == 0, due.stderr
    assert f"erased education of {child}" in due.stdout
    assert "1 category record(s) erased" in due.stdout
    assert (
        "retention"
        in hub_cli("audit", "trail", "--child", child, "--data-dir", str(data), env=env).stdout
    )

    erased = hub_cli(
        "erase", child, "--reason", "SAR-123 erasure", "--data-dir", str(data), env=env
    )
    assert erased.returncode == 0, erased.stderr
    assert f"erased {child}" in erased.stdout

    again = hub_cli("audit", "trail", "--child", child, "--data-dir", str(data), env=env)
    assert "erasure" in again.stdout
    verify = hub_cli("audit", "verify", "--data-dir", str(data), env=env)
    assert verify.returncode == 0

    missing = hub_cli("erase", "hc-nobody", "--reason", "x", "--data-dir", str(data), env=env)
    assert missing.returncode == 2 and "no child hc-nobody" in missing.stderr
