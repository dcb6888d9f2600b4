"""``sjf-aging``: shortest expected run time first, with aging and a bound on the wait.

For busy machines: it orders like ``sjf`` (run times learned from history, or time
limits) and so puts short jobs first, which is what lowers the mean completion time under
contention, but no job waits without bound. Non-preemptive and best effort: a job that
does not fit lets later ones start, except a job that is *due* (below).

**Order** (smaller first). Within a priority level, by the *aged estimate*

    min(estimate, CAP) + RATE x submitted

where ``estimate`` is :attr:`PendingJob.estimate <corral.scheduler.types.PendingJob.estimate>`:
the job's time limit, else the median run time of its user's recent jobs of the same
GPU count, else of all their jobs (:mod:`corral.scheduler.history`); a job with no
estimate counts as ``CAP``. Seen at time ``now`` the order is that of ``min(estimate,
CAP) - RATE x wait``: every second waited takes ``RATE`` seconds off a job's estimate
(the term ``RATE x now`` is the same for every job, so the key does not change while a
job waits and the queue keeps its sorted groups). Estimates beyond ``CAP`` count as
``CAP``: a week-long job and a two-day one are both simply "long" and go in submit
order among themselves.

**The bound.** A job is *due* once it has waited ``GRACE`` plus its estimate over
``RATE``: ``RATE x (wait - GRACE) >= min(estimate, CAP)`` -- after at most ``MAX_WAIT =
GRACE + CAP / RATE`` (27 days with the constants below; a job with a short estimate
sooner). Being due means an aged estimate of at most ``RATE x (now - GRACE)``, below
that of any job submitted at ``now`` or later: from then on no new job of its priority
goes ahead of it, and since the test is one threshold on the key, the due jobs are
exactly the front of the queue's order (within a priority level). A due job that cannot
start *blocks* its queue (:meth:`blocks`): no job after it in the order starts, so the
GPUs that ending jobs free are not taken by smaller jobs behind it, and it starts once
the (due) jobs ahead of it have started and the running jobs it needs room from have
ended. So a job waits at most ``MAX_WAIT`` plus the time to drain what was ahead of it
when it fell due -- bounded, whatever keeps arriving (tests/unit/test_sjf_aging.py
drives a stream of short jobs past a long one and a wide one). ``GRACE`` keeps short
wide jobs from holding the queue soon after they arrive, which costs utilisation.
Higher priority still goes first, as in every corral policy: the bound is for the jobs
of the highest priority that waits.

The constants were chosen on the contended Philly week samples (docs/benchmarks.md,
"A default for busy machines"): there a slower ``RATE`` or a longer ``GRACE`` changes the
mean little (and loosens the bound), while a faster ``RATE`` (0.1) or a shorter ``GRACE``
(none) moves the order towards FIFO and lengthens the mean JCT by 10-20 %.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import QueuePolicy

if TYPE_CHECKING:
    from ..types import PendingJob


class AgedShortestJobFirst(QueuePolicy):
    name = "sjf-aging"
    uses_estimates = True
    ages = True
    estimates_by_gpus = True

    #: Estimates above this (seconds) count as this; so does an unknown estimate.
    CAP: float = 86400.0
    #: Seconds taken off the estimate per second waited.
    RATE: float = 0.05
    #: The wait every job is allowed before it may hold its queue (seconds).
    GRACE: float = 7 * 86400.0

    @classmethod
    def max_wait(cls) -> float:
        """How long a job waits at most before it is due (and blocks its queue if it
        cannot start); one with a shorter estimate is due sooner."""
        return cls.CAP / cls.RATE + cls.GRACE

    def aged(self, job: PendingJob) -> float:
        estimate = job.estimate
        if estimate is None or not math.isfinite(estimate) or estimate > self.CAP:
            estimate = self.CAP
        return max(estimate, 0.0) + self.RATE * job.submitted

    def key(self, job: PendingJob) -> tuple:
        return (-job.priority, self.aged(job), job.seq)

    def due(self, job: PendingJob, now: float) -> bool:
        """The job has waited long enough to hold its queue:
        ``RATE x (wait - GRACE) >= min(estimate, CAP)``."""
        return self.aged(job) <= self.RATE * (now - self.GRACE)

    def blocks(self, job: PendingJob, now: float) -> bool:
        return self.due(job, now)
