"""Gates: what keeps a pending job out of the scheduler's queue, and lets it in again.

A pending job is offered to the scheduler only when nothing else holds it back:

* **hold** -- held at submit (``--hold``) or later (``corral hold``) until released;
* **dependencies** -- ``afterok`` (the other job succeeded), ``afterany`` (it ended),
  ``afternotok`` (it failed or was cancelled). On an *array* (its id, Slurm's meaning):
  ``afterok`` -- every task succeeded; ``afterany`` -- every task ended; ``afternotok``
  -- every task ended and at least one did not succeed. A dependency that can no longer
  be met ends the dependent at once, ``Cancelled`` with reason ``DependencyFailed`` (and
  its own dependents after it), instead of leaving it stuck: ``afterok`` on an array as
  soon as one task fails;
* **retry backoff** -- a failed job with retries left waits ``not_before`` first;
* **array throttle** -- an array ``--array 0-99%8`` has at most 8 tasks in the
  scheduler's hands (queued or running) at once; the others wait their turn by index.

The gates keep their own indexes (who depends on whom, each array's active tasks), so
an end or a release re-checks only the jobs it concerns. Pure bookkeeping: the daemon's
admission (:mod:`.admission`) does the store writes and the timers. Why a job is held
back is one of the typed waits of :mod:`corral.reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..job import Job, JobState, Reason
from ..reasons import ArrayThrottle, DependencyWait

#: Ends that may be retried (a job's own failure, not corral stopping it).
RETRYABLE = frozenset({Reason.ERROR, Reason.SIGNALED, Reason.OOM_KILLED, Reason.MEMORY_LIMIT_EXCEEDED,
                       Reason.SUPERVISOR_LOST})
BACKOFF_BASE = 10.0          # seconds before the first retry; doubles each time
BACKOFF_MAX = 600.0


def backoff(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): 10 s, 20 s, 40 s ... 10 min."""
    return min(BACKOFF_BASE * 2 ** (retry - 1), BACKOFF_MAX)


@dataclass(frozen=True)
class DependencyFailed:
    """A dependency can never be met: the job ends ``Cancelled`` / ``DependencyFailed``."""

    message: str
    reason = Reason.DEPENDENCY_FAILED


def dependency_gate(job: Job, others: dict[int, Job],
                    arrays: dict[int, dict[JobState, int]] | None = None) -> DependencyWait | DependencyFailed | None:
    """Whether ``job``'s dependencies are met (None), pending, or can never be met.
    ``others``: the jobs it names; ``arrays``: for those that are arrays' ids, their
    tasks counted by state (:meth:`~corral.store.base.Store.array_counts`)."""
    waiting: list[tuple[str, int, str]] = []
    on_arrays: list[tuple[str, int, int, int]] = []
    for kind, dep_id in job.spec.dependencies:
        dep = others.get(dep_id)
        if dep is None:
            return DependencyFailed(f"dependency {kind}:{dep_id} can never be met: no such job")
        if dep.array_id == dep.id and arrays is not None and dep_id in arrays:
            counts = arrays[dep_id]
            total = sum(counts.values())
            ended = sum(n for state, n in counts.items() if state.terminal)
            failed = ended - counts.get(JobState.SUCCEEDED, 0)
            if kind == "afterok" and failed:
                return DependencyFailed(f"dependency afterok:{dep_id} not met: {failed} of the {total} tasks of "
                                        f"array {dep_id} did not succeed")
            if ended < total:
                on_arrays.append((kind, dep_id, ended, total))
            elif kind == "afternotok" and not failed:
                return DependencyFailed(f"dependency afternotok:{dep_id} not met: every task of array {dep_id} "
                                        "succeeded")
            continue
        if not dep.state.terminal:
            waiting.append((kind, dep_id, dep.state.value))
            continue
        ok = dep.state is JobState.SUCCEEDED
        if kind == "afterok" and not ok:
            return DependencyFailed(f"dependency afterok:{dep_id} not met: job {dep_id} ended {dep.state.value} "
                                    f"({dep.reason.value})")
        if kind == "afternotok" and ok:
            return DependencyFailed(f"dependency afternotok:{dep_id} not met: job {dep_id} succeeded")
    if waiting or on_arrays:
        return DependencyWait(waiting_on=tuple(waiting), arrays=tuple(on_arrays))
    return None


@dataclass
class Gates:
    #: dependency id -> jobs waiting on it
    dependents: dict[int, set[int]] = field(default_factory=dict)
    #: jobs waiting on dependencies
    waiting_deps: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    #: job -> time it may start again
    backoff: dict[int, float] = field(default_factory=dict)
    #: array id -> its %N
    array_limit: dict[int, int] = field(default_factory=dict)
    #: array id -> tasks in the scheduler's hands (queued or running)
    array_active: dict[int, set[int]] = field(default_factory=dict)
    #: array id -> throttled tasks, by (index, id)
    array_waiting: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    #: array id -> [tasks not ended, tasks], for arrays jobs depend on (counted when one
    #: of those is offered): a task's end re-checks them only now and then (below)
    array_open: dict[int, list[int]] = field(default_factory=dict)

    # dependencies ----------------------------------------------------------------------
    def wait_for(self, job: Job) -> None:
        self.waiting_deps.add(job.id)
        for _, dep_id in job.spec.dependencies:
            self.dependents.setdefault(dep_id, set()).add(job.id)

    def dependents_of(self, job_id: int) -> set[int]:
        """Jobs waiting on ``job_id`` (which just ended); they are re-checked by the caller."""
        return {j for j in self.dependents.pop(job_id, set()) if j in self.waiting_deps}

    def deps_settled(self, job: Job) -> None:
        self.waiting_deps.discard(job.id)
        for _, dep_id in job.spec.dependencies:
            waiting = self.dependents.get(dep_id)
            if waiting is not None:
                waiting.discard(job.id)
                if not waiting:
                    del self.dependents[dep_id]

    def array_counted(self, array_id: int, ended: int, total: int) -> None:
        self.array_open[array_id] = [total - ended, total]

    def array_task_ended(self, job: Job) -> bool:
        """A task of an array that jobs depend on ended: whether to re-check them now --
        the array has ended, the task did not succeed, or another twentieth of the tasks
        ended (the waiting message's count). A 10,000-task array's dependents are not
        re-counted 10,000 times."""
        entry = self.array_open.get(job.array_id) if job.array_id is not None else None
        if entry is None:
            return False
        entry[0] -= 1
        open_, total = entry
        if open_ <= 0:
            del self.array_open[job.array_id]
            return True
        return job.state is not JobState.SUCCEEDED or open_ % max(1, total // 20) == 0

    # arrays ------------------------------------------------------------------------------
    def array_slot(self, job: Job) -> ArrayThrottle | None:
        """Take a slot for an array task (None), or say it must wait for one."""
        array_id, limit = job.array_id, job.spec.array_limit
        if array_id is None or not limit:
            return None
        self.array_limit[array_id] = limit
        active = self.array_active.setdefault(array_id, set())
        if job.id in active or len(active) < limit:
            active.add(job.id)
            return None
        waiting = self.array_waiting.setdefault(array_id, [])
        entry = (job.array_index or 0, job.id)
        if entry not in waiting:
            waiting.append(entry)
            waiting.sort()
        return ArrayThrottle(array_id=array_id, active=len(active), limit=limit)

    def array_done(self, job: Job) -> int | None:
        """A task left the scheduler's hands (ended, or blocked again): the next throttled
        task of its array, if one may go now."""
        array_id = job.array_id
        if array_id is None or array_id not in self.array_active:
            return None
        active = self.array_active[array_id]
        active.discard(job.id)
        waiting = self.array_waiting.get(array_id)
        if waiting and len(active) < self.array_limit.get(array_id, 0):
            _, nxt = waiting.pop(0)
            if not waiting:
                del self.array_waiting[array_id]
            return nxt
        return None

    def forget(self, job: Job) -> None:
        """The job ended or was cancelled while held back: drop it from every index."""
        self.held.discard(job.id)
        self.backoff.pop(job.id, None)
        self.deps_settled(job)
        if job.array_id is not None:
            waiting = self.array_waiting.get(job.array_id)
            if waiting:
                waiting[:] = [e for e in waiting if e[1] != job.id]
                if not waiting:
                    del self.array_waiting[job.array_id]
