"""Gates: what keeps a pending job out of the scheduler's queue, and lets it in again.

A pending job is offered to the scheduler only when nothing else holds it back:

* **hold** -- held at submit (``--hold``) or later (``corral hold``) until released;
* **dependencies** -- ``afterok`` (the other job succeeded), ``afterany`` (it ended),
  ``afternotok`` (it failed or was cancelled). A dependency that can no longer be met
  ends the dependent at once, ``Cancelled`` with reason ``DependencyFailed`` (and its own
  dependents after it), instead of leaving it stuck;
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


def dependency_gate(job: Job, others: dict[int, Job]) -> DependencyWait | DependencyFailed | None:
    """Whether ``job``'s dependencies are met (None), pending, or can never be met."""
    waiting: list[tuple[str, int, str]] = []
    for kind, dep_id in job.spec.dependencies:
        dep = others.get(dep_id)
        if dep is None:
            return DependencyFailed(f"dependency {kind}:{dep_id} can never be met: no such job")
        if not dep.state.terminal:
            waiting.append((kind, dep_id, dep.state.value))
            continue
        ok = dep.state is JobState.SUCCEEDED
        if kind == "afterok" and not ok:
            return DependencyFailed(f"dependency afterok:{dep_id} not met: job {dep_id} ended {dep.state.value} "
                                    f"({dep.reason.value})")
        if kind == "afternotok" and ok:
            return DependencyFailed(f"dependency afternotok:{dep_id} not met: job {dep_id} succeeded")
    if waiting:
        return DependencyWait(waiting_on=tuple(waiting))
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
