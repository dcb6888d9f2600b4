"""The daemon itself: ``/v1/health`` (anyone), ``/v1/prune`` and ``/v1/shutdown`` (admins)."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter

from ... import __version__
from ...api.models import AccessView, Health, PruneRequest, Pruned, ShutdownAnswer
from ...durations import parse_duration
from .. import auth
from .deps import AccessDep, InfoDep, ManagerDep, ShutdownDep
from .principal import PrincipalDep

router = APIRouter(prefix="/v1", tags=["daemon"])

#: What prune deletes when neither the request nor the config says: 30 days.
DEFAULT_AGE = 30 * 86400


@router.get("/health", response_model=Health)
async def health(manager: ManagerDep, info: InfoDep, access: AccessDep) -> Health:
    return Health(ok=True, pid=os.getpid(), version=__version__, home=info.get("home"),
                  pending=manager.pending_count, running=len(manager.running), mode=access.mode,
                  access=AccessView.model_validate(access.to_dict()))


@router.post("/prune", response_model=Pruned)
async def prune(manager: ManagerDep, access: AccessDep, who: PrincipalDep,
                body: PruneRequest | None = None) -> Pruned:
    """Delete finished jobs older than ``older_than`` (default: the retention, else 30d)."""
    auth.require_admin(who, access, "prune finished jobs")
    older = body.older_than if body is not None else None
    if older is None:
        seconds = manager.retention if getattr(manager, "retention", 0) else DEFAULT_AGE
    else:
        seconds = parse_duration(older, "older_than", bare_unit=86400, allow_zero=True, what="age",
                                 examples="expected e.g. 30d, 12h, 0")
    return Pruned(deleted=manager.prune(seconds), older_than=seconds)


@router.post("/shutdown", response_model=ShutdownAnswer)
async def shutdown(manager: ManagerDep, access: AccessDep, who: PrincipalDep, stop: ShutdownDep) -> ShutdownAnswer:
    """Stop serving; running jobs keep running and the next daemon re-adopts them."""
    auth.require_admin(who, access, "stop the daemon")
    asyncio.get_running_loop().call_soon(stop)
    return ShutdownAnswer(ok=True, running_jobs_keep_running=len(manager.running))
