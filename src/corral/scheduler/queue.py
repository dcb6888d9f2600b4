"""The pending jobs, per queue, grouped by shape and kept in each queue's order.

Jobs with equal requests (a *shape*) fit or fail together within one cycle, so a cycle
only needs each group's head in the queue's order. Keeping the groups sorted as jobs
arrive and leave makes a cycle cost about the number of distinct shapes plus the jobs it
places, instead of the length of the queue -- a sweep of 10,000 identical jobs is one
group. A queue whose policy takes turns between users (fair share) groups by user and
shape, so each user's head is at hand.
"""

from __future__ import annotations

from bisect import insort
from typing import Hashable, Iterable, Iterator, Mapping

from ..resources import Resources
from .policies import BestEffortFifo, QueuePolicy
from .queues import QueueSpec
from .types import PendingJob

#: A group: (lane, shape). The lane is the user in a fair-share queue, else None.
GroupKey = tuple[Hashable, Resources]


class PendingQueue:
    """One queue's pending jobs."""

    def __init__(self, policy: QueuePolicy, jobs: Iterable[PendingJob] = ()):
        self.policy = policy
        self.groups: dict[GroupKey, list[PendingJob]] = {}
        self.jobs: dict[int, PendingJob] = {}
        #: job id -> (the policy's key, id): a total order.
        self.keys: dict[int, tuple] = {}
        for job in jobs:
            self.add(job)

    def group_of(self, job: PendingJob) -> GroupKey:
        return (job.user if self.policy.by_user else None, job.requests)

    def add(self, job: PendingJob) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} is already queued")
        key = (self.policy.key(job), job.id)
        self.jobs[job.id] = job
        self.keys[job.id] = key
        group = self.groups.setdefault(self.group_of(job), [])
        keys = self.keys
        if not group or keys[group[-1].id] < key:
            group.append(job)           # the common case: later submissions go last
        else:
            insort(group, job, key=lambda j: keys[j.id])

    def remove(self, job_id: int) -> PendingJob | None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        gkey = self.group_of(job)
        group = self.groups[gkey]
        if group[0].id == job_id:
            group.pop(0)
        else:
            group.remove(job)
        del self.keys[job_id]
        if not group:
            del self.groups[gkey]
        return job

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(self.jobs.values())

    def ordered(self) -> list[PendingJob]:
        """Every job by the policy's key (O(n log n); for display, not for cycles)."""
        keys = self.keys
        return sorted(self.jobs.values(), key=lambda j: keys[j.id])


class PendingSet:
    """Every pending job, in the queue it names (a queue that is not defined still holds its
    jobs, best-effort ordered: the cycle says the queue is unknown)."""

    def __init__(self, queues: Mapping[str, QueueSpec], jobs: Iterable[PendingJob] = ()):
        self.specs = queues
        self.queues: dict[str, PendingQueue] = {}
        self.jobs: dict[int, PendingJob] = {}
        for job in jobs:
            self.add(job)

    def add(self, job: PendingJob) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} is already queued")
        queue = self.queues.get(job.queue)
        if queue is None:
            spec = self.specs.get(job.queue)
            queue = self.queues[job.queue] = PendingQueue(spec.order if spec is not None else BestEffortFifo())
        queue.add(job)
        self.jobs[job.id] = job

    def remove(self, job_id: int) -> PendingJob | None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        queue = self.queues[job.queue]
        queue.remove(job_id)
        if not queue:
            del self.queues[job.queue]
        return job

    def get(self, job_id: int) -> PendingJob | None:
        return self.jobs.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(self.jobs.values())

    def __bool__(self) -> bool:
        return bool(self.jobs)
