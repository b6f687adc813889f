"""Invariant 7 with real processes on Kafka + PostgreSQL: several `hub api` and
`hub projector` processes started at once on an empty database all come up, and one
message delivered to two API processes at the same moment yields its facts once and its
child once (no split children, each fact once on the log, a trail that verifies)."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.log import LogName
from hub.projections.gate_views import DEDUPE_HEADER
from tests.support.broker import free_port
from tests.support.processes import hub_env, start_hub, stop

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 3
MESSAGES = 50
STARTUP_TIMEOUT = 60.0
ATTEMPTS = 3  # a start-up race shows in roughly half the runs: three fresh databases
TAKEN = {"appended", "withheld", "queued"}
FHIR_JSON = {"content-type": "application/fhir+json"}
FHIR_NHS = "https://fhir.nhs.uk/Id/nhs-number"


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Fleet:
    """The hub processes of one test, their log files, and the API ports."""

    tmp_path: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start_api(self, name: str) -> None:
        self.ports[name] = free_port()
        self._start(name, ["api", "--port", str(self.ports[name])])

    def start_projector(self, name: str) -> None:
        self._start(name, ["projector"])

    def _start(self, name: str, args: list[str]) -> None:
        data_dir = self.tmp_path / name  # nothing shared on disk: only Kafka and PostgreSQL
        self.logs[name] = self.tmp_path / f"{name}.log"
        self.procs[name] = start_hub(
            [*args, "--data-dir", str(data_dir)], self.env, self.logs[name]
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs[name]
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop_all(self) -> dict[str, int]:
        return {name: stop(proc) for name, proc in self.procs.items()}


@contextmanager
def fleet(tmp_path: Path, env: dict[str, str]) -> Iterator[Fleet]:
    """Processes stopped on the way out; every log printed when the test fails."""
    f = Fleet(tmp_path, env)
    try:
        yield f
    except BaseException:
        f.stop_all()
        for name in f.procs:
            print(f"\n===== {name} ({f.logs[name]}) =====\n{f.tail(name, 20_000)}")
        raise
    finally:
        f.stop_all()


def scale_out_env(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, schema: str
) -> dict[str, str]:
    return hub_env(
        log_backend="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence="false",  # Tansu has no InitProducerId
        log_partitions=str(PARTITIONS),
        store_backend="postgres",
        postgres_dsn=postgres_dsn,
        postgres_schema=schema,
        master_key=base64.b64encode(os.urandom(32)).decode(),  # one key for every process
    )


async def wait_ready(f: Fleet, apis: list[str], projectors: list[str]) -> None:
    """Each API answers /readyz 200 and each projector says it runs, within the timeout;
    any process that exits meanwhile fails at once with its log."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    waiting_api = set(apis)
    waiting_proj = set(projectors)
    last: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=2) as client:
        while waiting_api or waiting_proj:
            for name in [*apis, *projectors]:
                f.alive(name)
            for name in sorted(waiting_api):
                try:
                    r = await client.get(f"{f.url(name)}/readyz")
                except httpx.TransportError as exc:
                    last[name] = repr(exc)
                    continue
                last[name] = f"{r.status_code} {r.text[:300]}"
                if r.status_code == 200:
                    waiting_api.discard(name)
            for name in sorted(waiting_proj):
                if "projector running" in f.tail(name, 1_000_000):
                    waiting_proj.discard(name)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not ready within {STARTUP_TIMEOUT}s: {sorted(waiting_api | waiting_proj)}; "
                    f"last answers: {last}"
                )
            await asyncio.sleep(0.1)


def create_key(env: dict[str, str], tmp_path: Path, role: str, name: str, *extra: str) -> str:
    """`hub keys create`, as an operator runs it; the token is its last line."""
    made = subprocess.run(
        [sys.executable, "-m", "hub.cli", "keys", "create", "--role", role, "--name", name,
         *extra, "--data-dir", str(tmp_path / "cli")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, f"keys create failed:\n{made.stdout}\n{made.stderr}"
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("thk_"), made.stdout
    return token


# -- messages ----------------------------------------------------------------------------------


def nhs_number(serial: int) -> str | None:
    """A test-range (999) NHS number with a valid modulus-11 check digit, or None for the
    stems that have no valid check digit."""
    stem = f"999{serial:06d}"
    check = 11 - sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True)) % 11
    return None if check == 10 else stem + str(check % 11)


def fhir_bundle(i: int, nhs: str) -> dict[str, Any]:
    """A Bundle naming one child by NHS number, with a condition and an encounter."""
    return {
        "resourceType": "Bundle",
        "id": f"scale-out-{i:04d}",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"urn:uuid:p{i}",
                "resource": {
                    "resourceType": "Patient",
                    "id": f"p{i}",
                    "identifier": [{"system": FHIR_NHS, "value": nhs}],
                    "name": [{"family": f"Example{i}", "given": ["Sam"]}],
                    "birthDate": "2015-03-02",
                },
            },
            {
                "fullUrl": f"urn:uuid:c{i}",
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c{i}",
                    "subject": {"reference": f"urn:uuid:p{i}"},
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
                "fullUrl": f"urn:uuid:e{i}",
                "resource": {
                    "resourceType": "Encounter",
                    "id": f"e{i}",
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": {"reference": f"urn:uuid:p{i}"},
                    "period": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"},
                },
            },
        ],
    }


def messages() -> list[tuple[str, dict[str, Any]]]:
    """(NHS number, Bundle) for MESSAGES distinct children."""
    numbers = [n for serial in range(1, 10 * MESSAGES) if (n := nhs_number(serial))]
    return [(n, fhir_bundle(i, n)) for i, n in enumerate(numbers[:MESSAGES])]


async def send_to_both(
    clients: list[httpx.AsyncClient], body: dict[str, Any], token: str
) -> list[httpx.Response]:
    """The same message to every API process at the same moment."""
    headers = {**FHIR_JSON, "Authorization": f"Bearer {token}"}
    return list(
        await asyncio.gather(*(c.post("/ingest/fhir", json=body, headers=headers) for c in clients))
    )


@dataclass
class Outcome:
    """What the API processes answered about one message."""

    facts: int
    children: set[str]
    not_once: list[str]  # one line per fact not taken exactly once


def outcome_of(nhs: str, answers: list[dict[str, Any]]) -> Outcome:
    """Each fact of the message should be taken (appended, withheld or queued) by exactly
    one API process and be a duplicate of that same event for every other."""
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for a in answers:
        assert a["summary"]["facts"] > 0 and a["summary"]["rejected"] == 0, (nhs, a)
        for res in a["results"]:
            by_ref.setdefault(res["ref"], []).append(res)
    not_once = []
    for ref, results in by_ref.items():
        statuses = sorted(r["status"] for r in results)
        taken = [r for r in results if r["status"] in TAKEN]
        event_ids = {r["event_id"] for r in results}
        if len(taken) != 1 or len(results) != len(answers) or len(event_ids) != 1:
            not_once.append(f"{nhs} {ref}: {statuses}, event ids {sorted(map(str, event_ids))}")
    children = {r["child_id"] for a in answers for r in a["results"] if r["child_id"]}
    return Outcome(len(by_ref), children, not_once)


# -- what the backends hold --------------------------------------------------------------------


async def facts_on_the_log(kafka_bootstrap: str, topic_prefix: str) -> Counter[str]:
    """Each fact's idempotency key, counted over hub.events and hub.withheld (a release onto
    hub.events is the same fact again and is not counted)."""
    from hub.log.kafka import KafkaEventLog

    log = KafkaEventLog(
        kafka_bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS, enable_idempotence=False
    )
    await log.start()
    keys: Counter[str] = Counter()
    try:
        for name in (LogName.EVENTS, LogName.WITHHELD):
            ends = await log.end_offsets(name)
            for part in range(log.partitions(name)):
                offset = 0
                while offset < ends.get(part, 0):
                    batch = await log.read(name, part, offset, 1000)
                    if not batch:
                        break
                    for r in batch:
                        key = r.header(DEDUPE_HEADER)
                        if key is not None and r.header("x-released-from") is None:
                            keys[key.decode()] += 1
                    offset = batch[-1].offset + 1
    finally:
        await log.close()
    return keys


async def person_index(postgres_dsn: str, schema: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn, timeout=10)
    try:
        q = f'SET search_path TO "{schema}"'
        await conn.execute(q)
        return {
            "persons": {r[0] for r in await conn.fetch("SELECT child_id FROM person")},
            "linked": {
                r[0] for r in await conn.fetch("SELECT DISTINCT child_id FROM person_identifier")
            },
            "identifiers": await conn.fetchval("SELECT count(*) FROM person_identifier"),
            "unlinked": await conn.fetchval(
                "SELECT count(*) FROM person p WHERE NOT EXISTS"
                " (SELECT 1 FROM person_identifier i WHERE i.child_id = p.child_id)"
            ),
        }
    finally:
        await conn.close()


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(ATTEMPTS))
async def test_four_processes_start_at_once_on_an_empty_database(
    attempt: int, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str,
    postgres_schema: str,
) -> None:  # fmt: skip
    env = scale_out_env(kafka_bootstrap, topic_prefix, postgres_dsn, postgres_schema)
    apis = ["api-1", "api-2", "api-3"]
    with fleet(tmp_path, env) as f:
        for name in apis:  # all four at once: no process has made a table or a topic yet
            f.start_api(name)
        f.start_projector("projector")

        await wait_ready(f, apis, ["projector"])

        async with httpx.AsyncClient(timeout=5) as client:
            for name in apis:
                r = await client.get(f"{f.url(name)}/readyz")
                assert r.status_code == 200, (name, r.text)
                assert r.json()["log"] == "ok" and r.json()["store"] == "ok", (name, r.text)
        for name in [*apis, "projector"]:
            f.alive(name)
        codes = f.stop_all()
    assert all(code in (0, -15) for code in codes.values()), codes


async def test_two_api_processes_take_each_message_once(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str,
    postgres_schema: str,
) -> None:  # fmt: skip
    env = scale_out_env(kafka_bootstrap, topic_prefix, postgres_dsn, postgres_schema)
    agency = create_key(env, tmp_path, "agency", "City Health", "--agency", "city-health")
    auditor = create_key(env, tmp_path, "ig_auditor", "IG lead")
    apis = ["api-1", "api-2"]
    sent = messages()
    with fleet(tmp_path, env) as f:
        for name in apis:
            f.start_api(name)
        f.start_projector("projector")
        await wait_ready(f, apis, ["projector"])

        clients = [httpx.AsyncClient(base_url=f.url(n), timeout=30) for n in apis]
        outcomes: dict[str, Outcome] = {}
        try:
            for nhs, bundle in sent:
                responses = await send_to_both(clients, bundle, agency)
                for name, r in zip(apis, responses, strict=True):
                    assert r.status_code == 200, f"{name} on {nhs}: {r.status_code} {r.text}"
                outcomes[nhs] = outcome_of(nhs, [r.json() for r in responses])
            auth = {"Authorization": f"Bearer {auditor}"}
            verified = [await c.get("/audit/verify", headers=auth) for c in clients]
        finally:
            for c in clients:
                await c.aclose()
        for name in [*apis, "projector"]:
            f.alive(name)
        index = await person_index(postgres_dsn, postgres_schema)
        on_log = await facts_on_the_log(kafka_bootstrap, topic_prefix)

        facts = sum(o.facts for o in outcomes.values())
        not_once = [line for o in outcomes.values() for line in o.not_once]
        split = {nhs: o.children for nhs, o in outcomes.items() if len(o.children) != 1}
        children = {c for o in outcomes.values() for c in o.children}
        twice = {k: n for k, n in on_log.items() if n != 1}
        print(  # the whole picture, before the first assertion stops the test
            f"\n{len(sent)} messages, {facts} facts, each sent to {len(apis)} API processes:"
            f"\n  facts not taken exactly once: {len(not_once)}"
            + "".join(f"\n    {line}" for line in not_once[:10])
            + f"\n  NHS numbers answered with more than one child: {len(split)}"
            f"\n  children named in the answers: {len(children)}"
            f"\n  person rows: {len(index['persons'])}, without an identifier: {index['unlinked']}"
            f"\n  identifiers in the person index: {index['identifiers']}"
            f"\n  facts on hub.events + hub.withheld: {len(on_log)} distinct, "
            f"{sum(on_log.values())} records, {len(twice)} more than once"
            f"\n  /audit/verify: {[(r.status_code, r.text[:300]) for r in verified]}"
        )

        assert not_once == [], f"{len(not_once)} of {facts} facts not taken exactly once"
        assert split == {}, f"one NHS number, several children: {split}"
        assert len(children) == len(sent), "the answers name one child per NHS number"
        assert index["unlinked"] == 0, f"{index['unlinked']} person rows without an identifier"
        assert index["persons"] == index["linked"] == children
        assert index["identifiers"] == len(sent)
        assert twice == {}, f"{len(twice)} facts on the log more than once"
        assert len(on_log) == facts
        for r in verified:
            assert r.status_code == 200 and r.json()["ok"] is True, r.text
