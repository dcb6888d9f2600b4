"""Replay a trace through the daemon's own scheduler, in virtual time.

The simulator owns a virtual clock and a priority queue of events (arrivals and job
ends); at each event time it applies the events and runs one scheduling cycle of the
exact code the daemon runs, on a :class:`~corral.scheduler.Snapshot` it keeps up to date
the way the daemon does:

* a core policy (:data:`corral.scheduler.POLICIES`) runs on the fast path,
  :func:`corral.scheduler.schedule_on` with a persistent
  :class:`~corral.scheduler.PendingQueue` (the daemon without queues);
* a :class:`~corral.sim.policies.TenantPolicy` (``easy-backfill``, ``fair-share``) runs
  :func:`corral.scheduler.tenancy.schedule_tenants` with a
  :class:`~corral.scheduler.tenancy.TenantContext`: one queue, the running jobs as
  :class:`~corral.scheduler.RunningJob` s, and -- for fair share -- the users' decayed
  usage from :class:`corral.daemon.fairuse.FairUsage`, advanced in virtual time over
  each interval between events with the jobs that ran during it (exact: the running
  set only changes at events).

Running jobs are tracked as :class:`~corral.scheduler.RunningJob` s whose
``expected_end`` is ``start + estimate`` (the estimate the scheduler was given, never the
real end): the scheduler sees the future only through estimates. A job runs for its
trace duration once started (non-preemptive) -- except under a preemptive policy
(``srtf``, ``tiresias``: :class:`~corral.sim.policies.preemptive.PreemptivePolicy`), which
:func:`simulate` hands to :mod:`corral.sim.preemptive`. Nothing sleeps: a month of trace replays
in seconds. Deterministic: the same jobs (in any order) and policy give the same result.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..capacity.node import Node
from ..errors import CorralError
from ..job import Allocation
from ..resources import GPU
from ..scheduler import PendingJob, PendingQueue, Placement, QueueSpec, RunningJob, Snapshot, infeasible, schedule_on
from ..scheduler.tenancy import TenantContext, schedule_tenants, total_capacity
from .metrics import JobOutcome, Sample
from .policies.base import DEFAULT_QUEUE, TenantPolicy


@dataclass(frozen=True)
class SimJob:
    """What the engine needs of a trace job (``corral.sim.trace.TraceJob`` fits)."""

    id: int
    submit: float
    duration: float
    requests: object          # Resources
    user: str = ""
    priority: int = 0
    #: Requested wall time, when known (the estimate backfill relies on).
    time_limit: float | None = None


@dataclass
class SimResult:
    policy: str
    outcomes: list[JobOutcome] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    #: Jobs that could never fit any node of the cluster: id -> why (never silently dropped).
    infeasible: dict[int, str] = field(default_factory=dict)
    cycles: int = 0
    placements: int = 0
    #: Times a running job was preempted (preemptive policies only; 0 otherwise).
    preemptions: int = 0


_ARRIVAL, _END = 1, 0   # at equal times, ends are applied before arrivals


class _CoreScheduler:
    """The fast path: :func:`schedule_on` on a persistent :class:`PendingQueue`."""

    def __init__(self, policy, snapshot: Snapshot):
        self.policy = policy
        self.snapshot = snapshot
        self.queue = PendingQueue(policy.order_key)

    @staticmethod
    def estimate(job) -> float:
        return float(job.duration)          # what sjf orders by (oracle, as documented there)

    def add(self, job: PendingJob) -> None:
        self.queue.add(job)

    def __len__(self) -> int:
        return len(self.queue)

    def advance(self, now: float, running: dict) -> None:
        pass

    def cycle(self, now: float, running: dict) -> list[Placement]:
        placements = schedule_on(self.snapshot, self.queue, self.policy).placements
        for p in placements:
            self.queue.remove(p.job_id)
        return placements


class _TenantScheduler:
    """The daemon's multi-tenant cycle (:func:`schedule_tenants`), one queue, no preemption."""

    def __init__(self, policy: TenantPolicy, snapshot: Snapshot):
        from ..daemon.fairuse import FairUsage

        self.policy = policy
        self.snapshot = snapshot
        self.pending: dict[int, PendingJob] = {}
        self.queues = {DEFAULT_QUEUE: QueueSpec(DEFAULT_QUEUE, policy=policy.queue_policy,
                                                backfill=policy.backfill)}
        self.capacity = total_capacity(snapshot)
        self.usage = FairUsage(policy.half_life) if policy.half_life is not None else None
        self.estimate = policy.estimate

    def add(self, job: PendingJob) -> None:
        self.pending[job.id] = job

    def __len__(self) -> int:
        return len(self.pending)

    def advance(self, now: float, running: dict) -> None:
        """Account the interval up to ``now`` in the fair-share history (the running set
        has not changed since the previous event)."""
        if self.usage is not None:
            self.usage.advance(now, [(r.user, r.requests) for r, _ in running.values()], self.capacity)

    def cycle(self, now: float, running: dict) -> list[Placement]:
        ctx = TenantContext(now=now, queues=self.queues, running=[r for r, _ in running.values()],
                            shares=self.usage.shares() if self.usage is not None else {},
                            capacity=self.capacity, backfill=self.policy.backfill, preempt=False)
        result = schedule_tenants(self.snapshot, list(self.pending.values()), ctx)
        if result.preemptions:      # cannot happen with preempt=False; the engine is non-preemptive
            raise CorralError(f"unexpected preemptions in a non-preemptive simulation: {result.preemptions}")
        for p in result.placements:
            if self.pending.pop(p.job_id, None) is None:
                raise CorralError(f"the scheduler placed job {p.job_id}, which is not pending")
        return result.placements


def simulate(nodes: Sequence[Node], jobs: Iterable, policy, *, check: bool = False) -> SimResult:
    """Run ``jobs`` (anything with id, submit, duration, requests, user; optionally
    priority and time_limit) on ``nodes`` under ``policy``: a core policy
    (:func:`corral.scheduler.get_policy`) or a :class:`~corral.sim.policies.TenantPolicy`
    (:func:`corral.sim.policies.resolve` gives either from a name).

    With ``check=True`` the engine verifies after every cycle that no resource of any
    node is over-committed, no GPU is held twice, and the snapshot holds exactly the
    running jobs' allocations (slower; for tests).
    """
    from .policies.preemptive import PreemptivePolicy

    result = SimResult(policy=policy.name)
    if isinstance(policy, PreemptivePolicy):
        from .preemptive import simulate_preemptive

        return simulate_preemptive(nodes, _feasible(nodes, jobs, result), policy, result, check=check)
    snapshot = Snapshot(nodes, {})
    sched = _TenantScheduler(policy, snapshot) if isinstance(policy, TenantPolicy) else _CoreScheduler(policy, snapshot)
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

    #: job id -> (the job as the scheduler sees it running, its allocation)
    running: dict[int, tuple[RunningJob, Allocation]] = {}
    estimates: dict[int, float | None] = {}
    allocated_gpus = 0
    while events:
        now = events[0][0]
        sched.advance(now, running)
        while events and events[0][0] == now:           # apply every event at this instant
            _, kind, job_id = heapq.heappop(events)
            job = by_id[job_id]
            if kind == _END:
                run, alloc = running.pop(job_id)
                snapshot.forget(alloc)
                allocated_gpus -= len(alloc.gpus)
                result.outcomes.append(JobOutcome(
                    id=job_id, user=getattr(job, "user", ""), submit=float(job.submit), start=run.started_at,
                    end=now, duration=float(job.duration), gpus=job.requests.get(GPU, 0)))
            else:
                estimate = estimates[job_id] = sched.estimate(job)
                sched.add(PendingJob(job_id, job.requests, priority=getattr(job, "priority", 0), seq=job_id,
                                     estimate=estimate, queue=DEFAULT_QUEUE, user=getattr(job, "user", "")))
        if len(sched):
            placements = sched.cycle(now, running)
            result.cycles += 1
            for p in placements:
                job = by_id[p.job_id]
                alloc = p.allocation
                estimate = estimates.pop(p.job_id)
                running[p.job_id] = (RunningJob(
                    p.job_id, alloc.requests, alloc.node, alloc.gpus, alloc.cores,
                    priority=getattr(job, "priority", 0), queue=DEFAULT_QUEUE, user=getattr(job, "user", ""),
                    started_at=now, expected_end=None if estimate is None else now + estimate,
                    preemptible=False), alloc)
                allocated_gpus += len(alloc.gpus)
                heapq.heappush(events, (now + float(job.duration), _END, p.job_id))
            result.placements += len(placements)
            if check:
                _check(snapshot, running)
        result.samples.append(Sample(t=now, gpus_allocated=allocated_gpus, gpus_total=gpus_total,
                                     queue_length=len(sched), running=len(running)))
    if len(sched) or running:
        raise CorralError(f"simulation ended with {len(sched)} jobs queued and {len(running)} running")
    result.outcomes.sort(key=lambda o: o.id)
    return result


def _feasible(nodes: Sequence[Node], jobs: Iterable, result: SimResult) -> dict[int, object]:
    by_id: dict[int, object] = {}
    for job in jobs:
        if job.id in by_id or job.id in result.infeasible:
            raise CorralError(f"duplicate job id {job.id} in trace")
        why = infeasible(list(nodes), job.requests)
        if why:
            result.infeasible[job.id] = "; ".join(why)
            continue
        by_id[job.id] = job
    return by_id


def _check(snapshot: Snapshot, running: dict[int, tuple[RunningJob, Allocation]]) -> None:
    held: dict[str, dict[str, int]] = {}
    gpus: dict[str, set[int]] = {}
    for _, alloc in running.values():
        mine = held.setdefault(alloc.node, {})
        for name, amount in alloc.requests.items():
            mine[name] = mine.get(name, 0) + amount
        taken = gpus.setdefault(alloc.node, set())
        if taken & set(alloc.gpus):
            raise CorralError(f"GPU held twice on {alloc.node}: {sorted(taken & set(alloc.gpus))}")
        taken.update(alloc.gpus)
    for state in snapshot.nodes.values():
        name_ = state.node.name
        mine = held.get(name_, {})
        for name in sorted(set(state.used) | set(mine)):
            used = state.used.get(name, 0)
            if used > state.allocatable.get(name, 0) or used < 0:
                raise CorralError(f"over-commit of {name} on {name_}: {used} of "
                                  f"{state.allocatable.get(name, 0)}")
            if used != mine.get(name, 0):
                raise CorralError(f"{name} on {name_}: the snapshot holds {used}, the running jobs "
                                  f"{mine.get(name, 0)}")
        if len(state.free_gpus) + state.used.get(GPU, 0) != len(state.node.gpus):
            raise CorralError(f"GPU accounting broken on {name_}")
        if state.free_gpus & gpus.get(name_, set()):
            raise CorralError(f"a running job's GPU is free on {name_}")
