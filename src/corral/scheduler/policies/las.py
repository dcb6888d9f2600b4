"""``las``: least attained service first, in levels, preempting by it; with aging and a
bound on the wait. For busy machines whose long jobs checkpoint.

It needs no run-time estimates: a job's *attained service* -- the GPU-seconds it has run
(seconds for a job without GPUs), counted over the attempts whose work it kept -- tells
short jobs from long ones as they run, which under the heavy-tailed run times of ML
clusters is what lowers the mean completion time (Tiresias, Gu et al., NSDI'19). Jobs are
in *levels* by it: level 0 below ``THRESHOLDS[0]`` GPU-seconds, level 1 below
``THRESHOLDS[1]``, and so on. A job that reaches the next threshold while it runs is
*demoted*; the cycle then runs (the driver asks :meth:`next_change`) and a waiting job of a
lower level may take its place.

**Order** (smaller first). Within a priority level, by the *aged level*

    STEP x level + RATE x (submitted + served)

where ``served`` is the seconds the job ran in the attempts whose work it kept. Seen at
time ``now`` that is the order of ``STEP x level - RATE x waited``, ``waited = now -
submitted - served`` (the time it has spent waiting): a lower level first; within a level
the job that has waited longest; a job of a deeper level catches up with newly submitted
jobs of the level above after waiting ``STEP / RATE`` more than they have. The key does
not change while a job waits (the term ``RATE x now`` is the same for every job).

**Preemption by attained service.** A waiting job may preempt, in its own queue, running
jobs of the same priority whose level *now* is deeper than its own, that would come
after it in the order if they waited again (:meth:`outranks`), and that are
*resumable* (they declare that they save their work when stopped and continue from it,
``resumable: true``; :class:`~corral.scheduler.types.RunningJob`): the victim's work is
kept, it waits again with its attained service, and it is not restarted from scratch.
Jobs that are not resumable are never preempted by service (their work would be lost).
Priority preemption and quota reclaim follow the config's ``preemption`` switch as under
every policy. Preemption by service cannot loop: a job is preempted only by one of a
strictly lower level, and a job's level only grows while it runs, so between two
preemptions of the same pair of jobs one of them has crossed a threshold; there are
finitely many.

**The bound.** As ``sjf-aging`` (:mod:`.sjf_aging`): a job is *due* once ``RATE x (waited
- GRACE) >= STEP x level``, at most ``GRACE + STEP x (levels - 1) / RATE`` after it was
submitted (counting only the time it waited). A due job that cannot start *blocks* its
queue (no job after it in the order starts, so none preempts either), and a job that was
due when it started is never preempted by service (:attr:`RunningJob.protected
<corral.scheduler.types.RunningJob.protected>`). So each job waits at most that long plus
the time to drain what was ahead of it -- bounded, whatever keeps arriving.

The constants were chosen on the contended Philly week samples (docs/benchmarks.md, "A
default for busy machines: ``las``").
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import TYPE_CHECKING

from ...resources import GPU
from .base import QueuePolicy

if TYPE_CHECKING:
    from ..types import PendingJob, RunningJob


def service_units(requests) -> int:
    """What a second of run time counts for: the GPUs asked for, at least 1."""
    return max(requests.get(GPU, 0), 1)


class LeastAttainedService(QueuePolicy):
    name = "las"
    ages = True
    by_service = True

    #: Level boundaries in GPU-seconds of attained service (level 0 below the first).
    THRESHOLDS: tuple[float, ...] = (1800.0, 6 * 3600.0, 36 * 3600.0)
    #: How much one level weighs in the aged key (seconds of ``RATE``-scaled wait).
    STEP: float = 50000.0
    #: Seconds taken off the aged key per second waited.
    RATE: float = 0.05
    #: The wait every job is allowed before it may hold its queue (seconds).
    GRACE: float = 7 * 86400.0

    @classmethod
    def levels(cls) -> int:
        return len(cls.THRESHOLDS) + 1

    @classmethod
    def max_wait(cls) -> float:
        """How long a job waits at most (counting only its waits) before it is due."""
        return cls.GRACE + cls.STEP * (cls.levels() - 1) / cls.RATE

    def level_of(self, served: float, requests) -> int:
        """The level of a job that has run ``served`` seconds with ``requests``."""
        return bisect_right(self.THRESHOLDS, served * service_units(requests))

    def level(self, job: PendingJob) -> int:
        return self.level_of(job.served, job.requests)

    def running_level(self, job: RunningJob, now: float) -> int:
        return self.level_of(job.served + max(now - job.started_at, 0.0), job.requests)

    def running_aged(self, job: RunningJob, now: float) -> float:
        """The running ``job``'s aged level at ``now``, as if it waited again."""
        served = job.served + max(now - job.started_at, 0.0)
        return self.STEP * self.level_of(served, job.requests) + self.RATE * (job.submitted + served)

    def outranks(self, job: PendingJob, running: RunningJob, now: float) -> bool:
        """Whether the waiting ``job`` may preempt ``running`` by attained service: the
        same priority, a deeper level now, and behind ``job`` in the queue's order now."""
        return (running.priority == job.priority and self.running_level(running, now) > self.level(job)
                and self.running_aged(running, now) > self.aged(job))

    def next_demotion(self, job: RunningJob, now: float) -> float | None:
        """When the running ``job`` next crosses a threshold after ``now`` (None: it is at
        the last level)."""
        units = service_units(job.requests)
        for threshold in self.THRESHOLDS[self.running_level(job, now):]:
            at = job.started_at + threshold / units - job.served
            if at > now:
                return at
        return None

    def aged(self, job: PendingJob) -> float:
        served = job.served if math.isfinite(job.served) else 0.0
        return self.STEP * self.level(job) + self.RATE * (job.submitted + served)

    def key(self, job: PendingJob) -> tuple:
        return (-job.priority, self.aged(job), job.seq)

    def due(self, job: PendingJob, now: float) -> bool:
        """The job has waited long enough to hold its queue:
        ``RATE x (waited - GRACE) >= STEP x level``."""
        return self.aged(job) <= self.RATE * (now - self.GRACE)

    def blocks(self, job: PendingJob, now: float) -> bool:
        return self.due(job, now)

    def due_at(self, job: PendingJob) -> float:
        """When the waiting ``job`` falls due (it blocks from then on)."""
        return self.aged(job) / self.RATE + self.GRACE
