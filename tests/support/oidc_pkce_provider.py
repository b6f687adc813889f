"""The test OpenID Connect provider process: `oidc-provider-mock`'s Flask app (authlib,
its own RS256 key, discovery, nonces required), wrapped so that it also enforces PKCE
(RFC 7636 §4.6), which the mock's grant does not: the `code_challenge` of each
authorisation request is remembered against the code it issues, and a token request for
that code is refused `invalid_grant` unless its `code_verifier` hashes (S256) to it.
Given `--client-key PEM --client-id ID`, it also requires that client to authenticate
with a signed client assertion (private_key_jwt, RFC 7523 §3, as GOV.UK One Login does):
RS256 under that key, `iss` and `sub` the client id, `aud` the token endpoint, not
expired, its `jti` never seen before; without one the token request is refused
`invalid_client`. Every authorisation request's query is kept for the test to read
(`GET /_seen/authorize`).

Run as `python -m tests.support.oidc_pkce_provider --port N` from the repository root.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class EnforcePkce:
    """WSGI middleware holding the provider to RFC 7636 for S256 challenges (and, given a
    client's public key, to RFC 7523 client assertions for that client)."""

    def __init__(self, app: WsgiApp, client_id: str | None = None, client_key: Any = None) -> None:
        self.app = app
        self.challenges: dict[str, str] = {}
        self.client_id, self.client_key = client_id, client_key
        self.jtis: set[str] = set()
        self.authorize_queries: list[dict[str, list[str]]] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_seen/authorize":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.authorize_queries).encode()]
        if path == "/oauth2/authorize" and environ.get("REQUEST_METHOD") == "GET":
            self.authorize_queries.append(parse_qs(environ.get("QUERY_STRING", "")))
        if path == "/oauth2/authorize" and environ.get("REQUEST_METHOD") == "POST":
            return self._authorize(environ, start_response)
        if path == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            refused = self._check_client(environ)
            error = "invalid_client"
            if refused is None:
                refused, error = self._check_token_request(environ), "invalid_grant"
            if refused is not None:
                body = json.dumps({"error": error, "error_description": refused})
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [body.encode()]
        return self.app(environ, start_response)

    def _check_client(self, environ: Environ) -> str | None:
        """The client assertion, when this provider holds the client's key; on success
        the form goes on to the mock as `client_secret_post` (the mock's grant knows only
        the secret methods, and takes any secret of a client it does not register)."""
        if self.client_key is None:
            return None
        from joserfc import jwt
        from joserfc.errors import JoseError

        form = _read_form(environ)
        if (form.get("client_assertion_type") or [None])[0] != ASSERTION_TYPE:
            return "a signed client assertion (private_key_jwt) is required"
        try:
            token = jwt.decode(form["client_assertion"][0], self.client_key, ["RS256"])
        except (JoseError, ValueError, KeyError):
            return "the client assertion does not verify with the client's key"
        claims = token.claims
        host = environ.get("HTTP_HOST", "")
        audience = f"http://{host}/oauth2/token"
        problems = [
            claims.get("iss") != self.client_id and "iss",
            claims.get("sub") != self.client_id and "sub",
            audience not in _as_list(claims.get("aud")) and "aud",
            not (isinstance(claims.get("exp"), int) and claims["exp"] > time.time()) and "exp",
            (not claims.get("jti") or claims["jti"] in self.jtis) and "jti",
        ]
        wrong = [p for p in problems if p]
        if wrong:
            return f"the client assertion's {', '.join(wrong)} is wrong"
        self.jtis.add(claims["jti"])
        del form["client_assertion"], form["client_assertion_type"]
        form["client_id"], form["client_secret"] = [self.client_id or ""], ["asserted"]
        raw = urlencode(form, doseq=True).encode()
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        return None

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
        form = _read_form(environ)
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


def _read_form(environ: Environ) -> dict[str, list[str]]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(size) if size else b""
    environ["wsgi.input"] = io.BytesIO(raw)  # the app reads the form again
    return parse_qs(raw.decode("utf-8"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id")
    parser.add_argument("--client-key", help="PEM of the client's public key")
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http, as the mock's own CLI
    import oidc_provider_mock
    import uvicorn

    key = None
    if args.client_key:
        from joserfc.jwk import RSAKey

        with open(args.client_key, "rb") as fh:
            key = RSAKey.import_key(fh.read())
    app = EnforcePkce(oidc_provider_mock.app(require_nonce=True), args.client_id, key)
    uvicorn.run(app, interface="wsgi", host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
