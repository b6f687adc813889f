"""A real OpenID Connect provider on loopback for the web sign-in tests: the
`oidc-provider-mock` package (authlib and Flask), run as its own process with its own
RS256 signing key, a discovery document, the authorisation and token endpoints, and
users whose claims the test sets; nonces are required, and PKCE is enforced
(`tests.support.oidc_pkce_provider`, since the mock's own grant does not check it). It
issues codes for whichever subject the authorisation form names, as a test wants."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Provider:
    issuer: str

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def add_user(self, sub: str, claims: Mapping[str, Any]) -> None:
        r = httpx.put(f"{self.issuer}/users/{sub}", json=dict(claims), timeout=10)
        assert r.status_code == 204, r.text

    def authorisation_requests(self) -> list[dict[str, list[str]]]:
        """The query of every authorisation request the provider was sent, in order."""
        r = httpx.get(f"{self.issuer}/_seen/authorize", timeout=10)
        assert r.status_code == 200, r.text
        return list(r.json())

    async def authorise(self, authorization_url: str, sub: str) -> str:
        """Submit the provider's authorisation form as `sub`; the redirect it answers
        (back to the hub's callback, with the code and state)."""
        async with httpx.AsyncClient(timeout=10) as client:
            form = await client.get(authorization_url)
            assert form.status_code == 200, form.text
            r = await client.post(authorization_url, data={"sub": sub})
        assert r.status_code == 302, r.text
        return str(r.headers["location"])


@contextlib.contextmanager
def oidc_provider(
    log_file: Path, *, client_id: str | None = None, client_public_key: Path | None = None
) -> Iterator[Provider]:
    """The provider process; given a client's public key, that client must authenticate
    to the token endpoint with a signed client assertion (private_key_jwt)."""
    port = free_port()
    out = log_file.open("ab")
    command = [sys.executable, "-m", "tests.support.oidc_pkce_provider", "--port", str(port)]
    if client_public_key is not None:
        command += ["--client-id", str(client_id), "--client-key", str(client_public_key)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited: {log_file.read_text()[-2000:]}")
            try:
                r = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1)
                if r.status_code == 200 and json.loads(r.text)["issuer"] == issuer:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the OIDC provider did not answer within 30 s")
            time.sleep(0.05)
        yield Provider(issuer)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        out.close()
