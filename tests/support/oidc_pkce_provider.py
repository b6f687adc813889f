"""The test OpenID Connect provider process: `oidc-provider-mock`'s Flask app (authlib,
its own RS256 key, discovery, nonces required), wrapped so that it also enforces PKCE
(RFC 7636 §4.6), which the mock's grant does not: the `code_challenge` of each
authorisation request is remembered against the code it issues, and a token request for
that code is refused `invalid_grant` unless its `code_verifier` hashes (S256) to it.

Run as `python -m tests.support.oidc_pkce_provider --port N` from the repository root.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class EnforcePkce:
    """WSGI middleware holding the provider to RFC 7636 for S256 challenges."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.challenges: dict[str, str] = {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/oauth2/authorize" and environ.get("REQUEST_METHOD") == "POST":
            return self._authorize(environ, start_response)
        if path == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            refusal = self._check_token_request(environ)
            if refusal is not None:
                body = json.dumps({"error": "invalid_grant", "error_description": refusal})
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [body.encode()]
        return self.app(environ, start_response)

    def _authorize(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        challenge = (query.get("code_challenge") or [None])[0]
        method = (query.get("code_challenge_method") or ["plain"])[0]

        def remember(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            location = next((v for k, v in headers if k.lower() == "location"), None)
            if location and challenge and method == "S256":
                code = (parse_qs(urlsplit(location).query).get("code") or [None])[0]
                if code:
                    self.challenges[code] = challenge
            return start_response(status, headers, *rest)

        return self.app(environ, remember)

    def _check_token_request(self, environ: Environ) -> str | None:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = io.BytesIO(raw)  # the app reads the form again
        form = parse_qs(raw.decode("utf-8"))
        code = (form.get("code") or [None])[0]
        challenge = self.challenges.get(code) if code else None
        if challenge is None:
            return None
        verifier = (form.get("code_verifier") or [None])[0]
        if verifier is None:
            return "code_verifier is required: the authorisation request had a code_challenge"
        if s256(verifier) != challenge:
            return "code_verifier does not match the code_challenge"
        del self.challenges[code]
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http, as the mock's own CLI
    import oidc_provider_mock
    import uvicorn

    app = EnforcePkce(oidc_provider_mock.app(require_nonce=True))
    uvicorn.run(app, interface="wsgi", host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
