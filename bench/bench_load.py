"""Load: the team view under concurrent clients, on the embedded default and on Kafka +
PostgreSQL with two API processes.

`python -m bench --only load [--load-children 40] [--load-concurrency 1,8,32]`

**Embedded.** The demo cohort (`hub.demo.run_demo_load`: every fact through the real
adapters, routes and consent gate) is loaded into a fresh data dir, then a real
`hub serve` (the embedded default: SQLite log with `synchronous=FULL`, SQLite store, the
projector in the same process) is started on it as a child process, and client processes
drive `GET /children/{id}/team` over random children of the demo coordinator's caseload
with 1, 8 and 32 keep-alive connections. Beside each figure, in the same run and at the
same concurrency, the raw rate of the same server: `GET /healthz` (no auth, no I/O:
uvicorn + FastAPI alone), and the ratio. Server CPU per request (from /proc) and audit
log appends per request (distinct append timestamps in `hub.audit`: one fsync each) say
what bounds the figure.

**Kafka + PostgreSQL.** A Tansu broker (as the other benchmarks start it) and PostgreSQL
in a fresh schema; the cohort is loaded the same way, then two `hub api` processes and one
`hub projector` are started with the same `HUB_*` settings (a shared `HUB_MASTER_KEY`,
idempotence off for Tansu), and the clients are split between the two APIs. Reported
against its own raw rate (`/healthz` of both APIs) and against the embedded figure at
the same concurrency.

**The client** is a minimal HTTP/1.1 keep-alive client on asyncio streams (below), one
process per API, started and warmed before the measured window opens: httpx costs ~2-3 ms
of CPU per request, which on two cores would measure the client rather than the hub.
Every loop is bounded by a request count and a deadline; everything runs on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.broker import free_port
from tests.support.processes import hub_env, start_hub, stop

CONCURRENCY = (1, 8, 32)
REQUESTS = {1: 400, 8: 1500, 32: 3000}
"""Measured requests per run at each concurrency (after a warm-up per connection)."""
SECONDS = 30.0
"""Deadline of one measured run: a run that has not finished by then stops and says so."""
GOAL_RATE, GOAL_P95_MS, GOAL_SCALE = 500.0, 50.0, 1.6


# --------------------------------------------------------------------------- the client


class _Connection:
    """One keep-alive HTTP/1.1 connection: GET, read the status and a sized body."""

    def __init__(self, host: str, port: int, headers: bytes) -> None:
        self._host, self._port, self._headers = host, port, headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, int]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self._headers)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("a chunked answer: this client reads sized bodies only")
        if length is None:
            raise RuntimeError(f"an answer without content-length: {head!r}")
        await self._reader.readexactly(length)
        return status, length

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass


async def _drive(args: argparse.Namespace, children: list[str]) -> dict[str, Any]:
    host, _, port = args.address.rpartition(":")
    headers = f"Host: {args.address}\r\n"
    if args.token:
        headers += f"Authorization: Bearer {args.token}\r\n"
    rng = random.Random(args.seed)

    def path() -> str:
        return "/healthz" if args.route == "healthz" else f"/children/{rng.choice(children)}/team"

    conns = [_Connection(host, int(port), (headers + "\r\n").encode()) for _ in range(args.c)]
    for conn in conns:  # warm: connect, and let the server cache what it caches
        for _ in range(args.warm):
            status, _ = await conn.get(path())
            if status != 200:
                raise RuntimeError(f"warm-up answered {status}")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    latencies: list[float] = []
    errors: dict[str, int] = {}
    left = args.n
    start = time.time()
    deadline = time.perf_counter() + args.seconds
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)

    async def worker(conn: _Connection) -> None:
        nonlocal left
        while left > 0 and time.perf_counter() < deadline:
            left -= 1
            t0 = time.perf_counter()
            status, _ = await conn.get(path())
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1

    await asyncio.gather(*(worker(c) for c in conns))
    end = time.time()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        await conn.close()
    return {
        "start": start,
        "end": end,
        "latencies": latencies,
        "errors": errors,
        "timed_out": left > 0,
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    }


def client_main(argv: Sequence[str]) -> int:
    """`python -m bench.bench_load client ...`: one client process (prints one JSON line)."""
    p = argparse.ArgumentParser(prog="bench.bench_load client")
    p.add_argument("--address", required=True, help="host:port")
    p.add_argument("--route", choices=("team", "healthz"), required=True)
    p.add_argument("--token", default="")
    p.add_argument("--children", required=True, help="JSON file: the child ids to ask for")
    p.add_argument("-c", type=int, required=True, help="connections")
    p.add_argument("-n", type=int, required=True, help="measured requests")
    p.add_argument("--warm", type=int, default=3, help="requests per connection first")
    p.add_argument("--seconds", type=float, default=SECONDS)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    result = asyncio.run(_drive(args, json.loads(Path(args.children).read_text())))
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    route: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: dict[str, int]
    timed_out: bool
    client_cpu: float
    server_cpu: float | None = None
    per_process: list[float] = field(default_factory=list)
    beside_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float | None = None
    audit_appends: int | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000 if ordered else 0.0


def _cpu_seconds(pids: Sequence[int]) -> list[float] | None:
    """User + system CPU of each process (Linux /proc), or None where there is no /proc."""
    out = []
    tick = os.sysconf("SC_CLK_TCK")
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / tick)
    except (OSError, ValueError, IndexError):
        return None
    return out


def _pids_named(comm: str, cmdline_has: str = "") -> list[int]:
    """Processes of the machine by name (Linux /proc): e.g. this run's broker, or every
    PostgreSQL backend (other users' included: the server is shared)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != comm:
                continue
            if cmdline_has and cmdline_has not in (entry / "cmdline").read_bytes().decode(
                errors="replace"
            ):
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def _cpu_of(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of each process still running (those that exited are left out)."""
    out = {}
    for pid in pids:
        cpu = _cpu_seconds([pid])
        if cpu is not None:
            out[pid] = cpu[0]
    return out


def _machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far (Linux /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def measure(
    addresses: Sequence[str],
    route: str,
    concurrency: int,
    requests: int,
    *,
    token: str,
    children: Path,
    server_pids: Sequence[int],
    audit_db: Path | None = None,
    beside: Mapping[str, Callable[[], list[int]]] | None = None,
) -> Run:
    """One measured run: `concurrency` connections split evenly over the `addresses`
    (host:port), one client process each, all released together once warm."""
    shares = _split(concurrency, len(addresses))
    procs: list[subprocess.Popen[str]] = []
    for i, (address, c) in enumerate(zip(addresses, shares, strict=True)):
        if c == 0:
            continue
        n = max(1, round(requests * c / concurrency))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.bench_load", "client", "--address", address,
                 "--route", route, "--token", token, "--children", str(children),
                 "-c", str(c), "-n", str(n), "--seed", str(i + 1)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
        )  # fmt: skip
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a load client did not start: {line!r}")
        cpu0 = _cpu_seconds(server_pids)
        others0 = {name: _cpu_of(find()) for name, find in (beside or {}).items()}
        machine0 = _machine_busy()
        appends0 = _audit_appends(audit_db)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=SECONDS + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"a load client failed ({proc.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
        cpu1 = _cpu_seconds(server_pids)
        others1 = {name: _cpu_of(find()) for name, find in (beside or {}).items()}
        machine1 = _machine_busy()
        appends1 = _audit_appends(audit_db)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    latencies = [lat for r in results for lat in r["latencies"]]
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return Run(
        route=route,
        concurrency=concurrency,
        requests=len(latencies),
        seconds=max(r["end"] for r in results) - min(r["start"] for r in results),
        latencies=latencies,
        errors=errors,
        timed_out=any(r["timed_out"] for r in results),
        client_cpu=sum(r["cpu"] for r in results),
        server_cpu=None if cpu0 is None or cpu1 is None else sum(cpu1) - sum(cpu0),
        beside_cpu={
            name: sum(cpu - others0[name][pid] for pid, cpu in cpus.items() if pid in others0[name])
            for name, cpus in others1.items()
        },
        per_process=[]
        if cpu0 is None or cpu1 is None
        else [b - a for a, b in zip(cpu0, cpu1, strict=True)],
        machine_busy=(
            None
            if machine0 is None or machine1 is None or machine1[1] == machine0[1]
            else (machine1[0] - machine0[0]) / (machine1[1] - machine0[1]) * (os.cpu_count() or 1)
        ),
        audit_appends=(None if appends0 is None or appends1 is None else appends1 - appends0),
    )


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _audit_appends(path: Path | None) -> int | None:
    """Appends to `hub.audit` so far on an embedded log: each append is one transaction
    (one fsync at synchronous=FULL) and stamps its rows with one timestamp."""
    if path is None:
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT COUNT(DISTINCT ts) FROM log_hub_audit").fetchone()
    finally:
        conn.close()
    return int(row[0])


def describe(label: str, team: Run, raw: Run, names: Sequence[str] = ()) -> list[str]:
    ratio = team.rate / raw.rate if raw.rate else float("nan")
    line = (
        f"load ({label}) team c={team.concurrency:<3} {team.rate:>7,.0f} req/s  "
        f"p50 {team.pct(50):6.1f} ms  p95 {team.pct(95):6.1f} ms   raw /healthz: "
        f"{raw.rate:>7,.0f} req/s (p95 {raw.pct(95):.1f} ms)   ratio {ratio:5.2f}"
    )
    notes = []
    if team.server_cpu is not None and team.requests:
        notes.append(
            f"server CPU {team.server_cpu * 1000 / team.requests:.2f} ms/request "
            f"({team.server_cpu / team.seconds:.2f} cores busy"
            + (
                ": "
                + " + ".join(
                    f"{name} {cpu / team.seconds:.2f}"
                    for name, cpu in zip(names, team.per_process, strict=False)
                )
                if len(names) > 1
                else ""
            )
            + f"); healthz {(raw.server_cpu or 0) * 1000 / max(1, raw.requests):.2f} ms"
        )
    for name, cpu in team.beside_cpu.items():
        notes.append(f"{name} {cpu / team.seconds:.2f} cores")
    notes.append(f"client CPU {team.client_cpu * 1000 / max(1, team.requests):.2f} ms/request")
    if team.machine_busy is not None:
        notes.append(f"machine {team.machine_busy:.2f} of {os.cpu_count()} cores busy")
    if team.audit_appends is not None and team.requests:
        notes.append(
            f"audit appends (fsyncs) {team.audit_appends} for {team.requests} reads "
            f"({team.requests / max(1, team.audit_appends):.1f} reads per commit)"
        )
    if team.errors or raw.errors:
        notes.append(f"errors: team {team.errors}, healthz {raw.errors}")
    if team.timed_out or raw.timed_out:
        notes.append(f"stopped at the {SECONDS:.0f} s deadline")
    return [line, "    " + "; ".join(notes)]


# --------------------------------------------------------------------------- set-up


def _wait_ready(address: str, proc: subprocess.Popen[bytes], log_file: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited: {log_file.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://{address}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the hub at {address} was not ready in 120 s")


def _check_team(addresses: Sequence[str], token: str, child: str) -> None:
    """Each server answers the real team view (so the load client's 200s mean views)."""
    import httpx

    for address in addresses:
        r = httpx.get(
            f"http://{address}/children/{child}/team",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if r.status_code != 200 or r.json().get("child_id") != child or not r.json()["agencies"]:
            raise RuntimeError(f"{address} did not answer the team view: {r.status_code}")


def _load_cohort(settings: Any, children: int, out: Path) -> str:
    """Load the demo cohort through the real routes; writes the child ids to `out` and
    returns the demo coordinator's token."""
    from hub.demo import run_demo_load

    cohort, result = asyncio.run(run_demo_load(settings, children=children))
    out.write_text(json.dumps([result.child_id(c) for c in cohort.children]))
    return result.keys.coordinator


@contextmanager
def _hubs(
    commands: Sequence[list[str]], env: dict[str, str], work: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, cmd in enumerate(commands):
            procs.append(start_hub(cmd, env, work / f"hub-{i}.log"))
        yield procs
    finally:
        for proc in procs:
            stop(proc)


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    team: dict[int, Run] = field(default_factory=dict)


def _sweep(
    label: str,
    addresses: list[str],
    concurrency: Sequence[int],
    token: str,
    children: Path,
    pids: list[int],
    names: list[str],
    audit_db: Path | None,
    say: Any,
    beside: Mapping[str, Callable[[], list[int]]] | None = None,
) -> Outcome:
    out = Outcome()
    _check_team(addresses, token, json.loads(children.read_text())[0])
    for c in concurrency:
        kw: dict[str, Any] = {
            "token": token, "children": children, "server_pids": pids, "audit_db": audit_db,
            "beside": beside,
        }  # fmt: skip
        raw = measure(addresses, "healthz", c, REQUESTS.get(c, 3000) * 2, **kw)
        team = measure(addresses, "team", c, REQUESTS.get(c, 3000), **kw)
        out.team[c] = team
        lines = describe(label, team, raw, names)
        for line in lines:
            say(line)
        out.lines += lines
    return out


def run_embedded(children: int, concurrency: Sequence[int], say: Any) -> Outcome:
    from hub.settings import Settings

    with tempfile.TemporaryDirectory(prefix="hub-load-") as d:
        work = Path(d)
        data = work / "data"
        t0 = time.perf_counter()
        # loaded as `hub demo` loads it (synchronous=NORMAL); served at the default, FULL
        settings = Settings(data_dir=data, log_level="WARNING", sqlite_synchronous="NORMAL")
        token = _load_cohort(settings, children, work / "children.json")
        say(f"  embedded: {children} demo children loaded in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        env = hub_env(log_level="WARNING")
        cmd = ["serve", "--data-dir", str(data), "--port", str(port)]
        with _hubs([cmd], env, work) as procs:
            _wait_ready(f"127.0.0.1:{port}", procs[0], work / "hub-0.log")
            return _sweep(
                "embedded, hub serve", [f"127.0.0.1:{port}"], concurrency, token,
                work / "children.json", [p.pid for p in procs], ["serve"], data / "log.db",
                say,
            )  # fmt: skip


def run_kafka(
    children: int, concurrency: Sequence[int], bootstrap: str, dsn: str, say: Any
) -> Outcome:
    from hub.consent.crypto import MasterKey
    from hub.settings import Settings

    prefix = f"load-{uuid.uuid4().hex[:8]}-"
    schema = f"load_{uuid.uuid4().hex[:8]}"
    master = MasterKey.generate_base64()
    settings_env = {
        "log_backend": "kafka",
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic_prefix": prefix,
        "kafka_enable_idempotence": "false",
        "store_backend": "postgres",
        "postgres_dsn": dsn,
        "postgres_schema": schema,
        "master_key": master,
        "log_level": "WARNING",
    }
    with tempfile.TemporaryDirectory(prefix="hub-load-") as d:
        work = Path(d)
        try:
            t0 = time.perf_counter()
            settings = Settings(data_dir=work / "data", **settings_env)  # type: ignore[arg-type]
            token = _load_cohort(settings, children, work / "children.json")
            say(f"  kafka: {children} demo children loaded in {time.perf_counter() - t0:.1f} s")
            env = hub_env(**settings_env)
            ports = [free_port(), free_port()]
            data = ["--data-dir", str(work / "data")]
            cmds = [["api", *data, "--port", str(p)] for p in ports] + [["projector", *data]]
            with _hubs(cmds, env, work) as procs:
                for i, p in enumerate(ports):
                    _wait_ready(f"127.0.0.1:{p}", procs[i], work / f"hub-{i}.log")
                return _sweep(
                    "kafka+postgres, 2 x hub api + hub projector",
                    [f"127.0.0.1:{p}" for p in ports], concurrency, token,
                    work / "children.json", [p.pid for p in procs],
                    ["api", "api", "projector"], None, say,
                    {
                        "tansu (this run's broker)": lambda: _pids_named(
                            "tansu", f"tcp://{bootstrap}"
                        ),
                        "postgres (every backend on the machine)": lambda: _pids_named(
                            "postgres"
                        ),
                    },
                )  # fmt: skip
        finally:
            asyncio.run(_drop_schema(dsn, schema))


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def run(
    children: int,
    concurrency: Sequence[int],
    bootstrap: str | None,
    dsn: str | None,
    say: Any = print,
) -> list[str]:
    load = os.getloadavg()
    say(
        f"load: the team view under 1-{max(concurrency)} concurrent clients "
        f"(load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    embedded = run_embedded(children, concurrency, say)
    lines = list(embedded.lines)
    top = max(concurrency)
    e = embedded.team[top]
    met = e.rate >= GOAL_RATE and e.pct(95) <= GOAL_P95_MS
    line = (
        f"  goal (embedded, c={top}): >= {GOAL_RATE:.0f} req/s with p95 <= {GOAL_P95_MS:.0f} ms:"
        f" {e.rate:,.0f} req/s, p95 {e.pct(95):.1f} ms  {'MET' if met else 'MISSED'}"
    )
    say(line)
    lines.append(line)
    if bootstrap is None or dsn is None:
        say("  (Kafka + PostgreSQL load skipped: no broker or no PostgreSQL)")
        return lines
    kafka = run_kafka(children, concurrency, bootstrap, dsn, say)
    lines += kafka.lines
    for c in concurrency:
        ratio = kafka.team[c].rate / embedded.team[c].rate
        goal = f"  goal >= {GOAL_SCALE} {'MET' if ratio >= GOAL_SCALE else 'MISSED'}"
        line = (
            f"  kafka+postgres (2 APIs) / embedded at c={c}: {kafka.team[c].rate:,.0f} / "
            f"{embedded.team[c].rate:,.0f} req/s = {ratio:.2f}{goal if c == top else ''}"
        )
        say(line)
        lines.append(line)
    return lines


def _main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "client":
        return client_main(argv[1:])
    raise SystemExit(
        "usage: python -m bench.bench_load client ... (or python -m bench --only load)"
    )


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
