"""The OpenAPI document says what the API sends. schemathesis calls every documented
operation of a running `hub serve` (as an admin, then as a coordinator) with examples,
boundary values and generated input, valid and not, and checks each answer against the
document: a documented status, content type, headers and schema, no 5xx, bad input
refused, good input taken, and 401 without credentials. Bounded (a few examples per
operation, one seed) so the run is bounded and the same each time (about 80 s a role on
two cores, most of it the coverage phase's boundary values).

The document is also checked in (`contracts/openapi.json`, rewritten by
`python -m hub.api.openapi`), with stable names: operationIds are the endpoint
functions' names and no schema is named after a module path."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.openapi import document
from tests.conftest import backend_missing
from tests.e2e.test_serve import hub_cli, wait_http
from tests.support.broker import free_port
from tests.support.processes import hub_env, start_hub, stop

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")


@functools.cache
def served_document() -> str:
    return document()


def test_the_checked_in_openapi_document_is_the_apps() -> None:
    checked_in = (REPO / "contracts" / "openapi.json").read_text(encoding="utf-8")
    assert checked_in == served_document(), "run `python -m hub.api.openapi` and commit it"


def test_operation_ids_and_schema_names_are_stable() -> None:
    doc = json.loads(served_document())
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert all(i.isidentifier() and i.islower() and not i.endswith(("_get", "_post")) for i in ids)
    assert doc["paths"]["/children/{child_id}/record"]["get"]["operationId"] == "child_record"
    names = doc["components"]["schemas"]
    assert not [n for n in names if "__" in n or n.startswith("Body_") or n.endswith("put")]
    assert "HTTPValidationError" not in names and "Problem" in names


def test_every_error_is_documented_as_problem_details() -> None:
    """Problem details everywhere, but a FHIR route's own 400/404 (OperationOutcome)."""
    doc = json.loads(served_document())
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                fhir = path.startswith("/fhir/") and status in ("400", "404", "422")
                if fhir:  # a FHIR route's own refusals are OperationOutcomes
                    assert "application/fhir+json" in response["content"], (path, status)
                elif int(status) >= 400 and (path, status) != ("/readyz", "503"):
                    assert list(response["content"]) == ["application/problem+json"], (
                        method, path, status,
                    )  # fmt: skip
                assert "X-Request-ID" in response["headers"]
            if op.get("security"):
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "422"} <= set(op["responses"]), (method, path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    if not ST.exists():
        backend_missing("schemathesis", "not installed (the test extras)")
    root = tmp_path_factory.mktemp("schemathesis")
    data = root / "data"
    # Long idle limits: schemathesis keeps connections open while it generates, and a
    # connection the hub closes for idling would be a network error, not a finding.
    env = hub_env(keep_alive_timeout_seconds="300", header_timeout_seconds="300")
    tokens = {}
    for role in ("admin", "coordinator"):
        made = hub_cli("keys", "create", "--role", role, "--name", role,
                       "--data-dir", str(data), env=env)  # fmt: skip
        assert made.returncode == 0, made.stderr
        tokens[role] = made.stdout.strip().splitlines()[-1]
    port = free_port()
    log = root / "serve.log"
    proc = start_hub(["serve", "--data-dir", str(data), "--port", str(port)], env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        stop(proc)


@pytest.mark.parametrize("role", ["admin", "coordinator"])
def test_schemathesis_finds_nothing(served: tuple[str, dict[str, str]], role: str) -> None:
    url, tokens = served
    # one worker: with two worker threads, ast.parse in hypothesis (describing a lambda)
    # raised CPython 3.11's spurious "SystemError: AST constructor recursion depth
    # mismatch" (gh-106905, reported from threaded programs) in CI, twice
    ran = subprocess.run(
        [str(ST), "--config-file", str(CONFIG), "--no-color", "run", f"{url}/openapi.json",
         "-H", f"Authorization: Bearer {tokens[role]}",
         "--seed", "1", "--max-examples", "3", "--workers", "1",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-2000:]
    assert "Tested: " in ran.stdout
