"""Where a job goes: which node(s), which GPUs, which cores. The one placement module.

**Devices.** GPUs are specific devices (like Slurm's GRES bitmap). A multi-GPU job gets a
set of free GPUs that are close to each other (NVLink, then the shallowest PCIe ancestor
NVML reports); among equally close sets we take the one that breaks the fewest free
NVLink groups, so the next multi-GPU job still finds a close set. The choice depends only
on the node's GPU topology, its free GPUs and the count, so it is memoised. Whole CPU
requests get specific cores, lowest ids first; fractional requests share the
non-exclusive pool.

**One node: best fit.** Among the nodes where the job fits, the one left with the fewest
free GPUs, then the least free CPU, then the lowest name (:func:`node_score`). The
snapshot's index hands nodes out in that order (:meth:`Snapshot.best_fit_order
<corral.scheduler.snapshot.Snapshot.best_fit_order>`); devices are chosen only on the
winner (and, should its devices not line up, on the next).

**Several nodes: replicas.** A request of ``N`` replicas (``--nodes N``: its
:class:`~corral.resources.Constraints` ``nodes``) is placed all or nothing, one replica
per node, each with an equal part of the amounts, on the ``N`` best-fit nodes.

**Several nodes: gangs.** A job larger than any one node (:attr:`PendingJob.gang
<corral.scheduler.types.PendingJob.gang>`) is placed all or nothing across nodes:

* first choice: ``k = ceil(G / gpus of the largest node)`` *completely free* nodes (no
  GPU, CPU or memory in use), the first ``k`` in node order;
* otherwise the fewest nodes whose free GPUs add up to ``G``, the earliest combination in
  node order (lexicographic); each chosen node gives all its free GPUs except the last,
  which gives the rest;
* the job's other requests (CPU, memory, ...) are split evenly over the ``k`` pieces (the
  remainder going to the first pieces); each piece must fit its node's free capacity.

**The papers' placement** (:func:`first_fit`, :func:`place_whole_nodes`): the first node in
name order where the job fits; a job larger than a node on whole free nodes plus one for
the rest (the Tiresias authors' simulator's ``yarn`` scheme). Only the research references
use it (``corral sim --placement first-fit``).

Deterministic: the same snapshot and request give the same placement.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Iterable, Sequence

from ..capacity.node import Node, TopologyLevel
from ..job import Allocation, Piece
from ..resources import CPU, GPU, Resources
from .shares import GPU_SHARE, choose_share_device, device_free, share_of
from .snapshot import NodeState, Snapshot, gpu_count, needs_whole_cores

#: Exhaustive search over GPU subsets up to this many candidate sets; greedy beyond.
_EXHAUSTIVE_LIMIT = 5000


# -- devices -------------------------------------------------------------------------------

def _level(node: Node, a: int, b: int, cache: dict) -> int:
    key = (a, b) if a < b else (b, a)
    level = cache.get(key)
    if level is None:
        level = int(node.gpu(a).level_to(b))
        cache[key] = level
    return level


def _score(node: Node, chosen: tuple[int, ...], free: frozenset[int], cache: dict) -> tuple:
    pairs = [_level(node, a, b, cache) for a, b in combinations(chosen, 2)]
    worst = max(pairs) if pairs else 0
    total = sum(pairs)
    # Free GPUs outside the set that have an NVLink into it: taking this set splits them
    # from their group (fragmentation).
    rest = free.difference(chosen)
    broken = sum(1 for r in rest for c in chosen if _level(node, r, c, cache) <= TopologyLevel.NVLINK)
    return (worst, total, broken, chosen)


#: id(node.gpus) -> (that tuple, its topology number): nodes with equal GPU topologies
#: share one number, so they share memoised choices.
_TOPOLOGY_OF: dict[int, tuple[tuple, int]] = {}
_TOPOLOGIES: dict[tuple, int] = {}
#: (topology, free GPUs, count) -> the chosen GPUs.
_CHOICES: dict[tuple[int, frozenset[int], int], tuple[int, ...] | None] = {}
_MAX_CHOICES = 200_000


def _topology(node: Node) -> int:
    entry = _TOPOLOGY_OF.get(id(node.gpus))
    if entry is not None and entry[0] is node.gpus:
        return entry[1]
    number = _TOPOLOGIES.setdefault(node.gpus, len(_TOPOLOGIES))
    if len(_TOPOLOGY_OF) >= 10_000:         # nodes come and go (an engine's inventory)
        _TOPOLOGY_OF.clear()
    _TOPOLOGY_OF[id(node.gpus)] = (node.gpus, number)
    return number


def choose_gpus(node: Node, free: set[int] | frozenset[int], count: int) -> tuple[int, ...] | None:
    """The best ``count`` GPUs among ``free`` on ``node``, or None if too few are free."""
    if count <= 0:
        return ()
    if count > len(free):
        return None
    if count == len(free):
        return tuple(sorted(free))
    frozen = frozenset(free)
    key = (_topology(node), frozen, count)
    try:
        return _CHOICES[key]
    except KeyError:
        pass
    chosen = _choose(node, frozen, count)
    if len(_CHOICES) >= _MAX_CHOICES:
        _CHOICES.clear()
    _CHOICES[key] = chosen
    return chosen


def _choose(node: Node, free: frozenset[int], count: int) -> tuple[int, ...]:
    ordered = sorted(free)
    cache: dict = {}
    if comb(len(ordered), count) <= _EXHAUSTIVE_LIMIT:
        candidates: Iterable[tuple[int, ...]] = combinations(ordered, count)
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


def choose_cores(state: NodeState, requests: Resources) -> tuple[int, ...] | None:
    """Exclusive cores for a whole CPU request (lowest ids first); () for fractional."""
    want = needs_whole_cores(requests)
    if want == 0 or not state.node.cores:
        return ()
    if want > len(state.free_cores):
        return None
    return tuple(sorted(state.free_cores)[:want])


def place_piece(state: NodeState, requests: Resources) -> Piece | None:
    """A piece for ``requests`` on this node, or None when it does not fit now."""
    if not state.fits(requests):
        return None
    if GPU_SHARE in requests.amounts:             # a share of one GPU: see .shares
        return place_share(state, requests)
    free = state.free_gpus if requests.constraints is None else state.gpus_for(requests)
    gpus = choose_gpus(state.node, free, gpu_count(requests))
    if gpus is None:
        return None
    cores = choose_cores(state, requests)
    if cores is None:
        return None
    return Piece(state.node.name, requests, gpus, cores)


def place_share(state: NodeState, requests: Resources, device: int | None = None) -> Piece | None:
    """A piece for a share of one GPU (:mod:`.shares`) on this node: on ``device``, or the
    best-fit device (:func:`~.shares.choose_share_device`); None when it does not fit now."""
    if device is None:
        device = choose_share_device(state, requests)
    if device is None or device_free(state, device) < share_of(requests):
        return None
    cores = choose_cores(state, requests)
    if cores is None:
        return None
    return Piece(state.node.name, requests, (device,), cores)


def place_on(state: NodeState, requests: Resources) -> Allocation | None:
    """A one-node allocation for ``requests`` on this node, or None."""
    piece = place_piece(state, requests)
    return None if piece is None else Allocation(pieces=(piece,))


# -- one node: best fit ----------------------------------------------------------------------

def node_score(state: NodeState, requests: Resources) -> tuple:
    """Best fit: prefer the node left with the fewest free GPUs, then least free CPU."""
    return (state.free(GPU) - requests.get(GPU, 0), state.free(CPU) - requests.get(CPU, 0), state.node.name)


def best_fit(snapshot: Snapshot, requests: Resources,
             swap: tuple[str, NodeState] | None = None) -> Allocation | None:
    """The best-fit one-node allocation for ``requests`` now, or None.

    ``swap`` = (node name, view): judge that node by ``view`` instead of its state (the
    part of the backfill reservation's node a job may use), in its place in the order.
    A shape that fitted nowhere at the end of the last cycle is looked for only on the
    nodes that gained capacity since (:attr:`Snapshot.failed <.snapshot.Snapshot.failed>`)."""
    if swap is None:
        order = snapshot.best_fit_gained(requests) if requests in snapshot.failed \
            else snapshot.best_fit_order(requests)
        for state in order:
            alloc = place_on(state, requests)
            if alloc is not None:
                return alloc
        return None
    name, view = swap
    view_score = node_score(view, requests) if view.fits(requests) else None
    for state in snapshot.best_fit_order(requests):
        if state.node.name == name:
            continue
        if view_score is not None and view_score < node_score(state, requests):
            alloc = place_on(view, requests)
            if alloc is not None:
                return alloc
            view_score = None
        alloc = place_on(state, requests)
        if alloc is not None:
            return alloc
    return place_on(view, requests) if view_score is not None else None


# -- several nodes: gangs ---------------------------------------------------------------------

def _shares(requests: Resources, k: int) -> list[dict[str, int]]:
    """The non-GPU requests split evenly in ``k`` parts (remainders to the first parts)."""
    parts: list[dict[str, int]] = [{} for _ in range(k)]
    for name, amount in requests.items():
        if name == GPU:
            continue
        q, r = divmod(amount, k)
        for i in range(k):
            parts[i][name] = q + (1 if i < r else 0)
    return parts


def _try(states: Sequence[NodeState], counts: list[int], requests: Resources) -> Allocation | None:
    pieces = []
    for state, g, share in zip(states, counts, _shares(requests, len(states))):
        piece = place_piece(state, Resources({**share, GPU: g}))
        if piece is None:
            return None
        pieces.append(piece)
    return Allocation(pieces=pieces)


def _fits_share(state: NodeState, requests: Resources, k: int) -> bool:
    for name, amount in requests.items():
        if name != GPU and -(-amount // k) > state.free(name):
            return False
    return True


def place_multi(snapshot: Snapshot, requests: Resources, exclude: frozenset[str] = frozenset()) -> Allocation | None:
    """A job on several nodes: its replicas (``--nodes N``: :func:`place_replicas`), or a
    job larger than any node split across them (:func:`place_gang`)."""
    if requests.replicas > 1:
        return place_replicas(snapshot, requests, exclude)
    return place_gang(snapshot, requests, exclude)


def place_replicas(snapshot: Snapshot, requests: Resources,
                   exclude: frozenset[str] = frozenset()) -> Allocation | None:
    """``requests.replicas`` replicas of :meth:`~corral.resources.Resources.per_node`, one
    per node, all or none: the best-fit nodes in the snapshot's order (rank 0 on the
    best), devices chosen on each. None when fewer nodes can take one now."""
    per = requests.per_node()
    n = requests.replicas
    pieces: list[Piece] = []
    for state in snapshot.best_fit_order(per):
        if state.node.name in exclude:
            continue
        piece = place_piece(state, per)
        if piece is not None:
            pieces.append(piece)
            if len(pieces) == n:
                return Allocation(pieces=tuple(pieces))
    return None


def place_gang(snapshot: Snapshot, requests: Resources, exclude: frozenset[str] = frozenset()) -> Allocation | None:
    """A gang placement of ``requests`` across nodes now (see the module docstring), or
    None. ``exclude``: nodes not to use. Does not change the snapshot."""
    need = requests.get(GPU, 0)
    if exclude:
        states = [s for s in snapshot.ordered if s.node.name not in exclude]
        largest = max((len(s.node.gpus) for s in states), default=0)
    else:
        states, largest = snapshot.ordered, snapshot.largest_gpus
    if need <= 0 or largest <= 0:
        return None
    free = [len(s.free_gpus) for s in states]
    if sum(free) < need:
        return None
    k0 = -(-need // largest)
    # 1. k0 completely free nodes, first in node order.
    whole = [s for s in states if len(s.free_gpus) == len(s.node.gpus) and not any(s.used.values())
             and _fits_share(s, requests, k0)]
    chosen: list[NodeState] = []
    got = 0
    for s in whole:
        if got >= need or len(chosen) == k0:
            break
        chosen.append(s)
        got += len(s.free_gpus)
    if got >= need and len(chosen) <= k0:
        alloc = _try(chosen, _counts(chosen, need), requests)
        if alloc is not None:
            return alloc
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
        alloc = _try(chosen, _counts(chosen, need), requests)
        if alloc is not None:
            return alloc
    return None


def _counts(chosen: Sequence[NodeState], need: int) -> list[int]:
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


# -- the papers' placement: first fit, whole free nodes -----------------------------------------
# What the Tiresias authors' simulator calls ``yarn`` (``SymbioticLab/Tiresias``,
# ``switch.py``: ``try_single_node_alloc``, ``try_cross_node_alloc``): for the research
# references' ``--placement first-fit``. Kept apart from best fit above.

def first_fit(snapshot: Snapshot, requests: Resources) -> Allocation | None:
    """The first node in name order where ``requests`` fits now, or None."""
    for state in snapshot.ordered:
        if state.fits(requests):
            alloc = place_on(state, requests)
            if alloc is not None:
                return alloc
    return None


def place_whole_nodes(snapshot: Snapshot, requests: Resources) -> Allocation | None:
    """A job larger than a node, as the papers place it: completely free nodes (no GPU,
    CPU or memory in use), the first in name order, as long as the GPUs still needed are
    at least a whole node's, then the first other node with enough free GPUs for the rest;
    the other requests split evenly over the pieces. All or nothing; None when no such
    set is free now. Does not change the snapshot."""
    need = requests.get(GPU, 0)
    if need <= 0:
        return None
    chosen: list[NodeState] = []
    left = need
    for s in snapshot.ordered:
        n = len(s.node.gpus)
        if left <= 0:
            break
        if 0 < n <= left and not s.cordoned and len(s.free_gpus) == n and not any(s.used.values()):
            chosen.append(s)
            left -= n
    if left > 0:
        taken = {s.node.name for s in chosen}
        k = len(chosen) + 1
        last = next((s for s in snapshot.ordered if s.node.name not in taken and not s.cordoned
                     and len(s.free_gpus) >= left and _fits_share(s, requests, k)), None)
        if last is None:
            return None
        chosen.append(last)
    if len(chosen) < 2:
        return None
    return _try(chosen, _counts(chosen, need), requests)


def needs_gang(requests: Resources, largest_gpus: int) -> bool:
    """True when ``requests`` asks for more GPUs than the largest node has."""
    return requests.get(GPU, 0) > largest_gpus


def gang_infeasible(nodes: Sequence[Node], requests: Resources) -> str | None:
    """Why a gang job can never be placed on ``nodes`` (even all free), or None."""
    total = sum(n.allocatable.get(GPU, 0) for n in nodes)
    need = requests.get(GPU, 0)
    if need > total:
        return f"insufficient {GPU}: job requests {need}, the whole cluster has {total}"
    if place_gang(Snapshot(nodes, {}), requests) is None:
        return f"no combination of nodes holds this job's requests split per node (requests {need} {GPU})"
    return None
