"""Every error answer is ``{"error": "one line", "lines": [...]}`` with a 4xx code (503
while the daemon shuts down), whatever raised it: corral's own errors, a request the
models reject (422, one line per problem: field, value, what is accepted; see
:mod:`corral.api.problems`), or a path or method the API does not have."""

from __future__ import annotations

import re
import sys

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ...api import problems
from ...errors import CorralError, Infeasible, PermissionDenied, show_value

#: The longest line an error answer carries (values in it are shortened long before).
MAX_LINE = 1000
#: What cannot be in one line of text, or in an answer at all (lone surrogates).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def one_line(text: str) -> str:
    """``text`` as an error line: control characters and lone surrogates escaped (as
    :func:`~corral.errors.show_value` does), at most :data:`MAX_LINE` characters. Values
    are shown escaped where a message is made; this is for whatever slipped through."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 3] + "..."


def answer(status: int, lines: list[str], headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body (:class:`~corral.api.models.ErrorBody`): all lines, and joined."""
    lines = [one_line(line) for line in lines] or ["request refused"]
    return JSONResponse(status_code=status, content={"error": "; ".join(lines), "lines": lines}, headers=headers)


async def corral_error(request: Request, exc: CorralError) -> JSONResponse:
    lines = exc.lines if isinstance(exc, (Infeasible, PermissionDenied)) else [str(exc)]
    return answer(exc.status, lines)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(tuple(e.get("loc", ())) == ("body",) and isinstance(e.get("input"), bytes) for e in errors):
        # FastAPI reads a body as JSON only when it says it is: the rest arrives as bytes.
        ctype = request.headers.get("content-type")
        shown = show_value(ctype) if ctype is not None else "none"
        return answer(422, [f"invalid Content-Type for the request body: {shown} (expected application/json)"])
    return answer(422, problems.lines(errors) or ["invalid request"])


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing errors (404 for an unknown path, 405 for a wrong method) in the same form,
    and bodies that are not JSON at all (see :func:`unreadable_body`)."""
    unreadable = unreadable_body(exc)
    if unreadable is not None:
        return answer(*unreadable)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    path = request.scope.get("path") or "/"     # as it came (request.url drops newlines, adds hosts)
    shown = path if len(path) <= 200 and not _UNPRINTABLE.search(path) else show_value(path)
    return answer(exc.status_code, [f"{detail.lower()}: {request.method} {shown}"], exc.headers)


def unreadable_body(exc: HTTPException) -> tuple[int, list[str]] | None:
    """FastAPI answers a body its JSON decoder fails on with anything but a syntax error
    (nesting deeper than the decoder goes, bytes that are not UTF-8, an integer of
    thousands of digits) with a bare 400, "there was an error parsing the body". Here
    they say what it was, as other invalid JSON does (422)."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, RecursionError):
        why = "nested too deeply"
    elif isinstance(cause, UnicodeDecodeError):
        why = f"not UTF-8: byte 0x{cause.object[cause.start]:02x} at position {cause.start}"
    elif isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        why = f"an integer of more than {sys.get_int_max_str_digits():,} digits"
    else:
        return None
    return 422, [f"invalid JSON in the request body ({why})"]


async def store_error(request: Request, exc: Exception) -> JSONResponse:
    """The store cannot be written (disk full, read-only file system or database, a
    lock held too long): one line, 507 or 503, never a bare 500."""
    from ..faults import count

    route = request.scope.get("route")
    count(f"{request.method} {getattr(route, 'path', request.url.path)}")
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
