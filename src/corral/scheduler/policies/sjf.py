"""Shortest job first (non-preemptive), by expected run time.

With the trace's real durations (as the simulator gives them) this is the textbook
reference policy: it needs *oracle* knowledge of run times, so it is a yardstick, not
something to deploy. In the daemon the estimate is the job's time limit; jobs without
one go after all jobs with one. Best-effort: a job that does not fit lets the next
shortest one start.
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
