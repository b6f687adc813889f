"""Bulk ingest through the adapters and the consent gate, beside the raw parse of the same
bytes, in one run.

Inputs: a generated 1,000-pupil CTF file (`bench.gen_ctf`), a generated 1,000-resource
FHIR R4 bundle (`bench.gen_fhir`) and the 332-child CIN census sample
../shared/samples/cin/fake_CIN_data.xml (skipped, with the reason printed, when the
samples folder is missing). For each:

- the raw parse rate: lxml `etree.fromstring` (XML) or fhir.resources R4B
  `Bundle.model_validate_json` (the bundle) of the same bytes, stated as facts/s (the
  facts the adapter yields ÷ the raw parse time), so every ratio is ours ÷ raw parse.
  It is timed again before each end-to-end round, and each end-to-end line is set
  beside the raw parses timed between its own rounds (a shared machine's load drifts);
- the adapter alone (`hub.adapters.registry.parse`);
- end to end — adapter parse, then `SubmitFacts` in batches that keep one subject's
  facts together (`hub ingest`'s own batching): identity, idempotency, consent decision,
  audit, sealing, append — onto (a) the embedded SQLite log and store and (b) the Kafka
  log (Tansu, idempotence off) with the SQLite store. Each round has a fresh data
  directory (and fresh topics), so every fact is new: the first ingest of a file.

Each end-to-end round also times its stages: the parse, the gate's own work — identity
(person index, match-queue fingerprints), sealing (including creating each child's data
key per category), the audit chain, re-reading the gate's own views (catch-up of the
`ingest_dedupe` / `consent_state` projections over what the previous batch appended), and
the rest (envelopes, consent decisions, outcomes) — and the log appends, per log. Store
queries (each one executor round trip) are charged to the stage that made them and also
shown apart. Times are exclusive (a stage's time excludes the stages it awaits), so they
add up to the round's wall time; the note shows the median round's split and names what
bounds it. Hub code is not changed: the timing wraps methods of the instances opened for
the round.

`python -m bench --only ingest [--rounds N] [--batch N] [--no-kafka]`, or
`python -m bench.bench_ingest [--kafka HOST:PORT]`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import Result

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
CIN_SAMPLE = SAMPLES / "cin" / "fake_CIN_data.xml"
FHIR_GOAL = 0.8  # PERFORMANCE.md: FHIR ingest >= 0.8 x the raw fhir.resources parse rate
CTF_GOAL = 10_000.0  # issue 9: CTF end to end >= 10k facts/s


class IngestResult(Result):
    """A result line whose ratio keeps its significant digits when it is far below 1 (the
    gate against a bare XML parse), with the raw column aligned."""

    def line(self) -> str:
        ratio = f"{self.ratio:6.2f}" if self.ratio >= 0.1 else f"{self.ratio:6.4f}"
        return (
            f"{self.name:<40} {self.ours:>8,.0f} {self.unit}   raw {self.raw_name:<31} "
            f"{self.raw:>9,.0f}   ratio {ratio}{self.goal_text()}"
        )


@dataclass
class Input:
    label: str  # short, for the result lines
    fmt: str
    data: bytes
    content_type: str | None
    units: int  # pupils, resources or children in the file
    unit_name: str
    raw_name: str
    raw_parse: Callable[[], object]


def _inputs() -> list[Input]:
    from fhir.resources.R4B.bundle import Bundle
    from lxml import etree  # type: ignore[import-untyped]

    from bench.gen_ctf import generate_ctf
    from bench.gen_fhir import generate_bundle

    ctf = generate_ctf(1000, seed=7)
    fhir = generate_bundle(1000, seed=1)
    out = [
        Input("CTF 1,000 pupils", "ctf", ctf, "application/xml", 1000, "pupils",
              "lxml fromstring", lambda: etree.fromstring(ctf)),
        Input("FHIR bundle 1,000 resources", "fhir", fhir, "application/fhir+json", 1000,
              "resources", "R4B Bundle.model_validate_json",
              lambda: Bundle.model_validate_json(fhir)),
    ]  # fmt: skip
    if not SAMPLES.is_dir():
        print(f"(CIN ingest benchmark skipped: no samples folder at {SAMPLES})")
    elif not CIN_SAMPLE.is_file():
        print(f"(CIN ingest benchmark skipped: {CIN_SAMPLE} is missing)")
    else:
        cin = CIN_SAMPLE.read_bytes()
        out.append(
            Input("CIN sample 332 children", "cin", cin, "application/xml", 332,
                  "children", "lxml fromstring", lambda: etree.fromstring(cin))
        )  # fmt: skip
    return out


# -- stage timing -------------------------------------------------------------------------
class Stages:
    """Exclusive wall time per stage: each wrapped coroutine's time, less the time of the
    wrapped coroutines it awaited. Store queries are charged to the stage that made them
    (`<stage>|store`). The gate runs one batch at a time under its lock, so the wrapped
    calls never overlap (a stack suffices)."""

    def __init__(self) -> None:
        self.own: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [stage name, time of nested stages]

    def add(self, name: str, seconds: float) -> None:
        self.own[name] += seconds

    def wrap(
        self, name: str | Callable[..., str] | None, fn: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """`name=None`: charge the time to the calling stage, as `<caller>|store`."""

        async def timed(*args: Any, **kwargs: Any) -> Any:
            if name is None:
                key = (self._stack[-1][0] if self._stack else "gate:other") + "|store"
            else:
                key = name(*args, **kwargs) if callable(name) else name
            self.calls[key] += 1
            self._stack.append([key, 0.0])
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                nested = self._stack.pop()[1]
                self.own[key] += elapsed - nested
                if self._stack:
                    self._stack[-1][1] += elapsed

        return timed


def _instrument(the_hub: Any, stages: Stages) -> Any:
    """Time the gate's stages by wrapping methods on these instances (hub code unchanged);
    returns the submit handler, timed."""
    gate = the_hub.handlers.submit_facts
    inner_log = the_hub.log._inner  # the backend under the metrics-counting decorator
    inner_log.append = stages.wrap(lambda log, records: f"append:{log.value}", inner_log.append)
    inner_log.read = stages.wrap("gate:re-reading its own views", inner_log.read)
    store = the_hub.store
    store._on = stages.wrap(None, store._on)  # every store query: one executor round trip
    rest = "gate:envelopes, consent decisions, outcomes"
    for obj, attr, name in (
        (the_hub.views, "consent_states", rest),
        (gate, "_resolve_all", "gate:identity"),
        (gate, "_hold_for_match", "gate:identity"),
        (the_hub.claims, "holders", "gate:idempotency lookup"),
        (the_hub.claims, "claim", "gate:idempotency claim"),
        (the_hub.claims, "mark_appended", "gate:idempotency claim"),
        (the_hub.views, "catch_up", "gate:re-reading its own views"),
        (gate, "_seal", "gate:sealing"),
    ):
        setattr(obj, attr, stages.wrap(name, getattr(obj, attr)))
    the_hub.matches.fingerprint = stages.wrap("gate:identity", the_hub.matches.fingerprint)
    the_hub.matches.remember = stages.wrap("gate:identity", the_hub.matches.remember)
    the_hub.trail.append = stages.wrap("gate:audit chain", the_hub.trail.append)
    return stages.wrap(rest, gate)


# -- one end-to-end round ---------------------------------------------------------------
async def _end_to_end(
    inp: Input, settings: Any, batch: int
) -> tuple[float, dict[str, float], Counter[str], int]:
    from hub.adapters.registry import parse
    from hub.bootstrap import open_hub, startup_frozen
    from hub.cli import _batches  # `hub ingest`'s batching: one subject's facts together

    the_hub = await open_hub(settings)
    try:
        with startup_frozen():  # as `hub ingest` runs (no full GC pass over start-up's heap)
            return await _round(the_hub, inp, batch, parse, _batches)
    finally:
        await the_hub.close()


async def _round(
    the_hub: Any, inp: Input, batch: int, parse: Any, batches: Any
) -> tuple[float, dict[str, float], Counter[str], int]:
    """One timed round on an open hub: parse, then the gate in `hub ingest`'s batches."""
    stages = Stages()
    submit = _instrument(the_hub, stages)
    outcomes: Counter[str] = Counter()
    start = time.perf_counter()
    result = parse(inp.fmt, inp.data, inp.content_type, "bench")
    parsed = time.perf_counter()
    groups = batches(result.facts, batch)
    stages.add("batching", time.perf_counter() - parsed)
    for chunk in groups:
        for o in await submit(chunk, actor="bench"):
            outcomes[o.status] += 1
    elapsed = time.perf_counter() - start
    stages.add("parse", parsed - start)
    trips = sum(n for k, n in stages.calls.items() if k.endswith("|store"))
    return (
        elapsed,
        {**stages.own, "store round trips": float(trips)},
        outcomes,
        len(result.facts),
    )


def _settings(data_dir: Path, bootstrap: str | None) -> Any:
    from hub.consent.crypto import MasterKey
    from hub.settings import Settings

    extra: dict[str, Any] = {"master_key": MasterKey.generate_base64()}
    if bootstrap is not None:
        extra.update(
            log_backend="kafka",
            kafka_bootstrap_servers=bootstrap,
            kafka_topic_prefix=f"bench-ingest-{uuid.uuid4().hex[:10]}.",
            kafka_enable_idempotence=False,  # Tansu has no idempotent producer
        )
    return Settings(data_dir=data_dir, _env_file=None, **extra)


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()  # start each timing from a clean heap (no collection of earlier garbage)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _split_note(stages: dict[str, float], total: float, facts: int) -> list[str]:
    """Where the time of one round went, and what bounds it."""
    parse = stages.get("parse", 0.0)
    trips = int(stages.get("store round trips", 0))
    appends: dict[str, float] = defaultdict(float)
    gate: dict[str, float] = defaultdict(float)  # stage -> time, store queries included
    gate_store: dict[str, float] = defaultdict(float)
    for key, seconds in stages.items():
        base, _, store = key.partition("|")
        if base.startswith("append:"):
            appends[base.split(":", 1)[1]] += seconds
        elif base.startswith("gate:"):
            gate[base.split(":", 1)[1]] += seconds
            if store:
                gate_store[base.split(":", 1)[1]] += seconds
    append_s, gate_s, store_s = sum(appends.values()), sum(gate.values()), sum(gate_store.values())
    other = max(total - parse - append_s - gate_s, 0.0)  # batching, the loop

    def pct(x: float) -> str:
        return f"{100 * x / total:.0f}%"

    def us(x: float) -> str:
        return f"{1e6 * x / facts:,.0f} us/fact"

    parts = sorted(gate.items(), key=lambda kv: -kv[1])
    shown = ", ".join(
        f"{k} {pct(v)}"
        + (f" (store {pct(gate_store[k])})" if gate_store.get(k, 0) / total >= 0.005 else "")
        for k, v in parts
        if v / total >= 0.005
    )
    logs = ", ".join(f"{k} {pct(v)}" for k, v in sorted(appends.items(), key=lambda kv: -kv[1]))
    big = max((("parse", parse), ("the gate", gate_s), ("the log appends", append_s)),
              key=lambda kv: kv[1])  # fmt: skip
    bound = f"bounded by {big[0]} ({pct(big[1])})"
    if big[0] == "the gate" and parts:
        name, seconds = parts[0]
        bound += f"; its largest part: {name} ({pct(seconds)}, {us(seconds)}"
        if gate_store.get(name, 0) >= seconds / 2:
            bound += f", mostly store round trips: {pct(gate_store[name])}"
        bound += (
            f"); store round trips in all: {pct(store_s)}, {trips:,} of them"
            f" ({1e6 * store_s / max(trips, 1):,.0f} us each, {trips / facts:.1f} per fact)"
        )
    return [
        f"where the time goes (median round, {total * 1000:,.0f} ms):"
        f" parse {pct(parse)} ({us(parse)})"
        f" | gate {pct(gate_s)} ({us(gate_s)}) | append {pct(append_s)} ({us(append_s)})"
        f" | other {pct(other)}",
        f"  gate: {shown}",
        f"  append: {logs}",
        f"  -> {bound}",
    ]


def run(batch: int = 500, bootstrap: str | None = None, rounds: int = 3) -> list[Result]:
    from hub.adapters.registry import parse
    from hub.observability import configure_logging

    configure_logging("WARNING", "json")  # the gate logs each match-queue item at INFO
    results: list[Result] = []
    backends: list[tuple[str, str | None]] = [("SQLite log", None)]
    if bootstrap is not None:
        backends.append(("Kafka log", bootstrap))
    else:
        print("(ingest onto Kafka skipped: no broker)")
    for inp in _inputs():
        warm = parse(inp.fmt, inp.data, inp.content_type, "bench")  # imports, model classes
        inp.raw_parse()
        facts = len(warm.facts)
        raw_t: list[float] = []
        adapter_t: list[float] = []
        for _ in range(rounds):
            raw_t.append(_timed(inp.raw_parse))
            adapter_t.append(
                _timed(functools.partial(parse, inp.fmt, inp.data, inp.content_type, "bench"))
            )
        raw_s, adapter_s = median(raw_t), median(adapter_t)
        raw, adapter = facts / raw_s, facts / adapter_s
        results.append(
            IngestResult(
                f"{inp.label}: adapter only",
                adapter,
                raw,
                inp.raw_name,
                unit="facts/s",
                goal=FHIR_GOAL if inp.fmt == "fhir" else None,
                notes=[
                    f"{len(inp.data) / 1e6:.1f} MB -> {facts:,} facts,"
                    f" {len(warm.not_taken):,} parts not taken; raw parse {raw_s * 1000:,.1f} ms"
                    f" ({inp.units / raw_s:,.0f} {inp.unit_name}/s), adapter"
                    f" {adapter_s * 1000:,.1f} ms ({inp.units / adapter_s:,.0f} {inp.unit_name}/s)"
                ],
            )
        )
        print(results[-1].line(), flush=True)
        for note in results[-1].notes:
            print(f"    {note}", flush=True)
        for backend, server in backends:
            runs = []
            near: list[float] = []  # the raw parse again, beside each round (load drifts)
            for _ in range(rounds):
                near += [_timed(inp.raw_parse) for _ in range(3)]
                with tempfile.TemporaryDirectory(prefix="bench-ingest-") as d:
                    gc.collect()
                    runs.append(
                        asyncio.run(_end_to_end(inp, _settings(Path(d) / "data", server), batch))
                    )
            runs.sort(key=lambda r: r[0])
            elapsed, stages, outcomes, n = runs[len(runs) // 2]
            told = ", ".join(f"{v:,} {k}" for k, v in outcomes.most_common())
            results.append(
                IngestResult(
                    f"{inp.label}: e2e, {backend}",
                    n / elapsed,
                    facts / median(near),
                    inp.raw_name,
                    unit="facts/s",
                    goal=FHIR_GOAL if inp.fmt == "fhir" else None,
                    rate_goal=CTF_GOAL if inp.fmt == "ctf" else None,
                    notes=[
                        f"gate outcomes: {told} (batches of <= {batch}, fresh data dir)",
                        *_split_note(stages, elapsed, n),
                    ],
                )
            )
            print(results[-1].line(), flush=True)
            for note in results[-1].notes:
                print(f"    {note}", flush=True)
    return results


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.bench_ingest", description=__doc__)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kafka", default=None, help="bootstrap servers (default: none)")
    args = parser.parse_args()
    run(args.batch, args.kafka, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
