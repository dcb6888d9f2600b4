"""An in-memory :class:`~corral.store.base.Store` for tests and throwaway use.

Behaves exactly like :class:`~corral.store.sqlite.SqliteStore` (the contract tests run
against both) but keeps everything in dicts and forgets it when the process ends. Jobs
are deep-copied on the way in and on the way out, so callers cannot change stored state
by mutating what they hold. Each method checks everything before changing anything,
which makes every write all-or-nothing.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Iterable

from ..job import Allocation, Job, JobState, Reason, check_transition
from .base import Event, Store, check_finish, check_live, check_reason, not_found, Finish


class MemoryStore(Store):
    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        #: job id -> [allocation, released_at]
        self._allocations: dict[int, list] = {}
        self._events: list[Event] = []
        self._meta: dict[str, str] = {}
        self._last_job_id = 0
        self._last_event_id = 0
        self._lock = threading.RLock()

    # Helpers -------------------------------------------------------------------------
    def _event(self, job_id: int, ts: float, old: JobState | None, new: JobState,
               reason: Reason, message: str) -> None:
        self._last_event_id += 1
        self._events.append(Event(self._last_event_id, job_id, ts, old, new, reason, message))

    def _get(self, job_id: int) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise not_found(job_id) from None

    # Jobs ----------------------------------------------------------------------------
    def add_jobs(self, jobs: list[Job], now: float) -> list[Job]:
        with self._lock:
            new = []
            for offset, job in enumerate(jobs, start=1):
                job_id = self._last_job_id + offset
                new.append(Job(
                    id=job_id, spec=copy.deepcopy(job.spec), state=JobState.PENDING,
                    reason=Reason.QUEUED, submitted_at=now,
                    base_env=dict(job.base_env), seq=job_id,
                ))
            for job in new:
                self._jobs[job.id] = job
                self._event(job.id, now, None, JobState.PENDING, Reason.QUEUED, "")
            self._last_job_id += len(new)
            return copy.deepcopy(new)

    def get_job(self, job_id: int) -> Job:
        with self._lock:
            return copy.deepcopy(self._get(job_id))

    def get_jobs(self, ids: Iterable[int]) -> list[Job]:
        with self._lock:
            found = sorted({i for i in ids if i in self._jobs})
            return copy.deepcopy([self._jobs[i] for i in found])

    def list_jobs(self, states: set[JobState] | None = None, limit: int | None = None) -> list[Job]:
        with self._lock:
            out = []
            for job_id in sorted(self._jobs):
                if limit is not None and len(out) >= limit:
                    break
                job = self._jobs[job_id]
                if states is None or job.state in states:
                    out.append(job)
            return copy.deepcopy(out)

    # Lifecycle -----------------------------------------------------------------------
    def start_jobs(self, starts: list[tuple[int, Allocation]], now: float) -> None:
        with self._lock:
            seen: set[int] = set()
            for job_id, _ in starts:
                job = self._get(job_id)
                old = JobState.RUNNING if job_id in seen else job.state
                check_transition(job_id, old, JobState.RUNNING)
                seen.add(job_id)
            for job_id, allocation in starts:
                job = self._jobs[job_id]
                old = job.state
                job.state, job.reason, job.message = JobState.RUNNING, Reason.LAUNCHED, ""
                job.started_at = now
                job.allocation = allocation  # frozen, holds immutable Resources
                self._allocations[job_id] = [allocation, None]
                self._event(job_id, now, old, JobState.RUNNING, Reason.LAUNCHED, "")

    def finish_jobs(self, finishes: list[Finish]) -> None:
        with self._lock:
            seen: set[int] = set()
            for f in finishes:       # check everything first: all or none
                job = self._get(f.job_id)
                old = JobState.SUCCEEDED if f.job_id in seen else job.state
                check_finish(f.job_id, old, f.state, f.reason)
                seen.add(f.job_id)
            for f in finishes:
                job = self._jobs[f.job_id]
                old = job.state
                job.state, job.reason, job.message = f.state, f.reason, f.message
                job.exit_code, job.signal, job.ended_at = f.exit_code, f.signal, f.ended_at
                held = self._allocations.get(f.job_id)
                if held is not None and held[1] is None:
                    held[1] = f.ended_at
                self._event(f.job_id, f.ended_at, old, f.state, f.reason, f.message)

    def set_reason(self, job_id: int, reason: Reason, message: str = "", *,
                   now: float | None = None) -> None:
        self.set_reasons([(job_id, reason, message)], now=now)

    def set_reasons(self, updates: Iterable[tuple[int, Reason, str]], *,
                    now: float | None = None) -> None:
        updates = [(job_id, Reason(reason), message) for job_id, reason, message in updates]
        with self._lock:
            for job_id, reason, _ in updates:
                job = self._get(job_id)
                check_live(job_id, job.state)
                check_reason(job_id, job.state, reason)
            ts = time.time() if now is None else now
            for job_id, reason, message in updates:
                job = self._jobs[job_id]
                if job.reason is not reason:
                    self._event(job_id, ts, job.state, job.state, reason, message)
                job.reason, job.message = reason, message

    def active_allocations(self) -> dict[int, Allocation]:
        with self._lock:
            return {job_id: alloc for job_id, (alloc, released) in sorted(self._allocations.items())
                    if released is None}

    # History -------------------------------------------------------------------------
    def events(self, job_id: int | None = None, limit: int | None = None) -> list[Event]:
        with self._lock:
            out = [e for e in self._events if job_id is None or e.job_id == job_id]
            if limit is not None:
                out = out[-limit:] if limit > 0 else []
            return out

    # Settings ------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"meta value for {key} must be a string, got {type(value).__name__}")
        with self._lock:
            self._meta[key] = value

    def close(self) -> None:
        pass
