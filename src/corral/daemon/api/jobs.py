"""``/v1/jobs``: submit, list, show, cancel, update, hold, release, wait.

Jobs are readable by everyone who can connect (like ``squeue``); acting on a job is for
its owner and admins (:mod:`corral.daemon.auth`), checked for the whole batch before
anything changes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from ...api.models import (JOB_ID, MAX_JOB_ID, CancelResult, CancelResults, Changed, Digits, IdsRequest, JobList,
                           JobsQuery, JobView, Selected, SubmitRequest, UpdateRequest, UpdateResult, UpdateResults,
                           WaitQuery, expect)
from ...errors import DaemonUnavailable, NotFound, ValidationError
from ...job import JobState
from .. import auth, selection
from ..manager import Manager
from ..views import job_view
from .deps import AccessDep, ManagerDep
from .principal import PrincipalDep
from .specs import specs_from

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: Seconds a big cancel works before it lets other requests run (a request needs a few
#: turns of the event loop, so a slice much longer than this would still hold them up).
CANCEL_SLICE = 0.01

#: A job id in a path: an integer the store can hold, in decimal digits (``1.0``, `` 1``
#: or ``1_0`` are not job 1 or 10).
JobIdPath = Annotated[int, Path(gt=0, le=MAX_JOB_ID, description=JOB_ID), Digits, expect(JOB_ID)]


@router.post("", status_code=201, response_model=JobList, response_model_exclude_unset=True)
async def submit(body: SubmitRequest, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> JobList:
    """Submit a batch, all or nothing (see :class:`~corral.api.models.SubmitRequest`)."""
    from ...spec import check_base_env

    if manager.store_watch is not None:
        manager.store_watch.require()          # nothing acknowledged into a deleted store
    check_base_env(body.base_env)
    specs = specs_from(body)
    auth.check_submitter(who, access)
    specs = auth.with_priorities(specs, manager.priorities, who, access)
    # System mode: a user's job gets a clean environment, not the submitter's.
    base_env = auth.submitter_env(who, access, body.base_env)
    jobs = manager.submit(specs, base_env, user=who.name, uid=who.uid, gid=who.gid, key=body.idempotency_key)
    positions = manager.queue_positions()
    # No start estimates: they would make every submit pay for a forward simulation.
    return JobList.model_validate({"jobs": [job_view(j, manager, positions, {}) for j in jobs]})


@router.get("", response_model=JobList, response_model_exclude_unset=True)
async def list_jobs(query: Annotated[JobsQuery, Query()], manager: ManagerDep, who: PrincipalDep) -> JobList:
    """Jobs by id, filtered (:class:`~corral.api.models.JobsQuery`); ``last``: the newest."""
    if query.limit is not None and query.last is not None:
        raise ValidationError("last", query.last, "expected either limit (the first N) or last (the newest N), "
                                                  "not both")
    found = selection.job_filter(name=query.name, user=query.user, mine=query.mine, me=who.name, queue=query.queue,
                                 labels=[selection.parse_label(t) for t in query.label], array=query.array,
                                 states=query.state, since=query.since, now=manager.clock())
    newest = query.last is not None
    jobs = manager.store.find_jobs(replace(found, limit=query.last if newest else query.limit, newest=newest))
    positions = manager.queue_positions()
    estimates = manager.estimated_starts() if any(j.state is JobState.PENDING for j in jobs) else {}
    return JobList.model_validate({"jobs": [job_view(j, manager, positions, estimates) for j in jobs]})


@router.get("/{job_id}", response_model=JobView, response_model_exclude_unset=True)
async def show(job_id: JobIdPath, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> JobView:
    """Everything about one job; its environment only for its owner and admins."""
    job = manager.store.get_job(job_id)
    private = auth.may_act(who, job, access)
    return JobView.model_validate(job_view(job, manager, detail=True, private=private))


@router.post("/select", response_model=Selected, response_model_exclude_unset=True)
async def select(body: IdsRequest, manager: ManagerDep, who: PrincipalDep,
                 action: Annotated[Literal["cancel", "hold", "release", "update"] | None, Query()] = None) -> Selected:
    """The jobs a request names (:class:`~corral.api.models.JobRefs`), changing nothing:
    with ``action``, those that action would take (``corral cancel`` counts them before
    it asks for a confirmation; ``wait`` and ``show 12_3`` resolve ids with it)."""
    states = {"cancel": selection.LIVE, "update": selection.LIVE, "hold": selection.PENDING,
              "release": selection.PENDING}.get(action or "")
    jobs, missing = selection.resolve(manager.store, body, me=who.name, now=manager.clock(), states=states)
    return Selected.model_validate({"jobs": [{"id": j.id, "state": j.state.value, "held": j.held, "user": j.user,
                                              "name": j.spec.name, "array_id": j.array_id,
                                              "array_index": j.array_index} for j in jobs], "missing": missing})


def _resolve(manager: Manager, body, who: auth.Principal, access: auth.Access, states) -> list[int]:
    """The ids of the jobs ``body`` names, each the caller's (or the caller an admin); a
    job named one by one that does not exist raises NotFound (before anything changes)."""
    jobs, missing = selection.resolve(manager.store, body, me=who.name, now=manager.clock(), states=states)
    if missing:
        raise _missing(missing[0])
    for job in jobs:
        auth.require_owner(who, access, job)
    return [j.id for j in jobs]


def _missing(ref: str) -> NotFound:
    return NotFound(f"no such array task: {ref}" if "_" in ref else f"no such job: {ref}")


@router.post("/cancel", response_model=CancelResults)
async def cancel(body: IdsRequest, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> CancelResults:
    """All or nothing on permissions: another user's job in the batch and none is
    cancelled. Unknown ids are reported one by one (``ok`` false); an array's id
    cancels every live task (:class:`~corral.api.models.JobRefs`)."""
    jobs, missing = selection.resolve(manager.store, body, me=who.name, now=manager.clock(), states=selection.LIVE)
    auth.check_jobs(who, jobs, access, "cancelled")
    results = []
    until = time.monotonic() + CANCEL_SLICE
    for job_id in [j.id for j in jobs]:
        if time.monotonic() > until:
            await asyncio.sleep(0)             # a big cancel lets other requests in between slices
            until = time.monotonic() + CANCEL_SLICE
        try:
            results.append(CancelResult(id=job_id, result=manager.cancel(job_id), ok=True))
        except NotFound as exc:
            results.append(CancelResult(id=job_id, result=str(exc), ok=False))
    results += [CancelResult(id=int(ref.partition("_")[0]), result=str(_missing(ref)), ok=False) for ref in missing]
    return CancelResults(results=results)


@router.post("/update", response_model=UpdateResults)
async def update(body: UpdateRequest, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> UpdateResults:
    """Change pending jobs' priority, time limit or queue (running: time limit). All jobs
    are checked first; non-admins may only lower priorities and time limits."""
    from ...spec import _parse_priority, _parse_queue, _parse_time_limit

    priority = _parse_priority(body.priority, "priority") if body.priority is not None else None
    limit = _parse_time_limit(body.time, "time") if body.time is not None else None
    queue = _parse_queue(body.queue, "queue") if body.queue is not None else None
    ids = _resolve(manager, body, who, access, selection.PENDING if priority is not None or queue is not None
                   else selection.LIVE)
    done = manager.update(ids, priority=priority, time_limit=limit, queue=queue,
                          admin=auth.is_admin(who, access))
    return UpdateResults(results=[UpdateResult(id=job_id, result=text) for job_id, text in done])


@router.post("/hold", response_model=Changed)
async def hold(body: IdsRequest, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> Changed:
    """Hold pending jobs: all or none (each must be the caller's, or the caller an admin);
    an array's id: its pending tasks."""
    ids = _resolve(manager, body, who, access, selection.PENDING)
    return Changed(changed=manager.hold(ids, who=who.name))


@router.post("/release", response_model=Changed)
async def release(body: IdsRequest, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> Changed:
    ids = _resolve(manager, body, who, access, selection.PENDING)
    return Changed(changed=manager.release(ids, who=who.name))


@router.get("/{job_id}/wait", response_model=JobView, response_model_exclude_unset=True)
async def wait(job_id: JobIdPath, query: Annotated[WaitQuery, Query()], manager: ManagerDep) -> JobView:
    """A long poll: the job's view once it ends, or after ``timeout`` seconds (at most
    300) if it has not. 503 while the daemon shuts down: ask the next one."""
    job = manager.store.get_job(job_id)
    if not job.terminal and manager.closing:
        raise DaemonUnavailable("corral daemon is shutting down; ask again")
    if not job.terminal:
        fut = manager.future_for(job_id)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=max(0.0, min(query.timeout, 300.0)))
        except asyncio.TimeoutError:
            pass
        finally:
            manager.drop_future(job_id, fut)
        job = manager.store.get_job(job_id)
        if not job.terminal and manager.closing:
            raise DaemonUnavailable("corral daemon is shutting down; ask again")
    return JobView.model_validate(job_view(job, manager))
