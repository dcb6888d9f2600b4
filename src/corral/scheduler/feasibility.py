"""Could a request ever fit (feasible), and why does it not fit now (available)?

Ray's split: "could ever fit" is the nodes' allocatable amounts, ignoring what is in use
(a request that fails it is refused at submit, one line per resource); "fits now" is the
snapshot's free capacity (a request that fails it waits, with the numbers).
"""

from __future__ import annotations

from typing import Sequence

from collections import Counter

from ..capacity.node import Node
from ..reasons import InsufficientResources, NodesDraining, Shortfall, Unschedulable, Wait
from ..resources import CPU, GPU, Resources, format_quantity, sort_key
from .eligibility import holders, node_allows, wanted_gpus
from .shares import as_whole
from .snapshot import NodeState, Snapshot, needs_whole_cores


def infeasible(nodes: Sequence[Node], requests: Resources) -> list[str]:
    """Lines explaining why ``requests`` can never fit one node (empty when some node could
    hold it): ``insufficient cpu: job requests 64, node has 2 allocatable``. With
    constraints: which GPU model, label or how many nodes no node (or too few) has."""
    if not nodes:
        return ["no nodes: the daemon has no capacity to schedule on"]
    requests = as_whole(requests)       # a share of one GPU fits wherever one free GPU would
    if requests.constraints is not None:
        return _infeasible_constrained(nodes, requests)
    return _infeasible_amounts(nodes, requests)


def _infeasible_amounts(nodes: Sequence[Node], requests: Resources) -> list[str]:
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


def _models_here(nodes: Sequence[Node]) -> str:
    counts = Counter(g.model for n in nodes for g in n.gpus)
    return ", ".join(f"{n} x {m}" for m, n in sorted(counts.items())) or "no GPUs"


def _infeasible_constrained(nodes: Sequence[Node], requests: Resources) -> list[str]:
    c = requests.constraints
    assert c is not None
    per = requests.per_node()
    gpus = per.vec[0]
    by_label = [n for n in nodes if all(n.label(k) == v for k, v in c.selector)]
    if c.selector and not by_label:
        have = sorted({f"{k}={v}" for n in nodes for k, v in n.labels})
        return [f"no node matches node selector {', '.join(f'{k}={v}' for k, v in c.selector)} "
                f"(labels here: {', '.join(have) or 'none'})"]
    if c.gpu_models and gpus:
        with_models = [n for n in by_label if len(wanted_gpus(n, per.constraints) or ()) >= gpus]
        if not with_models:
            where = " matching the node selector" if c.selector else ""
            return [f"no node{where} has {gpus} GPU{'s' if gpus != 1 else ''} of model "
                    f"{' or '.join(c.gpu_models)} (GPUs here: {_models_here(by_label or nodes)})"]
    eligible = [n for n in nodes if node_allows(n, per.constraints, gpus)]
    unconstrained = per.with_constraints(None)
    if not any(unconstrained.fits_in(n.allocatable) for n in eligible):
        lines = _infeasible_amounts(eligible, unconstrained)
        what = c.on_one_node()
        return lines if what is None else [f"{line} (on the nodes with {what.describe()})" for line in lines]
    able = holders(nodes, requests)
    if able < c.nodes:
        return [f"needs {c.nodes} nodes that can each hold {per.format()}"
                + (f" ({per.constraints.describe()})" if per.constraints else "")
                + f"; {able} of the {len(nodes)} nodes can"]
    return []


def explain(snapshot: Snapshot, requests: Resources, *, gang: bool = False) -> Wait:
    """Why ``requests`` does not fit now: the resources short on the closest node (for a
    gang: across the nodes), or :class:`~corral.reasons.Unschedulable` when no node
    could ever hold it (a node shrank after submit)."""
    states = snapshot.ordered
    if gang and requests.replicas == 1:          # larger than any node, split across nodes
        return _explain_gang(states, requests)
    if states and snapshot.never_fits(requests):
        lines = infeasible([s.node for s in states], requests)
        return Unschedulable(lines=tuple(lines), nodes=len(states))
    if snapshot.cordoned:
        open_ = [s for s in states if not s.cordoned]
        if holders((s.node for s in open_), requests) < requests.replicas:
            return NodesDraining(nodes=tuple(sorted(snapshot.cordoned)))
        states = open_
        snapshot = _Open(snapshot, states)
    if requests.constraints is not None:
        return _explain_constrained(states, requests)
    # The closest node: the first (in name order) with the fewest resources short. With
    # consistent accounting a node that fits in aggregate fits as devices too, so no node
    # can beat one short in a single resource: stop there. The choice is cached per shape
    # and brought up to date from the nodes changed since (Snapshot.changed_since).
    items = requests.sorted_items()
    cached = snapshot.explained.get(requests)
    best: tuple[int, int] | None = None
    if cached is not None:
        epoch, (count, pos) = cached
        changed = snapshot.changed_since(epoch)
        if changed is not None:
            if pos in changed:
                now = _short_count(states[pos], items)
                best = (now, pos) if now <= count else None     # worse: look at every node
            else:
                best = (count, pos)
            if best is not None:
                for i in changed:
                    entry = (_short_count(states[i], items), i)
                    if entry < best:
                        best = entry
    if best is None:
        for i, state in enumerate(states):
            entry = (_short_count(state, items), i)
            if best is None or entry < best:
                best = entry
                if entry[0] <= 1:
                    break
    if best is None:
        return InsufficientResources(shortfalls=(), nodes=0)
    snapshot.explained[requests] = (snapshot.epoch, best)
    state = states[best[1]]
    short = tuple(Shortfall(name, amount, max(state.free(name), 0), state.allocatable.get(name, 0))
                  for name, amount in items if amount > state.free(name))
    if not short:
        # Enough in aggregate but not as devices/cores (should not happen when the
        # accounting is consistent); report the device view.
        short = _device_shortfalls(state, requests)
    return InsufficientResources(shortfalls=short, nodes=len(states))


class _Open:
    """The snapshot without its draining nodes, for :func:`explain` (no cache)."""

    def __init__(self, snapshot: Snapshot, states: list[NodeState]):
        self.ordered = states
        self.explained: dict = {}
        self.epoch = snapshot.epoch

    def changed_since(self, epoch: int) -> None:
        return None


def _explain_constrained(states: list[NodeState], requests: Resources) -> Wait:
    """The shortfalls on the eligible node that is the closest to holding one replica
    (for ``N`` replicas: the ``N``-th closest), the GPUs counted among the wanted models."""
    per = requests.per_node()
    c = per.constraints
    gpus = per.vec[0]
    kind = " or ".join(c.gpu_models) if c is not None and c.gpu_models else ""
    ranked = []
    for i, state in enumerate(states):
        if not node_allows(state.node, c, gpus):
            continue
        short = []
        for name, amount in per.sorted_items():
            if name == GPU and kind:
                wanted = wanted_gpus(state.node, c) or frozenset()
                free = len(state.free_gpus & wanted)
                if amount > free:
                    short.append(Shortfall(GPU, amount, free, len(wanted), kind))
            elif amount > state.free(name):
                short.append(Shortfall(name, amount, max(state.free(name), 0), state.allocatable.get(name, 0)))
        ranked.append((len(short), i, tuple(short)))
    ranked.sort(key=lambda r: r[:2])
    n = requests.replicas
    if len(ranked) < n:
        return InsufficientResources(shortfalls=(), nodes=len(ranked), replicas=n)
    short = ranked[n - 1][2] or (_device_shortfalls(states[ranked[n - 1][1]], per))
    return InsufficientResources(shortfalls=short, nodes=len(ranked), replicas=n)


def _short_count(state: NodeState, items) -> int:
    alloc, used = state.allocatable, state.used
    count = 0
    for name, amount in items:
        if amount > alloc.get(name, 0) - used.get(name, 0):
            count += 1
    return count


def _explain_gang(states: list[NodeState], requests: Resources) -> Wait:
    free: dict[str, int] = {}
    total: dict[str, int] = {}
    for s in states:
        for name in requests:
            free[name] = free.get(name, 0) + max(s.free(name), 0)
            total[name] = total.get(name, 0) + s.allocatable.get(name, 0)
    short = tuple(Shortfall(name, amount, free.get(name, 0), total.get(name, 0))
                  for name, amount in requests.sorted_items() if amount > free.get(name, 0))
    if not short:      # enough in all, but not on few enough nodes: say the GPUs
        short = (Shortfall(GPU, requests.get(GPU, 0), free.get(GPU, 0), total.get(GPU, 0)),)
    return InsufficientResources(shortfalls=short, nodes=len(states), across_nodes=True)


def _device_shortfalls(state: NodeState, requests: Resources) -> tuple[Shortfall, ...]:
    out = []
    if requests.get(GPU, 0) > len(state.free_gpus):
        out.append(Shortfall(GPU, requests[GPU], len(state.free_gpus), len(state.node.gpus)))
    cores = needs_whole_cores(requests)
    if cores > len(state.free_cores):
        out.append(Shortfall(CPU, requests[CPU], 1000 * len(state.free_cores), 1000 * len(state.node.cores)))
    return tuple(out)
