"""EASY backfill (Lifka 1995; Slurm's backfill with one reservation), FIFO order.

The daemon's multi-tenant cycle with one queue of ordering ``priority`` (every trace job
has priority 0, so the order is submit order) and ``backfill=True``. The first job in
that order that does not fit -- the *head* -- gets a reservation: the earliest time its
node frees enough for it, from the running jobs' expected ends (start + estimate), the
*shadow time*. A later job may start on the head's node only if it ends by the shadow
time by its estimate, or fits in what is left there beyond the head's needs at that
time; on other nodes it starts whenever it fits. So a short job jumps ahead only when it
cannot delay the head. (A ``strict-fifo`` queue would not do: it stops at its first job
that does not start, so nothing would ever backfill.)

Estimates: the requested time when the trace has one (SWF), else the actual duration x
``--estimate-factor`` (1.0 = exact: an oracle, marked as such).
"""

from __future__ import annotations

from .base import TenantPolicy

NAME = "easy-backfill"


def easy_backfill(*, estimate_factor: float = 1.0, half_life: float | None = None) -> TenantPolicy:
    return TenantPolicy(NAME, queue_policy="priority", backfill=True, estimate_factor=estimate_factor,
                        uses_estimates=True)
