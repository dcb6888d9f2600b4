"""The store interface: where jobs, allocations and their history live.

A small abstract :class:`Store` with two implementations that behave identically (one
contract test suite runs against both): :class:`~corral.store.memory.MemoryStore` for
tests and :class:`~corral.store.sqlite.SqliteStore`, the embedded database the daemon
uses. Every method that writes is one transaction: it happens entirely or not at all.

Rules every implementation follows:

* Job ids are increasing integers starting at 1 and are never reused (not after jobs are
  deleted, not after a restart). ``seq`` equals the id.
* State changes follow :data:`corral.job.TRANSITIONS`; a bad one raises
  :class:`~corral.errors.InvalidTransition` and changes nothing (for a batch: nothing of
  the batch).
* A reason must be one that goes with the state it stands beside
  (:data:`corral.job.REASON_STATES`).
* An allocation is released exactly once, by the :meth:`Store.finish_job` call that moves
  its job to a terminal state. A finished job still reports the allocation it held
  (``Job.allocation``), but :meth:`Store.active_allocations` no longer contains it.
* Every state change, and every change of a live job's reason, writes an :class:`Event`.
* Jobs handed out are copies: changing one does not change what is stored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from ..errors import CorralError, InvalidTransition, NotFound
from ..job import REASON_STATES, Allocation, Job, JobState, Reason, check_transition

if TYPE_CHECKING:
    from ..spec import JobSpec
    from .filters import JobFilter


@dataclass(frozen=True)
class Event:
    """One entry of a job's history.

    ``from_state`` is ``None`` for the submission event; a reason change of a live job
    has ``from_state == to_state``.
    """

    id: int
    job_id: int
    ts: float
    from_state: JobState | None
    to_state: JobState
    reason: Reason
    message: str = ""


@dataclass(frozen=True)
class Finish:
    """How one job ended, for :meth:`Store.finish_jobs`."""

    job_id: int
    state: JobState
    reason: Reason
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    ended_at: float = 0.0


@dataclass(frozen=True)
class Requeue:
    """A running job going back to the queue, for :meth:`Store.apply_ends`: same id, same
    ``seq``; ``not_before`` delays its next start; ``retry``: it failed and uses one of its
    retries (``Job.retried`` counts them); ``served``: seconds of this attempt whose work
    the job keeps (a resumable job preempted by attained service), added to ``Job.served``."""

    job_id: int
    reason: Reason
    message: str
    at: float
    not_before: float | None = None
    retry: bool = False
    served: float = 0.0


@dataclass(frozen=True)
class UsageRow:
    """What one running job used over one interval ``[t0, t1]``: a row of the usage series.

    The daemon samples every few seconds and writes one row per job per series interval
    (default 30 s), so the series stays compact. Amounts are integrals over the interval
    (CPU-seconds, joules, GPU-seconds), so sums over any window are exact to a row.
    """

    job_id: int
    t0: float
    t1: float
    cpu_seconds: float = 0.0            # CPU time the job used in the interval
    memory: int = 0                     # highest working set (cgroup) or RSS sum seen, bytes
    memory_peak: int = 0                # the job's peak so far (the cgroup's own peak when known)
    gpu_util: float | None = None       # mean utilization of its GPUs, percent (None: unknown)
    gpu_memory: int | None = None       # highest GPU memory used by its processes, bytes
    energy_j: float = 0.0               # energy drawn by its GPUs, joules
    gpu_seconds: float = 0.0            # GPUs held x seconds
    idle_gpu_seconds: float = 0.0       # GPUs held while idle x seconds

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class JobUsage:
    """A job's usage totals over its whole life (all of its rows)."""

    job_id: int
    rows: int = 0
    first: float = 0.0
    last: float = 0.0
    cpu_seconds: float = 0.0
    memory_peak: int = 0
    gpu_util_sum: float = 0.0           # percent x seconds over rows that knew the utilization
    gpu_util_dt: float = 0.0            # seconds those rows cover
    gpu_memory_peak: int | None = None
    energy_j: float = 0.0
    gpu_seconds: float = 0.0
    idle_gpu_seconds: float = 0.0

    @property
    def gpu_util(self) -> float | None:
        """Time-weighted mean GPU utilization, percent; None when never known."""
        return self.gpu_util_sum / self.gpu_util_dt if self.gpu_util_dt > 0 else None

    def to_dict(self) -> dict:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["gpu_util"] = self.gpu_util
        return out

    def plus(self, row: UsageRow) -> "JobUsage":
        """These totals with one more row."""
        dt = max(row.t1 - row.t0, 0.0)
        known = row.gpu_util is not None
        return JobUsage(
            job_id=self.job_id, rows=self.rows + 1,
            first=row.t0 if self.rows == 0 else min(self.first, row.t0), last=max(self.last, row.t1),
            cpu_seconds=self.cpu_seconds + row.cpu_seconds,
            memory_peak=max(self.memory_peak, row.memory_peak, row.memory),
            gpu_util_sum=self.gpu_util_sum + (row.gpu_util * dt if known else 0.0),
            gpu_util_dt=self.gpu_util_dt + (dt if known else 0.0),
            gpu_memory_peak=_max_opt(self.gpu_memory_peak, row.gpu_memory),
            energy_j=self.energy_j + row.energy_j, gpu_seconds=self.gpu_seconds + row.gpu_seconds,
            idle_gpu_seconds=self.idle_gpu_seconds + row.idle_gpu_seconds,
        )


def _max_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class Store(ABC):
    """Persistent home of jobs, allocations, events and a few settings."""

    # Jobs ------------------------------------------------------------------------------
    @abstractmethod
    def add_jobs(self, jobs: list[Job], now: float, key: str | None = None) -> list[Job]:
        """Store new jobs, all or none, and return them as stored. With ``key`` (a
        client's idempotency key) the key is kept with the jobs' ids in the same
        transaction (:meth:`jobs_for_key`).

        Only ``spec``, ``base_env``, ``user``, ``uid``, ``gid``, ``array_index``, ``held``
        and ``array_id`` are taken from the given jobs; the store assigns ``id`` and
        ``seq``, sets ``submitted_at=now``, state Pending with reason Queued (Held for a
        held job), and writes a ``submitted`` event (``from_state=None``) for each.
        Array tasks: a *negative* ``array_id`` names a group within the batch; the store
        replaces it with the id of that group's first job (the array's id).
        """

    @abstractmethod
    def jobs_for_key(self, key: str) -> list[Job] | None:
        """The jobs a batch stored with idempotency ``key`` (as they are now; those deleted
        since are left out), or None when no batch had that key."""

    @abstractmethod
    def forget_keys(self, before: float) -> int:
        """Drop the idempotency keys of batches stored before ``before``; how many."""

    @abstractmethod
    def get_job(self, job_id: int) -> Job:
        """The job with this id; raises :class:`NotFound` (``no such job: 42``)."""

    @abstractmethod
    def get_jobs(self, ids: Iterable[int]) -> list[Job]:
        """The jobs with these ids that exist, ordered by id (missing ids are skipped)."""

    @abstractmethod
    def list_jobs(self, states: set[JobState] | None = None, limit: int | None = None) -> list[Job]:
        """Jobs (in ``states`` when given), ordered by id; the first ``limit`` of them."""

    def find_jobs(self, query: "JobFilter") -> list[Job]:
        """Jobs that pass ``query`` (:class:`~corral.store.filters.JobFilter`), ordered by
        id, cut to its ``limit`` (the newest ones with ``newest``). This generic version
        reads every job of the states asked for; SQLite answers it with one query."""
        return query.take([j for j in self.list_jobs(None if query.states is None else set(query.states))
                           if query.matches(j)])

    def array_counts(self, array_ids: Iterable[int]) -> dict[int, dict[JobState, int]]:
        """For each array id that has tasks: how many of its tasks are in each state."""
        from .filters import JobFilter

        out: dict[int, dict[JobState, int]] = {}
        for array_id in set(array_ids):
            for job in self.find_jobs(JobFilter(array=array_id)):
                counts = out.setdefault(array_id, {})
                counts[job.state] = counts.get(job.state, 0) + 1
        return out

    @abstractmethod
    def recent_run_times(self, limit: int) -> list[tuple[str, float]]:
        """``(user, ended_at - started_at + served)`` of the ``limit`` Succeeded jobs that
        ended last, oldest end first (what run-time estimates learn from; ``served``: the
        run time of earlier attempts whose work a resumable job kept)."""

    # Lifecycle -------------------------------------------------------------------------
    def start_jobs(self, starts: list[tuple[int, Allocation]], now: float) -> None:
        """Move each job Pending -> Running (reason Launched) holding its allocation.

        One transaction: an unknown job (:class:`NotFound`) or a job not Pending
        (:class:`InvalidTransition`) rolls back the whole batch. Sets ``started_at=now``,
        clears the pending message and counts the attempt (``attempts += 1``).
        """
        self.commit_cycle(starts, [], now)

    def finish_job(self, job_id: int, state: JobState, reason: Reason, *, message: str = "",
                   exit_code: int | None = None, signal: int | None = None, ended_at: float) -> bool:
        """Move a Pending or Running job to the terminal ``state``; release its allocation.

        Raises :class:`InvalidTransition` when the job is already terminal (callers use
        that to detect a double finish) or when ``state`` is not terminal. Returns True
        when the job changed (always, when it returns).
        """
        self.finish_jobs([Finish(job_id, state, reason, message, exit_code, signal, ended_at)])
        return True

    def finish_jobs(self, finishes: list["Finish"]) -> None:
        """:meth:`finish_job` for several jobs in one transaction: all or none."""
        self.apply_ends(finishes, [])

    @abstractmethod
    def commit_cycle(self, starts: list[tuple[int, Allocation]], reasons: list[tuple[int, Reason, str]],
                     now: float) -> None:
        """What one scheduling cycle decided, in one transaction: :meth:`start_jobs` for
        ``starts`` and :meth:`set_reasons` for ``reasons`` (jobs that stay pending), all
        or none -- so a second reader sees the same reasons as the daemon."""

    @abstractmethod
    def apply_ends(self, finishes: list[Finish], requeues: list[Requeue], usage: list[UsageRow] = ()) -> None:
        """A batch of ends in one transaction: jobs finished (:meth:`finish_jobs`), jobs
        requeued (:meth:`requeue_job`; a ``retry`` counts in ``Job.retried``) and their last
        usage rows (:meth:`record_usage`), all or none."""

    @abstractmethod
    def set_reason(self, job_id: int, reason: Reason, message: str = "", *,
                   now: float | None = None, event: bool = False) -> None:
        """Change a live job's reason and message without changing its state.

        Writes nothing when both are unchanged, and an event (at ``now``, default the
        current time) only when the reason changed -- or always with ``event=True``
        (an action worth its own line in the history, e.g. an idle-GPU warning with
        its numbers). A terminal job raises
        :class:`InvalidTransition`; a reason that does not go with the job's state
        raises :class:`CorralError`.
        """

    def set_reasons(self, updates: Iterable[tuple[int, Reason, str]], *,
                    now: float | None = None) -> None:
        """:meth:`set_reason` for many ``(job_id, reason, message)`` at once, all or none
        (one transaction)."""
        import time

        self.commit_cycle([], list(updates), time.time() if now is None else now)

    @abstractmethod
    def active_allocations(self) -> dict[int, Allocation]:
        """Job id -> allocation for every allocation not yet released."""

    def requeue_job(self, job_id: int, reason: Reason, message: str, now: float,
                    not_before: float | None = None) -> None:
        """Move a Running job back to Pending (same id, same ``seq``, attempts kept) and
        release its allocation; ``not_before`` delays its next start (retry backoff).
        ``reason`` must be a Pending reason. A job that is not Running raises
        :class:`InvalidTransition`."""
        self.apply_ends([], [Requeue(job_id, reason, message, now, not_before)])

    @abstractmethod
    def update_spec(self, job_id: int, spec: "JobSpec", message: str, now: float) -> None:
        """Replace a live job's spec (``corral update``), with an event saying what changed.
        A finished job raises :class:`InvalidTransition`."""

    @abstractmethod
    def set_held(self, ids: Iterable[int], held: bool, message: str, now: float) -> list[int]:
        """Hold or release Pending jobs (reason Held / Queued, an event each); returns
        the ids that changed. A job that is not Pending raises :class:`InvalidTransition`
        and changes nothing."""

    # Usage -----------------------------------------------------------------------------
    def record_usage(self, rows: list[UsageRow]) -> None:
        """Append rows to the usage series and add them to each job's totals (one
        transaction). An unknown job raises :class:`NotFound` and records nothing."""
        self.apply_ends([], [], rows)

    @abstractmethod
    def job_usage(self, ids: Iterable[int]) -> dict[int, JobUsage]:
        """Totals of the given jobs that have any usage recorded."""

    @abstractmethod
    def usage_rows(self, since: float | None = None, job_id: int | None = None) -> list[UsageRow]:
        """Series rows (of one job when given) that end at or after ``since``, in time order."""

    # Retention -------------------------------------------------------------------------
    @abstractmethod
    def prune(self, before: float) -> list[int]:
        """Delete finished jobs that ended before ``before``, with their allocations,
        events and usage; returns their ids. Live jobs are never deleted."""

    # History ---------------------------------------------------------------------------
    @abstractmethod
    def events(self, job_id: int | None = None, limit: int | None = None) -> list[Event]:
        """Events (of one job when given) in the order they happened.

        With ``limit``, the *latest* ``limit`` events, still oldest first.
        """

    def events_after(self, after: int, limit: int = 1000) -> list[Event]:
        """The first ``limit`` events with an id above ``after``, oldest first (an event
        stream's next page). This generic version reads them all; SQLite seeks by id."""
        return [e for e in self.events() if e.id > after][:max(limit, 0)]

    def last_event_id(self) -> int:
        """The newest event's id (0 when there is none)."""
        last = self.events(limit=1)
        return last[0].id if last else 0

    # Settings --------------------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A stored setting, or None."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Store a setting (replacing any previous value)."""

    @abstractmethod
    def reserve_ids_above(self, job_id: int) -> None:
        """New jobs get ids above ``job_id`` (and above every id already given)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources; calling it again does nothing."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Shared checks (both implementations call these so they fail the same way) -------------

def not_found(job_id: int) -> NotFound:
    return NotFound(f"no such job: {job_id}")


def check_reason(job_id: int, state: JobState, reason: Reason) -> None:
    if REASON_STATES[reason] is not state:
        allowed = ", ".join(r.value for r, s in REASON_STATES.items() if s is state)
        raise CorralError(
            f"reason {reason.value} does not go with state {state.value} for job {job_id} "
            f"(reasons for {state.value}: {allowed})"
        )


def check_finish(job_id: int, old: JobState, new: JobState, reason: Reason) -> None:
    if not new.terminal:
        raise InvalidTransition(
            f"invalid transition for job {job_id}: finishing needs a terminal state, got {new.value} "
            f"(expected Succeeded, Failed or Cancelled)"
        )
    check_transition(job_id, old, new)
    check_reason(job_id, new, reason)


def check_holdable(job_id: int, state: JobState) -> None:
    if state is not JobState.PENDING:
        raise InvalidTransition(f"job {job_id} is {state.value}: only pending jobs can be held or released")


def first_reason(job: Job) -> Reason:
    return Reason.HELD if job.held else Reason.QUEUED


def first_message(job: Job) -> str:
    return "held at submit" if job.held else ""


def array_ids(jobs: list[Job], ids: Iterable[int]) -> list[int | None]:
    """Each job's array id once stored: negative group markers become the group's first id."""
    first: dict[int, int] = {}
    out: list[int | None] = []
    for job, job_id in zip(jobs, ids):
        marker = job.array_id
        if marker is not None and marker < 0:
            out.append(first.setdefault(marker, job_id))
        else:
            out.append(marker)
    return out


def check_live(job_id: int, state: JobState) -> None:
    if state.terminal:
        raise InvalidTransition(
            f"job {job_id} is {state.value}: a finished job's reason cannot change"
        )
