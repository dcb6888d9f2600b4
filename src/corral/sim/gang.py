"""Multi-node gang placement for jobs larger than any one node (simulator only).

A job whose GPU request ``G`` exceeds the GPU count of the largest node can never be
placed by the daemon's core (which places a job on one node). The simulator places
such a *gang job* all-or-nothing across whole nodes:

* first choice: ``k = ceil(G / gpus of the largest node)`` *completely free* nodes (no
  GPU, CPU or memory in use), the first ``k`` in node order;
* otherwise the fewest nodes whose free GPUs add up to ``G``, the earliest combination in
  node order (lexicographic); each chosen node gives all its free GPUs except the last,
  which gives the rest;
* the job's other requests (CPU, memory, ...) are split evenly over the ``k`` pieces
  (the remainder going to the first pieces); each piece must fit its node's free
  capacity.

The pieces are ordinary :class:`~corral.job.Allocation` s (chosen with the core's
:func:`~corral.scheduler.placement.place_on`), assumed in the snapshot, held until the
job ends. Jobs larger than the whole cluster never fit (:func:`gang_infeasible`).
Deterministic: node order only.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..capacity.node import Node
from ..job import Allocation
from ..resources import GPU, Resources
from ..scheduler import Snapshot
from ..scheduler.placement import place_on

__all__ = ["gang_infeasible", "is_gang", "largest_node_gpus", "place_gang"]


def largest_node_gpus(nodes: Sequence[Node]) -> int:
    return max((n.allocatable.get(GPU, 0) for n in nodes), default=0)


def is_gang(requests, largest: int) -> bool:
    return requests.get(GPU, 0) > largest


def _shares(requests, k: int) -> list[dict[str, int]]:
    """The non-GPU requests split evenly in ``k`` parts (remainders to the first parts)."""
    parts: list[dict[str, int]] = [{} for _ in range(k)]
    for name, amount in requests.items():
        if name == GPU:
            continue
        q, r = divmod(amount, k)
        for i in range(k):
            parts[i][name] = q + (1 if i < r else 0)
    return parts


def _try(states, counts, requests) -> list[Allocation] | None:
    shares = _shares(requests, len(states))
    allocs: list[Allocation] = []
    for state, g, share in zip(states, counts, shares):
        piece = Resources({**share, GPU: g})
        alloc = place_on(state, piece)
        if alloc is None:
            return None
        allocs.append(alloc)
    return allocs


def _fits_share(state, requests, k: int) -> bool:
    for name, amount in requests.items():
        if name != GPU and -(-amount // k) > state.free(name):
            return False
    return True


def place_gang(snapshot: Snapshot, requests) -> list[Allocation] | None:
    """The pieces of a gang placement of ``requests`` on ``snapshot`` now, or None.
    Does not change the snapshot (the caller assumes the pieces)."""
    need = requests.get(GPU, 0)
    states = snapshot.ordered
    largest = max((len(s.node.gpus) for s in states), default=0)
    if need <= 0 or largest <= 0:
        return None
    free = [len(s.free_gpus) for s in states]
    if sum(free) < need:
        return None
    k0 = -(-need // largest)
    # 1. k0 completely free nodes, first in node order.
    whole = [s for s in states if len(s.free_gpus) == len(s.node.gpus) and not any(s.used.values())
             and _fits_share(s, requests, k0)]
    chosen, got = [], 0
    for s in whole:
        if got >= need or len(chosen) == k0:
            break
        chosen.append(s)
        got += len(s.free_gpus)
    if got >= need and len(chosen) <= k0:
        allocs = _try(chosen, _counts(chosen, need), requests)
        if allocs is not None:
            return allocs
    # 2. the fewest nodes whose free GPUs add up, earliest in node order.
    for k in range(max(k0, 1), len(states) + 1):
        cand = [i for i, s in enumerate(states) if free[i] > 0 and _fits_share(s, requests, k)]
        if len(cand) < k:
            continue                    # more nodes make smaller shares: keep looking
        if sum(sorted((free[i] for i in cand), reverse=True)[:k]) < need:
            continue
        picked = _lexicographic(cand, free, k, need)
        if picked is None:
            continue
        chosen = [states[i] for i in picked]
        allocs = _try(chosen, _counts(chosen, need), requests)
        if allocs is not None:
            return allocs
    return None


def _counts(chosen, need: int) -> list[int]:
    counts, left = [], need
    for s in chosen:
        take = min(len(s.free_gpus), left)
        counts.append(take)
        left -= take
    return counts


def _lexicographic(cand: list[int], free: list[int], k: int, need: int) -> list[int] | None:
    """The earliest (in node order) ``k`` of ``cand`` whose free GPUs sum to >= ``need``."""
    picked: list[int] = []
    left = need
    for pos, i in enumerate(cand):
        slots = k - len(picked)
        if slots == 0:
            break
        rest = sorted((free[j] for j in cand[pos + 1:]), reverse=True)[:slots - 1]
        if free[i] + sum(rest) >= left:
            picked.append(i)
            left -= free[i]
    return picked if left <= 0 else None


def gang_infeasible(nodes: Sequence[Node], requests) -> str | None:
    """Why a gang job can never be placed on ``nodes`` (even all free), or None."""
    total = sum(n.allocatable.get(GPU, 0) for n in nodes)
    need = requests.get(GPU, 0)
    if need > total:
        return f"insufficient {GPU}: job requests {need}, the whole cluster has {total}"
    if place_gang(Snapshot(nodes, {}), requests) is None:
        return f"no combination of nodes holds this job's requests split per node (requests {need} {GPU})"
    return None


class GangPlacement:
    """A gang job's placement: its pieces, one allocation per node."""

    __slots__ = ("allocations", "job_id")

    def __init__(self, job_id: int, allocations: Sequence[Allocation]):
        self.job_id = job_id
        self.allocations = tuple(allocations)
