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
from typing import Iterable

from ..errors import CorralError, InvalidTransition, NotFound
from ..job import REASON_STATES, Allocation, Job, JobState, Reason, check_transition


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


class Store(ABC):
    """Persistent home of jobs, allocations, events and a few settings."""

    # Jobs ------------------------------------------------------------------------------
    @abstractmethod
    def add_jobs(self, jobs: list[Job], now: float) -> list[Job]:
        """Store new jobs, all or none, and return them as stored.

        Only ``spec`` and ``base_env`` are taken from the given jobs; the store assigns
        ``id`` and ``seq``, sets ``submitted_at=now``, state Pending with reason Queued,
        and writes a ``submitted`` event (``from_state=None``) for each.
        """

    @abstractmethod
    def get_job(self, job_id: int) -> Job:
        """The job with this id; raises :class:`NotFound` (``no such job: 42``)."""

    @abstractmethod
    def get_jobs(self, ids: Iterable[int]) -> list[Job]:
        """The jobs with these ids that exist, ordered by id (missing ids are skipped)."""

    @abstractmethod
    def list_jobs(self, states: set[JobState] | None = None, limit: int | None = None) -> list[Job]:
        """Jobs (in ``states`` when given), ordered by id; the first ``limit`` of them."""

    # Lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def start_jobs(self, starts: list[tuple[int, Allocation]], now: float) -> None:
        """Move each job Pending -> Running (reason Launched) holding its allocation.

        One transaction: an unknown job (:class:`NotFound`) or a job not Pending
        (:class:`InvalidTransition`) rolls back the whole batch. Sets ``started_at=now``
        and clears the pending message.
        """

    def finish_job(self, job_id: int, state: JobState, reason: Reason, *, message: str = "",
                   exit_code: int | None = None, signal: int | None = None, ended_at: float) -> bool:
        """Move a Pending or Running job to the terminal ``state``; release its allocation.

        Raises :class:`InvalidTransition` when the job is already terminal (callers use
        that to detect a double finish) or when ``state`` is not terminal. Returns True
        when the job changed (always, when it returns).
        """
        self.finish_jobs([Finish(job_id, state, reason, message, exit_code, signal, ended_at)])
        return True

    @abstractmethod
    def finish_jobs(self, finishes: list["Finish"]) -> None:
        """:meth:`finish_job` for several jobs in one transaction: all or none."""

    @abstractmethod
    def set_reason(self, job_id: int, reason: Reason, message: str = "", *,
                   now: float | None = None) -> None:
        """Change a live job's reason and message without changing its state.

        Writes nothing when both are unchanged, and an event (at ``now``, default the
        current time) only when the reason changed. A terminal job raises
        :class:`InvalidTransition`; a reason that does not go with the job's state
        raises :class:`CorralError`.
        """

    @abstractmethod
    def set_reasons(self, updates: Iterable[tuple[int, Reason, str]], *,
                    now: float | None = None) -> None:
        """:meth:`set_reason` for many ``(job_id, reason, message)`` at once, all or none
        (one transaction, so a scheduling cycle can update every pending job cheaply)."""

    @abstractmethod
    def active_allocations(self) -> dict[int, Allocation]:
        """Job id -> allocation for every allocation not yet released."""

    # History ---------------------------------------------------------------------------
    @abstractmethod
    def events(self, job_id: int | None = None, limit: int | None = None) -> list[Event]:
        """Events (of one job when given) in the order they happened.

        With ``limit``, the *latest* ``limit`` events, still oldest first.
        """

    # Settings --------------------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A stored setting, or None."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Store a setting (replacing any previous value)."""

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


def check_live(job_id: int, state: JobState) -> None:
    if state.terminal:
        raise InvalidTransition(
            f"job {job_id} is {state.value}: a finished job's reason cannot change"
        )
