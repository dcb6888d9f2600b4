"""Queue quotas: nominal shares, lending and borrowing (Kueue's ClusterQueue rule, with
every queue in one cohort that is the whole machine).

Per queue ``q`` and resource ``r`` that the queue's quota names (a queue without a
``nominal`` names every resource the machine has, with the machine's total):

* ``N`` = nominal quota, ``U`` = usage (sum of the requests of its running jobs and of
  the jobs placed earlier in this cycle);
* ``lendable = min(lending_limit, N)`` (all of ``N`` without a lending limit) and
  ``guaranteed = N - lendable``: the part of its quota no other queue can ever use;
* the cohort's *pool* is the sum of every queue's lendable part, and each queue draws
  ``max(0, U - guaranteed)`` from it (its own lendable part counts as drawn from the
  pool too, so a queue "borrows back" what it lends when it uses it);
* a request ``x`` of queue ``q`` is admitted when, for every resource it names,

      x <= max(0, guaranteed - U) + (pool - sum of every queue's draw)
      U + x <= N + borrowing_limit          (no bound without a borrowing limit)

So a queue can use up to its nominal quota as long as the part it lends is not
borrowed by others (if it is, preemption may *reclaim* it: see :mod:`.preemption`),
and beyond its nominal only what other queues lend and do not use, never more than its
borrowing limit. A queue is *borrowing* a resource when ``U > N``. Resources a quota
does not name are not limited by quota; physical capacity (the nodes) is checked
separately by placement.

A queue without a ``nominal`` (the whole machine) lends everything and draws from the
pool like the others, but its own jobs are not checked against quota: its nominal is
the machine, so the nodes are the only limit (and the reason its jobs wait names the
nodes, not a quota). It is never borrowing, and may reclaim what others borrow.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..reasons import QuotaShortfall, UserLimit, UserLimitKind
from ..resources import GPU
from .queues import QueueSpec


class QuotaState:
    """Quota bookkeeping for one cycle: usage per queue, the cohort pool and checks.

    Cheap to update (``add``/``remove`` are O(resources)) and to copy (preemption
    planning tries usage without some victims on a copy)."""

    def __init__(self, queues: Mapping[str, QueueSpec], capacity: Mapping[str, int]):
        self.queues = queues
        self.nominal: dict[str, dict[str, int]] = {}
        self.guaranteed: dict[str, dict[str, int]] = {}
        self.ceiling: dict[str, dict[str, int]] = {}         # N + borrowing limit, where bounded
        self.pool: dict[str, int] = {}
        self.whole: set[str] = set()                         # queues without a nominal
        for name, spec in queues.items():
            if spec.nominal is None:
                self.whole.add(name)
            if spec.nominal is None:
                nominal = {r: v for r, v in capacity.items() if v > 0}
            else:
                nominal = {r: spec.nominal.get(r, 0) for r in spec.nominal}
            self.nominal[name] = nominal
            guaranteed, ceiling = {}, {}
            for r, n in nominal.items():
                lend = n
                if spec.lending_limit is not None and r in spec.lending_limit:
                    lend = min(spec.lending_limit[r], n)
                guaranteed[r] = n - lend
                self.pool[r] = self.pool.get(r, 0) + lend
                if spec.borrowing_limit is not None and r in spec.borrowing_limit:
                    ceiling[r] = n + spec.borrowing_limit[r]
            self.guaranteed[name] = guaranteed
            self.ceiling[name] = ceiling
        self.usage: dict[str, dict[str, int]] = {name: {} for name in queues}
        self.drawn: dict[str, int] = {}                     # pool usage per resource
        #: False when no queue has a nominal quota: nothing to check, nothing to keep.
        self.active = any(spec.nominal is not None for spec in queues.values())

    def copy(self) -> "QuotaState":
        new = object.__new__(QuotaState)
        new.queues, new.nominal, new.guaranteed = self.queues, self.nominal, self.guaranteed
        new.ceiling, new.pool, new.whole, new.active = self.ceiling, self.pool, self.whole, self.active
        new.usage = {q: dict(u) for q, u in self.usage.items()}
        new.drawn = dict(self.drawn)
        return new

    # -- bookkeeping ----------------------------------------------------------------
    def add(self, queue: str, requests: Mapping[str, int], sign: int = 1) -> None:
        usage = self.usage.get(queue)
        if usage is None:                       # a queue that is not defined: unmanaged
            usage = self.usage[queue] = {}
        nominal = self.nominal.get(queue, {})
        guaranteed = self.guaranteed.get(queue, {})
        for r, x in requests.items():
            before = usage.get(r, 0)
            after = before + sign * x
            usage[r] = after
            if r in nominal:
                g = guaranteed[r]
                delta = max(0, after - g) - max(0, before - g)
                if delta:
                    self.drawn[r] = self.drawn.get(r, 0) + delta

    def remove(self, queue: str, requests: Mapping[str, int]) -> None:
        self.add(queue, requests, -1)

    # -- questions ------------------------------------------------------------------
    def available(self, queue: str, resource: str) -> int | None:
        """How much more of ``resource`` the queue may admit now (None: not limited)."""
        nominal = self.nominal.get(queue)
        if nominal is None or resource not in nominal:
            return None
        used = self.usage[queue].get(resource, 0)
        free_pool = self.pool.get(resource, 0) - self.drawn.get(resource, 0)
        avail = max(0, self.guaranteed[queue][resource] - used) + max(0, free_pool)
        ceiling = self.ceiling[queue].get(resource)
        if ceiling is not None:
            avail = min(avail, ceiling - used)
        return max(0, avail)

    def shortfalls(self, queue: str, requests: Mapping[str, int]) -> tuple[QuotaShortfall, ...]:
        """The resources over quota if ``requests`` were admitted to ``queue`` (empty: fits)."""
        nominal = self.nominal.get(queue)
        if nominal is None or queue in self.whole:
            return ()
        out = []
        for r, x in sorted(requests.items()):
            if x <= 0 or r not in nominal:
                continue
            avail = self.available(queue, r)
            if avail is not None and x > avail:
                out.append(QuotaShortfall(queue, r, x, self.usage[queue].get(r, 0), nominal[r], avail))
        return tuple(out)

    def fits(self, queue: str, requests: Mapping[str, int]) -> bool:
        return not self.shortfalls(queue, requests)

    def most(self, queue: str, resource: str) -> int | None:
        """The most of ``resource`` the queue could ever hold: its guaranteed part plus
        everything the others lend, within its ceiling (None: not limited by quota)."""
        nominal = self.nominal.get(queue)
        if nominal is None or queue in self.whole or resource not in nominal:
            return None
        most = self.guaranteed[queue][resource] + self.pool.get(resource, 0)
        ceiling = self.ceiling[queue].get(resource)
        return most if ceiling is None else min(most, ceiling)

    def never_fits(self, queue: str, requests: Mapping[str, int]) -> bool:
        """True when no amount of waiting (or reclaiming) could admit ``requests``: more
        than the queue's nominal plus everything the others lend, or its ceiling."""
        for r, x in requests.items():
            most = self.most(queue, r)
            if most is not None and x > most:
                return True
        return False

    def within_nominal(self, queue: str, requests: Mapping[str, int]) -> bool:
        """True when usage plus ``requests`` stays within the queue's nominal quota (no
        borrowing needed)."""
        nominal = self.nominal.get(queue)
        if nominal is None:
            return True
        usage = self.usage[queue]
        return all(usage.get(r, 0) + x <= nominal[r] for r, x in requests.items() if r in nominal)

    def borrows_nothing_with(self, queue: str, requests: Mapping[str, int]) -> bool:
        """True when, with ``requests`` admitted, the queue is within its nominal quota in
        *every* resource -- not only those ``requests`` names: a queue that borrows GPUs
        borrows, whatever a CPU-only job of it asks for."""
        nominal = self.nominal.get(queue)
        if nominal is None:
            return True
        usage = self.usage[queue]
        return all(usage.get(r, 0) + requests.get(r, 0) <= n for r, n in nominal.items())

    def borrowed(self, queue: str) -> dict[str, int]:
        """Per resource, how much the queue uses beyond its nominal quota (only > 0)."""
        nominal = self.nominal.get(queue)
        if nominal is None:
            return {}
        usage = self.usage[queue]
        return {r: usage.get(r, 0) - n for r, n in nominal.items() if usage.get(r, 0) > n}

    def share(self, queue: str) -> float:
        """The queue's dominant share of its nominal quota: max over resources of U / N."""
        nominal = self.nominal.get(queue)
        if not nominal:
            return 0.0
        usage = self.usage[queue]
        best = 0.0
        for r, n in nominal.items():
            u = usage.get(r, 0)
            if u <= 0:
                continue
            s = u / n if n > 0 else float("inf")
            if s > best:
                best = s
        return best


class UserUsage:
    """Per queue and user: GPUs held and jobs running (for ``max_user_gpus`` and
    ``max_user_jobs``). Jobs placed earlier in the cycle count as running."""

    def __init__(self) -> None:
        self.gpus: dict[tuple[str, str], int] = {}
        self.jobs: dict[tuple[str, str], int] = {}

    def add(self, queue: str, user: str, requests: Mapping[str, int], sign: int = 1) -> None:
        key = (queue, user)
        self.gpus[key] = self.gpus.get(key, 0) + sign * requests.get(GPU, 0)
        self.jobs[key] = self.jobs.get(key, 0) + sign

    def remove(self, queue: str, user: str, requests: Mapping[str, int]) -> None:
        self.add(queue, user, requests, -1)

    def violation(self, spec: QueueSpec | None, queue: str, user: str, requests: Mapping[str, int],
                  removed: Iterable[tuple[str, str, Mapping[str, int]]] = ()) -> UserLimit | None:
        """The limit starting a job with ``requests`` would break (None: within limits).
        ``removed``: (queue, user, requests) of running jobs to leave out (victims)."""
        if spec is None or (spec.max_user_gpus is None and spec.max_user_jobs is None):
            return None
        key = (queue, user)
        gpus, jobs = self.gpus.get(key, 0), self.jobs.get(key, 0)
        for q, u, req in removed:
            if (q, u) == key:
                gpus -= req.get(GPU, 0)
                jobs -= 1
        if spec.max_user_jobs is not None and jobs + 1 > spec.max_user_jobs:
            return UserLimit(user=user, queue=queue, limit=UserLimitKind.JOBS, value=spec.max_user_jobs, using=jobs)
        want = requests.get(GPU, 0)
        if spec.max_user_gpus is not None and want > 0 and gpus + want > spec.max_user_gpus:
            return UserLimit(user=user, queue=queue, limit=UserLimitKind.GPUS, value=spec.max_user_gpus, using=gpus)
        return None
