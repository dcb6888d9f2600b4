"""The ordering policy interface: how one queue walks its pending jobs.

A policy orders the jobs *within* a queue; the cycle (:mod:`corral.scheduler.cycle`)
walks every queue's head in turn and decides placement, quota, backfill and preemption
the same way whatever the policy, so every policy combines with backfill and preemption.

* :attr:`QueuePolicy.strict` -- the first job that cannot start blocks the rest of its
  queue (Kueue's StrictFIFO); otherwise later jobs that fit may start (BestEffortFIFO).
* :meth:`QueuePolicy.key` -- the sort key within a queue, smaller first; total and
  deterministic (the cycle breaks ties by job id).
* :attr:`QueuePolicy.by_user` -- the queue takes turns between users: its next job is the
  head (by :meth:`key`) of the user with the lowest share (fair share, :mod:`.fair_share`).
* :attr:`QueuePolicy.uses_estimates` -- the key reads :attr:`PendingJob.estimate
  <corral.scheduler.types.PendingJob.estimate>` (run-time estimates: the job's time limit,
  else what its user's recent jobs took), which the driver fills in.
* :attr:`QueuePolicy.ages` / :meth:`QueuePolicy.blocks` -- a policy that ages its jobs
  (``sjf-aging``) says, per job and time, whether a job that cannot start blocks the
  rest of its queue (a job that has waited long enough); the cycle then does not leave
  out, before its walk, the shapes that fitted nowhere in the last cycle, so that such a
  job is always reached. Such jobs must come first in the policy's order.
* :attr:`QueuePolicy.by_service` -- the policy ranks jobs by their attained service, in
  levels, and a waiting job may preempt resumable running jobs of a deeper level
  (``las``, :mod:`.las`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..types import PendingJob


class QueuePolicy:
    #: Name used in the config file and on the command line.
    name: ClassVar[str] = ""
    strict: ClassVar[bool] = False
    by_user: ClassVar[bool] = False
    uses_estimates: ClassVar[bool] = False
    #: :meth:`blocks` depends on the job and the time, not on :attr:`strict` alone.
    ages: ClassVar[bool] = False
    #: Estimates by the user's recent jobs *of the same GPU count* (:mod:`..history`).
    estimates_by_gpus: ClassVar[bool] = False
    #: Orders by attained service and preempts resumable jobs by it (``las``): the
    #: policy then has ``level``, ``running_level`` and ``next_demotion``.
    by_service: ClassVar[bool] = False

    def blocks(self, job: PendingJob, now: float) -> bool:
        """Whether ``job``, visited at ``now`` and unable to start, holds back the rest of
        its queue (the cycle asks only policies that :attr:`ages`; else :attr:`strict`)."""
        return self.strict

    def key(self, job: PendingJob) -> tuple:
        """Sort key within the queue (smaller first): priority, then submit order."""
        return (-job.priority, job.seq)

    def __repr__(self) -> str:
        return f"<policy {self.name}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))
