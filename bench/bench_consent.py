"""The consent gate's cost: `decide_sharing` decisions per second, and facts per second
through `SubmitFacts` (identity, idempotency, decision, audit, sealing, append)
beside the same facts appended to the embedded log without the gate, in the same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import Result
from hub.consent.decision import Fact, decide_sharing
from hub.consent.policy import load_policy
from hub.consent.state import ConsentState
from hub.events import Envelope, Source, encode
from hub.events.consent import ConsentRecorded
from hub.events.education import SenStatusRecorded
from hub.ingest.model import InboundFact, Subject
from hub.log import LogName, NewRecord

GATE_GOAL = 0.5  # issue 9: ingest through the gate >= 0.5 x raw validate+append


def _consent(cid: str, categories: tuple[str, ...], decision: str = "permit") -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": cid,
            "decision": decision,
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-01-01",
            "scope": {
                "categories": list(categories),
                "purposes": ["ehc_assessment", "plan_delivery"],
                "roles": ["coordinator"],
            },
            "period": {"start": "2024-01-01"},
            "capture_method": "form",
            "recorded_by": "casey",
        }
    )


def decisions_per_second(n: int = 20_000) -> float:
    policy = load_policy()
    state = ConsentState("hc-1")
    at = datetime(2024, 6, 1, tzinfo=UTC)
    for i, c in enumerate(
        [
            _consent("c1", ("education", "health")),
            _consent("c2", ("social_care",)),
            _consent("c3", ("mental_health",), "deny"),
        ]
    ):
        state = state.apply(c, at=datetime(2024, 1, 1, i, tzinfo=UTC))
    facts = [
        Fact(
            event_id=Envelope.wrap(
                SenStatusRecorded(sen_provision="K", start_date=date(2024, 1, 1)),
                child_id="hc-1",
                source=Source(agency="s"),
                occurred_at=at,
            ).event_id,
            child_id="hc-1",
            category=cat,
            source_agency="school",
            purposes=("ehc_assessment",),
            occurred_at=at,
        )
        for cat in ("education", "health", "social_care", "mental_health", "safeguarding")
    ]
    t0 = time.perf_counter()
    for i in range(n):
        decide_sharing(facts[i % len(facts)], state, policy, at=at)
    return n / (time.perf_counter() - t0)


def valid_nhs_numbers(count: int, start: int = 900_000_000) -> list[str]:
    """Synthetic NHS numbers with a correct modulus-11 check digit (9xx range: test numbers)."""
    out: list[str] = []
    base = start
    while len(out) < count:
        digits = f"{base:09d}"
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            out.append(digits + str(check))
        base += 1
    return out


def _facts(n: int, children: int) -> list[InboundFact]:
    numbers = valid_nhs_numbers(children)
    out = []
    for i in range(n):
        number = numbers[i % children]
        out.append(
            InboundFact(
                subject=Subject(nhs_number=number),
                payload=SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)),
                occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
                source=Source(agency="oak-school", message_id=f"m{i}"),
                ref="sen",
            )
        )
    return out


async def _through_gate(tmp: Path, facts: list[InboundFact], batch: int) -> tuple[float, float]:
    from hub.bootstrap import open_hub, startup_frozen
    from hub.settings import Settings

    the_hub = await open_hub(Settings(data_dir=tmp, _env_file=None))  # type: ignore[call-arg]
    with startup_frozen():  # as `hub ingest` runs (no full GC pass over start-up's heap)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(facts), batch):
            await the_hub.handlers.submit_facts(facts[i : i + batch], actor="bench")
        rate = len(facts) / (time.perf_counter() - t0)
        cpu = (time.process_time() - c0) / len(facts)
    await the_hub.close()
    return rate, cpu


async def _without_gate(tmp: Path, facts: list[InboundFact], batch: int) -> tuple[float, float]:
    from hub.bootstrap import startup_frozen
    from hub.log.sqlite import SqliteEventLog

    log = SqliteEventLog(tmp / "log.db")
    await log.start()
    with startup_frozen():  # as the gate's side is measured
        return await _append_plain(log, facts, batch)


async def _append_plain(log: Any, facts: list[InboundFact], batch: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(facts), batch):
        records = []
        for f in facts[i : i + batch]:
            env = Envelope.wrap(
                f.payload,
                child_id=f"hc-{f.subject.nhs_number}",
                source=f.source,
                occurred_at=f.occurred_at,
            )
            records.append(NewRecord(key=env.child_id, value=encode(env)))
        await log.append(LogName.EVENTS, records)
    rate = len(facts) / (time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / len(facts)
    await log.close()
    return rate, cpu


def run(n: int = 5_000, batch: int = 500, rounds: int = 3) -> list[Result]:
    dps = median([decisions_per_second() for _ in range(rounds)])
    facts = _facts(n, children=max(1, n // 10))
    gated, plain, gated_cpu, plain_cpu = [], [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as d:
            rate, cpu = asyncio.run(_through_gate(Path(d) / "g", facts, batch))
            gated.append(rate)
            gated_cpu.append(cpu)
            rate, cpu = asyncio.run(_without_gate(Path(d) / "p", facts, batch))
            plain.append(rate)
            plain_cpu.append(cpu)
    g, p = median(gated), median(plain)
    gc_us, pc_us = median(gated_cpu) * 1e6, median(plain_cpu) * 1e6
    added_us = (1 / g - 1 / p) * 1e6
    return [
        Result(
            "decide_sharing",
            dps,
            dps,
            "itself",
            unit="decisions/s",
            notes=[f"{1e6 / dps:.0f} us per decision"],
        ),
        Result(
            f"ingest through the gate, batches of {batch}",
            g,
            p,
            "validate+append, no gate",
            unit="facts/s",
            goal=GATE_GOAL,
            notes=[
                f"the gate adds {added_us:,.0f} us per fact",
                f"CPU (all threads, time.process_time): {gc_us:,.0f} us per fact through the"
                f" gate, {pc_us:,.0f} without (ratio {pc_us / gc_us:.2f}); on a shared machine"
                " this is steadier than the wall-clock rates",
            ],
        ),
    ]
