"""Replay a trace through the daemon's own scheduler core, in virtual time.

The simulator owns a virtual clock and a priority queue of events (arrivals and job
ends); at each event time it applies the events and runs one scheduling cycle with
:func:`corral.scheduler.schedule_on` -- the exact function the daemon runs -- on a
:class:`~corral.scheduler.Snapshot` and a :class:`~corral.scheduler.PendingQueue` it
keeps up to date the way the daemon does. Nothing sleeps: a month of trace replays in
seconds. A job runs for its trace duration once started (non-preemptive policies).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..capacity.node import Node
from ..errors import CorralError
from ..resources import GPU
from ..scheduler import PendingJob, PendingQueue, Snapshot, infeasible, schedule_on
from ..scheduler.policies import Policy
from .metrics import JobOutcome, Sample


@dataclass(frozen=True)
class SimJob:
    """What the engine needs of a trace job (``corral.sim.trace.TraceJob`` fits)."""

    id: int
    submit: float
    duration: float
    requests: object          # Resources
    user: str = ""
    priority: int = 0


@dataclass
class SimResult:
    policy: str
    outcomes: list[JobOutcome] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    #: Jobs that could never fit any node of the cluster: id -> why (never silently dropped).
    infeasible: dict[int, str] = field(default_factory=dict)
    cycles: int = 0
    placements: int = 0


_ARRIVAL, _END = 1, 0   # at equal times, ends are applied before arrivals


def simulate(nodes: Sequence[Node], jobs: Iterable, policy: Policy, *, check: bool = False) -> SimResult:
    """Run ``jobs`` (anything with id, submit, duration, requests, user) on ``nodes``.

    With ``check=True`` the engine verifies after every cycle that no resource of any
    node is over-committed and no GPU is held twice (slower; for tests).
    """
    result = SimResult(policy=policy.name)
    snapshot = Snapshot(nodes, {})
    queue = PendingQueue(policy.order_key)
    gpus_total = sum(n.allocatable.get(GPU, 0) for n in nodes)
    events: list[tuple[float, int, int]] = []
    by_id: dict[int, object] = {}
    for job in jobs:
        if job.id in by_id:
            raise CorralError(f"duplicate job id {job.id} in trace")
        why = infeasible(list(nodes), job.requests)
        if why:
            result.infeasible[job.id] = "; ".join(why)
            continue
        by_id[job.id] = job
        heapq.heappush(events, (float(job.submit), _ARRIVAL, job.id))

    running: dict[int, tuple[float, object]] = {}   # job id -> (start, allocation)
    allocated_gpus = 0
    while events:
        now = events[0][0]
        while events and events[0][0] == now:           # apply every event at this instant
            _, kind, job_id = heapq.heappop(events)
            job = by_id[job_id]
            if kind == _END:
                start, alloc = running.pop(job_id)
                snapshot.forget(alloc)
                allocated_gpus -= len(alloc.gpus)
                result.outcomes.append(JobOutcome(
                    id=job_id, user=getattr(job, "user", ""), submit=float(job.submit), start=start, end=now,
                    duration=float(job.duration), gpus=job.requests.get(GPU, 0)))
            else:
                queue.add(PendingJob(job_id, job.requests, priority=getattr(job, "priority", 0), seq=job_id,
                                     estimate=float(job.duration)))
        if len(queue):
            cycle = schedule_on(snapshot, queue, policy)
            result.cycles += 1
            for p in cycle.placements:
                job = by_id[p.job_id]
                queue.remove(p.job_id)
                running[p.job_id] = (now, p.allocation)
                allocated_gpus += len(p.allocation.gpus)
                heapq.heappush(events, (now + float(job.duration), _END, p.job_id))
            result.placements += len(cycle.placements)
            if check:
                _check(snapshot)
        result.samples.append(Sample(t=now, gpus_allocated=allocated_gpus, gpus_total=gpus_total,
                                     queue_length=len(queue), running=len(running)))
    if len(queue) or running:
        raise CorralError(f"simulation ended with {len(queue)} jobs queued and {len(running)} running")
    result.outcomes.sort(key=lambda o: o.id)
    return result


def _check(snapshot: Snapshot) -> None:
    for state in snapshot.nodes.values():
        for name, used in state.used.items():
            if used > state.allocatable.get(name, 0) or used < 0:
                raise CorralError(f"over-commit of {name} on {state.node.name}: {used} of "
                                  f"{state.allocatable.get(name, 0)}")
        if len(state.free_gpus) + state.used.get(GPU, 0) != len(state.node.gpus):
            raise CorralError(f"GPU accounting broken on {state.node.name}")
