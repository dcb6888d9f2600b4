"""Dominant-resource fair share (DRF) between users, with a decayed history.

The daemon's multi-tenant cycle with one queue of ordering ``fair-share``: at each step
the next job is the oldest one of the user with the lowest dominant share, where a
user's share is their historical share plus the dominant share of what they hold now
(progressive filling: each placement raises its user's share within the cycle). The
history is :class:`corral.daemon.fairuse.FairUsage` -- the daemon's own accounting --
advanced in virtual time at every event with the jobs that ran since the last one, with
a half-life (``--half-life``, default 7 days). Users are the trace's user field: the
virtual cluster for Philly, the qos class for Alibaba, the user id for SWF, the ``user``
label for corral's own history.

Best-effort (a job that does not fit lets the next one try), no backfill reservation,
no run-time estimates: deployable as is (the daemon's ``policy: fair-share``).
"""

from __future__ import annotations

from .base import TenantPolicy

NAME = "fair-share"
DEFAULT_HALF_LIFE = 7 * 86400.0


def fair_share(*, estimate_factor: float = 1.0, half_life: float | None = DEFAULT_HALF_LIFE) -> TenantPolicy:
    return TenantPolicy(NAME, queue_policy="fair-share", backfill=False, estimate_factor=estimate_factor,
                        half_life=half_life)
