"""What a simulation checks: which trace jobs could ever run, and (``check=True``) that
the capacity accounting holds after every cycle."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from ..capacity.node import Node
from ..errors import CorralError
from ..job import Allocation
from ..resources import GPU
from ..scheduler import Snapshot, infeasible
from ..scheduler.placement import gang_infeasible, needs_gang
from ..scheduler.shares import GPU_SHARE, MILLI


def feasible(nodes: Sequence[Node], jobs: Iterable, infeasible_out: dict[int, str]) -> dict[int, object]:
    """The jobs that could ever run on ``nodes`` (one node, or spread over several when
    larger than any), by id; the others go to ``infeasible_out`` with why. A request
    with constraints (GPU models, a node selector, replicas on N nodes) is never split
    across nodes: it fits as it asks or not at all."""
    by_id: dict[int, object] = {}
    nodes = list(nodes)
    largest = max((len(n.gpus) for n in nodes), default=0)
    why_of: dict = {}                      # per shape: why it can never run (None: it can)
    for job in jobs:
        if job.id in by_id or job.id in infeasible_out:
            raise CorralError(f"duplicate job id {job.id} in trace")
        requests = job.requests
        if requests in why_of:
            why = why_of[requests]
        elif requests.constraints is None and needs_gang(requests, largest):
            why = why_of[requests] = gang_infeasible(nodes, requests)
        else:
            lines = infeasible(nodes, requests)
            why = why_of[requests] = "; ".join(lines) if lines else None
        if why:
            infeasible_out[job.id] = why
        else:
            by_id[job.id] = job
    return by_id


def check_allocations(snapshot: Snapshot, running: Mapping[int, Allocation]) -> None:
    """No resource of any node over-committed, no GPU held twice (a shared GPU: by sharers
    only, never more than 1000 thousandths of it), and the snapshot holds exactly the
    running jobs' allocations."""
    held: dict[str, dict[str, int]] = {}
    gpus: dict[str, set[int]] = {}
    shared: dict[str, dict[int, int]] = {}
    for alloc in running.values():
        for piece in alloc.pieces:
            mine = held.setdefault(piece.node, {})
            share = piece.requests.get(GPU_SHARE, 0)
            for name, amount in piece.requests.items():
                if name != GPU_SHARE:
                    mine[name] = mine.get(name, 0) + amount
            if share:                      # a share of one device: several may hold it
                on = shared.setdefault(piece.node, {})
                for g in piece.gpus:
                    on[g] = on.get(g, 0) + share
                continue
            taken = gpus.setdefault(piece.node, set())
            if taken & set(piece.gpus):
                raise CorralError(f"GPU held twice on {piece.node}: {sorted(taken & set(piece.gpus))}")
            taken.update(piece.gpus)
    for node, on in shared.items():
        whole = gpus.get(node, set()) & set(on)
        if whole:
            raise CorralError(f"GPU held whole and shared on {node}: {sorted(whole)}")
        over = {g: v for g, v in on.items() if v > MILLI}
        if over:
            raise CorralError(f"GPU shares over one device on {node}: {over}")
        gpus.setdefault(node, set()).update(on)
        held.setdefault(node, {})[GPU] = held[node].get(GPU, 0) + len(on)
    for state in snapshot.nodes.values():
        node = state.node.name
        mine = held.get(node, {})
        if state.shares != shared.get(node, {}):
            raise CorralError(f"GPU shares on {node}: the snapshot holds {state.shares}, "
                              f"the running jobs {shared.get(node, {})}")
        for name in sorted(set(state.used) | set(mine)):
            used = state.used.get(name, 0)
            if used > state.allocatable.get(name, 0) or used < 0:
                raise CorralError(f"over-commit of {name} on {node}: {used} of {state.allocatable.get(name, 0)}")
            if used != mine.get(name, 0):
                raise CorralError(f"{name} on {node}: the snapshot holds {used}, the running jobs {mine.get(name, 0)}")
        if len(state.free_gpus) + state.used.get(GPU, 0) != len(state.node.gpus):
            raise CorralError(f"GPU accounting broken on {node}")
        if state.free_gpus & gpus.get(node, set()):
            raise CorralError(f"a running job's GPU is free on {node}")
