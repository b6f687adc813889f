"""Every sample file through `hub ingest`, as through the HTTP routes: the command takes
exactly the facts the adapter reads, accounts for every one of them (appended, withheld,
queued, rejected or duplicate) and says how many parts it did not take."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.adapters.registry import parse
from hub.cli import main
from tests.e2e.test_ingest_routes import samples

FORMAT = {
    "/ingest/school-mis": "ctf",
    "/ingest/social-care": "cin",
    "/ingest/social-care?la_code=201": "ssda903",
    "/ingest/fhir": "fhir",
}
AGENCY = {"ctf": "oak-school", "cin": "county", "ssda903": "county", "fhir": "city-health"}
SENDER = {"ctf": "education", "cin": "social_care", "ssda903": "social_care", "fhir": "health"}
SUMMARY = re.compile(
    r"^(?P<name>\S+): (?P<facts>\d+) facts read as \S+: (?P<counts>.*); (?P<nt>\d+) not taken"
)


def test_every_sample_file_through_the_command_line(
    tmp_path: Path,
    samples_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    files = samples(samples_dir)
    assert len(files) >= 30
    for i, (route, _who, headers, path) in enumerate(files):
        fmt = FORMAT[route]
        la = ["--la-code", "201"] if fmt == "ssda903" else []
        data = ["--data-dir", str(tmp_path / f"d{i}")]
        key = ["--name", f"{AGENCY[fmt]} feed", "--agency", AGENCY[fmt], "--sender", SENDER[fmt]]
        assert main(["keys", "create", "--role", "agency", *key, *data]) == 0
        code = main(
            ["ingest", str(path), "--format", fmt, "--as", f"{AGENCY[fmt]} feed", *la, *data]
        )
        out = capsys.readouterr().out.strip().splitlines()
        assert code == 0, (path.name, out[-3:])
        match = SUMMARY.match(out[-1])
        assert match, out[-1]
        expected = parse(
            fmt,
            path.read_bytes(),
            headers.get("content-type"),
            AGENCY[fmt],
            la_code="201" if fmt == "ssda903" else None,
        )
        assert int(match["facts"]) == len(expected.facts), path.name
        assert int(match["nt"]) == len(expected.not_taken), path.name
        accounted = sum(int(n) for n, _ in re.findall(r"(\d+) (\w+)", match["counts"]))
        assert accounted == len(expected.facts), (path.name, match["counts"])
        assert int(match["facts"]) + int(match["nt"]) > 0, path.name  # nothing silently dropped
