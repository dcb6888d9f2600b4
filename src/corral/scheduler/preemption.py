"""Preemption planning: which running jobs to stop so that a pending job can start.

A pending job ``J`` (queue ``q``) may preempt running jobs on *one* node:

(a) *priority* -- jobs of strictly lower priority. In its own queue always (in a
    fair-share queue, only the same user's jobs: there priority orders a user's own
    jobs, and a victim of a user with a lower share would queue ahead of ``J`` again);
    in other queues only when ``q`` stays within its nominal quota in every resource
    once ``J`` is admitted (a queue that borrows -- anything, not only what ``J`` asks
    for -- does not take from others by priority), and only from a queue that borrows
    or has no quota (a queue within its quota keeps it, as in Kueue: what its jobs
    free would be lent out and then reclaimed, round and round), and only what it
    borrows (as in (b), it stays at or above its nominal);
(b) *reclaim* -- when ``q`` stays so within its nominal quota, jobs
    of other queues that are borrowing, whatever their priority: the victim's queue
    must be over its nominal quota in a resource ``J`` requests and the victim holds,
    and must stay at or above its nominal in every resource it borrows after all the
    victims taken from it are removed.

(c) *service* -- under a policy that ranks by attained service (``las``,
    :mod:`.policies.las`), in its own queue, *resumable* jobs of the same priority whose
    level (attained service) is now deeper than ``J``'s; not a job that was due when it
    started (``RunningJob.protected``). This one does not depend on the ``preemption``
    switch (``priority=False`` turns (a) and (b) off): it is how the policy works.

Non-preemptible jobs and jobs already being stopped are never victims. A job spread over
several nodes (a gang) is never a preemptor; as a victim, its piece on the node counts. The victims
must make ``J`` fit: on the node (with the real placement code, GPUs and cores as
devices), in its queue's quota and within its per-user limits, all computed with the
victims' usage released. If even every eligible victim would not make it fit, nothing
is preempted. Among the sets that do, the fewest victims win, then the lowest highest
priority, then the lowest total priority, then the least work lost (the most recently
started), then the lowest job ids; then the node name. Deterministic.

These rules cannot make preemptions loop; the argument is in docs/design.md
("Preemption: rules, and why it cannot loop").
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

from ..job import Allocation, Piece
from ..reasons import PreemptionKind
from ..resources import CPU, GPU, Resources
from .placement import place_on
from .quota import QuotaState, UserUsage
from .snapshot import NodeState, Snapshot
from .queues import QueueSpec
from .types import PendingJob, Preemption, RunningJob

#: Subsets of victims tried exhaustively per node (fewest first); greedy beyond.
EXHAUSTIVE_BUDGET = 2000


def plan_preemption(snapshot: Snapshot, job: PendingJob, running: Sequence[RunningJob],
                    queues: Mapping[str, QueueSpec], now: float, *, priority: bool = True) -> Preemption | None:
    """The preemption that lets ``job`` start, or None (see the module docstring), with
    quota and user usage taken from ``running``. ``snapshot`` holds the running jobs'
    allocations (it is not modified). The cycle plans with its own bookkeeping instead
    (:func:`plan_on_node`)."""
    quota = QuotaState(queues, snapshot.capacity)
    users = UserUsage()
    by_node: dict[str, list[RunningJob]] = {}
    for r in running:
        quota.add(r.queue, r.requests)
        users.add(r.queue, r.user, r.requests)
        for node in r.allocation.nodes:
            by_node.setdefault(node, []).append(r)
    best = None
    for state in snapshot.ordered:
        name = state.node.name
        if name not in by_node or not job.requests.fits_in(state.allocatable):
            continue
        found = plan_on_node(state, job, by_node[name], queues, quota, users, now, priority=priority)
        if found is not None and (best is None or (found[0], name) < (best[0], best[1].node)):
            best = found
    return None if best is None else best[1]


def plan_on_node(state: NodeState, job: PendingJob, running: list[RunningJob], queues: Mapping[str, QueueSpec],
                 quota: QuotaState, users: UserUsage, now: float, *,
                 priority: bool = True) -> tuple[tuple, Preemption] | None:
    """The best preemption on this node for ``job`` with its rank (fewest victims ...), or
    None. ``running``: the jobs with a piece on this node. ``priority``: preemption by
    priority and quota reclaim are on (the config's ``preemption``)."""
    queue = job.queue
    req = job.requests
    node = state.node.name
    cross = quota.borrows_nothing_with(queue, req)    # in every resource, not only req's
    borrowed: dict[str, dict[str, int]] = {}
    lower: set[int] = set()
    candidates: list[RunningJob] = []
    spec = queues.get(queue)
    own_only = spec is not None and spec.order.by_user
    order = spec.order if spec is not None and spec.order.by_service else None
    levels: dict[int, int] = {}
    for r in running:
        if not r.preemptible or r.stopping_for is not None or r.id == job.id:
            continue
        if r.queue == queue:
            if priority and r.priority < job.priority and not (own_only and r.user != job.user):
                lower.add(r.id)
                candidates.append(r)
            elif order is not None and r.resumable and not r.protected and order.outranks(job, r, now):
                levels[r.id] = order.running_level(r, now)
                candidates.append(r)
            continue
        if not cross or not priority:
            continue
        b = borrowed.get(r.queue)
        if b is None:
            b = borrowed[r.queue] = quota.borrowed(r.queue)
        if r.priority < job.priority and (b or r.queue in quota.whole):
            lower.add(r.id)
            candidates.append(r)
        elif any(req.get(res, 0) > 0 and r.requests.get(res, 0) > 0 for res in b):
            candidates.append(r)
    if not candidates:
        return None
    candidates.sort(key=lambda r: (r.priority, -levels.get(r.id, 0), -r.started_at, -r.id))
    here = {r.id: r.allocation.piece_on(node) for r in candidates}

    def reclaim_ok(victims: Sequence[RunningJob]) -> bool:
        taken: dict[str, dict[str, int]] = {}
        reclaimed: set[str] = set()
        for v in victims:
            t = taken.setdefault(v.queue, {})
            for res, x in v.requests.items():
                t[res] = t.get(res, 0) + x
            if v.queue != queue:
                reclaimed.add(v.queue)
        for q in reclaimed:
            for res, over in borrowed[q].items():
                if taken[q].get(res, 0) > over:       # would go below nominal in it
                    return False
        return True

    def fits(victims: Sequence[RunningJob]) -> Allocation | None:
        free = {res: state.free(res) for res in req}
        for v in victims:
            piece = here[v.id]
            for res in req:
                free[res] += piece.requests.get(res, 0)
        if any(x > free[res] for res, x in req.items()):
            return None
        q = quota.copy()
        for v in victims:
            q.remove(v.queue, v.requests)
        if not q.fits(queue, req):
            return None
        removed = [(v.queue, v.user, v.requests) for v in victims]
        if users.violation(spec, queue, job.user, req, removed) is not None:
            return None
        s = state.copy()
        for v in victims:
            s.forget(here[v.id])
        return place_on(s, req)

    if fits(candidates) is None:             # not even all of them would do
        return None

    def rank(victims: Sequence[RunningJob]) -> tuple:
        prios = [v.priority for v in victims]
        return (len(victims), max(prios), sum(prios), -sum(levels.get(v.id, 0) for v in victims),
                sum(now - v.started_at for v in victims), tuple(sorted(v.id for v in victims)))

    chosen: tuple[tuple, list[RunningJob], Allocation] | None = None
    budget = EXHAUSTIVE_BUDGET
    for k in range(1, len(candidates) + 1):
        if chosen is not None:
            break
        for combo in combinations(candidates, k):
            budget -= 1
            if budget < 0:
                break
            if not reclaim_ok(combo):
                continue
            alloc = fits(combo)
            if alloc is not None:
                key = rank(combo)
                if chosen is None or key < chosen[0]:
                    chosen = (key, list(combo), alloc)
        if budget < 0:
            break
    if chosen is None:
        chosen = _greedy(candidates, reclaim_ok, fits, rank)
    if chosen is None:
        return None
    key, victims, alloc = chosen
    if all(v.id in lower for v in victims):
        kind = PreemptionKind.PRIORITY
    elif all(v.id in lower or v.id in levels for v in victims):
        kind = PreemptionKind.SERVICE
    else:
        kind = PreemptionKind.RECLAIM
    victim_ids = tuple(sorted(v.id for v in victims))
    return key, Preemption(job.id, victim_ids, node, kind, allocation=alloc)


def _greedy(candidates, reclaim_ok, fits, rank):
    """Add victims in candidate order until the job fits, then drop the unneeded."""
    picked: list[RunningJob] = []
    alloc = None
    for c in candidates:
        trial = picked + [c]
        if not reclaim_ok(trial):
            continue
        picked = trial
        alloc = fits(picked)
        if alloc is not None:
            break
    if alloc is None:
        return None
    for c in reversed(list(picked)):
        trial = [v for v in picked if v is not c]
        if trial and reclaim_ok(trial):
            a = fits(trial)
            if a is not None:
                picked, alloc = trial, a
    return rank(picked), picked, alloc


def hold_for(state: NodeState, alloc: Allocation | None, victims: Sequence[RunningJob],
             requests: Resources) -> Allocation | None:
    """What the preemptor's planned allocation ``alloc`` takes from what is free *now* on
    its node (the victims' part frees when they stop): held back from the rest of the
    cycle so that later jobs cannot take it. None when it needs nothing that is free now."""
    if alloc is None:
        return None
    node = state.node.name
    mine = alloc.pieces[0]
    pieces = [p for p in (v.allocation.piece_on(node) for v in victims) if p is not None]
    vg = {g for p in pieces for g in p.gpus}
    vc = {c for p in pieces for c in p.cores}
    gpus = tuple(g for g in mine.gpus if g not in vg and g in state.free_gpus)
    cores = tuple(c for c in mine.cores if c not in vc and c in state.free_cores)
    released: dict[str, int] = {}
    for p in pieces:
        for res, x in p.requests.items():
            released[res] = released.get(res, 0) + x
    amounts: dict[str, int] = {}
    for res, x in requests.items():
        need = max(0, x - released.get(res, 0))
        if res == GPU:
            need = max(need, len(gpus))
        elif res == CPU and cores:
            need = max(need, 1000 * len(cores))
        amounts[res] = min(need, max(0, state.free(res)))
    if not gpus and not cores and not any(amounts.values()):
        return None
    return Allocation(pieces=(Piece(node, Resources(amounts), gpus, cores),))
