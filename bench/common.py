"""Shared benchmark plumbing: timing, results table, event generation, backends."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from hub.events import encode
from hub.log import NewRecord
from tests.support.factories import mixed_events


@dataclass
class Result:
    name: str
    ours: float  # items per second
    raw: float
    raw_name: str
    unit: str = "events/s"
    goal: float | None = None  # on the ratio
    notes: list[str] = field(default_factory=list)
    rate_goal: float | None = None  # on `ours` itself (CTF end to end: 10k facts/s)

    @property
    def ratio(self) -> float:
        return self.ours / self.raw if self.raw else float("nan")

    @property
    def has_goal(self) -> bool:
        return self.goal is not None or self.rate_goal is not None

    @property
    def met(self) -> bool:
        """Every goal the line has is met (a line with none is met)."""
        ratio_met = self.goal is None or self.ratio >= self.goal
        return ratio_met and (self.rate_goal is None or self.ours >= self.rate_goal)

    def goal_text(self) -> str:
        parts = []
        if self.goal is not None:
            parts.append(f"ratio >= {self.goal:.2f}")
        if self.rate_goal is not None:
            parts.append(f">= {self.rate_goal:,.0f} {self.unit}")
        if not parts:
            return ""
        return f"  goal {' and '.join(parts)} {'MET' if self.met else 'MISSED'}"

    def line(self) -> str:
        return (
            f"{self.name:<44} {self.ours:>10,.0f} {self.unit}   raw {self.raw_name}: "
            f"{self.raw:>10,.0f}   ratio {self.ratio:5.2f}{self.goal_text()}"
        )


class Timer:
    def __init__(self) -> None:
        self.elapsed = 0.0

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.elapsed = time.perf_counter() - start


def median_rate(rates: list[float]) -> float:
    return statistics.median(rates)


def event_records(n: int, children: int = 1000) -> list[NewRecord]:
    per_child = max(1, n // children)
    envs = mixed_events(children, per_child)[:n]
    return [NewRecord(key=e.child_id, value=encode(e)) for e in envs]


def batches(items: list[NewRecord], size: int) -> Iterator[list[NewRecord]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
