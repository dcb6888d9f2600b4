"""Past usage per user, decayed: the history part of fair share.

Each user's usage is the integral of the dominant share of what their running jobs
hold (the largest fraction of any one resource of the machine), decayed exponentially
with a half-life: ``u(t + dt) = u(t) * 2^(-dt / h) + share * dt``. Divided by
``h / ln 2`` (the integral of the decay) it becomes an average share between 0 and 1
(more when the user held more than the machine, which cannot happen): what
:class:`~corral.scheduler.CycleContext` takes as ``shares``. Yesterday's heavy user
counts half after one half-life, a quarter after two. What each user holds now -- the
sum of their running jobs' dominant shares -- is kept by the scheduler's
:class:`~corral.scheduler.ClusterState` (``held_share``).
"""

from __future__ import annotations

import math
from typing import Mapping


class FairUsage:
    def __init__(self, half_life: float, usage: Mapping[str, float] | None = None, at: float = 0.0):
        self.half_life = float(half_life)
        self.usage: dict[str, float] = dict(usage or {})
        self.at = at

    def advance(self, now: float, held: Mapping[str, float]) -> None:
        """Account ``[self.at, now]`` with each user holding ``held[user]`` (the sum of the
        dominant shares of their running jobs) all along."""
        dt = now - self.at
        if dt <= 0:
            if self.at == 0.0:
                self.at = now
            return
        decay = 2.0 ** (-dt / self.half_life)
        # What was held during dt, integrated with the decay: share * h/ln2 * (1 - decay).
        weight = self.half_life / math.log(2) * (1.0 - decay)
        for user in set(self.usage) | set(held):
            value = self.usage.get(user, 0.0) * decay + held.get(user, 0.0) * weight
            if value < 1e-9:
                self.usage.pop(user, None)
            else:
                self.usage[user] = value
        self.at = now

    def shares(self) -> dict[str, float]:
        """Average dominant share per user over the decayed past (0..1)."""
        scale = math.log(2) / self.half_life
        return {user: value * scale for user, value in self.usage.items()}

    def to_dict(self) -> dict:
        return {"at": self.at, "usage": self.usage}
