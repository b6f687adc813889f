"""`hub ingest` sends a file as an agency's API key (`--as KEY`), and what the file's facts
claim is judged against that key as on HTTP: a school's key cannot publish a CTF under
another school's code, nor the family portal's key a FHIR advice claiming a statutory
basis; each refusal names its rule (`--details`) and is in the audit trail, and nothing of
the refused facts is on the log. Without `--as`, or with a key that is not an agency's,
the command stops with an error saying what it needs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.bootstrap import open_hub
from hub.cli import main
from hub.log import LogName
from hub.settings import Settings
from tests.integration.test_inbound_kafka import GRYPHON_URN, TRUST_ODS, advice_bundle

OTHER_URN = "8881234"


def hub_cli(data: Path, *args: str) -> int:
    return main([*args, "--data-dir", str(data)])


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    data = tmp_path / "data"
    for name, agency, kind, orgs in (
        ("Oak School MIS", "oak-school", "education", [OTHER_URN]),
        ("Gryphon MIS", "gryphon", "education", [GRYPHON_URN]),
        ("Family portal", "family-portal", "family", []),
        ("City health", "city-health", "health", [TRUST_ODS]),
    ):
        org_args = [a for code in orgs for a in ("--organisation", code)]
        assert hub_cli(data, "keys", "create", "--role", "agency", "--name", name,
                       "--agency", agency, "--sender", kind, *org_args) == 0  # fmt: skip
    assert hub_cli(data, "keys", "create", "--role", "coordinator", "--name", "casey") == 0
    return data


def log_and_audit(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        the_hub = await open_hub(Settings(data_dir=data, _env_file=None))  # type: ignore[call-arg]
        try:
            out: dict[LogName, list[dict[str, Any]]] = {}
            for log in (LogName.EVENTS, LogName.WITHHELD, LogName.AUDIT):
                for part in range(the_hub.log.partitions(log)):
                    for r in await the_hub.log.read(log, part, 0, 10_000):
                        out.setdefault(log, []).append(orjson.loads(r.value))
            facts = out.get(LogName.EVENTS, []) + out.get(LogName.WITHHELD, [])
            return facts, out.get(LogName.AUDIT, [])
        finally:
            await the_hub.close()

    return asyncio.run(read())


def refusals(audit: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted(
        (a["actor"], a["details"]["rule"], a["details"]["agency"])
        for a in audit
        if a["details"].get("outcome") == "refused"
    )


def test_a_school_key_cannot_send_another_schools_file(
    data: Path, samples_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctf = samples_dir / "ctf" / "gryphon-y12.xml"
    assert hub_cli(data, "ingest", str(ctf), "--format", "ctf", "--as", "Oak School MIS",
                   "--by", "ops", "--details") == 0  # fmt: skip
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-1]
    assert " 0 appended, 0 withheld, 0 queued," in summary, summary
    rejected = [line for line in out.splitlines() if line.startswith("rejected ")]
    assert rejected and all("source.organisation_code" in line for line in rejected)
    facts, audit = log_and_audit(data)
    assert facts == []
    assert set(refusals(audit)) == {("cli:ops", "sender.organisation_not_allowed", "oak-school")}
    assert len(refusals(audit)) == len(rejected)
    # the school whose code it is sends the same file, and it is taken
    assert hub_cli(data, "ingest", str(ctf), "--format", "ctf", "--as", "Gryphon MIS") == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert " 0 rejected" in summary, summary
    facts, _ = log_and_audit(data)
    assert facts and {f["source"]["agency"] for f in facts} == {"gryphon"}


def test_the_family_portal_key_cannot_claim_a_statutory_basis(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    advice = tmp_path / "advice.json"
    advice.write_bytes(advice_bundle())
    assert hub_cli(data, "ingest", str(advice), "--format", "fhir", "--as", "Family portal",
                   "--details") == 0  # fmt: skip
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("rejected ")]
    assert "statutory_basis" in line and "family sender" in line, line
    facts, audit = log_and_audit(data)
    assert "plan.advice_submitted" not in {f["event_type"] for f in facts}
    assert refusals(audit) == [("cli:admin", "sender.basis_not_claimable", "family-portal")]
    # the trust may claim it
    assert hub_cli(data, "ingest", str(advice), "--format", "fhir", "--as", "City health") == 0
    assert " 0 rejected" in capsys.readouterr().out.strip().splitlines()[-1]
    facts, _ = log_and_audit(data)
    [taken] = [f for f in facts if f["event_type"] == "plan.advice_submitted"]
    assert taken["source"]["agency"] == "city-health"


def test_ingest_needs_an_agency_key_to_send_as(
    data: Path, samples_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctf = str(samples_dir / "ctf" / "gryphon-y12.xml")
    assert hub_cli(data, "ingest", ctf, "--format", "ctf", "--agency", "gryphon") == 2
    assert "needs --as KEY" in capsys.readouterr().err
    assert hub_cli(data, "ingest", ctf, "--format", "ctf", "--as", "nobody") == 2
    assert "no active API key is named 'nobody'" in capsys.readouterr().err
    assert hub_cli(data, "ingest", ctf, "--format", "ctf", "--as", "casey") == 2
    assert "coordinator key, not an agency's" in capsys.readouterr().err
    assert hub_cli(data, "ingest", ctf, "--format", "ctf", "--as", "Gryphon MIS",
                   "--agency", "oak-school") == 2  # fmt: skip
    assert "is not the agency of key" in capsys.readouterr().err
    facts, _ = log_and_audit(data)
    assert facts == []
