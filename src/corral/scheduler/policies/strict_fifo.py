"""``strict-fifo``: priority, then submit order; the first job that cannot start blocks
the jobs behind it in its queue (Kueue's StrictFIFO, Slurm's main scheduler without
backfill). No starvation, lower utilisation. Priority comes first so that a job preempted
for a higher-priority one queues *behind* it, never ahead of it.
"""

from __future__ import annotations

from .base import QueuePolicy


class StrictFifo(QueuePolicy):
    name = "strict-fifo"
    strict = True
