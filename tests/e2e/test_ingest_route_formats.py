"""Each ingest route takes only its own agencies' formats, and an agency's facts carry only
that agency: every route is sent a sample of every other route's format, in its own media
type and in each the route takes. A media type the route does not take is 415 naming those
it does; a recognisable message of another format is 422 naming what it is and the formats
the route takes (never read as one of the route's own: a CTF file on the social care route
appends nothing); a body that is not well-formed in the media type sent is 400 naming
`json`/`xml` and the line. `hub ingest --format F` refuses a file of another format the
same way. Samples are read from the shared folder by path."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.adapters.registry import channel_formats, supported_media_types
from hub.cli import main
from hub.log import LogName
from tests.e2e.test_ingest_routes import post, taken, with_keys
from tests.support.api import Api, embedded, running_api

ROUTES: dict[str, tuple[str, str]] = {  # route -> (channel, key)
    "/ingest/school-mis": ("school-mis", "oak-school-mis"),
    "/ingest/fhir": ("fhir", "city-health"),
    "/ingest/social-care?la_code=201": ("social-care", "county-sc"),
    "/ingest/family": ("family", "family-portal"),
}
AGENCY = {
    "oak-school-mis": "oak-school",
    "city-health": "city-health",
    "county-sc": "county-social-care",
}


def json_forms() -> list[tuple[str, str, bytes, str]]:
    """The hub's own JSON forms, each by the top-level keys its JSON Schema requires
    (contracts/inbound/*.schema.json); enough for a route to tell what it is."""
    return [
        ("school-mis-json", "school-mis form", orjson.dumps({"school": {}, "pupils": []}),
         "application/json"),
        ("social-care-json", "social care form", orjson.dumps({"la_code": "201",
         "children": []}), "application/json"),
        ("family-json", "family form", orjson.dumps({"child": {}}), "application/json"),
    ]  # fmt: skip


def every_format(samples_dir: Path) -> list[tuple[str, str, bytes, str]]:
    """(format, name, body, its own media type): one message of every format the routes
    take, the files from the shared samples."""
    files = [
        ("ctf", "ctf/gryphon-y12.xml", "application/xml"),
        ("cin", "cin/CIN_Census_2024.xml", "application/xml"),
        ("ssda903", "ssda903/fake_903.xml", "application/xml"),
        ("ssda903", "ssda903/episodes.csv", "text/csv"),
        ("fhir", "ukcore/UKCore-Patient-RichardSmith-Example.xml", "application/fhir+xml"),
        ("fhir", "fhir-r4/careplan-example-f201-renal.json", "application/fhir+json"),
        ("fhir", "synthea/bulk10-Patient.000.ndjson", "application/fhir+ndjson"),
    ]
    out = [(f, name, (samples_dir / name).read_bytes(), media) for f, name, media in files]
    return out + json_forms()


def recognisable(body: bytes) -> bool:
    """An XML document, a JSON object or ndjson: a route tells what it is (CSV it cannot)."""
    return body.lstrip().startswith((b"<", b"{"))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield await with_keys(a)


async def logged_sources(api: Api) -> list[dict[str, Any]]:
    """The source of every event appended or withheld so far."""
    out: list[dict[str, Any]] = []
    log = api.hub.log
    for name in (LogName.EVENTS, LogName.WITHHELD):
        for part in range(log.partitions(name)):
            for r in await log.read(name, part, 0, 1_000_000):
                out.append(orjson.loads(r.value)["source"])
    return out


async def test_every_route_refuses_every_other_routes_format_by_name(
    api: Api, samples_dir: Path
) -> None:
    checked = 0
    for route, (channel, who) in ROUTES.items():
        own = channel_formats(channel)
        media_types = supported_media_types(channel)
        for fmt, name, body, native in every_format(samples_dir):
            if fmt in own:
                continue
            for media in dict.fromkeys((native, *media_types)):
                r = await post(api, route, body, who, {"content-type": media})
                where = (route, name, media)
                assert r.headers["content-type"] == "application/problem+json", where
                problem = r.json()
                checked += 1
                if media not in media_types:
                    assert r.status_code == 415, (where, r.text)
                    assert media_types[0] in problem["detail"], where
                elif recognisable(body):
                    assert r.status_code == 422, (where, r.text)
                    assert problem["field"] == "format" and problem["rule"] == "hub.route_format"
                    assert problem["detected_format"] == fmt, where
                    assert problem["accepted_formats"] == list(own), where
                    assert "does not take" in problem["detail"], where
                else:  # CSV sent as XML, JSON or ndjson: not well-formed there
                    assert r.status_code == 400, (where, r.text)
                    assert problem["field"] in ("json", "xml", "ndjson"), where
                    assert "line" in problem["detail"], where
    assert checked >= 60
    assert await logged_sources(api) == []  # nothing of another format was taken anywhere


async def test_a_routes_facts_carry_only_the_credentials_agency(
    api: Api, samples_dir: Path
) -> None:
    sent = [
        ("/ingest/school-mis", "oak-school-mis", "ctf/gryphon-y7_2_students.xml",
         "application/xml"),
        ("/ingest/social-care", "county-sc", "cin/CIN_Census_2024.xml", "application/xml"),
        ("/ingest/fhir", "city-health", "ukcore/UKCore-Patient-RichardSmith-Example.xml",
         "application/fhir+xml"),
    ]  # fmt: skip
    before: Counter[str] = Counter()
    for route, who, name, media in sent:
        answer = await taken(api, route, (samples_dir / name).read_bytes(), who, {
            "content-type": media})  # fmt: skip
        taken_now = answer["summary"]["appended"] + answer["summary"]["withheld"]
        assert taken_now > 0, name
        after = Counter(s["agency"] for s in await logged_sources(api))
        new = after - before  # the facts, and the identity events they brought
        assert set(new) == {AGENCY[who]} and new[AGENCY[who]] >= taken_now, name
        before = after
    # a CTF file on the social care route is refused, not taken as social care's
    r = await post(api, "/ingest/social-care", (samples_dir / "ctf/gryphon-y12.xml").read_bytes(),
                   "county-sc", {"content-type": "application/xml"})  # fmt: skip
    assert r.status_code == 422 and r.json()["detected_format"] == "ctf"
    assert Counter(s["agency"] for s in await logged_sources(api)) == before


@pytest.mark.parametrize(
    ("fmt", "sample", "detected"),
    [
        ("cin", "ctf/gryphon-y12.xml", "a DfE Common Transfer File"),
        ("ctf", "cin/CIN_Census_2024.xml", "a CIN census return"),
        ("fhir", "ssda903/fake_903.xml", "an SSDA903 return"),
        ("ssda903", "ukcore/UKCore-Patient-RichardSmith-Example.xml", "FHIR R4"),
        ("json", "ctf/gryphon-y12.xml", None),
    ],
)
def test_hub_ingest_refuses_a_file_of_another_format(
    tmp_path: Path,
    samples_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    sample: str,
    detected: str | None,
) -> None:
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    path = samples_dir / sample
    la = ["--la-code", "201"] if fmt == "ssda903" else []
    data = ["--data-dir", str(tmp_path / "d")]
    assert main(["keys", "create", "--role", "agency", "--name", "county feed",
                 "--agency", "county", "--sender", "social_care", *data]) == 0  # fmt: skip
    capsys.readouterr()
    code = main(["ingest", str(path), "--format", fmt, "--as", "county feed", *la, *data])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"cannot be read as {fmt}" in err
    if detected is not None:
        assert f"this is {detected}" in err and f"--format {fmt} does not take" in err
    else:  # `json` tells the forms apart by their keys: XML is not JSON, with its position
        assert "json" in err and "line 1" in err
