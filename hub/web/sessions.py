"""The web session: which credential a signed-in browser holds, and its CSRF token, kept
in one cookie and nowhere on the server.

The cookie's value is a Fernet token (AES-128-CBC with HMAC-SHA256, timestamped) made
with a key derived from `Settings.web_session_secret`: signed, so it cannot be forged or
altered, and encrypted, because it carries a bearer credential (the API key or the
family key the invitation code was exchanged for). Every request re-authenticates that
credential, so revoking the key ends the session at once. A browser that has not signed
in gets a session with a CSRF token only, so the sign-in form is protected too. Sessions
expire `SESSION_SECONDS` after sign-in, however active.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass

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
    `csrf`: the token every form of this session carries."""

    csrf: str
    token: str | None = None

    @staticmethod
    def new(token: str | None = None) -> WebSession:
        return WebSession(csrf=secrets.token_urlsafe(32), token=token)

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf.encode(), sent.encode())


class SessionCodec:
    """Seals a `WebSession` into a cookie value and opens it again (None when forged,
    altered, expired or sealed with another secret)."""

    def __init__(self, secret: bytes, *, max_age: int = SESSION_SECONDS) -> None:
        if len(secret) < 16:
            raise ValueError("the web session secret needs at least 16 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"tac-hub web session v1"
        ).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self.max_age = max_age

    def seal(self, session: WebSession) -> str:
        body = {"c": session.csrf, "t": session.token}
        return self._fernet.encrypt(orjson.dumps(body)).decode("ascii")

    def open(self, value: str | None) -> WebSession | None:
        if not value:
            return None
        try:
            raw = self._fernet.decrypt(value.encode("ascii"), ttl=self.max_age)
            body = orjson.loads(raw)
        except (InvalidToken, UnicodeEncodeError, orjson.JSONDecodeError):
            return None
        if not isinstance(body, dict):
            return None
        csrf, token = body.get("c"), body.get("t")
        if not isinstance(csrf, str) or not (token is None or isinstance(token, str)):
            return None
        return WebSession(csrf=csrf, token=token)
