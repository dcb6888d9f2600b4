"""A mutable view of free capacity, built from nodes and current allocations.

The cycle *assumes* placements into the snapshot as it decides (so later decisions in
the same cycle see them) and can *forget* them again; the snapshot never touches the
store. Kueue's cache snapshot plays the same role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..capacity.node import Node
from ..errors import CorralError
from ..job import Allocation
from ..resources import CPU, GPU, Resources


@dataclass
class NodeState:
    node: Node
    allocatable: dict[str, int]
    used: dict[str, int] = field(default_factory=dict)
    free_gpus: set[int] = field(default_factory=set)
    free_cores: set[int] = field(default_factory=set)   # not held exclusively by any job

    def free(self, resource: str) -> int:
        return self.allocatable.get(resource, 0) - self.used.get(resource, 0)

    def fits(self, requests: Resources) -> bool:
        alloc, used = self.allocatable, self.used
        for name, amount in requests.items():
            if amount > alloc.get(name, 0) - used.get(name, 0):
                return False
        return True

    def assume(self, allocation: Allocation) -> None:
        """Take an allocation's resources and devices out of the free pool."""
        for name, amount in allocation.requests.items():
            self.used[name] = self.used.get(name, 0) + amount
        for g in allocation.gpus:
            if g not in self.free_gpus:
                raise CorralError(f"GPU {g} on node {self.node.name} is already allocated")
            self.free_gpus.discard(g)
        for c in allocation.cores:
            if c not in self.free_cores:
                raise CorralError(f"core {c} on node {self.node.name} is already allocated")
            self.free_cores.discard(c)

    def forget(self, allocation: Allocation) -> None:
        """Undo :meth:`assume`."""
        for name, amount in allocation.requests.items():
            self.used[name] = self.used.get(name, 0) - amount
        self.free_gpus.update(allocation.gpus)
        self.free_cores.update(allocation.cores)


class Snapshot:
    def __init__(self, nodes: Iterable[Node], allocations: Mapping[int, Allocation] | Iterable[Allocation] = ()):
        self.nodes: dict[str, NodeState] = {}
        for node in nodes:
            self.nodes[node.name] = NodeState(
                node=node,
                allocatable=node.allocatable.as_dict(),
                free_gpus={g.index for g in node.gpus},
                free_cores=set(node.cores),
            )
        #: Node states in name order: the order cycles visit them in (deterministic).
        self.ordered: list[NodeState] = sorted(self.nodes.values(), key=lambda s: s.node.name)
        allocs = allocations.values() if isinstance(allocations, Mapping) else allocations
        for alloc in allocs:
            state = self.nodes.get(alloc.node)
            if state is None:
                # An allocation on a node that is gone still counts nowhere; the daemon
                # reports such jobs separately.
                continue
            state.assume(alloc)

    def assume(self, allocation: Allocation) -> None:
        self.nodes[allocation.node].assume(allocation)

    def forget(self, allocation: Allocation) -> None:
        state = self.nodes.get(allocation.node)
        if state is not None:  # allocations on a node that is gone were never counted
            state.forget(allocation)

    def exclusive_cores(self, node: str) -> set[int]:
        state = self.nodes[node]
        return set(state.node.cores) - state.free_cores


def needs_whole_cores(requests: Resources) -> int:
    """Number of cores to pin exclusively: the CPU request when it is whole, else 0."""
    cpu = requests.get(CPU, 0)
    return cpu // 1000 if cpu and cpu % 1000 == 0 else 0


def gpu_count(requests: Resources) -> int:
    return requests.get(GPU, 0)
