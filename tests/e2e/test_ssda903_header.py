"""The SSDA903 Header table is ingested and names each child for their episodes: sent on
its own to the social care route (a CSV told from the Episodes table by its columns), its
rows become `social_care.child_identified` with the UPN and date of birth, and a later
Episodes CSV links every episode to the child its header row made (LA code + CHILD, with
the header's identifiers); `hub ingest --header` sends both tables at once, and the
expanded XML's HEADER names its EPISODEs the same way. The CSVs are cut from the shared
samples at test time (the first children and their episodes), never copied."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.adapters.registry import parse
from hub.cli import main
from tests.e2e.test_ingest_routes import taken, with_keys
from tests.support.api import Api, embedded, running_api

CSV = {"content-type": "text/csv"}
ROUTE = "/ingest/social-care?la_code=201"
CHILDREN = 40


def rows_of(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def cut(samples_dir: Path) -> tuple[bytes, bytes]:
    """(Header CSV, Episodes CSV) for the first CHILDREN children of the episodes sample."""
    header = (samples_dir / "ssda903" / "header.csv").read_bytes().decode("utf-8-sig")
    episodes = (samples_dir / "ssda903" / "episodes.csv").read_bytes().decode("utf-8-sig")
    e_lines = episodes.splitlines()
    wanted: list[str] = []
    for line in e_lines[1:]:
        child = line.split(",", 1)[0]
        if child not in wanted:
            wanted.append(child)
    keep = set(wanted[:CHILDREN])
    h_lines = header.splitlines()
    h_out = [h_lines[0], *(ln for ln in h_lines[1:] if ln.split(",", 1)[0] in keep)]
    e_out = [e_lines[0], *(ln for ln in e_lines[1:] if ln.split(",", 1)[0] in keep)]
    return ("\n".join(h_out) + "\n").encode(), ("\n".join(e_out) + "\n").encode()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield await with_keys(a)


def row_index(ref: str) -> int:
    match = re.fullmatch(r"(?:Header|Episodes)/row\[(\d+)\]", ref)
    assert match, ref
    return int(match[1]) - 1


async def test_the_header_table_alone_names_the_children_its_episodes_later_link_to(
    api: Api, samples_dir: Path
) -> None:
    header, episodes = cut(samples_dir)
    h_rows, e_rows = rows_of(header), rows_of(episodes)
    assert len(h_rows) == CHILDREN and len(e_rows) > CHILDREN

    first = await taken(api, ROUTE, header, "county-sc", CSV)
    assert first["format"] == "ssda903"
    assert {r["event_type"] for r in first["results"]} == {"social_care.child_identified"}
    assert first["summary"]["facts"] == CHILDREN and first["summary"]["rejected"] == 0
    child_of = {h_rows[row_index(r["ref"])]["CHILD"]: r["child_id"] for r in first["results"]}
    assert len(set(child_of.values())) == CHILDREN and None not in child_of.values()
    assert {n["field"] for n in first["not_taken"]} == {"ETHNIC", "MOTHER", "MC_DOB"}

    second = await taken(api, ROUTE, episodes, "county-sc", CSV)
    linked = [r for r in second["results"] if r["status"] in ("appended", "withheld")]
    assert linked, second["summary"]
    for r in linked:
        assert r["event_type"] == "social_care.looked_after_episode_recorded"
        assert r["child_id"] == child_of[e_rows[row_index(r["ref"])]["CHILD"]], r["ref"]
    assert second["summary"]["queued"] == 0  # no episode waits: the header named them all


def test_hub_ingest_header_sends_both_tables_and_each_episode_carries_the_header_identifiers(
    tmp_path: Path,
    samples_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    header, episodes = cut(samples_dir)
    (tmp_path / "header.csv").write_bytes(header)
    (tmp_path / "episodes.csv").write_bytes(episodes)
    data = ["--data-dir", str(tmp_path / "d")]
    assert main(["keys", "create", "--role", "agency", "--name", "la feed", "--agency", "la",
                 "--sender", "social_care", *data]) == 0  # fmt: skip
    args = ["ingest", str(tmp_path / "episodes.csv"), "--format", "ssda903", "--as", "la feed",
            "--la-code", "201", *data]  # fmt: skip
    assert main([*args, "--header", str(tmp_path / "header.csv")]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    expected = parse("ssda903", episodes, "text/csv", "la", la_code="201", header=header)
    assert out.startswith(f"episodes.csv: {len(expected.facts)} facts read as ssda903")
    upn_of = {r["CHILD"]: r["UPN"] for r in rows_of(header)}
    episode_facts = [f for f in expected.facts if f.ref.startswith("Episodes/")]
    assert len(episode_facts) == len(rows_of(episodes))
    for f in episode_facts:  # LA code + CHILD + the header's UPN and date of birth
        assert f.subject.la_code == "201" and f.subject.la_child_id is not None
        assert f.subject.upn == upn_of[f.subject.la_child_id]
        assert f.subject.date_of_birth is not None
    # --header is the 903 Header table's: refused with any other format
    assert main(["ingest", str(tmp_path / "episodes.csv"), "--format", "cin", "--as", "la feed",
                 "--header", str(tmp_path / "header.csv"), *data]) == 2  # fmt: skip
    assert "only with --format ssda903" in capsys.readouterr().err


def test_the_expanded_xml_header_names_its_episodes(samples_dir: Path) -> None:
    data = (samples_dir / "ssda903" / "fake_903.xml").read_bytes()
    result = parse("ssda903", data, "application/xml", "la", la_code="201")
    by_child: dict[str, set[tuple[str | None, object]]] = {}
    for f in result.facts:
        key = f.ref.split("/", 1)[0]
        by_child.setdefault(key, set()).add((f.subject.upn, f.subject.date_of_birth))
    identified = {f.ref.split("/", 1)[0] for f in result.facts if f.ref.endswith("/HEADER")}
    assert identified
    for child in identified:  # header and episodes of one CHILD name the same person
        assert len(by_child[child]) == 1, child
