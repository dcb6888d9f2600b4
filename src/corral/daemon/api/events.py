"""``GET /v1/events``: jobs' state changes as they happen, as server-sent events
(``text/event-stream``), for ``corral watch`` and the dashboard.

Each event is ``id: N``, ``event: job`` and one ``data:`` line of JSON (``id``, ``job``,
``ts``, ``from``, ``to``, ``reason``, ``message``, and the job's ``name``, ``user`` and
``queue``). A client that reconnects sends ``Last-Event-ID`` (or ``after=N``) and gets
what it missed; without either it starts from now (``after=0``: from the beginning).
``job=ID`` follows one job. A comment line every 15 s keeps proxies from closing an
idle stream. Open to whoever may connect, like ``corral ps``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ...api.models import JOB_ID, MAX_JOB_ID, expect
from ..manager import Manager
from .deps import ManagerDep

router = APIRouter(prefix="/v1", tags=["events"])

#: How often the store is asked for new events (one indexed query per stream).
POLL = 0.25
HEARTBEAT = 15.0
PAGE = 500


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def events(request: Request, manager: ManagerDep,
                 after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="events after this id"),
                                  expect("an event id (0 or more)")] = None,
                 job: Annotated[int | None, Query(gt=0, le=MAX_JOB_ID, description=JOB_ID),
                                expect(JOB_ID)] = None) -> StreamingResponse:
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else (after if after is not None else manager.store.last_event_id())
    return StreamingResponse(stream(request, manager, start, job), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def stream(request: Request, manager: Manager, after: int, job_id: int | None) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    beat = time.monotonic()
    while not manager.closing:
        page = manager.store.events_after(after, PAGE)
        if page:
            after = page[-1].id
            jobs = {j.id: j for j in manager.store.get_jobs({e.job_id for e in page})}
            out = []
            for e in page:
                if job_id is not None and e.job_id != job_id:
                    continue
                j = jobs.get(e.job_id)
                data = {"id": e.id, "job": e.job_id, "ts": e.ts, "from": e.from_state.value if e.from_state else None,
                        "to": e.to_state.value, "reason": e.reason.value, "message": e.message,
                        "name": j.spec.name if j else "", "user": j.user if j else "", "queue": j.spec.queue if j else ""}
                out.append(f"id: {e.id}\nevent: job\ndata: {json.dumps(data)}\n\n")
            if out:
                yield "".join(out).encode()
                beat = time.monotonic()
            if len(page) == PAGE:
                continue
        if await request.is_disconnected():
            return
        if time.monotonic() - beat > HEARTBEAT:
            yield b": keep-alive\n\n"
            beat = time.monotonic()
        await asyncio.sleep(POLL)
