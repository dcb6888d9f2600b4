"""Simulator policies that run the daemon's multi-tenant cycle.

:class:`TenantPolicy` describes how the simulator drives
:func:`corral.scheduler.tenancy.schedule_tenants` -- the cycle the daemon runs when it
has queues, fair share or backfill -- for one policy: the one queue every job goes to
(``default``, with the queue ordering ``queue_policy`` and no quota), whether the cycle
backfills (EASY), the run-time estimate the scheduler is given, and the half-life of the
fair-share history. The cycle never preempts here (the simulator is non-preemptive).

Run-time estimates (what backfill relies on, :attr:`PendingJob.estimate
<corral.scheduler.types.PendingJob.estimate>`): a job's requested time when the trace
records one (SWF's requested time, a corral job's time limit), otherwise its actual
duration x ``estimate_factor``. The second case reads the future (the real run time), so
a policy that uses estimates built that way needs *oracle* knowledge: see
:meth:`TenantPolicy.oracle_for`. Jobs still run for their real duration whatever the
estimate says (as with a time limit that is not enforced); a running job past its
estimate counts as ending "now" for the reservation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from ...errors import ValidationError

#: The queue every simulated job goes to.
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class TenantPolicy:
    """A policy the simulator runs through :func:`~corral.scheduler.tenancy.schedule_tenants`."""

    name: str
    #: Ordering within the queue: ``strict-fifo``, ``priority`` or ``fair-share``.
    queue_policy: str
    #: EASY backfill (:attr:`TenantContext.backfill <corral.scheduler.tenancy.TenantContext.backfill>`).
    backfill: bool = False
    #: Estimate = actual duration x this factor, for jobs without a requested time.
    estimate_factor: float = 1.0
    #: Half-life of the fair-share history in seconds (:class:`corral.daemon.fairuse.FairUsage`);
    #: None: no history (current allocation only).
    half_life: float | None = None
    #: Whether the scheduler is given run-time estimates at all. When False a job's
    #: estimate is its requested time only (None without one), as in the daemon.
    uses_estimates: bool = False
    #: Queues besides ``default`` (:class:`~corral.scheduler.types.QueueSpec` s, e.g. a
    #: daemon config's, with quotas): a job goes to the queue named after its trace user
    #: (Philly's virtual cluster, ...) when there is one, else to ``default``.
    queues: tuple = ()
    #: Whether the cycle may preempt (priority, quota reclaim); victims stop at once and
    #: are requeued, their work lost (the daemon restarts a requeued job).
    preempt: bool = False

    def __post_init__(self) -> None:
        k = self.estimate_factor
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
            raise ValidationError("estimate factor", k, "expected a number above 0, e.g. 1.0 or 2")
        h = self.half_life
        if h is not None and (isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h)
                              or h <= 0):
            raise ValidationError("half-life", h, "expected a positive number of seconds, e.g. 7d")

    def estimate(self, job) -> float | None:
        """The run time the scheduler is told for ``job`` (see the module docstring)."""
        limit = getattr(job, "time_limit", None)
        if limit is not None and limit > 0:
            return float(limit)
        if not self.uses_estimates:
            return None
        return float(job.duration) * self.estimate_factor

    def oracle_for(self, jobs: Iterable) -> bool:
        """True when some job's estimate is derived from its actual duration."""
        if not self.uses_estimates:
            return False
        return any(not (getattr(j, "time_limit", None) or 0) > 0 for j in jobs)

    def queue_specs(self) -> dict:
        """Queue name -> QueueSpec: ``queues`` plus ``default`` (ordering ``queue_policy``,
        no quota) unless ``queues`` defines it, as the daemon's manager does."""
        from ...scheduler.types import QueueSpec

        specs = {q.name: q for q in self.queues}
        if DEFAULT_QUEUE not in specs:
            specs[DEFAULT_QUEUE] = QueueSpec(DEFAULT_QUEUE, policy=self.queue_policy, backfill=self.backfill)
        return specs

    def queue_for(self, job) -> str:
        """The queue a trace job goes to: the one named after its user, else ``default``."""
        user = getattr(job, "user", "")
        if user and any(q.name == user for q in self.queues):
            return user
        return DEFAULT_QUEUE
