"""``/v1/arrays``: an array as one thing (``corral show ARRAY``): its tasks counted by
state, its indices and its times. An array's id is its first task's job id; acting on
it (cancel, hold, ...) goes through ``/v1/jobs`` with that id (:mod:`.jobs`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ...api.models import JOB_ID, MAX_JOB_ID, ArrayView, Digits, expect
from ...errors import NotFound
from ...store.filters import JobFilter
from .deps import ManagerDep

router = APIRouter(prefix="/v1/arrays", tags=["arrays"])

ArrayIdPath = Annotated[int, Path(gt=0, le=MAX_JOB_ID, description=JOB_ID), Digits, expect(JOB_ID)]


@router.get("/{array_id}", response_model=ArrayView, response_model_exclude_unset=True)
async def show(array_id: ArrayIdPath, manager: ManagerDep) -> ArrayView:
    from ...spec import format_array

    tasks = manager.store.find_jobs(JobFilter(array=array_id))
    if not tasks:
        job = manager.store.get_job(array_id)          # no such job: 12
        raise NotFound(f"job {job.id} is not an array (show it with corral show {job.id})")
    first = tasks[0]
    counts: dict[str, int] = {}
    codes: dict[str, int] = {}
    for t in tasks:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
        if t.exit_code is not None:
            codes[str(t.exit_code)] = codes.get(str(t.exit_code), 0) + 1
    indices = sorted(t.array_index or 0 for t in tasks)
    started = [t.started_at for t in tasks if t.started_at is not None]
    ended = [t.ended_at for t in tasks if t.ended_at is not None]
    view = {"id": array_id, "name": first.spec.name, "user": first.user, "queue": first.spec.queue,
            "tasks": len(tasks), "counts": counts, "indices": format_array(tuple(indices)),
            "held": sum(1 for t in tasks if t.held and not t.state.terminal), "first_index": indices[0],
            "last_index": indices[-1], "submitted_at": first.submitted_at, "exit_codes": codes}
    if first.spec.array_limit:
        view["array_limit"] = first.spec.array_limit
    if started:
        view["started_at"] = min(started)
    if ended and all(t.state.terminal for t in tasks):
        view["ended_at"] = max(ended)
    return ArrayView.model_validate(view)
