"""The TCP listener's front door: every request carries a bearer token
(:mod:`corral.daemon.tokens`), which says who the caller is -- then exactly the socket's
rules apply -- and what the token may do (its scope); and each token gets a request
rate (a token bucket), beyond which it is answered 429.

The token travels in ``Authorization: Bearer TOKEN``; a browser opening the dashboard
link that ``corral ui`` prints brings it once in the query (``/ui/?token=...``) and is
given it back as an HttpOnly, SameSite=Strict cookie, with the token taken out of the
address bar by a redirect (Jupyter does the same).

Where the listener may be: :func:`corral.addresses.check_listen`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .api.principal import PEER
from ..addresses import check_listen  # noqa: F401 - where a listener may be
from .tokens import Tokens, Unauthorized

COOKIE = "corral_token"
TOKEN_SCOPE = "corral.token"
#: What only an admin-scope token may reach (besides the routes' own admin checks).
ADMIN_PATHS = ("/v1/shutdown", "/v1/prune", "/v1/tokens")
DEFAULT_RATE = 50.0          # requests per second per token, sustained
DEFAULT_BURST = 200


class Bucket:
    """A token bucket: ``rate`` per second, up to ``burst`` at once."""

    __slots__ = ("level", "at")

    def __init__(self, burst: float, now: float):
        self.level, self.at = burst, now


class Gateway:
    """ASGI: authenticate, scope-check and rate-limit, then hand over to the API."""

    def __init__(self, app: Any, tokens: Tokens, *, rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST,
                 clock=time.monotonic):
        self.app, self.tokens = app, tokens
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, Bucket] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.pop(PEER, None)               # only a token says who calls here
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        text, from_query = _bearer(headers), False
        if text is None and "token" in query:
            text, from_query = query["token"], True
        if text is None:
            text = _cookie(headers.get("cookie", ""))
        try:
            token = self.tokens.check(text)
        except Unauthorized as exc:
            await _answer(send, 401, str(exc), {"www-authenticate": 'Bearer realm="corral"'})
            return
        refused = _scope_refusal(token.scope, scope["method"], scope["path"])
        if refused:
            await _answer(send, 403, refused)
            return
        if not self._take(token.id):
            await _answer(send, 429, f"too many requests for token {token.name}: at most {self.rate:g}/s "
                                     f"(bursts of {self.burst}); slow down", {"retry-after": "1"})
            return
        if from_query and scope["method"] == "GET" and scope["path"].startswith("/ui"):
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", (scope["path"] + ("?" + rest if rest else "")).encode()),
                (b"set-cookie", f"{COOKIE}={text}; HttpOnly; SameSite=Strict; Path=/".encode()),
                (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        scope[PEER] = (0, token.uid, token.gid)
        scope[TOKEN_SCOPE] = token
        await self.app(scope, receive, send)

    def _take(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self.burst, now)
        bucket.level = min(self.burst, bucket.level + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.level < 1:
            return False
        bucket.level -= 1
        return True


def _scope_refusal(scope: str, method: str, path: str) -> str | None:
    if scope == "admin":
        return None
    if scope == "read" and method not in ("GET", "HEAD"):
        return f"permission denied: this token's scope is read; {method} {path} needs submit or admin"
    if any(path == p or path.startswith(p + "/") for p in ADMIN_PATHS) or path.endswith(("/drain", "/undrain")):
        if scope == "read" and method in ("GET", "HEAD") and not path.startswith("/v1/tokens"):
            return None
        return f"permission denied: {method} {path} needs a token of scope admin (this one is {scope})"
    return None


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    kind, _, text = value.partition(" ")
    return text.strip() if kind.lower() == "bearer" else ""


def _cookie(header: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE:
            return value
    return None


async def _answer(send: Any, status: int, line: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": line, "lines": [line]}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
