"""Drive the real app in-process: its real lifespan on a SQLite hub, over httpx's ASGI
transport, with one API key per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI

from hub.api.app import create_app
from hub.auth.keys import Identity, Publishing
from hub.bootstrap import Hub
from hub.settings import Settings


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def hub(self) -> Hub:
        the_hub: Hub = self.app.state.hub
        return the_hub

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def key(
        self,
        who: str,
        role: str,
        agency: str | None = None,
        identity: Identity | None = None,
        publishing: Publishing | None = None,
    ) -> str:
        keys = self.hub.api_keys
        _, token = await keys.create(role, who, agency, identity, publishing)
        self.tokens[who] = token
        return token


@asynccontextmanager
async def running_api(settings: Settings, *, run_projector: bool = False) -> AsyncIterator[Api]:
    app = create_app(settings, run_projector=run_projector)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield Api(app, client)


def embedded(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
