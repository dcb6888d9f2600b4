"""The pending queue, grouped by shape and kept in policy order.

Jobs with equal requests (a *shape*) fit or fail together within one cycle, so the
scheduler only needs each group's head in policy order. Keeping the groups sorted as
jobs arrive and leave makes a cycle cost about the number of distinct shapes plus the
jobs it places, instead of the length of the queue -- a sweep of 10,000 identical jobs
is one group.
"""

from __future__ import annotations

from bisect import insort
from typing import Callable, Iterable, Iterator

from ..resources import Resources
from .types import PendingJob


class PendingQueue:
    def __init__(self, key: Callable[[PendingJob], tuple], jobs: Iterable[PendingJob] = ()):
        self.key = key
        self.groups: dict[Resources, list[PendingJob]] = {}
        self.jobs: dict[int, PendingJob] = {}
        for job in jobs:
            self.add(job)

    def add(self, job: PendingJob) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} is already queued")
        self.jobs[job.id] = job
        group = self.groups.setdefault(job.shape, [])
        if not group or self.key(group[-1]) < self.key(job):
            group.append(job)           # the common case: later submissions go last
        else:
            insort(group, job, key=self.key)

    def remove(self, job_id: int) -> PendingJob | None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        group = self.groups[job.shape]
        if group[0].id == job_id:
            group.pop(0)
        else:
            group.remove(job)
        if not group:
            del self.groups[job.shape]
        return job

    def get(self, job_id: int) -> PendingJob | None:
        return self.jobs.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(self.jobs.values())

    def ordered(self) -> list[PendingJob]:
        """Every job in policy order (O(n log n); for display, not for cycles)."""
        return sorted(self.jobs.values(), key=self.key)
