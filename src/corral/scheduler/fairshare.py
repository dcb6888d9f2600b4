"""Dominant-resource fair share (DRF) between users: each user's share.

A user's share is their historical share (decayed past usage, computed by the daemon's
:class:`~corral.daemon.fairuse.FairUsage`) plus their dominant share of what they hold
now: the largest fraction of any one resource of the cluster. The fair-share policy
(:mod:`.policies.fair_share`) orders a queue by it.
"""

from __future__ import annotations

from typing import Mapping


def dominant_share(requests: Mapping[str, int], capacity: Mapping[str, int]) -> float:
    return max((amount / capacity[name] for name, amount in requests.items() if capacity.get(name)), default=0.0)


class UserShares:
    """Each user's current allocation, and their share with the historical part."""

    def __init__(self, capacity: Mapping[str, int], historical: Mapping[str, float] | None = None):
        self.capacity = {r: v for r, v in capacity.items() if v > 0}
        self.historical: Mapping[str, float] = historical or {}
        self.allocated: dict[str, dict[str, int]] = {}
        self._current: dict[str, float] = {}

    def add(self, user: str, requests: Mapping[str, int], sign: int = 1) -> None:
        alloc = self.allocated.setdefault(user, {})
        for r, x in requests.items():
            alloc[r] = alloc.get(r, 0) + sign * x
        self._current[user] = max((alloc.get(r, 0) / c for r, c in self.capacity.items()), default=0.0)

    def remove(self, user: str, requests: Mapping[str, int]) -> None:
        self.add(user, requests, -1)

    def current(self, user: str) -> float:
        """The user's dominant share of what is allocated now (no history)."""
        return self._current.get(user, 0.0)

    def share(self, user: str) -> float:
        return self.historical.get(user, 0.0) + self._current.get(user, 0.0)
