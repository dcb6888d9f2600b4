"""Priority, then submit order -- strict or best-effort.

* ``best-effort-fifo`` (default): walk the queue by (priority desc, submit order); a job
  that fits starts, one that does not waits and later jobs may still start (Kueue's
  BestEffortFIFO, Kubernetes' default behaviour). Large jobs can wait long behind a
  stream of small ones; the fair-sharing/backfill policies address that.
* ``strict-fifo``: the first job that does not fit blocks the jobs behind it (Kueue's
  StrictFIFO, Slurm's main scheduler without backfill): no starvation, lower utilisation.
"""

from __future__ import annotations

from ..types import PendingJob


class BestEffortFifo:
    name = "best-effort-fifo"
    strict = False

    def order_key(self, job: PendingJob) -> tuple:
        return (-job.priority, job.seq)


class StrictFifo(BestEffortFifo):
    name = "strict-fifo"
    strict = True
