"""``sjf``: shortest expected run time first (non-preemptive), best effort.

The expected run time is :attr:`PendingJob.estimate <corral.scheduler.types.PendingJob.estimate>`:
in the daemon the job's time limit, else the median run time of its user's recent
successful jobs (:mod:`corral.scheduler.history`); jobs with neither go after every job
with one. ``corral sim --policy sjf`` gives it the trace's real durations (an oracle
reference), ``sjf-history`` the daemon's estimates. A job that does not fit lets the next
shortest one start; short jobs can keep a long one waiting while they keep coming.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import QueuePolicy

if TYPE_CHECKING:
    from ..types import PendingJob


class ShortestJobFirst(QueuePolicy):
    name = "sjf"
    uses_estimates = True

    def key(self, job: PendingJob) -> tuple:
        estimate = math.inf if job.estimate is None else job.estimate
        return (estimate, -job.priority, job.seq)
