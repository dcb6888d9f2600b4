"""Where a job goes: which node, which GPUs, which cores.

GPUs are specific devices (like Slurm's GRES bitmap). A multi-GPU job gets a set of
free GPUs that are close to each other (NVLink, then the shallowest PCIe ancestor NVML
reports); among equally close sets we take the one that breaks the fewest free
NVLink groups, so the next multi-GPU job still finds a close set. Whole CPU requests
get specific cores, lowest ids first; fractional requests share the non-exclusive pool.
"""

from __future__ import annotations

from itertools import combinations

from ..capacity.node import Node, TopologyLevel
from ..job import Allocation
from ..resources import CPU, GPU, Resources
from .snapshot import NodeState, gpu_count, needs_whole_cores

#: Exhaustive search over GPU subsets up to this many candidate sets; greedy beyond.
_EXHAUSTIVE_LIMIT = 5000


def _level(node: Node, a: int, b: int, cache: dict) -> int:
    key = (a, b) if a < b else (b, a)
    level = cache.get(key)
    if level is None:
        level = int(node.gpu(a).level_to(b))
        cache[key] = level
    return level


def _score(node: Node, chosen: tuple[int, ...], free: set[int], cache: dict) -> tuple:
    pairs = [_level(node, a, b, cache) for a, b in combinations(chosen, 2)]
    worst = max(pairs) if pairs else 0
    total = sum(pairs)
    # Free GPUs outside the set that have an NVLink into it: taking this set splits them
    # from their group (fragmentation).
    rest = free.difference(chosen)
    broken = sum(1 for r in rest for c in chosen if _level(node, r, c, cache) <= TopologyLevel.NVLINK)
    return (worst, total, broken, chosen)


def choose_gpus(node: Node, free: set[int], count: int) -> tuple[int, ...] | None:
    """The best ``count`` GPUs among ``free`` on ``node``, or None if too few are free."""
    if count <= 0:
        return ()
    if count > len(free):
        return None
    ordered = sorted(free)
    if count == len(ordered):
        return tuple(ordered)
    cache: dict = {}
    n_sets = _n_choose_k(len(ordered), count)
    if n_sets <= _EXHAUSTIVE_LIMIT:
        candidates = combinations(ordered, count)
    else:
        candidates = (_greedy(node, ordered, seed, count, cache) for seed in ordered)
    best = min(candidates, key=lambda c: _score(node, tuple(sorted(c)), free, cache))
    return tuple(sorted(best))


def _greedy(node: Node, ordered: list[int], seed: int, count: int, cache: dict) -> tuple[int, ...]:
    chosen = [seed]
    while len(chosen) < count:
        nxt = min((g for g in ordered if g not in chosen),
                  key=lambda g: (sum(_level(node, g, c, cache) for c in chosen), g))
        chosen.append(nxt)
    return tuple(sorted(chosen))


def _n_choose_k(n: int, k: int) -> int:
    from math import comb

    return comb(n, k)


def choose_cores(state: NodeState, requests: Resources) -> tuple[int, ...] | None:
    """Exclusive cores for a whole CPU request (lowest ids first); () for fractional."""
    want = needs_whole_cores(requests)
    if want == 0 or not state.node.cores:
        return ()
    if want > len(state.free_cores):
        return None
    return tuple(sorted(state.free_cores)[:want])


def place_on(state: NodeState, requests: Resources) -> Allocation | None:
    """An allocation for ``requests`` on this node, or None when it does not fit now."""
    if not state.fits(requests):
        return None
    gpus = choose_gpus(state.node, state.free_gpus, gpu_count(requests))
    if gpus is None:
        return None
    cores = choose_cores(state, requests)
    if cores is None:
        return None
    return Allocation(node=state.node.name, requests=requests, gpus=gpus, cores=cores)


def node_score(state: NodeState, requests: Resources) -> tuple:
    """Best fit: prefer the node left with the fewest free GPUs, then least free CPU."""
    return (state.free(GPU) - requests.get(GPU, 0), state.free(CPU) - requests.get(CPU, 0), state.node.name)
