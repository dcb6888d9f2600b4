"""``/v1/tokens``: make, list and revoke bearer tokens for the TCP API. A token is the
caller's (it acts as them, under the same rules); admins see and revoke everyone's.
Over TCP only an ``admin``-scope token may manage tokens (the gateway checks)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request

from ...api.tokens import TokenCreated, TokenList, TokenRequest, TokenView
from ...durations import parse_duration
from .. import auth
from ..auth import user_name
from .deps import AccessDep
from .principal import PrincipalDep

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


def _owner(who: auth.Principal) -> tuple[str, int, int]:
    uid = who.uid if who.uid is not None else os.geteuid()       # in-process: the daemon's own user
    gid = who.gid if who.gid is not None else os.getegid()
    return who.name or user_name(uid), uid, gid


@router.post("", status_code=201, response_model=TokenCreated)
async def create(body: TokenRequest, request: Request, who: PrincipalDep, access: AccessDep) -> TokenCreated:
    """A new token for the caller; the answer carries the token, shown this once."""
    auth.check_submitter(who, access)
    name, uid, gid = _owner(who)
    seconds = None
    if body.expires is not None:
        seconds = parse_duration(body.expires, "expires", bare_unit=86400, what="expiry",
                                 examples="expected a duration, e.g. 30d, 12h (a bare number is days)")
    token, text = request.app.state.tokens.create(user=name, uid=uid, gid=gid, scope=body.scope,
                                                  name=body.name or "", seconds=seconds)
    return TokenCreated(**token.view(), token=text)


@router.get("", response_model=TokenList)
async def list_tokens(request: Request, who: PrincipalDep, access: AccessDep) -> TokenList:
    """The caller's tokens (an admin's: everyone's); never their secrets."""
    user = None if auth.is_admin(who, access) else _owner(who)[0]
    return TokenList(tokens=[TokenView(**t.view()) for t in request.app.state.tokens.list(user)])


@router.delete("/{ident}", response_model=TokenView)
async def revoke(ident: str, request: Request, who: PrincipalDep, access: AccessDep) -> TokenView:
    """Revoke a token by id or name: the caller's own, or any for an admin."""
    user = None if auth.is_admin(who, access) else _owner(who)[0]
    return TokenView(**request.app.state.tokens.revoke(ident, user=user).view())
