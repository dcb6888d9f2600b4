"""Who is calling: a :class:`~corral.daemon.auth.Principal` from the socket's peer
credentials, and nothing else.

The daemon's protocol (:func:`corral.daemon.server.peer_protocol`) reads SO_PEERCRED
once per connection and wraps the app for that connection with :func:`with_peer`,
which puts ``(pid, uid, gid)`` into every request's ASGI scope under :data:`PEER`.
Scope keys are not headers: ``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP`` or a
client address cannot set or change them (and uvicorn's proxy-header handling is off
anyway). A request that did not come through the daemon's socket (an in-process test
client) has no credentials: its principal is unknown (``uid`` None), which the rules in
:mod:`corral.daemon.auth` treat as the daemon's own user in user mode and as nobody in
system mode.
"""

from __future__ import annotations

from typing import Annotated, Any, Awaitable, Callable

from fastapi import Depends, Request

from ..auth import Principal, user_name

#: The ASGI scope key that carries ``(pid, uid, gid)`` from SO_PEERCRED.
PEER = "corral.peer"

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def with_peer(app: ASGIApp, pid: int, uid: int, gid: int) -> ASGIApp:
    """``app`` for one connection whose peer is ``(pid, uid, gid)``: each request's
    scope carries the credentials under :data:`PEER`, set here and nowhere else."""
    peer = (pid, uid, gid)

    async def peer_app(scope: Scope, receive: Any, send: Any) -> None:
        scope[PEER] = peer
        await app(scope, receive, send)

    return peer_app


def principal(request: Request) -> Principal:
    """The caller of ``request``, from its scope's peer credentials."""
    peer = request.scope.get(PEER)
    if peer is None:
        return Principal(None)
    pid, uid, gid = peer
    return Principal(uid, gid, user_name(uid), pid)


PrincipalDep = Annotated[Principal, Depends(principal)]
