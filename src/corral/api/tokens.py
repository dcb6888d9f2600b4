"""Models of ``/v1/tokens`` (bearer tokens for the TCP API, :mod:`corral.daemon.tokens`)."""

from __future__ import annotations

from typing import Literal

from .models import Duration, RequestModel, ResponseModel, Text


class TokenRequest(RequestModel):
    """``POST /v1/tokens``: a token for the caller. ``expires``: a duration (``30d``,
    ``12h``; a bare number is days); none: it lasts until revoked."""

    name: Text | None = None
    scope: Literal["read", "submit", "admin"] = "submit"
    expires: Duration | None = None


class TokenView(ResponseModel):
    id: str
    name: str
    user: str
    uid: int
    gid: int
    scope: str
    created: float
    expires: float | None


class TokenCreated(TokenView):
    #: The token itself: shown this once (the daemon keeps only its hash).
    token: str


class TokenList(ResponseModel):
    tokens: list[TokenView]
