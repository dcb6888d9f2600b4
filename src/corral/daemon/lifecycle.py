"""Lifecycle: how jobs end -- or go back to the queue -- and their time limits.

Every end comes from the executor (``on_exit``, exactly once per launch). Ends that arrive
in the same turn of the event loop are recorded together, in one store transaction:
finished jobs with their exit codes, jobs requeued (preempted, idle-GPU reclaim) and jobs
going back for a retry after a failure (backoff 10 s, 20 s, 40 s ... 10 min; the count of
retries used is kept with the job), with their last usage rows. Then the allocations are
released in the driver, requeued jobs are offered again (same id, same place in line),
and whatever waited for an ended job is re-checked. Then one scheduling cycle runs.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING, Any

from ..durations import format_duration
from ..errors import CorralError
from ..executors.base import ExitStatus, StopReason
from ..job import JobState, Reason
from ..reasons import Backoff
from ..store.base import Finish, Requeue
from . import faults

if TYPE_CHECKING:
    from .admission import Admission
    from .context import Daemon
    from .driver import LiveJob

log = logging.getLogger("corral.lifecycle")

#: Ends that may be retried (a job's own failure, not corral stopping it).
RETRYABLE = frozenset({Reason.ERROR, Reason.SIGNALED, Reason.OOM_KILLED, Reason.MEMORY_LIMIT_EXCEEDED,
                       Reason.SUPERVISOR_LOST})
BACKOFF_BASE = 10.0          # seconds before the first retry; doubles each time
BACKOFF_MAX = 600.0


def backoff(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): 10 s, 20 s, 40 s ... 10 min."""
    return min(BACKOFF_BASE * 2 ** (retry - 1), BACKOFF_MAX)


#: Seconds between tries to record job ends the store refused (a store fault).
END_RETRY = 2.0


class EndsNotRecorded(Exception):
    """The store refused a batch of job ends (nothing of it was recorded)."""


class Lifecycle:
    def __init__(self, daemon: "Daemon", admission: "Admission"):
        self.m = daemon
        self.admission = admission
        self._exits: list[tuple[int, ExitStatus]] = []
        #: Last usage rows of ended jobs not yet recorded (a store fault), by job id.
        self._rows: dict[int, Any] = {}
        self._failing = False
        #: (deadline, job id) of running jobs with a time limit; stale entries are skipped.
        self._deadlines: list[tuple[float, int]] = []

    # -- ends -------------------------------------------------------------------------------------
    def on_exit(self, job_id: int, status: ExitStatus) -> None:
        """Executor callback: a running job ended (however it ended)."""
        live = self.m.driver.jobs.get(job_id)
        if live is None or live.run is None:
            log.warning("exit of job %d that is not running here; ignored", job_id)
            return
        self._exits.append((job_id, status))
        if len(self._exits) == 1:
            self.m.call_soon(self.flush)

    def flush(self) -> None:
        """Record the ends buffered so far (the next cycle does this first, too). When the
        store cannot take them (disk full, read-only), they stay buffered and are tried
        again every few seconds: the exit codes are not lost, and the jobs' resources are
        released as soon as the store takes the ends."""
        if not self._exits:
            return
        exits, self._exits = self._exits, []
        try:
            self.finish(exits)
        except EndsNotRecorded as exc:        # a store fault: keep them, try again
            faults.count("recording job ends")
            self._exits[:0] = exits
            if not self._failing:
                log.error("recording %d job end(s) failed (%s); retrying every %gs", len(exits), exc, END_RETRY)
            self._failing = True
            self.m.call_later(END_RETRY, self.flush)
            return
        if self._failing:
            log.warning("job ends recorded again after a store fault")
        self._failing = False
        self.m.kick()

    def finish(self, exits: list[tuple[int, ExitStatus]]) -> None:
        m = self.m
        now = m.clock()
        m.driver.account(now)                 # what ran until now, before it changes
        finishes: list[Finish] = []
        requeues: list[Requeue] = []
        usage = []
        for job_id, status in exits:
            row = self._rows.get(job_id)
            if row is None and m.monitor is not None:
                row = m.monitor.job_ended(job_id, status)
                if row is not None:
                    self._rows[job_id] = row
            if row is not None:
                usage.append(row)
            state, reason, message = status.classify()
            at = status.ended_at or now
            if state is JobState.PENDING:
                requeue = self._requeue(job_id, reason, message, at)
                if requeue is not None:
                    requeues.append(requeue)
                    continue
                state, reason = JobState.FAILED, Reason.NODE_FAIL
                message = f"{message}; not requeued (--no-requeue)"
            retry = self._retry(job_id, state, reason, message, at)
            if retry is not None:
                requeues.append(retry)
                continue
            finishes.append(Finish(job_id, state, reason, message, status.exit_code, status.signal, at))
        try:
            m.store.apply_ends(finishes, requeues, usage)
        except Exception as exc:  # noqa: BLE001 - nothing of it was recorded (one transaction)
            raise EndsNotRecorded(str(exc)) from exc
        for job_id, _ in exits:
            self._rows.pop(job_id, None)
        requeued = {r.job_id for r in requeues}
        ended = []
        for job_id, _ in exits:
            m.driver.release(job_id)
            if job_id in requeued:
                self.admission.offer(m.store.get_job(job_id))      # same id, same place in line
            else:
                ended.append(job_id)
        for job in m.store.get_jobs(ended):
            self.admission.ended(job)

    def _requeue(self, job_id: int, reason: Reason, message: str, at: float) -> Requeue | None:
        """A job corral (or its engine) stopped to run again: queued again, same id. After
        a lost node only if the job allows requeueing (else None: it ends NodeFail); after
        a start timeout after a backoff (10 s, doubling with each attempt that timed out),
        so a gang that cannot start does not retry in a loop."""
        live = self.m.driver.jobs.get(job_id)
        if reason is Reason.NODE_LOST and live is not None and not live.job.spec.requeue:
            return None
        if reason is Reason.START_TIMEOUT:
            attempts = live.job.attempts if live is not None else 1
            return Requeue(job_id, reason, f"{message}; queued again in {backoff(max(1, attempts)):g}s", at,
                           not_before=at + backoff(max(1, attempts)))
        if reason is Reason.PREEMPTED and live is not None and live.job.spec.resumable and live.run is not None:
            # It saved its work on its stop signal and continues from it: the run counts.
            served = max(at - live.run.started_at, 0.0)
            return Requeue(job_id, reason, f"{message}; resumes after {served:.0f}s run", at, served=served)
        return Requeue(job_id, reason, message, at)

    def _retry(self, job_id: int, state: JobState, reason: Reason, message: str, at: float) -> Requeue | None:
        """A failed job with retries left goes back to the queue after a backoff."""
        live = self.m.driver.jobs.get(job_id)
        if live is None or state is not JobState.FAILED or reason not in RETRYABLE:
            return None
        job = live.job
        if not job.spec.retries or job.retried >= job.spec.retries:
            return None
        retry = job.retried + 1
        wait = Backoff(retry=retry, retries=job.spec.retries, seconds=backoff(retry), failure=message)
        return Requeue(job_id, wait.reason, wait.message, at, not_before=at + wait.seconds, retry=True)

    # -- starts and time limits -------------------------------------------------------------------
    def started(self, live: "LiveJob") -> None:
        """Driver hook after a launch: arm its time limit, watch it."""
        self.arm_time_limit(live)
        if self.m.metrics is not None:
            job = live.job
            self.m.metrics.job_started(job.spec.queue, self.m.clock() - job.submitted_at)
        if self.m.monitor is not None and live.run is not None:
            self.m.monitor.job_started(live.id, live.run.allocation, live.job.spec)

    def arm_time_limit(self, live: "LiveJob") -> None:
        run = live.run
        limit = live.job.spec.time_limit
        if run is None or not limit:
            live.deadline = None
            return
        live.deadline = run.started_at + limit
        heapq.heappush(self._deadlines, (live.deadline, live.id))
        self.m.call_later(max(live.deadline - self.m.clock(), 0.0), self.enforce_time_limits)

    def enforce_time_limits(self) -> list[int]:
        """Stop running jobs past their time limit (stop signal, SIGKILL after the grace
        period); they end Failed with reason TimedOut. Returns the jobs stopped."""
        m = self.m
        now = m.clock()
        stopped = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, job_id = heapq.heappop(heap)
            live = m.driver.jobs.get(job_id)
            if live is None or live.run is None or live.deadline != deadline:
                continue                      # ended, or its limit changed since
            live.deadline = None
            spec = live.job.spec
            grace = spec.kill_grace if spec.kill_grace is not None else getattr(m.executor, "kill_grace", None)
            after = f"SIGKILL after {format_duration(int(grace))}" if grace is not None else "then SIGKILL"
            message = (f"time limit {format_duration(spec.time_limit or 0)} reached: "
                       f"{spec.stop_signal or 'SIGTERM'} sent, {after}")
            m.executor.stop(job_id, StopReason.TIME_LIMIT, message)
            try:
                m.store.set_reason(job_id, Reason.TIME_LIMIT, message, now=now, event=True)
            except CorralError:
                pass                          # it ended meanwhile: its end says TimedOut
            stopped.append(job_id)
        return stopped
