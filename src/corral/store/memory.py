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

from ..errors import CorralError
from ..job import Allocation, Job, JobState, Reason, check_transition
from .base import (Event, Finish, JobUsage, Requeue, Store, UsageRow, array_ids, check_finish, check_holdable,
                   check_live, check_reason, first_message, first_reason, not_found)


class MemoryStore(Store):
    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        #: job id -> [allocation, released_at]
        self._allocations: dict[int, list] = {}
        self._events: list[Event] = []
        self._meta: dict[str, str] = {}
        self._usage_rows: list[UsageRow] = []
        self._usage: dict[int, JobUsage] = {}
        self._last_job_id = 0
        self._keys: dict[str, tuple[list[int], float]] = {}
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
    def add_jobs(self, jobs: list[Job], now: float, key: str | None = None) -> list[Job]:
        with self._lock:
            if key is not None and key in self._keys:
                raise CorralError(f"idempotency key {key} already stored")
            new = []
            ids = range(self._last_job_id + 1, self._last_job_id + 1 + len(jobs))
            for job_id, job, array_id in zip(ids, jobs, array_ids(jobs, ids)):
                new.append(Job(
                    id=job_id, spec=copy.deepcopy(job.spec), state=JobState.PENDING,
                    reason=first_reason(job), message=first_message(job), submitted_at=now,
                    base_env=dict(job.base_env), seq=job_id, user=job.user, uid=job.uid, gid=job.gid,
                    array_id=array_id, array_index=job.array_index, held=job.held,
                ))
            for job in new:
                self._jobs[job.id] = job
                self._event(job.id, now, None, JobState.PENDING, job.reason, job.message)
            self._last_job_id += len(new)
            if key is not None:
                self._keys[key] = ([j.id for j in new], now)
            return copy.deepcopy(new)

    def jobs_for_key(self, key: str) -> list[Job] | None:
        with self._lock:
            found = self._keys.get(key)
            if found is None:
                return None
            return copy.deepcopy([self._jobs[i] for i in found[0] if i in self._jobs])

    def forget_keys(self, before: float) -> int:
        with self._lock:
            old = [k for k, (_, at) in self._keys.items() if at < before]
            for k in old:
                del self._keys[k]
            return len(old)

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

    def recent_run_times(self, limit: int) -> list[tuple[str, float]]:
        with self._lock:
            done = [j for j in self._jobs.values() if j.state is JobState.SUCCEEDED
                    and j.started_at is not None and j.ended_at is not None]
            done.sort(key=lambda j: (j.ended_at, j.id))
            return [(j.user, j.ended_at - j.started_at + j.served) for j in done[max(len(done) - max(limit, 0), 0):]]

    # Lifecycle -----------------------------------------------------------------------
    def commit_cycle(self, starts: list[tuple[int, Allocation]], reasons: list[tuple[int, Reason, str]],
                     now: float) -> None:
        reasons = [(job_id, Reason(reason), message) for job_id, reason, message in reasons]
        with self._lock:
            seen: set[int] = set()
            for job_id, _ in starts:   # check everything first: all or none
                job = self._get(job_id)
                old = JobState.RUNNING if job_id in seen else job.state
                check_transition(job_id, old, JobState.RUNNING)
                seen.add(job_id)
            for job_id, reason, _ in reasons:
                job = self._get(job_id)
                state = JobState.RUNNING if job_id in seen else job.state
                check_live(job_id, state)
                check_reason(job_id, state, reason)
            for job_id, allocation in starts:
                job = self._jobs[job_id]
                old = job.state
                job.state, job.reason, job.message = JobState.RUNNING, Reason.LAUNCHED, ""
                job.started_at = now
                job.attempts += 1
                job.allocation = allocation  # immutable, holds immutable Resources
                self._allocations[job_id] = [allocation, None]
                self._event(job_id, now, old, JobState.RUNNING, Reason.LAUNCHED, "")
            for job_id, reason, message in reasons:
                job = self._jobs[job_id]
                if job.reason is not reason:
                    self._event(job_id, now, job.state, job.state, reason, message)
                job.reason, job.message = reason, message

    def apply_ends(self, finishes: list[Finish], requeues: list[Requeue], usage: list[UsageRow] = ()) -> None:
        with self._lock:
            seen: set[int] = set()
            for f in finishes:       # check everything first: all or none
                job = self._get(f.job_id)
                old = JobState.SUCCEEDED if f.job_id in seen else job.state
                check_finish(f.job_id, old, f.state, f.reason)
                seen.add(f.job_id)
            for r in requeues:
                job = self._get(r.job_id)
                old = JobState.PENDING if r.job_id in seen else job.state
                check_transition(r.job_id, old, JobState.PENDING)
                check_reason(r.job_id, JobState.PENDING, r.reason)
                seen.add(r.job_id)
            for row in usage:
                self._get(row.job_id)
            for row in usage:
                self._usage_rows.append(row)
                self._usage[row.job_id] = self._usage.get(row.job_id, JobUsage(row.job_id)).plus(row)
            for f in finishes:
                job = self._jobs[f.job_id]
                old = job.state
                job.state, job.reason, job.message = f.state, f.reason, f.message
                job.exit_code, job.signal, job.ended_at = f.exit_code, f.signal, f.ended_at
                held = self._allocations.get(f.job_id)
                if held is not None and held[1] is None:
                    held[1] = f.ended_at
                self._event(f.job_id, f.ended_at, old, f.state, f.reason, f.message)
            for r in requeues:
                job = self._jobs[r.job_id]
                old = job.state
                job.state, job.reason, job.message = JobState.PENDING, r.reason, r.message
                job.started_at, job.allocation, job.not_before = None, None, r.not_before
                if r.retry:
                    job.retried += 1
                job.served += r.served
                self._allocations.pop(r.job_id, None)
                self._event(r.job_id, r.at, old, JobState.PENDING, r.reason, r.message)

    def set_reason(self, job_id: int, reason: Reason, message: str = "", *,
                   now: float | None = None, event: bool = False) -> None:
        if not event:
            self.set_reasons([(job_id, reason, message)], now=now)
            return
        reason = Reason(reason)
        with self._lock:
            job = self._get(job_id)
            check_live(job_id, job.state)
            check_reason(job_id, job.state, reason)
            job.reason, job.message = reason, message
            self._event(job_id, time.time() if now is None else now, job.state, job.state, reason, message)

    def update_spec(self, job_id: int, spec, message: str, now: float) -> None:
        with self._lock:
            job = self._get(job_id)
            check_live(job_id, job.state)
            job.spec = copy.deepcopy(spec)
            self._event(job_id, now, job.state, job.state, job.reason, message)

    def set_held(self, ids: Iterable[int], held: bool, message: str, now: float) -> list[int]:
        with self._lock:
            wanted = sorted(set(ids))
            for job_id in wanted:
                check_holdable(job_id, self._get(job_id).state)
            changed = []
            for job_id in wanted:
                job = self._jobs[job_id]
                if job.held == held:
                    continue
                job.held = held
                job.reason, job.message = (Reason.HELD if held else Reason.QUEUED), message
                self._event(job_id, now, JobState.PENDING, JobState.PENDING, job.reason, message)
                changed.append(job_id)
            return changed

    # Usage ---------------------------------------------------------------------------
    def job_usage(self, ids: Iterable[int]) -> dict[int, JobUsage]:
        with self._lock:
            return {i: self._usage[i] for i in sorted(set(ids)) if i in self._usage}

    def usage_rows(self, since: float | None = None, job_id: int | None = None) -> list[UsageRow]:
        with self._lock:
            rows = [r for r in self._usage_rows
                    if (since is None or r.t1 >= since) and (job_id is None or r.job_id == job_id)]
            return sorted(rows, key=lambda r: (r.t1, r.job_id))

    # Retention -----------------------------------------------------------------------
    def prune(self, before: float) -> list[int]:
        with self._lock:
            gone = sorted(i for i, j in self._jobs.items()
                          if j.state.terminal and j.ended_at is not None and j.ended_at < before)
            drop = set(gone)
            for i in gone:
                del self._jobs[i]
                self._allocations.pop(i, None)
                self._usage.pop(i, None)
            self._events = [e for e in self._events if e.job_id not in drop]
            self._usage_rows = [r for r in self._usage_rows if r.job_id not in drop]
            return gone

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

    def reserve_ids_above(self, job_id: int) -> None:
        with self._lock:
            self._last_job_id = max(self._last_job_id, int(job_id))

    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"meta value for {key} must be a string, got {type(value).__name__}")
        with self._lock:
            self._meta[key] = value

    def close(self) -> None:
        """Nothing to release: the data lives as long as the object."""
