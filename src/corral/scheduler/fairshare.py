"""Ordering within a queue, and dominant-resource fair share (DRF) between users.

A queue walks its pending jobs in one of three orders (:data:`~.types.QUEUE_POLICIES`):

* ``strict-fifo`` -- ``(-priority, seq)`` like the core's ``strict-fifo`` policy (submit
  order among equal priorities); the first job that cannot start blocks the rest of
  *that* queue (the caller enforces the blocking). Priority comes first so that a job
  preempted for a higher-priority one queues *behind* it, never ahead of it;
* ``priority`` -- ``(-priority, seq)``, best effort: a job that cannot start does not
  hold back later ones;
* ``fair-share`` -- DRF across users: the next job is the head (by ``(-priority, seq)``)
  of the user with the lowest dominant share, where a user's share is

      historical share (decayed usage, computed by the daemon) +
      max over resources of (the user's current allocation / machine capacity)

  The current allocation counts the user's running jobs in every queue plus the jobs
  placed earlier in this cycle (*progressive filling*: after a user's job is placed
  their share grows, so the next pick may be another user). Ties: ``(-priority, seq)``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .types import PendingJob


def priority_key(job: PendingJob) -> tuple:
    return (-job.priority, job.seq, job.id)


class UserShares:
    """Each user's dominant share: the historical part plus the current allocation."""

    def __init__(self, capacity: Mapping[str, int], historical: Mapping[str, float] | None = None):
        self.capacity = {r: v for r, v in capacity.items() if v > 0}
        self.historical = dict(historical or {})
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


class QueueOrder:
    """One queue's pending jobs, handed out one at a time in the queue's order."""

    def __init__(self, policy: str, jobs: Iterable[PendingJob], shares: UserShares | None = None):
        self.policy = policy
        self.shares = shares
        self._jobs: list[PendingJob] = []
        self._by_user: dict[str, list[PendingJob]] = {}
        if policy == "fair-share":
            for job in jobs:
                self._by_user.setdefault(job.user, []).append(job)
            for lst in self._by_user.values():
                lst.sort(key=priority_key, reverse=True)      # pop() from the end
        else:
            self._jobs = sorted(jobs, key=priority_key, reverse=True)

    def drop(self) -> None:
        """Forget every job left (a caller that needs no reason for them)."""
        self._jobs, self._by_user = [], {}

    def head(self) -> PendingJob | None:
        """The job the queue would offer next (not removed)."""
        if self.policy != "fair-share":
            return self._jobs[-1] if self._jobs else None
        best, best_key = None, None
        shares = self.shares
        for user, lst in self._by_user.items():
            job = lst[-1]
            key = (shares.share(user) if shares else 0.0, -job.priority, job.seq, job.id)
            if best_key is None or key < best_key:
                best, best_key = job, key
        return best

    def pop(self, job: PendingJob) -> None:
        """Remove ``job``, which must be the current :meth:`head`."""
        if self.policy != "fair-share":
            self._jobs.pop()
            return
        lst = self._by_user[job.user]
        lst.pop()
        if not lst:
            del self._by_user[job.user]

    def __bool__(self) -> bool:
        return bool(self._jobs) if self.policy != "fair-share" else bool(self._by_user)
