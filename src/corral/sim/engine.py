"""Replay a trace through the daemon's own scheduler, in virtual time.

The simulator owns a virtual clock and a priority queue of events (arrivals and job
ends); at each event time it applies the events and runs one scheduling cycle of the
exact code the daemon runs, on a :class:`~corral.scheduler.Snapshot` it keeps up to date
the way the daemon does:

* a core policy (:data:`corral.scheduler.POLICIES`) runs on the fast path,
  :func:`corral.scheduler.schedule_on` with a persistent
  :class:`~corral.scheduler.PendingQueue` (the daemon without queues);
* a :class:`~corral.sim.policies.TenantPolicy` (``easy-backfill``, ``fair-share``, a
  daemon config's ``config``) runs :func:`corral.scheduler.tenancy.schedule_tenants` with
  a :class:`~corral.scheduler.tenancy.TenantContext`: the policy's queues (one
  ``default`` queue, or a config's queues with their quotas; a job goes to the queue
  named after its trace user, else ``default``), the running jobs as
  :class:`~corral.scheduler.RunningJob` s, and -- for fair share -- the users' decayed
  usage from :class:`corral.daemon.fairuse.FairUsage`, advanced in virtual time over
  each interval between events with the jobs that ran during it (exact: the running
  set only changes at events). When the policy preempts (a config with
  ``preemption: true``: priority, or a queue reclaiming its nominal quota), the cycle's
  victims stop at that instant and wait again with their work lost (the daemon restarts
  a requeued job; the stop signal's grace period is not modelled), and the cycle runs
  again at the same instant so the preemptor starts; what the preemptor will take is
  held for it (``TenantContext.preempting``) until it does.

Running jobs are tracked as :class:`~corral.scheduler.RunningJob` s whose
``expected_end`` is ``start + estimate`` (the estimate the scheduler was given, never the
real end): the scheduler sees the future only through estimates. A job runs for its
trace duration once started (unless a config's preemption stops it, above) -- and under a preemptive policy
(``srtf``, ``tiresias``: :class:`~corral.sim.policies.preemptive.PreemptivePolicy`), which
:func:`simulate` hands to :mod:`corral.sim.preemptive`. Nothing sleeps: a month of trace replays
in seconds. Deterministic: the same jobs (in any order) and policy give the same result.

Jobs that need more GPUs than the largest node (*gang jobs*) are placed across whole
nodes by :mod:`corral.sim.gang` (simulator only; the daemon's core places a job on one
node). Under a core policy they take their turn in the policy's order: the core runs on
the jobs ahead of each gang job, then the gang job is tried (strict FIFO blocks behind
one that does not fit; best-effort lets later jobs pass). Under the multi-tenant and
preemptive policies a simple rule applies: at each event the pending gang jobs are tried
first, in arrival order, before the cycle (and are never preempted). A job larger than
the whole cluster never fits. ``SimResult.gang_placed`` counts them.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..capacity.node import Node
from ..errors import CorralError
from ..job import Allocation
from ..resources import GPU
from ..scheduler import (
    PendingJob,
    PendingQueue,
    Placement,
    QueueSpec,
    RunningJob,
    Snapshot,
    infeasible,
    schedule_on,
)
from ..scheduler.tenancy import TenantContext, schedule_tenants, total_capacity
from ..scheduler.history import RunTimeHistory
from .gang import GangPlacement, gang_infeasible, is_gang, largest_node_gpus, place_gang
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
    #: Jobs placed across several nodes (:mod:`corral.sim.gang`): more GPUs than any one node.
    gang_placed: int = 0


_ARRIVAL, _END = 1, 0   # at equal times, ends are applied before arrivals


class _CoreScheduler:
    """The fast path: :func:`schedule_on` on a persistent :class:`PendingQueue`."""

    def __init__(self, policy, snapshot: Snapshot):
        self.policy = policy
        self.snapshot = snapshot
        self.queue = PendingQueue(policy.order_key)
        #: Pending gang jobs (more GPUs than any node), kept apart from the core's queue,
        #: in policy order as ``(key, id, job)``, and how many pending of each shape.
        self.gangs: list[tuple[tuple, int, PendingJob]] = []
        self.gang_shapes: dict = {}
        self.gang_failed: set = set()
        self.history = RunTimeHistory() if getattr(policy, "learns", False) else None

    #: Running jobs are never preempted on the fast path.
    preemptible = False

    def estimate(self, job) -> float | None:
        """What ``sjf`` orders by: the real duration (oracle, as documented there), or for a
        policy that ``learns`` (``sjf-history``) the estimate learned so far."""
        if self.history is not None:
            return self.history.estimate(getattr(job, "user", ""), getattr(job, "time_limit", None))
        return float(job.duration)

    def observe(self, job, seconds: float) -> None:
        if self.history is not None:
            self.history.observe(getattr(job, "user", ""), seconds)

    @staticmethod
    def queue_for(job) -> str:
        return DEFAULT_QUEUE

    @staticmethod
    def take_preemptions() -> list[int]:
        return []

    def add(self, job: PendingJob) -> None:
        self.queue.add(job)

    def add_gang(self, job: PendingJob, submit: float) -> None:
        insort(self.gangs, (self.policy.order_key(job), job.id, job), key=lambda e: e[:2])
        self.gang_shapes[job.requests] = self.gang_shapes.get(job.requests, 0) + 1

    def __len__(self) -> int:
        return len(self.queue) + len(self.gangs)

    def advance(self, now: float, running: dict) -> None:
        """Nothing to account between events: the fast path keeps no usage history."""

    def _run(self, queue: PendingQueue) -> tuple[list[Placement], None]:
        """One core cycle on ``queue``; also removes the placed jobs from the main queue."""
        placements = schedule_on(self.snapshot, queue, self.policy).placements
        for p in placements:
            self.queue.remove(p.job_id)
        return placements, None

    def cycle(self, now: float, running: dict) -> list:
        if not self.gangs:
            return self._run(self.queue)[0]
        out: list = []
        placed: dict[int, PendingJob] = {}
        try:
            self._cycle_with_gangs(out, placed)
        finally:
            if placed:
                self.gangs = [e for e in self.gangs if e[1] not in placed]
                for job in placed.values():
                    left = self.gang_shapes[job.requests] - 1
                    if left:
                        self.gang_shapes[job.requests] = left
                    else:
                        del self.gang_shapes[job.requests]
        return out

    def _ahead(self, bound: tuple) -> tuple[PendingQueue, int]:
        """A queue of the pending jobs ordered before ``bound`` and their number: a view
        of each shape's sorted group cut at ``bound`` (no copy: the queue can be long)."""
        key = self.policy.order_key
        ahead = PendingQueue(key)
        count = 0
        for shape, group in self.queue.groups.items():
            i = bisect_left(group, bound, key=lambda j: (key(j), j.id))
            if i:
                ahead.groups[shape] = _Prefix(group, i)
                count += i
        return ahead, count

    def _cycle_with_gangs(self, out: list, placed: dict) -> None:
        """Gang jobs take their turn in the policy's order: the core runs on the jobs ahead
        of a gang job, then the gang job is tried, and so on; then the core on the rest.
        A gang job that does not fit blocks every later job under a strict policy."""
        key = self.policy.order_key
        strict = self.policy.strict
        # Free capacity only shrinks within a cycle, so a gang shape that failed fails again;
        # and if no node gained capacity since the last cycle, last cycle's failures stand.
        failed: set = set() if self.snapshot.gained else set(self.gang_failed) & set(self.gang_shapes)
        self.gang_failed = failed
        for _, _, gang in self.gangs:
            if not strict and len(failed) == len(self.gang_shapes):
                break             # every pending gang shape failed: the later ones place nothing
            bound = (key(gang), gang.id)
            if gang.requests in failed or place_gang(self.snapshot, gang.requests) is None:
                # It cannot fit even before the jobs ahead of it take their share.
                failed.add(gang.requests)
                if strict:        # the jobs ahead run, then the gang job blocks the rest
                    ahead, count = self._ahead(bound)
                    if count:
                        out.extend(self._run(ahead)[0])
                    return
                continue          # places nothing; the jobs ahead of it run with the next segment
            ahead, count = self._ahead(bound)
            if count:
                core, _ = self._run(ahead)
                out.extend(core)
                if strict and len(core) < count:
                    return        # a job ahead is blocked: all wait
            allocs = place_gang(self.snapshot, gang.requests)
            if allocs is None:
                failed.add(gang.requests)
                if strict:
                    return        # the gang job blocks the rest
                continue
            for a in allocs:
                self.snapshot.assume(a)
            placed[gang.id] = gang
            out.append(GangPlacement(gang.id, allocs))
        if len(self.queue):
            out.extend(self._run(self.queue)[0])


class _Prefix:
    """The first ``n`` items of a list, without copying (what :func:`schedule_on` reads of
    a queue group: indexing and length)."""

    __slots__ = ("items", "n")

    def __init__(self, items: list, n: int):
        self.items, self.n = items, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.items[i % self.n]


class _TenantScheduler:
    """The daemon's multi-tenant cycle (:func:`schedule_tenants`): the policy's queues
    (``default`` at least), preemption when the policy allows it."""

    def __init__(self, policy: TenantPolicy, snapshot: Snapshot):
        from ..daemon.fairuse import FairUsage

        self.policy = policy
        self.snapshot = snapshot
        self.pending: dict[int, PendingJob] = {}
        self.queues: dict[str, QueueSpec] = policy.queue_specs()
        self.queue_for = policy.queue_for
        self.preemptible = policy.preempt
        #: Preemptions under way (preemptor -> node), until the preemptor starts: what it
        #: will take there is held for it (:attr:`TenantContext.preempting`).
        self.preempting: dict[int, str] = {}
        self.victims: list[int] = []
        self.capacity = total_capacity(snapshot)
        self.usage = FairUsage(policy.half_life) if policy.half_life is not None else None
        self.estimate = policy.estimate
        self.gangs: dict[int, PendingJob] = {}
        self.arrived: dict[int, float] = {}

    def add(self, job: PendingJob) -> None:
        self.pending[job.id] = job

    def observe(self, job, seconds: float) -> None:
        """Nothing to learn: the multi-tenant cycle's estimates are requested times only."""

    def add_gang(self, job: PendingJob, submit: float) -> None:
        self.gangs[job.id] = job
        self.arrived[job.id] = submit

    def __len__(self) -> int:
        return len(self.pending) + len(self.gangs)

    def advance(self, now: float, running: dict) -> None:
        """Account the interval up to ``now`` in the fair-share history (the running set
        has not changed since the previous event)."""
        if self.usage is not None:
            self.usage.advance(now, [(r.user, r.requests) for rs, _ in running.values() for r in _many(rs)],
                               self.capacity)

    def cycle(self, now: float, running: dict) -> list:
        # Simple rule for gang jobs (not integrated in the multi-tenant cycle): at each
        # event, before the cycle, try the pending gang jobs in arrival order.
        gangs: list = []
        new_runs: list[RunningJob] = []
        failed: set = set()
        for job in sorted(self.gangs.values(), key=lambda j: (self.arrived[j.id], j.id)):
            allocs = None if job.requests in failed else place_gang(self.snapshot, job.requests)
            if allocs is None:
                failed.add(job.requests)
                continue
            for a in allocs:
                self.snapshot.assume(a)
            del self.gangs[job.id]
            del self.arrived[job.id]
            gangs.append(GangPlacement(job.id, allocs))
            new_runs.extend(_gang_runs(job, allocs, now, job.queue))
        if not self.pending:
            return gangs
        ctx = TenantContext(now=now, queues=self.queues,
                            running=[r for rs, _ in running.values() for r in _many(rs)] + new_runs,
                            shares=self.usage.shares() if self.usage is not None else {},
                            capacity=self.capacity, backfill=self.policy.backfill, preempt=self.policy.preempt,
                            preempting=dict(self.preempting))
        result = schedule_tenants(self.snapshot, list(self.pending.values()), ctx)
        if result.preemptions and not self.policy.preempt:
            raise CorralError(f"unexpected preemptions in a non-preemptive simulation: {result.preemptions}")
        for p in result.placements:
            if self.pending.pop(p.job_id, None) is None:
                raise CorralError(f"the scheduler placed job {p.job_id}, which is not pending")
            self.preempting.pop(p.job_id, None)
        for pre in result.preemptions:
            self.preempting[pre.preemptor] = pre.node
            self.victims.extend(pre.victims)
        return gangs + result.placements

    def take_preemptions(self) -> list[int]:
        """The victims of the last cycle's preemptions (to stop and requeue now)."""
        victims, self.victims = self.victims, []
        return victims


def _many(x) -> tuple:
    """A running entry's job(s) / allocation(s) as a tuple (gang jobs hold several)."""
    return x if isinstance(x, tuple) else (x,)


def _gang_runs(job: PendingJob, allocs, now: float, queue: str = DEFAULT_QUEUE) -> list[RunningJob]:
    return [RunningJob(job.id, a.requests, a.node, a.gpus, a.cores, priority=job.priority, queue=queue,
                       user=job.user, started_at=now,
                       expected_end=None if job.estimate is None else now + job.estimate, preemptible=False)
            for a in allocs]


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
    largest = largest_node_gpus(nodes)
    by_id = _feasible(nodes, jobs, result)
    gang_ids = {job_id for job_id, job in by_id.items() if is_gang(job.requests, largest)}
    #: (time, kind, job id, generation): an end event is void once its job was preempted
    #: (the job's generation moved on); arrivals carry generation 0.
    events: list[tuple[float, int, int, int]] = [(float(job.submit), _ARRIVAL, job_id, 0)
                                                 for job_id, job in by_id.items()]
    heapq.heapify(events)
    generation: dict[int, int] = {}

    #: job id -> (the job as the scheduler sees it running, its allocation)
    running: dict[int, tuple[RunningJob, Allocation]] = {}
    estimates: dict[int, float | None] = {}
    allocated_gpus = 0

    def enqueue(job_id: int, job) -> None:
        estimate = estimates[job_id] = sched.estimate(job)
        pending = PendingJob(job_id, job.requests, priority=getattr(job, "priority", 0), seq=job_id,
                             estimate=estimate, queue=sched.queue_for(job), user=getattr(job, "user", ""))
        if job_id in gang_ids:
            sched.add_gang(pending, float(job.submit))
        else:
            sched.add(pending)

    while events:
        now = events[0][0]
        sched.advance(now, running)
        while events and events[0][0] == now:           # apply every event at this instant
            _, kind, job_id, gen = heapq.heappop(events)
            job = by_id[job_id]
            if kind == _END:
                if gen != generation.get(job_id, 0):
                    continue                            # the run it ended was preempted
                runs, allocs = running.pop(job_id)
                for alloc in _many(allocs):
                    snapshot.forget(alloc)
                    allocated_gpus -= len(alloc.gpus)
                sched.observe(job, now - _many(runs)[0].started_at)
                result.outcomes.append(JobOutcome(
                    id=job_id, user=getattr(job, "user", ""), submit=float(job.submit), start=_many(runs)[0].started_at,
                    end=now, duration=float(job.duration), gpus=job.requests.get(GPU, 0)))
            else:
                enqueue(job_id, job)
        rounds = 0
        while len(sched):
            placements = sched.cycle(now, running)
            result.cycles += 1
            for p in placements:
                job = by_id[p.job_id]
                estimate = estimates.pop(p.job_id)
                queue = sched.queue_for(job)
                end_event = (now + float(job.duration), _END, p.job_id, generation.get(p.job_id, 0))
                if isinstance(p, GangPlacement):
                    pj = PendingJob(p.job_id, job.requests, priority=getattr(job, "priority", 0), seq=p.job_id,
                                    estimate=estimate, queue=queue, user=getattr(job, "user", ""))
                    running[p.job_id] = (tuple(_gang_runs(pj, p.allocations, now, queue)), p.allocations)
                    allocated_gpus += sum(len(a.gpus) for a in p.allocations)
                    result.gang_placed += 1
                    heapq.heappush(events, end_event)
                    continue
                alloc = p.allocation
                running[p.job_id] = (RunningJob(
                    p.job_id, alloc.requests, alloc.node, alloc.gpus, alloc.cores,
                    priority=getattr(job, "priority", 0), queue=queue, user=getattr(job, "user", ""),
                    started_at=now, expected_end=None if estimate is None else now + estimate,
                    preemptible=sched.preemptible), alloc)
                allocated_gpus += len(alloc.gpus)
                heapq.heappush(events, end_event)
            result.placements += len(placements)
            victims = sched.take_preemptions()
            # A victim stops at once and waits again, its work lost (the daemon restarts a
            # requeued job); then the cycle runs again at this instant so that its preemptor
            # starts, as the daemon's next cycle would once the victims are gone.
            for victim in victims:
                runs, allocs = running.pop(victim)
                for alloc in _many(allocs):
                    snapshot.forget(alloc)
                    allocated_gpus -= len(alloc.gpus)
                generation[victim] = generation.get(victim, 0) + 1
                result.preemptions += 1
                enqueue(victim, by_id[victim])
            if check:
                _check(snapshot, running)
            if not victims:
                break
            rounds += 1
            if rounds > 1000:
                raise CorralError(f"preemption does not settle at t={now:g}s (1000 rounds of preemptions)")
        result.samples.append(Sample(t=now, gpus_allocated=allocated_gpus, gpus_total=gpus_total,
                                     queue_length=len(sched), running=len(running)))
    if len(sched) or running:
        raise CorralError(f"simulation ended with {len(sched)} jobs queued and {len(running)} running")
    result.outcomes.sort(key=lambda o: o.id)
    return result


def _feasible(nodes: Sequence[Node], jobs: Iterable, result: SimResult) -> dict[int, object]:
    by_id: dict[int, object] = {}
    largest = largest_node_gpus(nodes)
    gang_why: dict = {}
    for job in jobs:
        if job.id in by_id or job.id in result.infeasible:
            raise CorralError(f"duplicate job id {job.id} in trace")
        if is_gang(job.requests, largest):
            if job.requests not in gang_why:
                gang_why[job.requests] = gang_infeasible(nodes, job.requests)
            why = gang_why[job.requests]
            if why:
                result.infeasible[job.id] = why
                continue
            by_id[job.id] = job
            continue
        why = infeasible(list(nodes), job.requests)
        if why:
            result.infeasible[job.id] = "; ".join(why)
            continue
        by_id[job.id] = job
    return by_id


def _check(snapshot: Snapshot, running: dict[int, tuple[RunningJob, Allocation]]) -> None:
    held: dict[str, dict[str, int]] = {}
    gpus: dict[str, set[int]] = {}
    pieces = [alloc for _, allocs in running.values() for alloc in _many(allocs)]   # gang jobs hold several
    for alloc in pieces:
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
