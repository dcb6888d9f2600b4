"""Every error answer is ``{"error": "one line", "lines": [...]}`` with a 4xx code (503
while the daemon shuts down), whatever raised it: corral's own errors, a request the
models reject (422, one line per problem: field, value, what is accepted; see
:mod:`corral.api.problems`), or a path or method the API does not have."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ...api import problems
from ...errors import CorralError, Infeasible, PermissionDenied


def answer(status: int, lines: list[str], headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body (:class:`~corral.api.models.ErrorBody`): all lines, and joined."""
    return JSONResponse(status_code=status, content={"error": "; ".join(lines), "lines": lines}, headers=headers)


async def corral_error(request: Request, exc: CorralError) -> JSONResponse:
    lines = exc.lines if isinstance(exc, (Infeasible, PermissionDenied)) else [str(exc)]
    return answer(exc.status, lines)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return answer(422, problems.lines(exc.errors()) or ["invalid request"])


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing errors (404 for an unknown path, 405 for a wrong method) in the same form."""
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return answer(exc.status_code, [f"{detail.lower()}: {request.method} {request.url.path}"], exc.headers)


async def store_error(request: Request, exc: Exception) -> JSONResponse:
    """The store cannot be written (disk full, read-only file system or database, a
    lock held too long): one line, 507 or 503, never a bare 500."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    full = "full" in text
    return answer(507 if full else 503, [f"the store cannot take this now ({text}); nothing was changed"
                                        + ("; free disk space" if full else "; try again")])


def install(app: FastAPI) -> None:
    import sqlite3

    app.add_exception_handler(sqlite3.OperationalError, store_error)  # type: ignore[arg-type]
    app.add_exception_handler(sqlite3.DatabaseError, store_error)  # type: ignore[arg-type]
    app.add_exception_handler(CorralError, corral_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
