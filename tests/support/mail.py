"""Real receivers for notification tests: an SMTP server process (aiosmtpd, writing a
maildir) and a webhook receiver process (http.server, one JSON line per request)."""

from __future__ import annotations

import json
import mailbox
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

RECEIVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

out, status = sys.argv[2], int(sys.argv[3])

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                 "body": body.decode()}) + "\\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll an observable condition (a port open, files written) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def _process(args: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _listening(port) or proc.poll() is not None, f"port {port}")
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def smtp_server(maildir: Path, log: Path) -> Iterator[int]:
    """An aiosmtpd process on loopback delivering every message into `maildir`."""
    port = free_port()
    args = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
            "-c", "aiosmtpd.handlers.Mailbox", str(maildir)]  # fmt: skip
    with _process(args, port, log):
        yield port


@contextmanager
def webhook_receiver(out: Path, log: Path, status: int = 204) -> Iterator[int]:
    """An HTTP server process answering `status` to each POST, written to `out`."""
    port = free_port()
    script = out.with_suffix(".py")
    script.write_text(RECEIVER)
    with _process([sys.executable, str(script), str(port), str(out), str(status)], port, log):
        yield port


def messages(maildir: Path) -> list[Message]:
    if not (maildir / "new").is_dir():
        return []
    return list(mailbox.Maildir(maildir, create=False))


def requests(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
