"""Call an ASGI app in-process, the way the daemon's protocol does, without a socket or
an HTTP client library: a request's scope, its body, and the answer collected."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from corral.daemon.api.principal import with_peer


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(app, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
         peer: tuple[int, int, int] | None = None, client: tuple[str, int] | None = None,
         raw: bytes | None = None) -> Answer:
    """One request. ``peer``: ``(pid, uid, gid)`` as SO_PEERCRED would give them (the app
    is wrapped with :func:`with_peer`, as the daemon's protocol does); ``client``: the
    ASGI client address; ``raw``: a body sent as it is (default: ``body`` as JSON)."""
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    target, _, query = path.partition("?")
    head = [(b"host", b"corral"), (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": target, "raw_path": target.encode(),
             "query_string": query.encode(), "root_path": "", "headers": head, "client": client,
             "server": None, "state": {}}
    served = with_peer(app, *peer) if peer is not None else app
    return asyncio.run(_run(served, scope, payload))


async def _run(app, scope: dict, payload: bytes) -> Answer:
    sent = False
    out: dict[str, Any] = {"status": 0, "headers": {}, "body": b""}

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)      # the client never disconnects during a test
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return Answer(out["status"], out["headers"], out["body"])
