"""`hub demo`: a working hub in one step, on a synthetic cohort loaded through the real routes.
`prepare_demo_dir(path)` makes a fresh demo data directory (it only ever wipes one that
carries the demo's marker file); `run_demo_load(settings, ...)` builds the cohort
(`hub.demo.cohort`), starts the app in-process, issues the demo's API keys, loads the
cohort as every agency and the coordinator would (`hub.demo.load`) and brings every
projection up to date, returning the tokens and what was loaded. The CLI then serves the
same data directory.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from hub.demo.load import (
    ADMIN,
    COORDINATOR,
    IG_AUDITOR,
    PARENT,
    PRACTITIONER,
    DemoKeys,
    DemoLoadError,
    DemoResult,
    Progress,
    create_demo_keys,
    create_team_keys,
    load_cohort,
    open_in_process,
    principal_of,
)

if TYPE_CHECKING:
    from hub.bootstrap import Hub
    from hub.demo.cohort import Cohort
    from hub.settings import Settings

__all__ = [
    "ADMIN",
    "COORDINATOR",
    "IG_AUDITOR",
    "MARKER",
    "PARENT",
    "PRACTITIONER",
    "DemoDirError",
    "DemoKeys",
    "DemoLoadError",
    "DemoResult",
    "create_demo_keys",
    "load_cohort",
    "open_in_process",
    "prepare_demo_dir",
    "principal_of",
    "run_demo_load",
]

MARKER = ".tac-hub-demo"
"""The file that marks a directory as the demo's own, and so safe to wipe."""


class DemoDirError(Exception):
    """The data directory is not the demo's to use."""


def prepare_demo_dir(path: Path) -> Path:
    """A fresh, empty demo data directory at `path` (with the marker file). A directory
    that exists and is not empty is wiped only if it carries the marker; otherwise this
    refuses, so the demo can never erase a real hub's data."""
    path = path.expanduser()
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise DemoDirError(f"{path} is not a directory the demo made; choose another --data-dir")
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).is_file():
            raise DemoDirError(
                f"{path} holds files and is not a demo data directory (no {MARKER}); "
                "the demo starts fresh and will not wipe it: choose another --data-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text(
        "This directory was made by `hub demo` and is wiped by its next run.\n", encoding="utf-8"
    )
    return path


async def run_demo_load(
    settings: Settings,
    *,
    children: int = 40,
    seed: int = 7,
    today: date | None = None,
    progress: Progress = lambda _: None,
) -> tuple[Cohort, DemoResult]:
    """Build the cohort and load it into the hub of `settings` (in-process, no port)."""
    from hub.api.app import create_app
    from hub.demo.cohort import build_cohort

    cohort = build_cohort(children, seed=seed, today=today)
    # The routes catch up the views they read; the projections are brought up to date once
    # at the end rather than chasing every append (three times faster on two cores).
    app = create_app(settings, run_projector=False)
    async with open_in_process(app) as client:
        the_hub: Hub = app.state.hub
        keys = await create_demo_keys(the_hub.api_keys)
        result = await load_cohort(client, keys, cohort, progress)
        big = cohort.big_team_child
        await create_team_keys(
            client, the_hub.api_keys, the_hub.policy, keys, big, result.child_id(big)
        )
        for runner in the_hub.runners:
            for log_name in runner.projection.logs:
                for part in range(the_hub.log.partitions(log_name)):
                    await runner.catch_up(log_name, part)
    return cohort, result
