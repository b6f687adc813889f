"""The ingest routes and the match queue through the real app (embedded hub, real lifespan):
every public sample is taken or explained; the same CTF, FHIR Bundle and CIN file sent
twice — and again after a restart on the same data dir — yields each fact once; hostile
and oversize bodies get clear 4xx refusals while a good message between them is taken;
unsupported media types, wrong roles and wrong agencies are refused; a Synthea patient
waits in the match queue until a coordinator decides; and random bodies to every route
never produce a 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.log import LogName
from hub.projections.gate_views import DEDUPE_HEADER
from hub.settings import Settings
from tests.support.api import Api, embedded, running_api

T = TypeVar("T")
NHS = "9434765919"
XML = {"content-type": "application/xml"}
STATUSES = {"appended", "withheld", "queued", "rejected", "duplicate"}
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<CTfile><Header>&lol9;</Header></CTfile>
"""
FHIR_BUNDLE = {
    "resourceType": "Bundle",
    "id": "city-health-2024-0001",
    "type": "collection",
    "entry": [
        {
            "fullUrl": "urn:uuid:p1",
            "resource": {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
                "name": [{"family": "Example", "given": ["Sam"]}],
                "birthDate": "2015-03-02",
            },
        },
        {
            "fullUrl": "urn:uuid:c1",
            "resource": {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "urn:uuid:p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "408856003"}]},
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "recordedDate": "2024-05-01",
            },
        },
        {
            "fullUrl": "urn:uuid:e1",
            "resource": {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": "urn:uuid:p1"},
                "period": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"},
            },
        },
    ],
}
FHIR_JSON = {"content-type": "application/fhir+json"}
FHIR_XML = {"content-type": "application/fhir+xml"}
NDJSON = {"content-type": "application/fhir+ndjson"}

KEYS = (
    ("oak-school-mis", "agency", "oak-school"),
    ("city-health", "agency", "city-health"),
    ("county-sc", "agency", "county-social-care"),
    ("family-portal", "agency", "family-portal"),
    ("casey", "coordinator", None),
    ("ops", "admin", None),
    ("ig", "ig_auditor", None),
)


async def with_keys(api: Api) -> Api:
    for name, role, agency in KEYS:
        await api.key(name, role, agency)
    return api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield await with_keys(a)


async def post(
    api: Api, path: str, body: bytes, who: str, headers: dict[str, str]
) -> httpx.Response:
    return await api.client.post(path, content=body, headers={**api.auth(who), **headers})


async def taken(
    api: Api, path: str, body: bytes, who: str, headers: dict[str, str]
) -> dict[str, Any]:
    r = await post(api, path, body, who, headers)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["summary"]["facts"] == len(answer["results"])
    for res in answer["results"]:
        assert res["status"] in STATUSES
        assert res["status"] in ("appended", "withheld", "duplicate") or res["reason"], res
    for n in answer["not_taken"]:
        assert n["ref"] and n["reason"], n
    return answer


async def dedupe_keys(api: Api) -> Counter[str]:
    """Each fact's idempotency key, counted over hub.events and hub.withheld (a release
    onto hub.events is the same fact again and is not counted)."""
    keys: Counter[str] = Counter()
    log = api.hub.log
    for name in (LogName.EVENTS, LogName.WITHHELD):
        for part in range(log.partitions(name)):
            for r in await log.read(name, part, 0, 100_000):
                key = r.header(DEDUPE_HEADER)
                if key is not None and r.header("x-released-from") is None:
                    keys[key.decode()] += 1
    return keys


def samples(samples_dir: Path) -> list[tuple[str, str, dict[str, str], Path]]:
    """(route, key, headers, file) for every sample the routes take."""
    out: list[tuple[str, str, dict[str, str], Path]] = []
    for p in sorted((samples_dir / "ctf").glob("*.xml")):
        out.append(("/ingest/school-mis", "oak-school-mis", XML, p))
    for p in sorted((samples_dir / "cin").glob("*.xml")):
        out.append(("/ingest/social-care", "county-sc", XML, p))
    out.append(
        (
            "/ingest/social-care?la_code=201",
            "county-sc",
            XML,
            samples_dir / "ssda903" / "fake_903.xml",
        )
    )
    out.append(
        (
            "/ingest/social-care?la_code=201",
            "county-sc",
            {"content-type": "text/csv"},
            samples_dir / "ssda903" / "episodes.csv",
        )
    )
    for p in sorted((samples_dir / "ukcore").glob("*.xml")):
        out.append(("/ingest/fhir", "city-health", FHIR_XML, p))
    for p in sorted((samples_dir / "fhir-r4").glob("*.json")):
        out.append(("/ingest/fhir", "city-health", FHIR_JSON, p))
    for p in sorted((samples_dir / "synthea").glob("*.json")):
        out.append(("/ingest/fhir", "city-health", FHIR_JSON, p))
    for p in sorted((samples_dir / "synthea").glob("*.ndjson")):
        out.append(("/ingest/fhir", "city-health", NDJSON, p))
    return out


# -- every sample ------------------------------------------------------------------------------


async def test_every_sample_is_taken_or_explained_and_synthea_is_never_linked_by_guess(
    api: Api, samples_dir: Path
) -> None:
    seen = 0
    for route, who, headers, path in samples(samples_dir):
        answer = await taken(api, route, path.read_bytes(), who, headers)
        seen += 1
        summary = answer["summary"]
        assert summary["facts"] + summary["not_taken"] > 0, path.name  # nothing silently dropped
        if path.parent.name == "synthea":
            linked = [r for r in answer["results"] if r["status"] in ("appended", "withheld")]
            assert linked == [], path.name  # US data, no NHS number: the match queue or a reason
            assert all(r["status"] in ("queued", "rejected") for r in answer["results"]), path.name
    assert seen >= 30
    r = await api.client.get("/match-queue", headers=api.auth("casey"))
    assert r.status_code == 200
    assert len(r.json()["items"]) >= 3  # the Synthea patients wait for a person


# -- idempotency -----------------------------------------------------------------------------


def idempotency_messages(samples_dir: Path) -> list[tuple[str, bytes, str, dict[str, str]]]:
    """(route, body, key, headers): a CTF file, a FHIR Bundle naming an NHS number, a
    Synthea Bundle (the match queue) and a CIN census."""
    synthea = samples_dir / "synthea" / "Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json"
    return [
        (
            "/ingest/school-mis",
            (samples_dir / "ctf" / "gryphon-y7_2_students.xml").read_bytes(),
            "oak-school-mis",
            XML,
        ),
        ("/ingest/fhir", json.dumps(FHIR_BUNDLE).encode(), "city-health", FHIR_JSON),
        ("/ingest/fhir", synthea.read_bytes(), "city-health", FHIR_JSON),
        (
            "/ingest/social-care",
            (samples_dir / "cin" / "CIN_Census_2024.xml").read_bytes(),
            "county-sc",
            XML,
        ),
    ]


async def test_the_same_ctf_bundle_and_cin_file_twice_and_after_a_restart_yield_each_fact_once(
    tmp_path: Path, samples_dir: Path
) -> None:
    settings = embedded(tmp_path)
    messages = idempotency_messages(samples_dir)
    async with running_api(settings) as first:
        api = await with_keys(first)
        answers = [await taken(api, *m) for m in messages]
        for answer in answers:
            assert answer["summary"]["facts"] > 0
            assert answer["summary"]["duplicate"] == 0 and answer["summary"]["rejected"] == 0
        assert {r["status"] for r in answers[1]["results"]} == {"withheld"}  # NHS number: linked
        assert {r["status"] for r in answers[2]["results"]} == {"queued"}  # Synthea: held
        again = [await taken(api, *m) for m in messages]
        for before, after in zip(answers, again, strict=True):
            assert {r["status"] for r in after["results"]} == {"duplicate"}
            assert [r["event_id"] for r in after["results"]] == [
                r["event_id"] for r in before["results"]
            ]
        keys = await dedupe_keys(api)
        assert set(keys.values()) == {1}
        assert len(keys) == sum(a["summary"]["facts"] for a in answers)
        tokens = dict(api.tokens)
        queued = (await api.client.get("/match-queue", headers=api.auth("ops"))).json()["items"]
        assert "no_identifier" in {i["reason"] for i in queued}  # the Synthea patient
    async with running_api(settings) as second:  # a new process on the same data dir
        second.tokens.update(tokens)
        after_restart = [await taken(second, *m) for m in messages]
        for answer in after_restart:
            assert {r["status"] for r in answer["results"]} == {"duplicate"}
        assert await dedupe_keys(second) == keys
        r = await second.client.get("/match-queue", headers=second.auth("ops"))
        assert [i["item_id"] for i in r.json()["items"]] == [i["item_id"] for i in queued]


# -- bad input ---------------------------------------------------------------------------


async def test_billion_laughs_and_a_50_mb_payload_are_refused_while_a_good_message_between_is_taken(
    api: Api, samples_dir: Path
) -> None:
    good = (samples_dir / "ctf" / "gryphon-y12.xml").read_bytes()
    for route, headers in (
        ("/ingest/school-mis", XML),
        ("/ingest/social-care", XML),
        ("/ingest/fhir", FHIR_XML),
    ):
        who = {"/ingest/school-mis": "oak-school-mis", "/ingest/social-care": "county-sc"}.get(
            route, "city-health"
        )
        r = await post(api, route, BILLION_LAUGHS, who, headers)
        assert r.status_code in (400, 422), r.text  # refused, never expanded
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert "lol" not in r.text
        assert (
            "entit" in problem["detail"]
            or "DTD" in problem["detail"]
            or "doctype" in problem["detail"].lower()
        )

    answer = await taken(api, "/ingest/school-mis", good, "oak-school-mis", XML)
    assert answer["summary"]["withheld"] == answer["summary"]["facts"] > 0

    big = b"<CTfile>" + b"x" * (50 * 1024 * 1024) + b"</CTfile>"
    r = await post(api, "/ingest/school-mis", big, "oak-school-mis", XML)  # Content-Length declared
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert "limit" in r.json()["detail"]
    del big

    sent = 0

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        nonlocal sent
        for _ in range(50):
            sent += 1
            yield b"x" * (1024 * 1024)

    r = await api.client.post(
        "/ingest/school-mis", content=chunked(), headers={**api.auth("oak-school-mis"), **XML}
    )
    assert r.status_code == 413, r.text
    assert sent < 50  # refused before the whole body was read

    other = (samples_dir / "ctf" / "gryphon-y7_partial.xml").read_bytes()
    answer = await taken(api, "/ingest/school-mis", other, "oak-school-mis", XML)
    assert answer["summary"]["facts"] > 0 and answer["summary"]["rejected"] == 0


@pytest.mark.parametrize(
    ("route", "who", "headers", "body", "status", "words"),
    [
        (
            "/ingest/school-mis",
            "oak-school-mis",
            {"content-type": "text/plain"},
            b"hi",
            415,
            "application/xml",
        ),
        (
            "/ingest/fhir",
            "city-health",
            {"content-type": "application/pdf"},
            b"%PDF",
            415,
            "application/fhir+json",
        ),
        ("/ingest/family", "family-portal", XML, b"<x/>", 415, "application/json"),
        (
            "/ingest/social-care",
            "county-sc",
            {"content-type": "text/csv"},
            b"CHILD,DECOM\n1,2020-01-01\n",
            422,
            "la_code",
        ),
        (
            "/ingest/school-mis",
            "oak-school-mis",
            {"content-type": "application/json"},
            b'{"pupils": [',
            400,
            "line 1",
        ),
        (
            "/ingest/school-mis",
            "oak-school-mis",
            XML,
            b"<CTfile><Header>",
            400,
            "line 1, column 16",
        ),
        (
            "/ingest/school-mis",
            "oak-school-mis",
            XML,
            "<?xml version='1.0' encoding='utf-8'?><CTfile>é</CTfile>".encode("latin-1"),
            400,
            "xml",
        ),
        ("/ingest/school-mis", "oak-school-mis", XML, b"<NotACtf/>", 422, "CTfile"),
        (
            "/ingest/family",
            "family-portal",
            {"content-type": "application/json"},
            b'{"message_id": "m"}',
            422,
            "sent_at",
        ),
        ("/ingest/fhir", "city-health", FHIR_JSON, b"", 400, "empty"),
        ("/ingest/school-mis", "casey", XML, b"<CTfile/>", 403, "agency"),
        (
            "/ingest/school-mis?agency=city-health",
            "oak-school-mis",
            XML,
            b"<CTfile/>",
            403,
            "only as itself",
        ),
    ],
)
async def test_bad_requests_get_a_clear_refusal(
    api: Api, route: str, who: str, headers: dict[str, str], body: bytes, status: int, words: str
) -> None:
    r = await post(api, route, body, who, headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert words in r.json()["detail"]


async def test_odd_values_inside_well_formed_xml_never_produce_a_5xx(api: Api) -> None:
    odd = (
        b"<CTfile><Header><CTFversion>&#178;</CTFversion><SourceSchool><LEA>&#185;&#178;3</LEA>"
        b"</SourceSchool></Header><CTFpupilData><Pupil><UPN>&#x0662;</UPN><DOB>2015-02-30</DOB>"
        b"<Attendance><YearData><Year>&#178;&#178;</Year></YearData></Attendance></Pupil>"
        b"</CTFpupilData></CTfile>"
    )
    r = await post(api, "/ingest/school-mis", odd, "oak-school-mis", XML)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json" and r.json()["detail"]


async def test_without_credentials_nothing_is_read(api: Api) -> None:
    r = await api.client.post("/ingest/fhir", content=b"{}", headers=FHIR_JSON)
    assert r.status_code == 401


# -- the match queue over HTTP ---------------------------------------------------------------


async def test_a_coordinator_decides_a_queued_patient_and_the_read_and_decision_are_audited(
    api: Api, samples_dir: Path
) -> None:
    synthea = (
        samples_dir / "synthea" / "Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json"
    ).read_bytes()
    answer = await taken(api, "/ingest/fhir", synthea, "city-health", FHIR_JSON)
    assert answer["summary"]["queued"] == answer["summary"]["facts"] > 0

    assert (
        await api.client.get("/match-queue", headers=api.auth("city-health"))
    ).status_code == 403
    assert (await api.client.get("/match-queue", headers=api.auth("ig"))).status_code == 403
    r = await api.client.get("/match-queue", headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["reason"] == "no_identifier" and item["facts_held"] == answer["summary"]["queued"]
    assert item["record"]["family_name"] == "Hoeger" and item["record"]["date_of_birth"]
    assert item["candidates"] == []

    url = f"/match-queue/{item['item_id']}/resolve"
    bad = await api.client.post(url, json={"decision": "link"}, headers=api.auth("casey"))
    assert bad.status_code == 422
    nobody = await api.client.post(
        url, json={"decision": "link", "child_id": "hc-nobody"}, headers=api.auth("casey")
    )
    assert nobody.status_code == 404
    ok = await api.client.post(url, json={"decision": "keep_separate"}, headers=api.auth("casey"))
    assert ok.status_code == 200, ok.text
    decided = ok.json()
    assert decided["summary"] == {"withheld": item["facts_held"]}  # released, awaiting consent
    assert {f["child_id"] for f in decided["released"]} == {decided["child_id"]}
    again = await api.client.post(
        url, json={"decision": "keep_separate"}, headers=api.auth("casey")
    )
    assert again.status_code == 409

    # the same bundle again: every fact once, now under the chosen child
    answer = await taken(api, "/ingest/fhir", synthea, "city-health", FHIR_JSON)
    assert {r["status"] for r in answer["results"]} == {"duplicate"}
    assert {r["child_id"] for r in answer["results"]} == {decided["child_id"]}

    r = await api.client.get(f"/audit/children/{decided['child_id']}", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    kinds = [(rec["kind"], rec["details"].get("outcome")) for rec in r.json()["records"]]
    assert ("decision", "match_resolved") in kinds


# -- the bulk command ---------------------------------------------------------------------------


def test_hub_ingest_takes_bulk_files_once_and_match_resolve_releases_them(
    tmp_path: Path, samples_dir: Path
) -> None:
    from tests.e2e.test_serve import hub_cli
    from tests.support.processes import hub_env

    env = hub_env()
    data = ["--data-dir", str(tmp_path / "data")]
    for name, kind in (("county", "social_care"), ("city-health", "health")):
        made = hub_cli("keys", "create", "--role", "agency", "--name", name, "--agency", name,
                       "--sender", kind, *data, env=env)  # fmt: skip
        assert made.returncode == 0, made.stderr
    cin = str(samples_dir / "cin" / "fake_CIN_data.xml")
    first = hub_cli("ingest", cin, "--format", "cin", "--as", "county", *data, env=env)
    assert first.returncode == 0, first.stderr
    summary = first.stdout.strip().splitlines()[-1]
    assert summary.startswith("fake_CIN_data.xml: 775 facts read as cin: ")
    assert "0 rejected, 0 duplicate" in summary and "not taken" in summary
    again = hub_cli("ingest", cin, "--format", "cin", "--as", "county", *data, env=env)
    assert "0 appended, 0 withheld, 0 queued, 0 rejected, 775 duplicate" in again.stdout

    synthea = samples_dir / "synthea" / "Edward_Gulgowski_43481611-2459-44f5-ab20-4b142dac160f.json"
    queued = hub_cli(
        "ingest", str(synthea), "--format", "json", "--as", "city-health", *data, env=env
    )
    assert queued.returncode == 0, queued.stderr
    assert "read as fhir" in queued.stdout and "0 withheld, " in queued.stdout
    listing = hub_cli("match", "list", *data, env=env)
    assert listing.returncode == 0 and "no_identifier" in listing.stdout
    item = next(w for w in listing.stdout.split() if w.startswith("mq-"))
    decided = hub_cli("match", "resolve", item, "--keep-separate", "--by", "casey", *data, env=env)
    assert decided.returncode == 0, decided.stderr
    assert "kept separate as hc-" in decided.stdout and "withheld" in decided.stdout
    twice = hub_cli("match", "resolve", item, "--keep-separate", *data, env=env)
    assert twice.returncode == 2 and "decided already" in twice.stderr

    bad = tmp_path / "bad.xml"
    bad.write_bytes(BILLION_LAUGHS)
    refused = hub_cli("ingest", str(bad), "--format", "ctf", "--as", "county", *data, env=env)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("hub: error: bad.xml cannot be read as ctf: ")
    episodes = str(samples_dir / "ssda903" / "episodes.csv")
    no_la = hub_cli("ingest", episodes, "--format", "ssda903", "--as", "county", *data, env=env)
    assert no_la.returncode == 2 and "la_code" in no_la.stderr


# -- random bodies never produce a 5xx --------------------------------------------------------


class LiveApi:
    """The app on its own event loop in a thread, so hypothesis can drive many examples
    against one running hub."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()
        self.api: Api = self.run(self._enter(settings))

    async def _enter(self, settings: Settings) -> Api:
        return await with_keys(await self.stack.enter_async_context(running_api(settings)))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.run(self.stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    settings = embedded(tmp_path_factory.mktemp("fuzz"))
    settings = settings.model_copy(update={"max_body_bytes": 64 * 1024})
    live = LiveApi(settings)
    try:
        yield live
    finally:
        live.close()


ROUTES = {
    "/ingest/school-mis": ("oak-school-mis", ("application/xml", "text/xml", "application/json")),
    "/ingest/fhir": (
        "city-health",
        (
            "application/fhir+json",
            "application/fhir+xml",
            "application/fhir+ndjson",
            "application/json",
        ),
    ),
    "/ingest/social-care": ("county-sc", ("application/xml", "text/csv", "application/json")),
    "/ingest/social-care?la_code=801": ("county-sc", ("text/csv", "application/xml")),
    "/ingest/family": ("family-portal", ("application/json",)),
}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
_keys = st.sampled_from(
    [
        "resourceType",
        "message_id",
        "sent_at",
        "pupils",
        "children",
        "child",
        "school",
        "la_code",
        "views",
        "contacts",
        "entry",
        "identifier",
        "upn",
        "date_of_birth",
        "type",
    ]
)
_shaped = st.dictionaries(_keys, _json, max_size=8).map(lambda d: json.dumps(d).encode())
_xml = st.builds(
    lambda root, inner, text: (
        f"<{root}>{''.join(f'<{t}>{text}</{t}>' for t in inner)}</{root}>".encode()
    ),
    st.sampled_from(["CTfile", "Message", "EXPSSDA903", "Bundle", "Patient", "x"]),
    st.lists(
        st.sampled_from(
            ["Header", "Children", "Child", "CTFpupilData", "Pupil", "entry", "CHILD", "id"]
        ),
        max_size=5,
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<&"), max_size=20
    ),
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(sorted(ROUTES)),
    data=st.data(),
    body=st.one_of(
        st.binary(max_size=2048), _shaped, _xml, _json.map(lambda v: json.dumps(v).encode())
    ),
)
def test_random_bodies_to_every_route_never_produce_a_5xx(
    live: LiveApi, route: str, data: st.DataObject, body: bytes
) -> None:
    who, types = ROUTES[route]
    content_type = data.draw(
        st.sampled_from([*types, "text/plain", "", "application/xml; charset=utf-16"])
    )
    headers = {**live.api.auth(who), "content-type": content_type}
    r = live.run(live.api.client.post(route, content=body, headers=headers))
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert set(r.json()["summary"]) >= STATUSES
    else:
        assert r.headers["content-type"] == "application/problem+json"


_ = orjson
