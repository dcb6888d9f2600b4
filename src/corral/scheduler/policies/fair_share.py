"""``fair-share``: dominant resource fairness (DRF) between users, with history.

The queue's next job is the head -- by priority, then submit order -- of the user with
the lowest dominant share, where a user's share is

    historical share (decayed past usage, :class:`corral.daemon.fairuse.FairUsage`) +
    max over resources of (the user's current allocation / the cluster's capacity)

The current allocation counts the user's running jobs in every queue plus the jobs
placed earlier in the same cycle (*progressive filling*: after a user's job is placed
their share grows, so the next pick may be another user). Ties: priority, submit order.
Best effort. Preemption inside a fair-share queue only takes the same user's jobs.
"""

from __future__ import annotations

from .base import QueuePolicy


class FairSharePolicy(QueuePolicy):
    name = "fair-share"
    by_user = True
