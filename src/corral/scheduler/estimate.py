"""Start-time estimates: the scheduling cycle itself, run forward in virtual time.

The projection works on a copy of the cluster state. Running jobs end at their
``expected_end`` (jobs being stopped for a preemption, now); each job the projection
starts ends at its start plus its time limit; a job without a limit never ends. After
each end the same cycle the daemon runs (:func:`~.cycle.schedule`, decisions only, with
the same queues, policies, historical shares and backfill, without planning new
preemptions) runs again, until every pending job has started, nothing is left that will
end, or ``max_events`` end times have been visited. A job that has not started by then
gets None: its start depends on a job without a time limit (or lies beyond the horizon).

Since it is the same pipeline, the estimated order is the order the daemon follows when
jobs run for their time limits.

Cost: one cycle per end time; call it on demand, or on the head of the queue, not in
every scheduling pass.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from .cycle import CycleContext, schedule
from .queue import PendingSet
from .state import ClusterState
from .types import PendingJob

#: End times visited at most.
MAX_EVENTS = 1000


def estimate_starts(state: ClusterState, pending: Iterable[PendingJob], ctx: CycleContext, *,
                    max_events: int = MAX_EVENTS) -> dict[int, float | None]:
    """Estimated start time per pending job id (None = unknown). Pure: ``state`` is
    copied, ``ctx`` gives ``now``, shares, backfill and preemptions under way."""
    now = ctx.now
    # Jobs being stopped for a preemption end now.
    running = [r if r.stopping_for is None else replace(r, expected_end=now) for r in state.running.values()]
    projection = ClusterState(state.nodes, state.queues, running, cordoned=state.cordoned)
    waiting = PendingSet(state.queues, pending)
    starts: dict[int, float | None] = {job.id: None for job in waiting}
    events = 0
    while waiting:
        cycle = replace(ctx, now=now, preempt=False, reasons=False)
        decided = schedule(projection, waiting, cycle)
        for p in decided.placements:
            starts[p.job_id] = now
            waiting.remove(p.job_id)
        if not waiting:
            break
        ends = [r.expected_end for r in projection.running.values() if r.expected_end is not None]
        if not ends or events >= max_events:
            break
        now = max(now, min(ends))
        events += 1
        for r in list(projection.running.values()):
            if r.expected_end is not None and r.expected_end <= now:
                projection.end(r.id)
    return starts
