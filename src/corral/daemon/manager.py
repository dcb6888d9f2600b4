"""The manager: applies the scheduler's decisions to the store and the executor.

Everything runs on the daemon's event loop thread, so there are no locks. The store is
the durable record; the manager keeps the live view (pending queue, running
allocations, current waiting reasons) in memory, rebuilt from the store at start.

Event-driven: a submit, a cancel and a job's end each *kick* a scheduling cycle, which
runs on the next turn of the loop (several kicks in one turn make one cycle).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
import os
import signal
import time
from typing import TYPE_CHECKING, Callable

from ..capacity.node import Node
from ..errors import CorralError, Infeasible, InvalidTransition, NotFound, ValidationError
from ..executors.base import Executor, ExitStatus, LaunchRequest, Running, StopReason
from ..executors.environment import job_environment, run_as, user_environment
from ..job import Allocation, Job, JobState, Reason
from ..resources import CPU, MEMORY, Resources, format_quantity
from ..scheduler import PendingJob, PendingQueue, Snapshot, Waiting, get_policy, infeasible, schedule_on
from ..scheduler.estimate import estimate_starts
from ..scheduler.history import RunTimeHistory
from ..scheduler.tenancy import DEFAULT_QUEUE_POLICY, TenantContext, schedule_tenants, total_capacity
from ..scheduler.types import QueueSpec, RunningJob
from ..spec import JobSpec, parse_dependencies, with_defaults
from ..store.base import Finish, Store
from .fairuse import FairUsage
from .gates import RETRYABLE, Gate, Gates, backoff, dependency_gate

if TYPE_CHECKING:
    from ..enforce.mode import Enforcement
    from .monitor import Monitor

log = logging.getLogger("corral.manager")

#: Successful run times read back from the store at start (the latest ones), for estimates.
HISTORY_ROWS = 5000

#: The single-queue policy a default queue runs in the multi-tenant scheduler.
_QUEUE_POLICY = DEFAULT_QUEUE_POLICY


class Manager:
    def __init__(self, store: Store, nodes: list[Node], *, policy: str = "best-effort-fifo",
                 default_requests: Resources | None = None, kill_grace: float = 10.0,
                 clock: Callable[[], float] = time.time, enforcement: "Enforcement | None" = None,
                 pids_limit: int = 0, gpu_minors: dict[int, int] | None = None,
                 queues: tuple[QueueSpec, ...] = (), tenancy: bool = False, backfill: bool = False,
                 preemption: bool = False, half_life: float = 7 * 86400):
        self.store = store
        self.nodes = nodes
        self.policy = get_policy("best-effort-fifo" if policy == "fair-share" else policy)
        #: The multi-tenant scheduler (queues, fair share, backfill, preemption) or the
        #: fast single-queue one (``schedule_on`` with ``policy``).
        self.tenancy = tenancy or bool(queues) or policy == "fair-share" or backfill or preemption
        self.queues: dict[str, QueueSpec] = {q.name: q for q in queues}
        if "default" not in self.queues:
            self.queues["default"] = QueueSpec("default", policy=_QUEUE_POLICY.get(policy, "priority"))
        self.backfill, self.preemption = backfill, preemption
        self.fair = FairUsage(half_life)
        #: Run-time estimates from the users' recent successful jobs; ``sjf`` on the fast
        #: path orders jobs without a time limit by them (:mod:`corral.scheduler.history`).
        self.history = RunTimeHistory()
        self._predict = self.policy.name == "sjf" and not self.tenancy
        #: Multi-tenant cycle: per-job reasons and the order jobs were considered in.
        self.job_reasons: dict[int, Waiting] = {}
        self.order: list[int] = []
        #: Preemptions under way: preemptor -> node; victim -> preemptor.
        self.preempting: dict[int, str] = {}
        self.stopping_for: dict[int, int] = {}
        self._started: dict[int, float] = {}
        self._users: dict[int, str] = {}
        self._estimates: tuple[tuple, dict[int, float | None]] = ((), {})
        self.default_requests = default_requests or Resources({"cpu": 1000})
        self.kill_grace = kill_grace
        self.clock = clock
        self.executor: Executor | None = None
        self.pending = PendingQueue(self.policy.order_key)
        self.running: dict[int, Allocation] = {}
        #: Free capacity, kept up to date as jobs start and end (no rebuild per cycle).
        self.snapshot = Snapshot(nodes, {})
        self._exits: list[tuple[int, ExitStatus]] = []
        #: Running jobs with a time limit -> when it is reached (wall clock).
        self.deadlines: dict[int, float] = {}
        #: Why each shape of pending job waits, from the last cycle (live, not stored:
        #: it is recomputed by every cycle, also right after a restart).
        self.reasons: dict[Resources, Waiting] = {}
        self._specs: dict[int, tuple[JobSpec, dict[str, str]]] = {}
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kicked = False
        self.cycles = 0
        #: Set on shutdown: long polls are answered at once with 503 (ask again later).
        self.closing = False
        #: How limits are held (cgroups or the watchdog); None: not at all (unit tests).
        self.enforcement = enforcement
        self.pids_limit = pids_limit
        #: GPU index -> /dev/nvidiaN minor number, to deny other jobs' GPU device files.
        self.gpu_minors = dict(gpu_minors or {})
        #: Watches running jobs (usage, watchdog, idle GPUs); set by the daemon.
        self.monitor: "Monitor | None" = None
        #: Hold, dependencies, retry backoff, array throttles: pending jobs kept out of the queue.
        self.gates = Gates()
        #: Array tasks: job id -> (array id, index), for their environment.
        self._arrays: dict[int, tuple[int, int]] = {}
        #: Rates for accounting (config ``cost``) and how long finished jobs are kept.
        self.cost: dict = {}
        self.retention: int = 0

    # wiring --------------------------------------------------------------------------
    def attach(self, executor: Executor, loop: asyncio.AbstractEventLoop) -> None:
        self.executor = executor
        self._loop = loop

    # recovery --------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Rebuild the live view from the store after a (re)start.

        Pending jobs are queued again in their order. Each job recorded as running is
        re-adopted if its supervisor lives, finished with its recorded exit status if
        it ended while the daemon was down, or launched now if the daemon died before
        launching it. Allocations come from the store, so nothing is handed out twice.
        """
        counts = {"pending": 0, "adopted": 0, "ended": 0, "relaunched": 0}
        for user, seconds in self.store.recent_run_times(HISTORY_ROWS):
            self.history.observe(user, seconds)
        running_jobs = self.store.list_jobs({JobState.RUNNING})
        for job in running_jobs:            # array tasks that run hold their array's slots
            self._track_array(job)
            if job.array_id is not None and job.spec.array_limit:
                self.gates.array_limit[job.array_id] = job.spec.array_limit
                self.gates.array_active.setdefault(job.array_id, set()).add(job.id)
        for job in self.store.list_jobs({JobState.PENDING}):
            self._admit(job)
            counts["pending"] += 1
        allocations = self.store.active_allocations()
        self.snapshot = Snapshot(self.nodes, allocations)
        for job in running_jobs:
            alloc = allocations.get(job.id)
            if alloc is None:
                log.error("job %d is running without an allocation; marking it failed", job.id)
                self.store.finish_job(job.id, JobState.FAILED, Reason.SUPERVISOR_LOST,
                                      message="running without an allocation", ended_at=self.clock())
                continue
            self.running[job.id] = alloc
            self._specs[job.id] = (job.spec, job.base_env)
            self._started[job.id] = job.started_at or self.clock()
            self._users[job.id] = job.user
            assert self.executor is not None
            outcome = self.executor.adopt(job.id)
            if isinstance(outcome, Running) and self.monitor is not None:
                self.monitor.job_started(job.id, alloc, job.spec)
            if isinstance(outcome, Running):
                self.store.set_reason(job.id, Reason.ADOPTED, "re-adopted after a daemon restart")
                self._arm_time_limit(job.id, job.spec.time_limit, job.started_at or self.clock())
                counts["adopted"] += 1
            elif isinstance(outcome, ExitStatus):
                self._finish(job.id, outcome)
                counts["ended"] += 1
            else:
                self._launch(job.id, alloc)
                counts["relaunched"] += 1
        self.kick()
        return counts

    # submit ----------------------------------------------------------------------------
    def submit(self, specs: list[JobSpec], base_env: dict[str, str] | None = None, user: str = "",
               uid: int | None = None, gid: int | None = None) -> list[Job]:
        """Admit a batch: all jobs are stored, or none (with every reason why not).

        An array spec becomes one job per index (same spec, ``array_id`` = the first
        task's id, ``CORRAL_ARRAY_INDEX`` in its environment)."""
        if not specs:
            raise ValidationError("jobs", [], "expected at least one job")
        ready: list[Job] = []
        errors: list[str] = []
        known: set[int] | None = None
        for i, spec in enumerate(specs):
            spec = with_defaults(spec, self.default_requests)
            prefix = f"job {i + 1}: " if len(specs) > 1 else ""
            if spec.workdir and not os.path.isdir(spec.workdir):
                errors.append(f"{prefix}invalid value for workdir: \"{spec.workdir}\" (expected an existing directory)")
            for line in infeasible(self.nodes, spec.requests):
                errors.append(prefix + line)
            if spec.queue not in self.queues:
                errors.append(f"{prefix}invalid value for queue: \"{spec.queue}\" (expected one of: "
                              f"{', '.join(sorted(self.queues))})")
            elif self.tenancy and self._quota_never_fits(spec):
                errors.append(f"{prefix}{self._quota_never_fits(spec)}")
            if spec.dependencies:
                wanted = {d for _, d in spec.dependencies}
                known = {j.id for j in self.store.get_jobs(wanted)}
                for missing in sorted(wanted - known):
                    errors.append(f"{prefix}invalid value for after: {missing} (no such job)")
            if spec.array:
                for index in spec.array:
                    ready.append(Job(id=0, spec=replace(spec, array=()), base_env=dict(base_env or {}), user=user,
                                     uid=uid, gid=gid, array_id=-(i + 1), array_index=index, held=spec.hold))
            else:
                ready.append(Job(id=0, spec=spec, base_env=dict(base_env or {}), user=user, uid=uid, gid=gid,
                                 held=spec.hold))
        if errors:
            raise Infeasible(errors)
        stored = self.store.add_jobs(ready, self.clock())
        for job in stored:
            self._admit(job)
        self.kick()
        return stored

    def _quota_never_fits(self, spec: JobSpec) -> str:
        """Why a job can never be admitted by its queue's quota ('' when it can)."""
        from ..scheduler.quota import QuotaState

        quota = QuotaState(self.queues, total_capacity(self.snapshot))
        if not quota.never_fits(spec.queue, spec.requests):
            return ""
        q = self.queues[spec.queue]
        limits = []
        for name, amount in spec.requests.sorted_items():
            if q.nominal is not None and name in q.nominal:
                most = quota.guaranteed[spec.queue][name] + quota.pool.get(name, 0)
                ceiling = quota.ceiling[spec.queue].get(name)
                most = min(most, ceiling) if ceiling is not None else most
                if amount > most:
                    limits.append(f"{name}: job requests {format_quantity(name, amount)}, queue {spec.queue} can "
                                  f"hold at most {format_quantity(name, most)} (nominal plus what it may borrow)")
        return "insufficient quota for " + "; ".join(limits)

    # gates -------------------------------------------------------------------------------
    def _admit(self, job: Job) -> None:
        """Offer a pending job to the scheduler, unless a gate holds it back (held,
        dependencies, retry backoff, array throttle); then its reason says which."""
        gates = self.gates
        self._specs[job.id] = (job.spec, job.base_env)
        self._track_array(job)
        waiting: Gate | None = None
        if job.spec.dependencies:          # checked even while held: a failed one ends it
            others = {j.id: j for j in self.store.get_jobs(d for _, d in job.spec.dependencies)}
            waiting = dependency_gate(job, others)
            if waiting is not None and waiting.failed:
                self._end_pending(job, waiting.reason, waiting.message)
                return
            if waiting is not None:
                gates.wait_for(job)
            else:
                gates.deps_settled(job)
        if job.held:
            gates.held.add(job.id)
            return
        if waiting is not None:
            self._gate_reason(job, waiting)
            return
        now = self.clock()
        if job.not_before is not None and job.not_before > now:
            gates.backoff[job.id] = job.not_before
            if self._loop is not None:
                self._loop.call_later(job.not_before - now, self._backoff_over, job.id)
            return
        gates.backoff.pop(job.id, None)
        gate = gates.array_slot(job)
        if gate is not None:
            self._gate_reason(job, gate)
            return
        self._enqueue(job)

    def _gate_reason(self, job: Job, gate: Gate) -> None:
        if (job.reason, job.message) != (gate.reason, gate.message):
            self.store.set_reason(job.id, gate.reason, gate.message, now=self.clock())

    def _backoff_over(self, job_id: int) -> None:
        if job_id not in self.gates.backoff:
            return
        job = self.store.get_job(job_id)
        if job.state is JobState.PENDING:
            self._admit(job)
            self.kick()

    def _end_pending(self, job: Job, reason: Reason, message: str) -> None:
        """End a job that never ran (cancelled, or a dependency that cannot be met)."""
        self.pending.remove(job.id)
        self.store.finish_job(job.id, JobState.CANCELLED, reason, message=message, ended_at=self.clock())
        self._ended(job)

    def _ended(self, job: Job) -> None:
        """After any end: free its array slot, re-check the jobs that depend on it."""
        if job.state is JobState.SUCCEEDED and job.started_at is not None and job.ended_at is not None:
            self.history.observe(job.user, job.ended_at - job.started_at)
        self.gates.forget(job)
        self.preempting.pop(job.id, None)
        self._users.pop(job.id, None)
        self._specs.pop(job.id, None)
        self._arrays.pop(job.id, None)
        self._notify(job.id)
        nxt = self.gates.array_done(job)
        if nxt is not None:
            self._admit(self.store.get_job(nxt))
        for dependent in sorted(self.gates.dependents_of(job.id)):
            waiting = self.store.get_job(dependent)
            if waiting.state is JobState.PENDING:
                self._admit(waiting)
        self.kick()

    def _track_array(self, job: Job) -> None:
        if job.array_id is not None:
            self._arrays[job.id] = (job.array_id, job.array_index or 0)

    def _array_env(self, job_id: int, env: dict[str, str]) -> dict[str, str]:
        array = self._arrays.get(job_id)
        if array is not None:
            env["CORRAL_ARRAY_ID"], env["CORRAL_ARRAY_INDEX"] = str(array[0]), str(array[1])
        return env

    # update ------------------------------------------------------------------------------
    def update(self, ids: list[int], *, priority: int | None = None, time_limit: int | None = None,
               queue: str | None = None, admin: bool = True) -> list[tuple[int, str]]:
        """Change jobs' priority, time limit or queue (``scontrol update``), all or none.

        Pending jobs: any of them. Running jobs: the time limit only. Without ``admin``,
        a user may only lower a priority or a time limit (as in Slurm). Returns what
        changed per job, in words; raises a one-line error, changing nothing, when any
        job's change is refused."""
        plans = [self._plan_update(self.store.get_job(job_id), priority, time_limit, queue, admin)
                 for job_id in ids]
        out = []
        for job, new, changes in plans:
            if not changes:
                out.append((job.id, "unchanged"))
                continue
            self.store.update_spec(job.id, new, "updated: " + ", ".join(changes), self.clock())
            if job.id in self._specs:
                self._specs[job.id] = (new, self._specs[job.id][1])
            if job.state is JobState.RUNNING:
                self.deadlines.pop(job.id, None)
                self._arm_time_limit(job.id, new.time_limit, job.started_at or self.clock())
            elif self.pending.remove(job.id) is not None:   # back in line with its new priority/queue
                self._enqueue(self.store.get_job(job.id))
            out.append((job.id, ", ".join(changes)))
        self.kick()
        return out

    def _plan_update(self, job: Job, priority: int | None, time_limit: int | None, queue: str | None,
                     admin: bool) -> tuple[Job, JobSpec, list[str]]:
        from ..errors import PermissionDenied

        spec, job_id = job.spec, job.id
        if job.terminal:
            raise InvalidTransition(f"job {job_id} is {job.state.value}: a finished job cannot be changed")
        if job.state is JobState.RUNNING and (priority is not None or queue is not None):
            raise InvalidTransition(f"job {job_id} is Running: only its time limit can be changed")
        changes, new = [], spec
        if priority is not None and priority != spec.priority:
            if not admin and priority > spec.priority:
                raise PermissionDenied(f"permission denied: only admins may raise a priority "
                                       f"(job {job_id}: {spec.priority} -> {priority})")
            changes.append(f"priority {spec.priority} -> {priority}")
            new = replace(new, priority=priority)
        if time_limit is not None and time_limit != spec.time_limit:
            if not admin and (spec.time_limit is None or time_limit > spec.time_limit):
                raise PermissionDenied(f"permission denied: only admins may raise a time limit "
                                       f"(job {job_id}: {spec.time_limit or 'none'} -> {time_limit}s)")
            changes.append(f"time limit {spec.time_limit or 'none'} -> {time_limit}s")
            new = replace(new, time_limit=time_limit)
        if queue is not None and queue != spec.queue:
            if queue not in self.queues:
                raise ValidationError("queue", queue, f"expected one of: {', '.join(sorted(self.queues))}")
            if self.tenancy and self._quota_never_fits(replace(new, queue=queue)):
                raise ValidationError("queue", queue, self._quota_never_fits(replace(new, queue=queue)))
            changes.append(f"queue {spec.queue} -> {queue}")
            new = replace(new, queue=queue)
        return job, new, changes

    # hold / release ------------------------------------------------------------------------
    def hold(self, ids: list[int], who: str = "") -> list[int]:
        """Hold pending jobs (all or none); returns those that changed."""
        changed = self.store.set_held(ids, True, f"held by {who}" if who else "held", self.clock())
        for job_id in changed:
            self.pending.remove(job_id)
            self.preempting.pop(job_id, None)     # a held preemptor no longer claims capacity
            job = self.store.get_job(job_id)
            self.gates.held.add(job_id)
            nxt = self.gates.array_done(job) if job.array_id is not None else None
            if nxt is not None:
                self._admit(self.store.get_job(nxt))
        self.kick()
        return changed

    def release(self, ids: list[int], who: str = "") -> list[int]:
        """Release held jobs (all or none); returns those that changed."""
        changed = self.store.set_held(ids, False, f"released by {who}" if who else "released", self.clock())
        for job_id in changed:
            self.gates.held.discard(job_id)
            self._admit(self.store.get_job(job_id))
        self.kick()
        return changed

    def _enqueue(self, job: Job) -> None:
        estimate = (self.history.estimate(job.user, job.spec.time_limit) if self._predict
                    else job.spec.time_limit)
        self.pending.add(PendingJob(job.id, job.spec.requests, priority=job.spec.priority, seq=job.seq,
                                    estimate=estimate, queue=job.spec.queue, user=job.user))
        self._users[job.id] = job.user
        self._specs[job.id] = (job.spec, job.base_env)

    # cancel ----------------------------------------------------------------------------
    def cancel(self, job_id: int) -> str:
        """Cancel one job; returns what happened, in words."""
        job = self.store.get_job(job_id)
        if job.state is JobState.PENDING:
            self._end_pending(job, Reason.CANCELLED, "cancelled while pending")
            return "cancelled"
        if job.state is JobState.RUNNING:
            assert self.executor is not None
            if self.executor.stop(job_id, StopReason.CANCEL):
                return "stopping"
            return "not running here"
        return f"already {job.state.value.lower()}"

    def stop_job(self, job_id: int, why: StopReason, message: str = "", *, kill_now: bool = False) -> bool:
        """Stop a running job for ``why`` (the stop signal, then SIGKILL after its grace
        period; at once with ``kill_now``). The reason is recorded before any signal."""
        if job_id not in self.running or self.executor is None:
            return False
        if not self.executor.stop(job_id, why, message):
            return False
        if kill_now:
            self.executor.signal(job_id, signal.SIGKILL)
        return True

    def note(self, job_id: int, reason: Reason, message: str) -> None:
        """An event on a running job (idle-GPU warnings and actions), with its numbers."""
        if job_id in self.running:
            self.store.set_reason(job_id, reason, message, now=self.clock(), event=True)

    # scheduling ------------------------------------------------------------------------
    def kick(self) -> None:
        if self._kicked:
            return
        self._kicked = True
        if self._loop is not None:
            self._loop.call_soon(self.cycle)
        else:
            self.cycle()

    def cycle(self) -> None:
        self._kicked = False
        if not self.pending:
            self.reasons, self.job_reasons, self.order = {}, {}, []
            return
        self.cycles += 1
        if self.tenancy:
            self._tenant_cycle()
            return
        result = schedule_on(self.snapshot, self.pending, self.policy)   # assumes placements
        self.reasons = result.waiting_shapes
        self._start(result.placements)

    def _tenant_cycle(self) -> None:
        now = self.clock()
        capacity = total_capacity(self.snapshot)
        self.fair.advance(now, ((self._users.get(j, ""), a.requests) for j, a in self.running.items()), capacity)
        ctx = TenantContext(now=now, queues=self.queues, running=self.running_jobs(), shares=self.fair.shares(),
                            capacity=capacity, backfill=self.backfill, preempt=self.preemption,
                            preempting=dict(self.preempting))
        result = schedule_tenants(self.snapshot, list(self.pending.jobs.values()), ctx)
        self.job_reasons, self.order = result.waiting, result.order
        for p in result.placements:
            self.preempting.pop(p.job_id, None)
        self._start(result.placements)
        for plan in result.preemptions:
            self._preempt(plan.preemptor, plan.victims, plan.node, plan.reason)

    def running_jobs(self) -> list[RunningJob]:
        """The running jobs as the multi-tenant scheduler sees them."""
        out = []
        for job_id, alloc in self.running.items():
            spec = self._specs.get(job_id, (None, None))[0]
            started = self._started.get(job_id, 0.0)
            limit = spec.time_limit if spec is not None else None
            out.append(RunningJob(job_id, alloc.requests, alloc.node, alloc.gpus, alloc.cores,
                                  priority=spec.priority if spec else 0, queue=spec.queue if spec else "default",
                                  user=self._users.get(job_id, ""), started_at=started,
                                  expected_end=started + limit if limit else None,
                                  preemptible=spec.preemptible if spec else False,
                                  stopping_for=self.stopping_for.get(job_id)))
        return out

    def _preempt(self, preemptor: int, victims: tuple[int, ...], node: str, why: str) -> None:
        """Stop ``victims`` (stop signal, grace, SIGKILL) so ``preemptor`` can start on ``node``."""
        self.preempting[preemptor] = node
        mine = self._specs.get(preemptor, (None, None))[0]
        for victim in victims:
            spec = self._specs.get(victim, (None, None))[0]
            if why == "priority":
                detail = f"priority {mine.priority if mine else '?'} > {spec.priority if spec else '?'}"
            else:
                detail = f"queue {mine.queue if mine else '?'} reclaims its nominal quota"
            message = f"preempted for job {preemptor} ({detail})"
            self.stopping_for[victim] = preemptor
            requeue = spec is None or spec.requeue
            log.info("job %d %s", victim, message)
            self.stop_job(victim, StopReason.PREEMPT if requeue else StopReason.PREEMPT_END, message)

    def _start(self, placements: list) -> None:
        """Record placements as started (one transaction), then launch each."""
        if not placements:
            return
        result_placements = placements
        try:
            self.store.start_jobs([(p.job_id, p.allocation) for p in result_placements], self.clock())
        except Exception:
            for p in result_placements:
                self.snapshot.forget(p.allocation)
            raise
        now = self.clock()
        for p in result_placements:
            self.pending.remove(p.job_id)
            self.running[p.job_id] = p.allocation
            self._started[p.job_id] = now
        for p in result_placements:
            self._launch(p.job_id, p.allocation)
            if p.job_id in self.running:
                spec = self._specs[p.job_id][0]
                self._arm_time_limit(p.job_id, spec.time_limit, now)
                if self.monitor is not None:
                    self.monitor.job_started(p.job_id, p.allocation, spec)

    # time limits -------------------------------------------------------------------------
    def _arm_time_limit(self, job_id: int, limit: int | None, started_at: float) -> None:
        if not limit:
            return
        deadline = started_at + limit
        self.deadlines[job_id] = deadline
        if self._loop is not None:
            self._loop.call_later(max(deadline - self.clock(), 0.0), self.enforce_time_limits)

    def enforce_time_limits(self) -> list[int]:
        """Stop running jobs past their time limit (SIGTERM, SIGKILL after the grace
        period); they end Failed with reason TimedOut. Returns the jobs stopped."""
        now = self.clock()
        due = [job_id for job_id, deadline in self.deadlines.items() if deadline <= now]
        assert self.executor is not None
        for job_id in due:
            del self.deadlines[job_id]
            if job_id in self.running:
                self.executor.stop(job_id, StopReason.TIME_LIMIT)
        return due

    def waiting_for(self, job_id: int) -> Waiting | None:
        """Why a pending job waits, as of the last cycle."""
        job = self.pending.get(job_id)
        if job is None:
            return None
        if self.tenancy:
            return self.job_reasons.get(job_id)
        return self.reasons.get(job.shape)

    def estimated_starts(self, limit: int = 200) -> dict[int, float | None]:
        """When each queued job should start, running the scheduler forward over time
        limits (None: it depends on a job without one). The first ``limit`` jobs."""
        key = (self.cycles, len(self.running), len(self.pending))
        if self._estimates[0] == key:
            return self._estimates[1]
        pending = self.pending.ordered()[:limit]
        if self.tenancy:
            position = {job_id: i for i, job_id in enumerate(self.order)}
            pending.sort(key=lambda j: position.get(j.id, len(position)))
        ctx = TenantContext(now=self.clock(), queues=self.queues, running=[], shares=self.fair.shares(),
                            capacity=total_capacity(self.snapshot), backfill=self.backfill, preempt=False)
        starts = estimate_starts(self.nodes, self.running_jobs(), pending, ctx)
        self._estimates = (key, starts)
        return starts

    def _launch(self, job_id: int, alloc: Allocation) -> None:
        assert self.executor is not None
        spec, base_env = self._specs[job_id]
        # A root daemon runs each job as its submitter, in a clean environment (system mode).
        owner = self.store.get_job(job_id) if os.geteuid() == 0 else None
        who = run_as(owner.uid, owner.gid, owner.user) if owner is not None else None
        if who is not None:
            base_env = user_environment(who, base_env)
        cores = alloc.cores or self.shared_cores(alloc.node)
        request = LaunchRequest(
            job_id=job_id,
            argv=spec.command,
            env=self._array_env(job_id, job_environment(job_id, spec.name, alloc, cores, base_env, spec.env)),
            workdir=spec.workdir or (who.home if who else os.path.expanduser("~")),
            cores=cores or None,
            kill_grace=float(spec.kill_grace if spec.kill_grace is not None else self.kill_grace),
            name=spec.name,
            stop_signal=int(getattr(signal, spec.stop_signal)) if spec.stop_signal else signal.SIGTERM,
            cgroup=self.cgroup_for(job_id, spec, alloc),
            uid=who.uid if who else None, gid=who.gid if who else None, user=who.user if who else "",
        )
        try:
            self.executor.launch(request)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the job must not stay "running"
            if not isinstance(exc, (OSError, CorralError)):
                log.exception("launching job %d failed", job_id)
            self._finish(job_id, ExitStatus(ended_at=self.clock(), launch_error=f"launch failed: {exc}"))

    def cgroup_for(self, job_id: int, spec: JobSpec, alloc: Allocation) -> dict | None:
        """The cgroup a job runs in (hard limits), or None in watchdog mode."""
        if self.enforcement is None or self.enforcement.support is None:
            return None
        from ..enforce.cgroups import Limits

        limits = Limits(
            memory=spec.limits.get(MEMORY) or None,
            cpu=spec.limits.get(CPU) or None,
            pids=self.pids_limit or None,
            # Other jobs' GPUs (and free ones) cannot be opened by this job.
            deny_devices=tuple(f"c 195:{minor}" for index, minor in sorted(self.gpu_minors.items())
                               if index not in alloc.gpus),
        )
        return {"support": self.enforcement.support.to_dict(), "key": cgroup_key(job_id),
                "limits": limits.to_dict()}

    def shared_cores(self, node_name: str) -> tuple[int, ...]:
        """Cores not held exclusively by any running job: where fractional jobs run."""
        node = self.node(node_name)
        taken = {c for a in self.running.values() if a.node == node_name for c in a.cores}
        return tuple(c for c in node.cores if c not in taken)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise NotFound(f"no such node: {name}")

    # ends ------------------------------------------------------------------------------
    def on_exit(self, job_id: int, status: ExitStatus) -> None:
        """Executor callback: a running job ended (however it ended).

        Ends that arrive in the same turn of the event loop are recorded in one
        transaction, then one scheduling cycle runs for all of them.
        """
        if job_id not in self.running:
            log.warning("exit of job %d that is not running here; ignored", job_id)
            return
        self._exits.append((job_id, status))
        if len(self._exits) == 1:
            if self._loop is not None:
                self._loop.call_soon(self._flush_exits)
            else:
                self._flush_exits()

    def _flush_exits(self) -> None:
        exits, self._exits = self._exits, []
        self._finish_many(exits)
        self.kick()

    def _finish(self, job_id: int, status: ExitStatus) -> None:
        self._finish_many([(job_id, status)])

    def _finish_many(self, exits: list[tuple[int, ExitStatus]]) -> None:
        if self.tenancy:                  # account what ran until now, before it changes
            self.fair.advance(self.clock(), ((self._users.get(j, ""), a.requests) for j, a in self.running.items()),
                              total_capacity(self.snapshot))
        finishes = []
        requeues = []
        usage = []
        for job_id, status in exits:
            if self.monitor is not None:
                row = self.monitor.job_ended(job_id, status)
                if row is not None:
                    usage.append(row)
            state, reason, message = status.classify()
            if state is JobState.PENDING:
                requeues.append((job_id, reason, message, status.ended_at or self.clock(), None))
                continue
            retry = self._retry(job_id, state, reason, message, status.ended_at or self.clock())
            if retry is not None:
                requeues.append(retry)
                continue
            finishes.append(Finish(job_id, state, reason, message, status.exit_code, status.signal,
                                   status.ended_at or self.clock()))
        if usage:
            try:
                self.store.record_usage(usage)
            except Exception:  # noqa: BLE001 - usage is secondary to recording the ends
                log.exception("saving the last usage of %d jobs failed", len(usage))
        if finishes:
            self.store.finish_jobs(finishes)
        for job_id, reason, message, now, not_before in requeues:
            self.store.requeue_job(job_id, reason, message, now, not_before=not_before)
        requeued = {r[0] for r in requeues}
        ended = []
        for job_id, _ in exits:
            alloc = self.running.pop(job_id, None)
            if alloc is not None:
                self.snapshot.forget(alloc)
            self.deadlines.pop(job_id, None)
            self._started.pop(job_id, None)
            self.stopping_for.pop(job_id, None)
            if job_id in requeued:
                self._admit(self.store.get_job(job_id))     # same id, same place in the order
                continue
            ended.append(job_id)
        for job in self.store.get_jobs(ended):
            self._ended(job)

    def _retry(self, job_id: int, state: JobState, reason: Reason, message: str,
               now: float) -> tuple[int, Reason, str, float, float] | None:
        """A failed job with retries left goes back to the queue after a backoff."""
        spec = self._specs.get(job_id, (None, None))[0]
        if state is not JobState.FAILED or reason not in RETRYABLE or spec is None or not spec.retries:
            return None
        used = sum(1 for e in self.store.events(job_id) if e.reason is Reason.RETRY_BACKOFF)
        if used >= spec.retries:
            return None
        wait = backoff(used + 1)
        return (job_id, Reason.RETRY_BACKOFF,
                f"{message}; retry {used + 1} of {spec.retries} in {wait:g}s", now, now + wait)

    # waiting for jobs ------------------------------------------------------------------
    def future_for(self, job_id: int) -> asyncio.Future:
        assert self._loop is not None
        fut = self._loop.create_future()
        self._waiters.setdefault(job_id, []).append(fut)
        return fut

    def drop_future(self, job_id: int, fut: asyncio.Future) -> None:
        futs = self._waiters.get(job_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[job_id]

    def _notify(self, job_id: int) -> None:
        for fut in self._waiters.pop(job_id, []):
            if not fut.done():
                fut.set_result(job_id)

    # views -----------------------------------------------------------------------------
    def queue_positions(self) -> dict[int, int]:
        if self.tenancy and self.order:
            ids = [j for j in self.order if j in self.pending.jobs]
            ids += [job.id for job in self.pending.ordered() if job.id not in set(ids)]
            return {job_id: i + 1 for i, job_id in enumerate(ids)}
        return {job.id: i + 1 for i, job in enumerate(self.pending.ordered())}

    def holders(self) -> dict[str, dict[str, dict[int, int]]]:
        """node -> {"gpus": {gpu index: job id}, "cores": {core id: job id}}."""
        out: dict[str, dict[str, dict[int, int]]] = {n.name: {"gpus": {}, "cores": {}} for n in self.nodes}
        for job_id, alloc in self.running.items():
            entry = out.setdefault(alloc.node, {"gpus": {}, "cores": {}})
            for g in alloc.gpus:
                entry["gpus"][g] = job_id
            for c in alloc.cores:
                entry["cores"][c] = job_id
        return out

    def allocated(self, node_name: str) -> Resources:
        total = Resources()
        for alloc in self.running.values():
            if alloc.node == node_name:
                total = total.add(alloc.requests)
        return total

    def release_waiters(self) -> None:
        """Answer every long poll now and refuse new ones (on shutdown: the client asks
        the next daemon)."""
        self.closing = True
        for job_id in list(self._waiters):
            self._notify(job_id)

    # retention -------------------------------------------------------------------------
    def prune(self, older_than: float) -> list[int]:
        """Delete finished jobs that ended more than ``older_than`` seconds ago, with
        their history, usage and log directories; returns their ids."""
        ids = self.store.prune(self.clock() - older_than)
        remove = getattr(self.executor, "remove_jobdir", None)
        if remove is not None:
            for job_id in ids:
                remove(job_id)
        return ids

    def close(self) -> None:
        self.release_waiters()
        if self.monitor is not None:
            self.monitor.close()
        if self.executor is not None:
            self.executor.close()


def cgroup_key(job_id: int) -> str:
    return f"job-{job_id}"

