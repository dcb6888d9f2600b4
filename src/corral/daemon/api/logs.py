"""``GET /v1/jobs/{id}/logs``: a job's stdout or stderr, streamed as it is read.

From byte ``offset``; with ``follow`` the answer stays open and carries what the job
writes until it ends (then whatever it wrote last). Logs are private: the job's owner
and admins only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ...api.models import LogsQuery
from .. import auth
from ..manager import Manager
from .deps import AccessDep, ManagerDep
from .jobs import JobIdPath
from .principal import PrincipalDep

router = APIRouter(prefix="/v1/jobs", tags=["logs"])

#: How often a followed log is read again when nothing new was there.
POLL = 0.1


@router.get("/{job_id}/logs", response_class=StreamingResponse,
            responses={200: {"content": {"text/plain": {}}, "description": "the log's bytes"}})
async def logs(job_id: JobIdPath, query: Annotated[LogsQuery, Query()], manager: ManagerDep, access: AccessDep,
               who: PrincipalDep) -> StreamingResponse:
    auth.require_owner(who, access, manager.store.get_job(job_id), "shown")   # 404 for unknown jobs, 403
    return StreamingResponse(tail(manager, job_id, query.stream, query.follow, query.offset), media_type="text/plain")


async def tail(manager: Manager, job_id: int, stream: str, follow: bool, offset: int) -> AsyncIterator[bytes]:
    """The log from ``offset`` on; with ``follow``, until the job has ended and all is read."""
    read = manager.executor.read_log
    pos = offset
    while True:
        chunk = read(job_id, stream, pos) or b""
        if chunk:
            pos += len(chunk)
            yield chunk
            continue
        if not follow:
            return
        job = manager.store.get_job(job_id)
        if job.terminal:
            # One last read: the job may have written just before it ended.
            while True:
                rest = read(job_id, stream, pos) or b""
                if not rest:
                    return
                pos += len(rest)
                yield rest
        await asyncio.sleep(POLL)
