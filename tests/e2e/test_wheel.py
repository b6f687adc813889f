"""The built wheel, installed outside the repository, starts: `hub serve` from a fresh venv
answers /healthz and /readyz with the policy and contracts it carries inside the package,
and a hub that cannot start says why in one line on stderr and exits non-zero.

The wheel is built from this checkout (sdist first, then the wheel from the sdist, as
`python -m build` does: so the sdist is checked too), without build isolation (the test
venv has setuptools and build: no download). The fresh venv gets only the wheel; its
dependencies are the test venv's site-packages, named by a `.pth` line (which adds that
directory but runs none of its `.pth` files, so the test venv's editable `hub` is not
seen: the test checks that `hub` is imported from the fresh venv)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.broker import free_port

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build", reason="needs the `build` package (test extras)")
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = dist.glob("tac_hub-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=120, check=False, cwd=root, env=clean_env(),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "test-venv-deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    return root


def clean_env() -> dict[str, str]:
    drop = ("HUB_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["HUB_LOG_FORMAT"] = "json"
    return env


def test_the_wheel_carries_the_repository_contracts_unchanged(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        shipped = {
            n.removeprefix("hub/_contracts/"): whl.read(n)
            for n in whl.namelist()
            if n.startswith("hub/_contracts/") and not n.endswith("/")
        }
    repo = {
        str(p.relative_to(CONTRACTS)): p.read_bytes() for p in CONTRACTS.rglob("*") if p.is_file()
    }
    assert "consent-policy.yaml" in shipped and "inbound/family.schema.json" in shipped
    assert shipped == repo


def test_the_installed_wheel_serves_outside_the_repository(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import hub.consent.policy as p; print(p.default_policy_path())"],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(), check=True,
    ).stdout.strip()  # fmt: skip
    policy = Path(where)
    assert policy.is_relative_to(venv) and policy.is_file() and not policy.is_symlink()

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "hub"), "serve", "--data-dir", "data", "--port", str(port)],
            cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        health = None
        while health is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
        assert health is not None, log.read_text()[-3000:]
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert f"TAC Hub on http://127.0.0.1:{port}" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(30)
    assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def test_a_hub_that_cannot_start_says_why_in_one_line(venv: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-policy.yaml"
    (tmp_path / ".env").write_text(f"HUB_CONSENT_POLICY={missing}\n", encoding="utf-8")
    ran = subprocess.run(
        [str(venv / "bin" / "hub"), "serve", "--data-dir", "data", "--port", str(free_port())],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode != 0
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("hub: error: cannot start: PolicyError: ")
    assert str(missing) in lines[0]
    assert "TAC Hub on" not in ran.stdout  # never announced as started


def test_a_port_in_use_is_one_line_too(venv: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run(
            [str(venv / "bin" / "hub"), "serve", "--data-dir", "data", "--port", str(port)],
            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    assert ran.returncode != 0
    assert ran.stderr.strip().splitlines() == [
        f"hub: error: cannot start: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
