"""Slowing down guessing at the sign-in forms.

Every failed sign-in (a wrong API key, a wrong invitation code, at the sign-in form or
when linking an identity provider's sign-in to a child) counts against the client that
sent it. After `MAX_FAILURES` failures within `WINDOW_SECONDS`, that client's next
attempts are refused with a 429 page and `Retry-After` until the oldest failure in the
window ages out, whether or not the credential would have been right; a sign-in that
works clears the client's count. Clients are told apart by their address as the server
sees it, kept only as a keyed digest (`client_ref`), so no address is logged or audited.

The counts live in the process's memory, at most `MAX_CLIENTS` of them (the least
recently failing are forgotten first): several API processes behind one address each
count on their own, so a client may try `MAX_FAILURES` times per process. An API key is
256 random bits and an invitation code 80, so the limit is about keeping the logs and
the trail quiet and the code's expiry meaningful, not the only thing between a guesser
and a key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from starlette.requests import Request

from hub.consent.audit_trail import AuditEntry, AuditTrail

log = structlog.get_logger(__name__)

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
MAX_CLIENTS = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """The client must wait `retry_after` seconds; `failures` in the window so far."""

    retry_after: int
    failures: int

    @property
    def message(self) -> str:
        minutes = math.ceil(self.retry_after / 60)
        return (
            "There have been too many failed sign-ins from this device. Wait "
            f"{minutes} {'minute' if minutes == 1 else 'minutes'} and try again"
        )


class SignInThrottle:
    """Failed sign-ins per client, in a sliding window."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = WINDOW_SECONDS,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self._salt = secrets.token_bytes(16)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def client_ref(self, address: str | None) -> str:
        """A stable reference to the client for this process's logs (never the address)."""
        digest = hmac.new(self._salt, (address or "unknown").encode(), hashlib.sha256)
        return digest.hexdigest()[:16]

    def _recent(self, ref: str, now: float) -> deque[float]:
        times = self._failures.get(ref)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[ref]
        return times

    def refusal(self, ref: str) -> Refusal | None:
        """Whether the client must wait before it may try again, and how long."""
        now = self.clock()
        times = self._recent(ref, now)
        if len(times) < self.max_failures:
            return None
        wait = times[-self.max_failures] + self.window - now
        return Refusal(retry_after=max(1, math.ceil(wait)), failures=len(times))

    def failed(self, ref: str) -> Refusal | None:
        """Count a failure; the refusal it brings about, if this one reached the limit."""
        now = self.clock()
        times = self._recent(ref, now)
        if not times:
            self._failures[ref] = times
        times.append(now)
        self._failures.move_to_end(ref)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        return self.refusal(ref)

    def succeeded(self, ref: str) -> None:
        self._failures.pop(ref, None)


@dataclass
class SignInGuard:
    """The throttle as one request meets it: refuse, count a failure (logged with the
    kind of credential and the client's reference, never the credential; audited on the
    global chain when the client is locked out), or clear the count."""

    throttle: SignInThrottle
    client: str

    @staticmethod
    def of(request: Request) -> SignInGuard:
        throttle: SignInThrottle = request.app.state.web_throttle
        address = request.client.host if request.client else None
        return SignInGuard(throttle, throttle.client_ref(address))

    def refused(self) -> Refusal | None:
        refusal = self.throttle.refusal(self.client)
        if refusal is not None:
            log.warning(
                "web.sign_in_throttled", client=self.client, retry_after=refusal.retry_after
            )
        return refusal

    async def failed(self, trail: AuditTrail, credential: str) -> Refusal | None:
        """Count a failed sign-in with a `credential` of this kind (api_key,
        invitation_code, malformed)."""
        refusal = self.throttle.failed(self.client)
        log.info("web.sign_in_failed", client=self.client, credential=credential)
        if refusal is not None and refusal.failures == self.throttle.max_failures:
            log.warning("web.sign_in_locked", client=self.client, retry_after=refusal.retry_after)
            await trail.append(
                [
                    AuditEntry(
                        kind="sign_in_refused",
                        actor="web:anonymous",
                        details={
                            "client": self.client,
                            "failures": refusal.failures,
                            "retry_after": refusal.retry_after,
                            "last_credential": credential,
                        },
                    )
                ]
            )
        return refusal

    def succeeded(self) -> None:
        self.throttle.succeeded(self.client)
