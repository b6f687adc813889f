"""The web session: which credential a signed-in browser holds, and its CSRF token, kept
in one cookie and nowhere on the server.

The cookie's value is a Fernet token (AES-128-CBC with HMAC-SHA256, timestamped) made
with a key derived from `Settings.web_session_secret`: signed, so it cannot be forged or
altered, and encrypted, because it carries a bearer credential (the API key or the
family key the invitation code was exchanged for). Every request re-authenticates that
credential, so revoking the key ends the session at once. A browser that has not signed
in gets a session with a CSRF token only, so the sign-in form is protected too. Sessions
expire `SESSION_SECONDS` after sign-in, however active.

A browser signed in through the identity provider (`hub.web.oidc`) holds no bearer
credential: its session carries the ID token's claims the hub maps to a principal
(`oidc`), checked once at the callback and mapped again on every request, so a family
member's link to a child is re-read each time (an erasure ends it at once).
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE = "tac_hub_session"
SESSION_SECONDS = 8 * 60 * 60
"""A working day: after that the browser signs in again."""


@dataclass(frozen=True, slots=True)
class WebSession:
    """`token`: the credential the browser signed in with (none before sign-in);
    `csrf`: the token every form of this session carries; `oidc`: the verified claims
    of an identity provider's sign-in (none for a key)."""

    csrf: str
    token: str | None = None
    oidc: dict[str, Any] | None = None

    @staticmethod
    def new(token: str | None = None, oidc: dict[str, Any] | None = None) -> WebSession:
        return WebSession(csrf=secrets.token_urlsafe(32), token=token, oidc=oidc)

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf.encode(), sent.encode())


class SessionCodec:
    """Seals a `WebSession` into a cookie value and opens it again (None when forged,
    altered, expired or sealed with another secret)."""

    def __init__(
        self, secret: bytes | Callable[[], bytes], *, max_age: int = SESSION_SECONDS
    ) -> None:
        """`secret`, or what makes it on first use (building the app does no I/O: the
        secret derived from the master key is read when the first cookie is)."""
        self._secret = secret
        if isinstance(secret, bytes):
            _ = self._fernet  # a short secret is refused at once
        self.max_age = max_age

    @cached_property
    def _fernet(self) -> Fernet:
        secret = self._secret() if callable(self._secret) else self._secret
        if len(secret) < 16:
            raise ValueError("the web session secret needs at least 16 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"tac-hub web session v1"
        ).derive(secret)
        return Fernet(base64.urlsafe_b64encode(key))

    def seal(self, session: WebSession) -> str:
        body: dict[str, Any] = {"c": session.csrf, "t": session.token}
        if session.oidc is not None:
            body["o"] = session.oidc
        return self.seal_value(body)

    def seal_value(self, body: Any) -> str:
        """Any JSON value, sealed alike (the sign-in's pending state uses it too)."""
        return self._fernet.encrypt(orjson.dumps(body)).decode("ascii")

    def open_value(self, value: str | None, max_age: int) -> Any:
        """A sealed value no older than `max_age` seconds, else None."""
        if not value:
            return None
        try:
            return orjson.loads(self._fernet.decrypt(value.encode("ascii"), ttl=max_age))
        except (InvalidToken, UnicodeEncodeError, orjson.JSONDecodeError):
            return None

    def open(self, value: str | None) -> WebSession | None:
        body = self.open_value(value, self.max_age)
        if not isinstance(body, dict):
            return None
        csrf, token, oidc = body.get("c"), body.get("t"), body.get("o")
        if not isinstance(csrf, str) or not (token is None or isinstance(token, str)):
            return None
        if not (oidc is None or isinstance(oidc, dict)):
            return None
        return WebSession(csrf=csrf, token=token, oidc=oidc)
