"""``best-effort-fifo`` (the default): priority, then submit order; best effort.

A job that does not fit waits and later jobs that fit may start (Kueue's
BestEffortFIFO, Kubernetes' default behaviour). Large jobs can wait long behind a stream
of small ones; backfill reservations (``backfill: true``) or fair share address that.
"""

from __future__ import annotations

from .base import QueuePolicy


class BestEffortFifo(QueuePolicy):
    name = "best-effort-fifo"
