"""Admission: offer a pending job to the scheduler, unless a gate holds it back; and what
every end sets in motion.

A job whose dependencies are not met, that is held, that waits out a retry backoff or
whose array already has its %N tasks in play stays out of the scheduler's queue; its
stored reason says which gate, with the numbers (:mod:`.gates`). A dependency that can
never be met ends the job at once. Called when a job is submitted, released, requeued,
when its backoff is over, and when a job it waited for (or its array's task) ended --
which :meth:`Admission.ended` sees to after every end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..job import Job, JobState, Reason
from ..reasons import Held, Wait
from ..resources import GPU
from .gates import DependencyFailed, dependency_gate

if TYPE_CHECKING:
    from .context import Daemon


class Admission:
    def __init__(self, daemon: "Daemon"):
        self.m = daemon

    def offer(self, job: Job) -> None:
        """Queue ``job`` for the scheduler, or record which gate holds it back."""
        m = self.m
        gates = m.gates
        m.driver.track(job)
        waiting = None
        if job.spec.dependencies:          # checked even while held: a failed one ends it
            others = {j.id: j for j in m.store.get_jobs(d for _, d in job.spec.dependencies)}
            heads = [j.id for j in others.values() if j.array_id == j.id]     # arrays: every task counts
            counts = m.store.array_counts(heads) if heads else None
            for head, by_state in (counts or {}).items():
                gates.array_counted(head, sum(n for s, n in by_state.items() if s.terminal), sum(by_state.values()))
            waiting = dependency_gate(job, others, counts)
            if isinstance(waiting, DependencyFailed):
                self.end_pending(job, waiting.reason, waiting.message)
                return
            if waiting is not None:
                gates.wait_for(job)
            else:
                gates.deps_settled(job)
        if job.held:
            gates.held.add(job.id)
            self._gated(job, Held(note=job.message or "held"))
            return
        if waiting is not None:
            self._gated(job, waiting)
            return
        now = m.clock()
        if job.not_before is not None and job.not_before > now:
            gates.backoff[job.id] = job.not_before
            m.driver.dequeue(job.id)
            m.call_later(job.not_before - now, self.backoff_over, job.id)
            return
        gates.backoff.pop(job.id, None)
        throttle = gates.array_slot(job)
        if throttle is not None:
            self._gated(job, throttle)
            return
        m.driver.enqueue(job)

    def _gated(self, job: Job, wait: Wait) -> None:
        self.m.driver.dequeue(job.id)
        if (job.reason, job.message) != (wait.reason, wait.message):
            self.m.store.set_reason(job.id, wait.reason, wait.message, now=self.m.clock())

    def backoff_over(self, job_id: int) -> None:
        if job_id not in self.m.gates.backoff:
            return
        job = self.m.store.get_job(job_id)
        if job.state is JobState.PENDING:
            self.offer(job)
            self.m.kick()

    def end_pending(self, job: Job, reason: Reason, message: str) -> None:
        """End a job that never ran (cancelled, or a dependency that cannot be met)."""
        m = self.m
        m.driver.dequeue(job.id)
        m.store.finish_job(job.id, JobState.CANCELLED, reason, message=message, ended_at=m.clock())
        self.ended(m.store.get_job(job.id))

    def ended(self, job: Job) -> None:
        """After any end: learn its run time, free its array slot (the next throttled task
        goes), re-check the jobs that depend on it, answer whoever waits for it."""
        m = self.m
        if m.metrics is not None:
            ran = job.ended_at - job.started_at if job.started_at is not None and job.ended_at is not None else None
            m.metrics.job_ended(job.spec.queue, job.state.value, job.reason.value, ran)
        if job.state is JobState.SUCCEEDED and job.started_at is not None and job.ended_at is not None:
            m.history.observe(job.user, job.ended_at - job.started_at, gpus=job.spec.requests.get(GPU, 0))
        nxt = m.gates.array_done(job)
        m.gates.forget(job)
        m.driver.forget(job.id)
        m.notify(job.id)
        if nxt is not None:
            self.offer(m.store.get_job(nxt))
        recount = m.gates.array_task_ended(job)
        dependents = m.gates.dependents_of(job.id)
        if recount and job.array_id != job.id:
            dependents |= m.gates.dependents_of(job.array_id)     # those waiting on its whole array
        for dependent in sorted(dependents):
            waiting = m.store.get_job(dependent)
            if waiting.state is JobState.PENDING:
                self.offer(waiting)
        m.kick()
