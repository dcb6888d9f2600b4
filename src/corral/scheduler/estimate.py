"""Start-time estimates: the multi-tenant cycle run forward in virtual time.

Running jobs end at their ``expected_end`` (jobs being stopped for a preemption, now);
each job the projection starts ends at its start plus its time limit; a job without a
limit never ends. After each end the cycle runs again (decisions only, with the same
historical shares, without preemption) until every pending job has started, nothing is
left that will end, or ``max_events`` end times have been visited. A job that has not
started by then gets None: its start depends on a job without a time limit (or lies
beyond the horizon).

Cost: one cycle per end time; about 10 microseconds per pending job per cycle, so 200
pending jobs take well under a second and 2,000 (with 1,000 end times) about 15 s --
call it on demand, or on the head of the queue, not in every scheduling pass.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from ..capacity.node import Node
from .snapshot import Snapshot
from .tenancy import TenantContext, decide_tenants, total_capacity
from .types import PendingJob, RunningJob

#: End times visited at most.
MAX_EVENTS = 1000


def estimate_starts(nodes: Sequence[Node], running: Iterable[RunningJob], pending_in_order: Iterable[PendingJob],
                    ctx: TenantContext, *, max_events: int = MAX_EVENTS) -> dict[int, float | None]:
    """Estimated start time per pending job id (None = unknown). Pure: ``ctx`` gives
    ``now``, queues, shares and whether to backfill; ``ctx.running`` is not read."""
    now = ctx.now
    # Jobs being stopped for a preemption end now.
    live = [r if r.stopping_for is None else replace(r, expected_end=now) for r in running]
    pending = list(pending_in_order)
    starts: dict[int, float | None] = {job.id: None for job in pending}
    snapshot = Snapshot(nodes, [r.allocation for r in live])
    capacity = ctx.capacity if ctx.capacity is not None else total_capacity(snapshot)
    events = 0
    while pending:
        cycle = replace(ctx, now=now, running=live, preempt=False, capacity=capacity)
        result = decide_tenants(snapshot, pending, cycle)
        if result.placements:
            placed = {p.job_id: p.allocation for p in result.placements}
            for job in pending:
                alloc = placed.get(job.id)
                if alloc is None:
                    continue
                starts[job.id] = now
                limit = job.time_limit
                live.append(RunningJob(job.id, job.requests, alloc.node, alloc.gpus, alloc.cores,
                                       priority=job.priority, queue=job.queue, user=job.user, started_at=now,
                                       expected_end=None if limit is None else now + limit))
            pending = [job for job in pending if job.id not in placed]
            if not pending:
                break
        ends = [r.expected_end for r in live if r.expected_end is not None]
        if not ends or events >= max_events:
            break
        now = max(now, min(ends))
        events += 1
        keep = []
        for r in live:
            if r.expected_end is not None and r.expected_end <= now:
                snapshot.forget(r.allocation)
            else:
                keep.append(r)
        live = keep
    return starts
