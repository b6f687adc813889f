"""Request bodies and slow clients, against `hub serve` as a real process on loopback,
spoken to over raw sockets so that the test, not a client library, decides what is sent.

Without a token, a large chunked body is refused 401 before the hub reads it (the
process's resident memory stays where it was, and the connection is closed); with a
token, a body past `HUB_MAX_BODY_BYTES` is refused 413 whether it declares its length
or not, and one just under the limit is taken; a body that stops arriving is answered
408, and headers that stop arriving get the connection closed. In process: a request
is authenticated once, not once by the guard and again by the route."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from hub.api.app import create_app
from hub.auth import Authenticator, Principal
from hub.settings import Settings
from tests.e2e.test_serve import hub_cli, wait_http
from tests.support.broker import free_port
from tests.support.processes import hub_env, start_hub, stop

LIMIT = 16 * 1024


@dataclass(frozen=True)
class Served:
    port: int
    proc: subprocess.Popen[bytes]
    admin: str
    agency: str

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for the hub process")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("limits")
    data = tmp / "data"
    env = hub_env(
        max_body_bytes=str(LIMIT), body_read_timeout_seconds="1", header_timeout_seconds="1"
    )

    def key(*args: str) -> str:
        made = hub_cli("keys", "create", *args, "--data-dir", str(data), env=env)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip().splitlines()[-1]

    admin = key("--role", "admin", "--name", "ops")
    agency = key("--role", "agency", "--name", "oak", "--agency", "school:100001")
    port = free_port()
    logfile = tmp / "serve.log"
    proc = start_hub(["serve", "--data-dir", str(data), "--port", str(port)], env, logfile)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, logfile)
        yield Served(port, proc, admin, agency)
    finally:
        stop(proc)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        assert self.headers["content-type"] == "application/problem+json"
        problem = orjson.loads(self.body)
        assert isinstance(problem, dict) and problem["status"] == self.status
        return problem


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 response (with a Content-Length, as every answer here has)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {raw!r}")
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body)


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed the connection (EOF or reset); a socket timeout
    (the server keeps it open) propagates."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def request_head(
    method: str, path: str, *, token: str | None = None, chunked: bool = False,
    length: int | None = None, content_type: str = "application/json",
) -> bytes:  # fmt: skip
    lines = [f"{method} {path} HTTP/1.1", "Host: hub.test", f"Content-Type: {content_type}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def erase_body(size: int) -> bytes:
    """A valid erase request of exactly `size` bytes (JSON whitespace as padding)."""
    core = b'{"reason": "SAR-1"'
    return core + b" " * (size - len(core) - 1) + b"}"


@pytest.mark.parametrize("path", ["/ingest/events", "/children/hc-x/erase", "/caseload"])
def test_an_unauthenticated_large_chunked_body_is_refused_unread(served: Served, path: str) -> None:
    before = served.rss_bytes()
    with served.connect() as sock:
        sock.sendall(request_head("POST", path, chunked=True) + chunk(b"[" + b" " * 1000))
        answer = read_answer(sock)  # answered at once, with 1 KB of the body sent
        assert answer.status == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="tac-hub"'
        assert answer.headers["connection"] == "close"
        assert "missing Authorization header" in str(answer.problem()["detail"])
        sent = 0
        block = chunk(b" " * (1024 * 1024))
        with pytest.raises(OSError):  # the server closed: 400 MB cannot be pushed at it
            while sent < 400 * 1024 * 1024:
                sock.sendall(block)
                sent += len(block)
        assert sent < 64 * 1024 * 1024
    after = served.rss_bytes()
    assert after - before < 32 * 1024 * 1024, (before, after)
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=5).status_code == 200


def test_a_bad_token_with_a_huge_declared_body_is_refused_unread(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(request_head("POST", "/ingest/events", token="thk_nope",
                                  length=400 * 1024 * 1024))  # fmt: skip
        answer = read_answer(sock)
        assert answer.status == 401 and "invalid_token" in answer.headers["www-authenticate"]
        assert closed_by_server(sock)


def test_a_small_body_sent_after_its_headers_is_read_before_the_401(served: Served) -> None:
    # As clients send it: the headers, then the body in a second write. The hub reads the
    # small body before answering, so the 401 is not lost to a reset (the body arriving at
    # a closed socket), and the connection serves the next request.
    body = b'{"events": []}'
    with served.connect() as sock:
        sock.sendall(request_head("POST", "/ingest/events", length=len(body)))
        sock.sendall(body)
        answer = read_answer(sock)
        assert answer.status == 401 and answer.headers.get("connection") != "close"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub.test\r\n\r\n")
        assert read_answer(sock).status == 200


def test_a_small_body_the_app_never_reads_is_drained_before_its_answer(served: Served) -> None:
    # The router answers 405 without reading the body; the guard reads the small rest
    # first, so the answer arrives (not a reset) and names every method of the path.
    body = b'{"events": []}'
    with served.connect() as sock:
        sock.sendall(request_head("PUT", "/children/x/consents", token=served.admin,
                                  length=len(body)))  # fmt: skip
        sock.sendall(body)
        answer = read_answer(sock)
        assert answer.status == 405 and answer.headers["allow"] == "GET, POST"
        assert answer.headers.get("connection") != "close"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub.test\r\n\r\n")
        assert read_answer(sock).status == 200


@pytest.mark.parametrize("path", ["/ingest/events", "/invitations/redeem"])
def test_a_declared_length_over_the_limit_is_refused_413_before_reading(
    served: Served, path: str
) -> None:
    with served.connect() as sock:  # /invitations/redeem is public, and limited too
        sock.sendall(request_head("POST", path, token=served.agency, length=LIMIT + 1))
        answer = read_answer(sock)
        assert answer.status == 413
        assert f"limit of {LIMIT} bytes" in str(answer.problem()["detail"])
        assert closed_by_server(sock)


def test_a_chunked_body_over_the_limit_is_refused_413_as_it_passes(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(request_head("POST", "/ingest/events", token=served.agency, chunked=True))
        sock.sendall(chunk(b"[" + b" " * (LIMIT // 2)) + chunk(b" " * (LIMIT // 2 + 10)))
        answer = read_answer(sock)  # the terminating chunk was never sent
        assert answer.status == 413 and answer.headers["connection"] == "close"
        assert f"limit of {LIMIT} bytes" in str(answer.problem()["detail"])
        assert closed_by_server(sock)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_just_under_the_limit_is_taken_and_one_byte_more_is_not(
    served: Served, chunked: bool
) -> None:
    for size, status in ((LIMIT, 404), (LIMIT + 1, 413)):
        body = erase_body(size)
        with served.connect() as sock:
            path = "/children/hc-nobody/erase"
            if chunked:
                half = len(body) // 2
                sock.sendall(request_head("POST", path, token=served.admin, chunked=True)
                             + chunk(body[:half]) + chunk(body[half:]) + b"0\r\n\r\n")  # fmt: skip
            else:
                sock.sendall(request_head("POST", path, token=served.admin, length=size) + body)
            answer = read_answer(sock)
        assert answer.status == status, (size, answer)
        if status == 404:  # the erase handler read the body and looked for the child
            assert "hc-nobody" in str(answer.problem()["detail"])


def test_a_body_that_stops_arriving_is_answered_408(served: Served) -> None:
    with served.connect() as sock:
        head = request_head("POST", "/children/hc-x/erase", token=served.admin, length=200)
        sock.sendall(head + b'{"reason": ')  # and then nothing
        answer = read_answer(sock)  # blocks until the hub gives up (1 s), at most 10 s
        assert answer.status == 408
        assert "did not arrive within 1 seconds" in str(answer.problem()["detail"])
        assert closed_by_server(sock)


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /ingest/events HTTP/1.1\r\nHost: hub.test\r\nContent-Le"],
    ids=["nothing", "half the headers"],
)
def test_headers_that_stop_arriving_get_the_connection_closed(served: Served, sent: bytes) -> None:
    with served.connect() as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)  # within the 1 s header timeout; the socket waits 10 s


def test_a_kept_alive_connection_times_the_next_requests_headers_too(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub.test\r\n\r\n")
        assert read_answer(sock).status == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub")  # the next request, stalled
        assert closed_by_server(sock)


class CountingAuthenticator(Authenticator):
    calls = 0

    async def authenticate(self, authorization: str | None) -> Principal:
        CountingAuthenticator.calls += 1
        return await super().authenticate(authorization)


async def test_a_request_is_authenticated_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings, run_projector=False)
    async with app.router.lifespan_context(app):
        real = app.state.auth
        app.state.auth = CountingAuthenticator(real.keys, real.oidc, real.families)
        from hub.auth import Role

        _, token = await real.keys.create(Role.ADMIN, "ops")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
            r = await c.post("/children/hc-nobody/erase", json={"reason": "SAR-1"},
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 404, r.text
        assert CountingAuthenticator.calls == 1


@pytest.mark.parametrize(
    ("scheme", "status"),
    [("bearer ", 200), ("BEARER ", 200), ("Bearer  ", 401), ("Bearer\t", 401)],
    ids=["lower case", "upper case", "two spaces", "a tab"],
)
def test_the_running_hub_reads_bearer_as_rfc_6750_writes_it(
    served: Served, scheme: str, status: int
) -> None:
    with served.connect() as sock:
        sock.sendall(
            f"GET /whoami HTTP/1.1\r\nHost: hub.test\r\n"
            f"Authorization: {scheme}{served.admin}\r\n\r\n".encode()
        )
        answer = read_answer(sock)
    assert answer.status == status, answer
    if status == 401:
        assert "malformed" in str(answer.problem()["detail"])


async def test_every_accepted_connection_sends_without_waiting_for_acks() -> None:
    """The listening socket is made so that asyncio sets TCP_NODELAY on each connection it
    accepts: a response written as head then body is not held for the client's delayed
    ACK (~40 ms a request on loopback, whatever the load)."""
    import asyncio

    from hub.api.server import listen

    sock = listen("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            conn = transport.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
