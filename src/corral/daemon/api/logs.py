"""``GET /v1/jobs/{id}/logs``: a job's stdout or stderr, streamed as it is read.

From byte ``offset``; with ``follow`` the answer stays open and carries what the job
writes until it ends (then whatever it wrote last). ``attempt=N``: only what its N-th
run wrote (a retry's or requeue's output begins with a header line, see
:mod:`corral.executors.logheaders`). A job that has never started has no logs: 409 with
its state and reason (with ``follow``, the answer waits for it to start). Logs are
private: the job's owner and admins only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ...api.models import LogsQuery
from ...errors import NotFound, NotStarted
from ...executors.logheaders import attempt_range
from ...job import JobState
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
    job = manager.store.get_job(job_id)                 # 404 for unknown jobs
    auth.require_owner(who, access, job, "shown")       # 403
    never_ran = job.attempts == 0 and job.state == JobState.PENDING
    if never_ran and not query.follow:
        why = f" ({job.reason.value}: {job.message})" if job.message else f" ({job.reason.value})"
        raise NotStarted(f"job {job_id} has not started yet: {job.state.value}{why}; "
                         f"`corral logs -f {job_id}` waits for its output")
    start, end = query.offset, None
    if query.attempt is not None:
        found = attempt_range(lambda at: manager.executor.read_log(job_id, query.stream, at), query.attempt)
        if found is None:
            runs = f"it has run {job.attempts} time{'s' if job.attempts != 1 else ''}"
            raise NotFound(f"job {job_id} has no output of attempt {query.attempt} ({runs})")
        start, end = found[0] + query.offset, found[1]
        if end is not None and start > end:
            start = end
    return StreamingResponse(tail(manager, job_id, query.stream, query.follow and end is None, start, end),
                             media_type="text/plain")


async def tail(manager: Manager, job_id: int, stream: str, follow: bool, offset: int,
               end: int | None = None) -> AsyncIterator[bytes]:
    """The log from ``offset`` (up to ``end``) on; with ``follow``, until the job has
    ended and all is read."""
    read = manager.executor.read_log
    pos = offset
    while True:
        chunk = read(job_id, stream, pos) or b""
        if end is not None:
            chunk = chunk[:max(end - pos, 0)]
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
