"""Replay a trace through the daemon's own driver and scheduler, in virtual time.

The simulator is the daemon with a virtual clock and a simulated executor:

* a :class:`~corral.executors.simulated.SimWorld` holds virtual time, the timers (the
  event queue: arrivals, and job ends that the simulated executor schedules) and the
  simulated nodes;
* a :class:`~corral.executors.simulated.SimulatedExecutor` "runs" each job for its trace
  duration and reports its end like any executor does;
* the daemon's own :class:`~corral.daemon.driver.Driver` -- the part of the daemon that
  applies the scheduler's decisions: the queue, the running set, the preemptions, fair
  share's usage -- runs the one scheduling pipeline (:func:`corral.scheduler.schedule`)
  on the policy's :class:`~corral.scheduler.settings.Scheduling`.

At each instant every event due is applied (ends before arrivals), then one cycle runs.
When the policy preempts (a config with ``preemption: true``), the victims get their stop
signal and end at that instant (the grace period is not modelled); they wait again with
their work lost (the daemon restarts a requeued job), and the cycle runs again at the
same instant so the preemptor starts, as the daemon's next cycle would. A job runs for its
trace duration once started (time limits are what the scheduler is told, not enforced).
Jobs larger than any node are spread over several (gang placement, all or nothing), in
their turn like any job.

The scheduler sees the future only through what the policy tells it
(:class:`~corral.sim.policies.SimPolicy`): requested times, or run times learned from the
jobs completed so far, or -- for the oracle references -- the real durations.

The research references (``srtf``, ``tiresias``) run their own preemptive loop
(:mod:`corral.sim.research`). Nothing sleeps: a month of trace replays in seconds.
Deterministic: the same jobs (in any order) and policy give the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from ..capacity.node import Node
from ..daemon.driver import Driver, LiveJob
from ..errors import CorralError
from ..executors.base import ExitStatus, StopReason
from ..executors.simulated import Program, SimulatedExecutor, SimWorld
from ..job import Job
from ..resources import GPU, GPU_SHARE
from ..scheduler.history import RunTimeHistory
from ..scheduler.shares import MILLI
from ..spec import JobSpec
from .checks import check_allocations, feasible
from .metrics import JobOutcome, Sample, gpus_held, where
from .policies import HISTORY, ORACLE, SimPolicy


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
    #: Times a running job was preempted (0 for policies that do not preempt).
    preemptions: int = 0
    #: Jobs placed across several nodes: more GPUs than any one node.
    gang_placed: int = 0
    #: Running jobs moved to other GPUs (the research references under the paper's rules).
    migrations: int = 0


def _nothing() -> None:
    """A wake-up: the loop runs a cycle at its time."""


#: Timer priorities at equal times: ends are applied before arrivals.
_END, _ARRIVAL = 0, 1
#: Stops after which a job waits again (what ExitStatus.classify calls Pending).
_REQUEUED = frozenset({StopReason.PREEMPT, StopReason.REQUEUE})


def simulate(nodes: Sequence[Node], jobs: Iterable, policy, *, check: bool = False,
             placement: str = "best-fit") -> SimResult:
    """Run ``jobs`` (anything with id, submit, duration, requests, user; optionally
    priority and time_limit) on ``nodes`` under ``policy``: a
    :class:`~corral.sim.policies.SimPolicy` or a research reference
    (:func:`corral.sim.policies.resolve` gives either from a name).

    With ``check=True`` the engine verifies after every cycle that no resource of any
    node is over-committed, no GPU is held twice, and the snapshot holds exactly the
    running jobs' allocations (slower; for tests).

    ``placement`` (the research references only; the daemon's policies place as the daemon
    does): ``best-fit``, corral's own, or ``first-fit``, the papers' (see
    :data:`corral.sim.research.loop.PLACEMENTS`)."""
    from .research import PreemptivePolicy

    result = SimResult(policy=policy.name)
    by_id = feasible(nodes, jobs, result.infeasible)
    if isinstance(policy, PreemptivePolicy):
        from .research.loop import simulate_preemptive

        return simulate_preemptive(nodes, by_id, policy, result, check=check, placement=placement)
    if not isinstance(policy, SimPolicy):
        raise CorralError(f"not a simulator policy: {policy!r} (see corral.sim.policies.resolve)")
    return _Replay(nodes, by_id, policy, result, check).run()


class _Replay:
    def __init__(self, nodes: Sequence[Node], by_id: dict, policy: SimPolicy, result: SimResult, check: bool):
        self.by_id = by_id
        self.policy = policy
        self.result = result
        self.check = check
        self.world = SimWorld(nodes, program_for=self._program)
        self.executor = SimulatedExecutor(self.world, self._ended, kill_grace=0.0)
        self.history = RunTimeHistory() if policy.order_by == HISTORY else None
        self.by_gpus = policy.scheduling.estimates_by_gpus
        self.by_service = policy.scheduling.by_service
        self.wake_at: float | None = None
        self.limits: dict[int, float | None] = {}
        self.driver = Driver(nodes, policy.scheduling, self.executor, clock=self.world, journal=None,
                             estimate=self._estimate, limit=lambda job: self.limits[job.id], gangs=True,
                             started=self._started)
        self.gpus_total = sum(n.allocatable.get(GPU, 0) for n in nodes)
        #: GPUs held now; a share of one GPU counts its fraction (utilization is the share
        #: allocated, not the devices touched).
        self.allocated_gpus: float = 0
        self.node_of = {n.name: n for n in nodes}
        #: Thousandths free on shared devices, per node and in all (Sample.gpus_stranded).
        self.stranded: dict[str, int] = {}
        self.stranded_total = 0
        #: Specs are immutable: trace jobs alike share one.
        self._specs: dict[tuple, JobSpec] = {}
        self.arrived = 0
        #: The driver's job id -> the trace job. Jobs are numbered in submission order,
        #: as the daemon's store numbers them, so that every tie the scheduler breaks by
        #: id (victims, equal keys) breaks alike here and in the daemon.
        self.trace_of: dict[int, SimJob] = {}

    # -- what the scheduler is told ----------------------------------------------------------------
    def _program(self, job: Job) -> Program:
        # A resumable job preempted by attained service continues where it stopped.
        return Program(max(float(self.trace_of[job.id].duration) - job.served, 0.0))

    def _estimate(self, job: Job) -> float | None:
        if self.policy.order_by == ORACLE:
            return float(self.trace_of[job.id].duration)
        if self.history is not None:
            gpus = job.spec.requests.get(GPU, 0) if self.by_gpus else None
            return self.history.estimate(job.user, self.limits[job.id], gpus=gpus)
        return self.limits[job.id]

    # -- events --------------------------------------------------------------------------------------
    def _arrive(self, job_id: int) -> None:
        trace = self.by_id[job_id]
        queue = self.policy.queue_for(trace)
        key = (trace.requests, getattr(trace, "priority", 0), queue)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = JobSpec(command=(), requests=key[0], priority=key[1], queue=queue,
                                              resumable=self.policy.resumable)
        # Submission order, as the daemon's store numbers jobs (arrivals come in (submit, id) order).
        self.arrived += 1
        number = self.arrived
        self.trace_of[number] = trace
        job = Job(id=number, spec=spec, submitted_at=float(trace.submit), seq=number, user=getattr(trace, "user", ""))
        self.limits[number] = self.policy.limit(trace)
        self.driver.enqueue(job)

    def _started(self, live: LiveJob) -> None:
        assert live.run is not None
        alloc = live.run.allocation
        self.allocated_gpus += gpus_held(alloc)
        self._restrand(alloc)
        if not alloc.single:
            self.result.gang_placed += 1

    def _ended(self, job_id: int, status: ExitStatus) -> None:
        driver = self.driver
        live = driver.jobs[job_id]
        run = live.run
        assert run is not None
        driver.release(job_id)
        self.allocated_gpus -= gpus_held(run.allocation)
        self._restrand(run.allocation)
        if status.stopped_for in _REQUEUED:       # preempted: waits again
            self.result.preemptions += 1
            job = live.job
            if job.spec.resumable:                # its work kept (it checkpoints), else lost
                job = replace(job, served=job.served + (self.world.now - run.started_at))
            driver.enqueue(job)
            return
        now = self.world.now
        trace = self.trace_of[job_id]
        if self.history is not None:
            # Learnt after the arrivals of this instant, as in the daemon, which records a
            # batch of ends once the instant's other events (submissions) have run: a job
            # submitted as another ends gets its estimate without that end.
            self.world.call_soon(self.history.observe, live.job.user, now - run.started_at,
                                 live.job.spec.requests.get(GPU, 0))
        driver.forget(job_id)
        alloc = run.allocation
        self.result.outcomes.append(JobOutcome(
            id=trace.id, user=live.job.user, submit=float(trace.submit), start=run.started_at, end=now,
            duration=float(trace.duration), gpus=gpus_held(alloc), **where(alloc, self.node_of)))

    def _restrand(self, alloc) -> None:
        """Follow the free share of shared devices on the allocation's nodes."""
        if not any(GPU_SHARE in p.requests.amounts for p in alloc.pieces):
            return
        nodes = self.driver.state.snapshot.nodes
        for piece in alloc.pieces:
            state = nodes.get(piece.node)
            now = sum(MILLI - used for used in state.shares.values()) if state is not None else 0
            self.stranded_total += now - self.stranded.get(piece.node, 0)
            self.stranded[piece.node] = now

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> SimResult:
        world, driver, result = self.world, self.driver, self.result
        # Arrivals come from the trace in (submit, id) order, beside the world's timers, as
        # if each were a timer of priority _ARRIVAL scheduled first: at each instant the
        # timers of a lower priority (ends) run first, then the arrivals, then the rest.
        arrivals = sorted(self.by_id, key=lambda j: (float(self.by_id[j].submit), j))
        by_id, nxt, n = self.by_id, 0, len(arrivals)
        while True:
            t = world.next_time()
            if nxt < n:
                at = float(by_id[arrivals[nxt]].submit)
                if t is None or at < t:
                    t = at
            if t is None:
                break
            world.now = t
            world.run_due(below=_ARRIVAL)
            while nxt < n and float(by_id[arrivals[nxt]].submit) <= t:
                self._arrive(arrivals[nxt])
                nxt += 1
                world.run_due(below=_ARRIVAL)     # what an arrival schedules before the rest
            world.run_due()                       # every event at this instant
            rounds = 0
            wake = None
            while driver.pending:
                decided = driver.cycle()
                result.cycles += 1
                if decided is not None:
                    result.placements += len(decided.placements)
                if self.check:
                    check_allocations(driver.state.snapshot, driver.running_allocations())
                if not world.run_due():           # preemption victims end at this instant
                    break
                rounds += 1
                if rounds > 1000:
                    raise CorralError(f"preemption does not settle at t={t:g}s (1000 rounds of preemptions)")
            if self.by_service and driver.pending:
                # The policy's view changes by itself (a demotion, a job falling due): a
                # cycle then, as the daemon wakes for one.
                wake = driver.next_change()
                if wake is not None and wake > t and wake != self.wake_at:
                    self.wake_at = wake
                    world.call_at(wake, _nothing, priority=_ARRIVAL + 1)
            result.samples.append(Sample(t=t, gpus_allocated=self.allocated_gpus, gpus_total=self.gpus_total,
                                         queue_length=len(driver.pending), running=len(driver.state.running),
                                         gpus_stranded=self.stranded_total / MILLI))
        if driver.pending or driver.state.running:
            raise CorralError(f"simulation ended with {len(driver.pending)} jobs queued and "
                              f"{len(driver.state.running)} running")
        result.outcomes.sort(key=lambda o: o.id)
        return result
