"""Run `hub` commands as real child processes (for crash and restart tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def hub_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({f"HUB_{k.upper()}": v for k, v in settings.items()})
    env["HUB_LOG_FORMAT"] = "json"
    return env


def start_hub(args: list[str], env: Mapping[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    out = log_file.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", *args],
        env=dict(env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_hard(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no cleanup, no flush, no goodbye."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            kill_hard(proc)
    return proc.returncode
