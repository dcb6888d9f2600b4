"""Request size: a body larger than the daemon takes is refused with 413 before it is
read (by its ``Content-Length``) or as soon as it grows past the limit (chunked), with
the same one-line error body as every other error. Nothing of it is stored."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

#: The default largest request body: a few MiB (a batch of thousands of job documents).
DEFAULT_MAX_BODY = 4 * 2**20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int = DEFAULT_MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, f"invalid Content-Length: {value[:40].decode('latin-1')!r}")
                    return
        if declared is not None and declared > self.limit:
            await self._refuse(send, 413, self._why(declared))
            return
        seen = 0
        started = False
        overflow: list[int] = []               # the size that went past the limit

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    overflow.append(seen)
                    raise _TooLarge(seen)
            return message

        async def tracking(message: dict) -> None:
            nonlocal started
            if overflow:
                # Whatever the app made of the cut body (FastAPI answers a body it could
                # not read with a bare 400), the answer is the 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, 413, self._why(overflow[0], at_least=True))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except _TooLarge as exc:
            if not started:
                await self._refuse(send, 413, self._why(exc.size, at_least=True))

    def _why(self, size: int, at_least: bool = False) -> str:
        more = "at least " if at_least else ""
        return (f"request body too large: {more}{size:,} bytes (expected at most {self.limit:,}, the "
                "daemon's max_request; submit fewer jobs per request)")

    @staticmethod
    async def _refuse(send: Send, status: int, line: str) -> None:
        body = json.dumps({"error": line, "lines": [line]}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size
