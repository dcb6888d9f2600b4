"""The HTTP API (served on the daemon's Unix socket; the CLI and SDK speak it).

One router per resource: :mod:`.jobs` (submit, list, select, show, cancel, update,
hold, release, wait), :mod:`.arrays` (an array's summary), :mod:`.logs`,
:mod:`.nodes` (nodes, top), :mod:`.queues`, :mod:`.usage`, :mod:`.metrics` (Prometheus)
and :mod:`.admin` (health, prune, shutdown). Requests and answers are the models of
:mod:`corral.api.models`, which the SDK shares; the caller is the socket's peer
(:mod:`.principal`); errors are ``{"error": "...", "lines": [...]}`` with a 4xx code
(:mod:`.errors`). Jobs travel in the same Kubernetes-flavoured document form as
``job.yaml`` files and are validated here again (:mod:`.specs`), so scripts that talk to
the API directly get the same one-line errors the CLI prints.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI

from ... import __version__
from ..auth import Access
from ..manager import Manager
from . import admin, arrays, errors, events, jobs, logs, metrics, nodes, queues, usage
from . import tokens as token_routes
from . import ui
from .limits import DEFAULT_MAX_BODY, BodyLimit


def create_app(manager: Manager, info: dict[str, Any], shutdown: Callable[[], None], *,
               access: Access | None = None, max_body: int = DEFAULT_MAX_BODY, tokens: Any = None) -> FastAPI:
    """The API of one daemon: ``manager`` runs the jobs, ``info`` is what the daemon found
    at start (home, GPU source, enforcement), ``shutdown`` stops serving, ``access`` says
    who may do what (user mode when not given), ``max_body`` the largest request body
    (bytes; larger is refused with 413 before it is read), ``tokens`` the TCP API's bearer
    tokens (:class:`~corral.daemon.tokens.Tokens`; default: kept in memory only)."""
    app = FastAPI(title="corral", version=__version__)
    app.state.manager = manager
    app.state.info = info
    app.state.shutdown = shutdown
    app.state.access = access or Access()
    if tokens is None:
        from ..tokens import Tokens

        tokens = Tokens(None)
    app.state.tokens = tokens
    errors.install(app)
    if manager.context.metrics is None:
        from ..metrics import Metrics

        manager.context.metrics = Metrics(manager)
    app.state.metrics = manager.context.metrics
    for module in (admin, arrays, events, jobs, logs, metrics, nodes, queues, token_routes, usage, ui):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=max_body)
    return app


__all__ = ["create_app"]
