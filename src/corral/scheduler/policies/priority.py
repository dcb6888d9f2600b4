"""``priority``: the name configs written for queues use for priority-then-submit-order,
best effort -- the same order as ``best-effort-fifo``, kept as its own name."""

from __future__ import annotations

from .best_effort_fifo import BestEffortFifo


class Priority(BestEffortFifo):
    name = "priority"
