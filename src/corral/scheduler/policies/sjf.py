"""Shortest job first (non-preemptive), by expected run time.

With the trace's real durations (as the simulator's ``sjf`` gives them) this is the
textbook reference policy: it needs *oracle* knowledge of run times, so it is a
yardstick, not something to deploy. In the daemon the estimate is the job's time limit,
else the median run time of its user's recent successful jobs
(:mod:`corral.scheduler.history`; the simulator's ``sjf-history`` does the same); jobs
with neither go after all jobs with one. Best-effort: a job that does not fit lets the
next shortest one start. Short jobs can keep a long one waiting while they keep coming.
"""

from __future__ import annotations

import math

from ..types import PendingJob


class ShortestJobFirst:
    name = "sjf"
    strict = False
    oracle = True

    def order_key(self, job: PendingJob) -> tuple:
        estimate = math.inf if job.estimate is None else job.estimate
        return (estimate, -job.priority, job.seq)
