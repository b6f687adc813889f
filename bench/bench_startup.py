"""Start-up times: `hub --help` (target < 0.5 s) and `hub serve` until /healthz answers
(target < 3 s), each the median of several runs."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from tests.support.broker import free_port


def _help() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hub.cli", "--help"], capture_output=True, check=True)
    return time.perf_counter() - t0


def _serve() -> float:
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--data-dir", d, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    if (
                        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code
                        == 200
                    ):
                        return time.perf_counter() - t0
                except httpx.TransportError:
                    time.sleep(0.01)
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("hub serve did not answer in 30 s")
        finally:
            proc.terminate()
            proc.wait(10)


def run(rounds: int = 5) -> list[str]:
    helps = [_help() for _ in range(rounds)]
    serves = [_serve() for _ in range(3)]
    h, s = statistics.median(helps), statistics.median(serves)
    return [
        f"{'hub --help':<44} {h * 1000:>8.0f} ms   goal < 500 ms {'MET' if h < 0.5 else 'MISSED'}",
        f"{'hub serve until /healthz answers':<44} {s * 1000:>8.0f} ms   "
        f"goal < 3000 ms {'MET' if s < 3 else 'MISSED'}",
    ]
