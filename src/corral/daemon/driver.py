"""The driver: applies the scheduler's decisions. The daemon and the simulator both run it.

It holds one record per live job (:class:`LiveJob`), the pending jobs the scheduler
sees, the cluster state (what runs where, quota and user tallies), the preemptions under
way and fair share's decayed usage. :meth:`Driver.cycle` runs one scheduling cycle
(:func:`corral.scheduler.schedule`) and carries it out:

1. decide (the pure pipeline, on the driver's state);
2. record: the starts and the pending reasons that changed go to the journal in one
   transaction (the daemon's store; the simulator keeps none) -- if that fails, the
   placements are undone and nothing was launched;
3. launch each start on the executor with exactly its allocation;
4. preempt: mark the victims as being stopped for their preemptor and ask the executor
   to stop them (their stop signal, then SIGKILL after the grace period).

What happens when a job ends (records, retries, requeues) is the caller's: the daemon's
:mod:`.lifecycle`, the simulator's engine. They tell the driver with :meth:`release`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from ..executors.base import ExitStatus, StopReason
from ..job import Job, JobState, Reason
from ..reasons import PreemptionKind, Wait
from ..scheduler import ClusterState, CycleContext, Decisions, PendingJob, PendingSet, RunningJob, schedule
from ..scheduler.estimate import estimate_starts
from ..scheduler.placement import needs_gang
from .fairuse import FairUsage

if TYPE_CHECKING:
    from ..capacity.node import Node
    from ..executors.base import Executor
    from ..job import Allocation
    from ..scheduler.settings import Scheduling

log = logging.getLogger("corral.driver")


class Journal(Protocol):
    """Where a cycle's outcome is recorded, in one transaction (the daemon's store)."""

    def commit_cycle(self, starts: list[tuple[int, "Allocation"]], reasons: list[tuple[int, Reason, str]],
                     now: float) -> None: ...


@dataclass(eq=False)
class LiveJob:
    """Everything the daemon keeps in memory about one job that has not ended."""

    job: Job
    #: While the scheduler may start it: what it sees of it.
    queued: PendingJob | None = None
    #: While it runs: what the scheduler knows of it.
    run: RunningJob | None = None
    #: The reason last recorded while it waited in the queue.
    wait: Wait | None = None
    #: When its time limit is reached (running jobs with one).
    deadline: float | None = None

    @property
    def id(self) -> int:
        return self.job.id


def _spec_limit(job: Job) -> float | None:
    return float(job.spec.time_limit) if job.spec.time_limit else None


class Driver:
    """See the module docstring. ``estimate(job)``: the run time ``sjf`` orders by (None:
    unknown); ``limit(job)``: the time limit the scheduler is told (default: the spec's,
    which the daemon enforces); ``report(job_id, status)``: where an end the driver itself
    saw goes (a launch that raised); ``started(live)``: called after each launch."""

    def __init__(self, nodes: Iterable["Node"], scheduling: "Scheduling", executor: "Executor", *,
                 clock: Callable[[], float], journal: Journal | None = None,
                 estimate: Callable[[Job], float | None] | None = None,
                 limit: Callable[[Job], float | None] | None = None, gangs: bool = False,
                 report: Callable[[int, ExitStatus], None] | None = None,
                 started: Callable[[LiveJob], None] | None = None, cordoned: Iterable[str] = ()):
        self.scheduling = scheduling
        self.queues = scheduling.queue_map
        self.executor = executor
        self.clock = clock
        self.journal = journal
        self.estimate = estimate if scheduling.uses_estimates else None
        self.limit = limit or _spec_limit
        #: Jobs larger than any node are spread over several (the simulator's traces).
        self.gangs = gangs
        self.report = report
        self.started = started
        self.fair = FairUsage(scheduling.half_life) if scheduling.fair_share else None
        self.state = ClusterState(nodes, self.queues, track_usage=self.fair is not None, cordoned=cordoned)
        self.pending = PendingSet(self.queues)
        self.jobs: dict[int, LiveJob] = {}
        #: Preemptions under way: preemptor -> node, until the preemptor starts or leaves.
        self.preempting: dict[int, str] = {}
        self.last: Decisions | None = None
        self.cycles = 0

    @property
    def nodes(self) -> list["Node"]:
        return self.state.nodes

    def set_nodes(self, nodes: Iterable["Node"], cordoned: Iterable[str] = ()) -> None:
        """The engine's nodes changed, or which of them are drained."""
        self.state.set_nodes(nodes, cordoned)
        self.last = None

    # -- jobs come and go ------------------------------------------------------------------------
    def track(self, job: Job) -> LiveJob:
        """Keep ``job`` (a new or changed record of a live job)."""
        live = self.jobs.get(job.id)
        if live is None:
            live = self.jobs[job.id] = LiveJob(job)
        else:
            live.job = job
        return live

    def enqueue(self, job: Job) -> LiveJob:
        """Offer a pending job to the scheduler (with its latest record)."""
        live = self.track(job)
        if live.queued is not None:
            self.pending.remove(job.id)
        live.queued = self.pending_job(job)
        self.pending.add(live.queued)
        return live

    def pending_job(self, job: Job) -> PendingJob:
        spec = job.spec
        limit = self.limit(job)
        estimate = self.estimate(job) if self.estimate is not None else limit
        requests = spec.demand           # all replicas, with the job's constraints
        return PendingJob(job.id, requests, priority=spec.priority, seq=job.seq, queue=spec.queue,
                          user=job.user, time_limit=limit, estimate=estimate, preemptible=spec.preemptible,
                          preempts=spec.preempts, submitted=job.submitted_at, gang=requests.replicas > 1
                          or (self.gangs and needs_gang(requests, self.state.snapshot.largest_gpus)),
                          served=job.served, resumable=spec.resumable and spec.preemptible)

    def dequeue(self, job_id: int) -> bool:
        """Take a job out of the scheduler's queue (held, gated, cancelled): True if it was."""
        live = self.jobs.get(job_id)
        self.preempting.pop(job_id, None)      # a preemptor that leaves no longer claims capacity
        if live is None or live.queued is None:
            return False
        self.pending.remove(job_id)
        live.queued = None
        live.wait = None
        return True

    def forget(self, job_id: int) -> LiveJob | None:
        """The job ended: drop its record (it must not be running)."""
        live = self.jobs.pop(job_id, None)
        if live is not None and live.run is not None:
            raise AssertionError(f"job {job_id} forgotten while running")
        self.dequeue(job_id)
        return live

    def adopt(self, job: Job, allocation: "Allocation", started_at: float) -> LiveJob:
        """A job recorded as running (after a daemon restart): it holds its allocation."""
        live = self.track(job)
        live.run = self._running(job, allocation, started_at)
        self.state.start(live.run)
        return live

    def _running(self, job: Job, allocation: "Allocation", started_at: float) -> RunningJob:
        spec = job.spec
        limit = self.limit(job)
        return RunningJob(job.id, allocation, priority=spec.priority, queue=spec.queue, user=job.user,
                          started_at=started_at, expected_end=started_at + limit if limit else None,
                          preemptible=spec.preemptible, served=job.served,
                          resumable=spec.resumable and spec.preemptible, submitted=job.submitted_at)

    def release(self, job_id: int) -> LiveJob | None:
        """A running job stopped (ended, or is to be requeued): its allocation is free
        (fair share counts what it held up to now first)."""
        live = self.jobs.get(job_id)
        if live is None or live.run is None:
            return None
        self.account(self.clock())
        self.state.end(job_id)
        live.run = None
        live.deadline = None
        return live

    def changed(self, job: Job) -> None:
        """A live job's record changed (priority, time limit, queue): follow it."""
        live = self.track(job)
        if live.queued is not None:
            self.enqueue(job)
        elif live.run is not None:
            run = live.run
            limit = self.limit(job)
            live.run = replace(run, expected_end=run.started_at + limit if limit else None)
            self.state.replace(live.run)

    def account(self, now: float) -> None:
        """Fair share: count what ran up to ``now`` (before the running set changes)."""
        if self.fair is not None:
            self.fair.advance(now, self.state.held_share)

    # -- one cycle -------------------------------------------------------------------------------
    def context(self, now: float, *, reasons: bool) -> CycleContext:
        return CycleContext(now, backfill=self.scheduling.backfill, preempt=self.scheduling.preemption,
                            shares=self.fair.shares() if self.fair is not None else {},
                            preempting=dict(self.preempting), reasons=reasons)

    def cycle(self) -> Decisions | None:
        """Decide, record, launch, preempt (see the module docstring)."""
        if not self.pending:
            self.last = None
            return None
        now = self.clock()
        self.account(now)
        self.cycles += 1
        decided = schedule(self.state, self.pending, self.context(now, reasons=self.journal is not None))
        starts = [(p.job_id, p.allocation) for p in decided.placements]
        changes: list[tuple[LiveJob, Wait]] = []
        if self.journal is not None:
            placed = {p.job_id for p in decided.placements}
            for ids, wait in decided.waits():
                for job_id in ids:
                    live = self.jobs[job_id]
                    if job_id not in placed and live.wait != wait:
                        changes.append((live, wait))
            try:
                self.journal.commit_cycle(starts, [(live.id, w.reason, w.message) for live, w in changes], now)
            except Exception:
                for job_id, _ in starts:
                    self.state.end(job_id)
                raise
            for live, wait in changes:
                live.wait = wait
        self.last = decided
        launched = []
        for p in decided.placements:
            live = self.jobs[p.job_id]
            self.pending.remove(p.job_id)
            self.preempting.pop(p.job_id, None)
            live.queued, live.wait = None, None
            live.run = self.state.running[p.job_id]
            if self.journal is not None:
                # As recorded: running on this allocation, this attempt counted -- what
                # the executor tags the launch with (and finds again after a restart).
                live.job = replace(live.job, state=JobState.RUNNING, started_at=now, allocation=p.allocation,
                                   attempts=live.job.attempts + 1)
            launched.append((live, p.allocation))
        for live, allocation in launched:
            self._launch(live, allocation)
        for pre in decided.preemptions:
            self._preempt(pre.preemptor, pre.victims, pre.node, pre.kind)
        return decided

    def _launch(self, live: LiveJob, allocation: "Allocation") -> None:
        try:
            self.executor.launch(live.job, allocation)
        except Exception as exc:  # noqa: BLE001 - the contract says launch reports, but be safe
            log.exception("launching job %d raised", live.id)
            if self.report is not None:
                self.report(live.id, ExitStatus(ended_at=self.clock(), launch_error=f"launch failed: {exc}"))
            return
        if self.started is not None:
            self.started(live)

    def _preempt(self, preemptor: int, victims: tuple[int, ...], node: str, kind: PreemptionKind) -> None:
        """Stop ``victims`` (stop signal, grace, SIGKILL) so ``preemptor`` can start on ``node``."""
        # One claim per node: a new preemption there means the cycle found no claim in
        # force on it, so an older one would only come back to fight this one.
        for other in [p for p, n in self.preempting.items() if n == node and p != preemptor]:
            del self.preempting[other]
        self.preempting[preemptor] = node
        mine = self.jobs.get(preemptor)
        for victim in victims:
            live = self.jobs.get(victim)
            if live is None or live.run is None:
                continue
            spec = live.job.spec
            if kind is PreemptionKind.PRIORITY:
                detail = f"priority {mine.job.spec.priority if mine else '?'} > {spec.priority}"
            elif kind is PreemptionKind.SERVICE:
                detail = self._service_detail(mine, live)
            else:
                detail = f"queue {mine.job.spec.queue if mine else '?'} reclaims its nominal quota"
            message = f"preempted for job {preemptor} ({detail})"
            live.run = replace(live.run, stopping_for=preemptor)
            self.state.replace(live.run)
            log.info("job %d %s", victim, message)
            self.executor.stop(victim, StopReason.PREEMPT if spec.requeue else StopReason.PREEMPT_END, message)

    def _service_detail(self, mine: LiveJob | None, victim: LiveJob) -> str:
        order = self.queues[victim.job.spec.queue].order
        now = self.clock()
        theirs = order.running_level(victim.run, now) if victim.run is not None else "?"
        ours = order.level(mine.queued) if mine is not None and mine.queued is not None else "?"
        return f"attained service level {theirs} > {ours}; it resumes from its checkpoint"

    def next_change(self) -> float | None:
        """When the scheduler's view changes by itself under a policy that ranks by
        attained service (``las``): the next demotion of a running job, or the next time a
        waiting job falls due. None: nothing to wake up for (nothing waits, or nothing
        changes)."""
        if not self.scheduling.by_service or not self.pending:
            return None
        best: float | None = None
        now = self.clock()
        for run in self.state.running.values():
            spec = self.queues.get(run.queue)
            if spec is None or not spec.order.by_service or run.stopping_for is not None:
                continue
            at = spec.order.next_demotion(run, now)
            if at is not None and (best is None or at < best):
                best = at
        for queue in self.pending.queues.values():
            policy = queue.policy
            if not policy.by_service:
                continue
            for job in queue:
                at = policy.due_at(job)
                if at > now and (best is None or at < best):
                    best = at
        return best

    # -- views ------------------------------------------------------------------------------------
    def reason_of(self, job_id: int) -> Wait | None:
        """Why a queued job waits, as of the last cycle."""
        live = self.jobs.get(job_id)
        if live is None or live.queued is None:
            return None
        if live.wait is not None:
            return live.wait
        return self.last.reason(job_id) if self.last is not None else None

    def positions(self) -> dict[int, int]:
        """Each queued job's place in its queue's line (1 = next)."""
        out: dict[int, int] = {}
        for queue in self.pending.queues.values():
            if queue.policy.by_user and self.last is not None:
                seen = self.last.positions()
                ids = sorted((j for j in queue.jobs if j in seen), key=lambda j: seen[j])
                known = set(ids)
                ids += [j.id for j in queue.ordered() if j.id not in known]
            else:
                ids = [j.id for j in queue.ordered()]
            out.update((job_id, i + 1) for i, job_id in enumerate(ids))
        return out

    def estimated_starts(self, limit: int = 200) -> dict[int, float | None]:
        """When each queued job should start: the same cycle run forward over time limits
        (None: it depends on a job without one). The first ``limit`` jobs of each queue."""
        positions = self.positions()
        chosen = [j for j in self.pending if positions.get(j.id, limit + 1) <= limit]
        return estimate_starts(self.state, chosen, self.context(self.clock(), reasons=False))

    def running_allocations(self) -> dict[int, "Allocation"]:
        return {job_id: run.allocation for job_id, run in self.state.running.items()}
