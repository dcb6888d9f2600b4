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
        #: Index: number of free GPUs -> positions (in ``ordered``) of the nodes with
        #: exactly that many. A GPU job only looks at nodes with enough free GPUs.
        self._pos = {state.node.name: i for i, state in enumerate(self.ordered)}
        self._by_free_gpus: dict[int, set[int]] = {}
        for i, state in enumerate(self.ordered):
            self._by_free_gpus.setdefault(len(state.free_gpus), set()).add(i)
        #: Between cycles: the shapes that fitted no node at the end of the last cycle,
        #: and the nodes that gained capacity since. Such a shape can only fit on one of
        #: those nodes now, so the next cycle looks only there.
        self.failed_shapes: set = set()
        self.gained: set[int] = set()

    def assume(self, allocation: Allocation) -> None:
        state = self.nodes[allocation.node]
        before = len(state.free_gpus)
        state.assume(allocation)
        self._reindex(allocation.node, before, len(state.free_gpus))

    def forget(self, allocation: Allocation) -> None:
        state = self.nodes.get(allocation.node)
        if state is not None:  # allocations on a node that is gone were never counted
            before = len(state.free_gpus)
            state.forget(allocation)
            self._reindex(allocation.node, before, len(state.free_gpus))
            self.gained.add(self._pos[allocation.node])

    def _reindex(self, name: str, before: int, after: int) -> None:
        if before != after:
            i = self._pos[name]
            bucket = self._by_free_gpus[before]
            bucket.discard(i)
            if not bucket:
                del self._by_free_gpus[before]
            self._by_free_gpus.setdefault(after, set()).add(i)

    def gained_nodes(self, gpus: int) -> list[NodeState]:
        """Nodes that gained capacity since the last cycle and have ``gpus`` free GPUs."""
        return [self.ordered[i] for i in sorted(self.gained) if len(self.ordered[i].free_gpus) >= gpus]

    def with_free_gpus(self, count: int) -> list[NodeState]:
        """Nodes with at least ``count`` free GPUs (all nodes for ``count`` 0)."""
        if count <= 0:
            return self.ordered
        return [self.ordered[i] for free, bucket in self._by_free_gpus.items() if free >= count for i in bucket]

    def exclusive_cores(self, node: str) -> set[int]:
        state = self.nodes[node]
        return set(state.node.cores) - state.free_cores


def needs_whole_cores(requests: Resources) -> int:
    """Number of cores to pin exclusively: the CPU request when it is whole, else 0."""
    cpu = requests.get(CPU, 0)
    return cpu // 1000 if cpu and cpu % 1000 == 0 else 0


def gpu_count(requests: Resources) -> int:
    return requests.get(GPU, 0)
