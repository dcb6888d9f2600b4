"""The scheduler core: pure, deterministic, no I/O and no clock.

Input: nodes, the allocations of running jobs, the pending jobs and a policy.
Output: decisions -- placements (job -> allocation) and, for every job left waiting, a
typed reason with its numbers. The daemon applies the decisions (store + executor);
the simulator drives the very same function in virtual time.

A cycle runs in numbered phases (after Kueue's ``scheduler.go``):

1. snapshot  -- free capacity per node from allocatable minus current allocations;
2. order     -- the policy's sort key over pending jobs;
3. nominate  -- walk jobs in order; each one is placed on the best node where it fits,
                and the placement is *assumed* in the snapshot so later jobs see it;
4. explain   -- every job not placed gets a reason: resources short (with numbers),
                or waiting behind a blocked job when the policy is strict.

Jobs with the same shape (requests) fit or fail together within one cycle, because
free capacity only shrinks while a cycle runs; so once one job of a shape fails, the
rest of that shape wait for the same reason without being tried again. With the queue
kept grouped by shape (:class:`~corral.scheduler.queue.PendingQueue`), a cycle costs
about the number of distinct shapes plus the placements it makes, not the queue length.
Reasons are given per shape; :attr:`CycleResult.waiting` expands them per job.
"""

from __future__ import annotations

import heapq
from typing import Iterable, Mapping, Sequence

from ..capacity.node import Node
from ..job import Allocation, Reason
from ..resources import GPU, Resources, format_quantity, sort_key
from .placement import node_score, place_on
from .policies import Policy
from .snapshot import NodeState, Snapshot
from .queue import PendingQueue
from .types import CycleResult, PendingJob, Placement, Shortfall, Waiting


def schedule(nodes: Sequence[Node], allocations: Mapping[int, Allocation],
             pending: "PendingQueue | Iterable[PendingJob]", policy: Policy) -> CycleResult:
    """Run one scheduling cycle. Deterministic: same inputs, same decisions."""
    snapshot = Snapshot(nodes, allocations)                          # phase 1
    return schedule_on(snapshot, pending, policy)


def schedule_on(snapshot: Snapshot, pending: "PendingQueue | Iterable[PendingJob]", policy: Policy) -> CycleResult:
    """Like :func:`schedule` on a prepared snapshot, which it updates in place.

    ``pending`` is a :class:`PendingQueue` kept by the caller across cycles (cheap) or
    any iterable of jobs (grouped here). The queue itself is not modified.
    """
    queue = pending if isinstance(pending, PendingQueue) else PendingQueue(policy.order_key, pending)
    result = CycleResult(queue=queue)
    states = snapshot.ordered
    key = policy.order_key
    # The most of each resource free on any one node (computed when first needed). Free
    # capacity only shrinks during a cycle, so it stays an upper bound: a shape that
    # exceeds it fits nowhere, and is failed without looking at every node.
    most_free: dict[str, int] = {}

    def exceeds_every_node(requests: Resources) -> bool:
        if not most_free:
            for state in states:
                for name, amount in state.allocatable.items():
                    free = amount - state.used.get(name, 0)
                    if free > most_free.get(name, -1):
                        most_free[name] = free
        return any(amount > most_free.get(name, 0) for name, amount in requests.items())

    # Phase 2: order. Each shape's group is already sorted; a heap merges the groups'
    # heads so jobs are visited in the policy's global order.
    groups = queue.groups
    heap: list[tuple[tuple, int, Resources]] = [(key(g[0]), g[0].id, shape) for shape, g in groups.items()]
    heapq.heapify(heap)
    cursors: dict[Resources, int] = {}

    blocked_by: int | None = None
    failed: list[Resources] = []
    retry_only_gained = snapshot.failed_shapes
    while heap:
        _, _, shape = heapq.heappop(heap)
        if blocked_by is not None:                                   # strict: all wait
            result._known[shape] = Waiting(Reason.PRIORITY, behind=blocked_by)
            continue
        jobs = groups[shape]
        i = cursors.get(shape, 0)
        job = jobs[i]
        requests = job.requests                                      # phase 3
        gpus = requests.get(GPU, 0)
        if shape in retry_only_gained:
            alloc = _nominate(snapshot.gained_nodes(gpus), requests)
        elif exceeds_every_node(requests):
            alloc = None
        else:
            alloc = _nominate(snapshot.with_free_gpus(gpus), requests)
        if alloc is not None:
            snapshot.assume(alloc)
            result.placements.append(Placement(job.id, alloc))
            cursors[shape] = i + 1
            if i + 1 < len(jobs):
                nxt = jobs[i + 1]
                heapq.heappush(heap, (key(nxt), nxt.id, shape))
            continue
        failed.append(shape)
        if policy.strict:
            blocked_by = job.id

    snapshot.failed_shapes = set(failed)
    snapshot.gained = set()

    # Phase 4: explain against the capacity left after this cycle's placements -- on
    # demand, since a simulator has no one to tell. Callers that want reasons read
    # ``result.waiting_shapes`` before changing the snapshot again.
    if failed:
        result._explain = lambda: {shape: explain(states, shape) for shape in failed}
    return result


def _nominate(states: list[NodeState], requests: Resources) -> Allocation | None:
    """The allocation on the best-fitting node (see :func:`node_score`), or None.

    Scores are cheap and device choice is not, so devices are chosen only on the winner
    (and, should its devices not line up, on the next best)."""
    candidates = [(node_score(state, requests), i) for i, state in enumerate(states) if state.fits(requests)]
    if not candidates:
        return None
    candidates.sort()
    for _, i in candidates:
        alloc = place_on(states[i], requests)
        if alloc is not None:
            return alloc
    return None


def explain(states: list[NodeState], requests: Resources) -> Waiting:
    """Why ``requests`` does not fit now: the resources short on the closest node, or
    ``Unschedulable`` when no node could ever hold it (a node shrank after submit)."""
    if states and all(not requests.fits_in(s.allocatable) for s in states):
        lines = infeasible([s.node for s in states], requests)
        return Waiting(Reason.UNSCHEDULABLE, nodes=len(states), lines=tuple(lines))
    best: tuple[Shortfall, ...] | None = None
    for state in states:
        short = tuple(
            Shortfall(name, amount, max(state.free(name), 0), state.allocatable.get(name, 0))
            for name, amount in requests.sorted_items()
            if amount > state.free(name)
        )
        if not short:
            # Enough in aggregate but not as devices/cores (should not happen when the
            # accounting is consistent); report the device view.
            short = _device_shortfalls(state, requests)
        if best is None or len(short) < len(best):
            best = short
    return Waiting(Reason.INSUFFICIENT_RESOURCES, shortfalls=best or (), nodes=len(states))


def _device_shortfalls(state: NodeState, requests: Resources) -> tuple[Shortfall, ...]:
    from ..resources import CPU, GPU
    from .snapshot import needs_whole_cores

    out = []
    if requests.get(GPU, 0) > len(state.free_gpus):
        out.append(Shortfall(GPU, requests[GPU], len(state.free_gpus), len(state.node.gpus)))
    cores = needs_whole_cores(requests)
    if cores > len(state.free_cores):
        out.append(Shortfall(CPU, requests[CPU], 1000 * len(state.free_cores), 1000 * len(state.node.cores)))
    return tuple(out)


def infeasible(nodes: Sequence[Node], requests: Resources) -> list[str]:
    """Lines explaining why ``requests`` can never fit (empty when some node could hold it).

    "Could ever fit" is the node's allocatable amount, ignoring what is in use now (Ray's
    feasible/available split): ``insufficient cpu: job requests 64, node has 2 allocatable``.
    """
    if not nodes:
        return ["no nodes: the daemon has no capacity to schedule on"]
    best: list[str] | None = None
    for node in nodes:
        alloc = node.allocatable
        lines = []
        for name, amount in sorted(requests.items(), key=lambda kv: sort_key(kv[0])):
            have = alloc.get(name, 0)
            if amount > have:
                q = lambda v: format_quantity(name, v)  # noqa: E731
                where = "node has" if len(nodes) == 1 else f"node {node.name} has"
                lines.append(f"insufficient {name}: job requests {q(amount)}, {where} {q(have)} allocatable")
        if not lines:
            return []
        if best is None or len(lines) < len(best):
            best = lines
    return best or []
