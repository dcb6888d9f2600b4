"""A mutable view of free capacity, built from nodes and current allocations.

The cycle *assumes* placements into the snapshot as it decides (so later decisions in
the same cycle see them) and can *forget* them again; the snapshot never touches the
store. Kueue's cache snapshot plays the same role.

Between cycles the snapshot remembers the shapes that fitted no node at the end of the
last cycle (:attr:`Snapshot.failed`) and the nodes that gained capacity since
(:attr:`Snapshot.gained`): free capacity only shrinks while a cycle runs, so such a shape
can only fit on one of those nodes now, and the next cycle looks only there. In a busy
cluster where a few jobs end between cycles that is a few nodes instead of all (how the
cycle uses this, and why it changes no decision: docs/design.md, "Across cycles").

Best fit is answered from an index instead of scoring every node: nodes are bucketed by
their free GPUs, and each bucket is kept sorted by (free CPU, node name). Best fit
prefers the node left with the fewest free GPUs, then the least free CPU, then the
lowest name (:func:`~corral.scheduler.placement.node_score`), so walking the buckets
upward from the job's GPU count, and each bucket from the job's CPU request up, visits
the nodes in exactly that order: the first node where the job fits is the best one. On
an empty 1,000-node cluster a placement looks at one or two nodes instead of 1,000.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..capacity.node import Node
from ..errors import CorralError
from ..job import Allocation, Piece
from ..resources import CPU, GPU, MEMORY, Resources
from .eligibility import holders, node_allows, wanted_gpus
from .shares import GPU_SHARE, MILLI, as_whole, share_fits


@dataclass
class NodeState:
    node: Node
    allocatable: dict[str, int]
    used: dict[str, int] = field(default_factory=dict)
    free_gpus: set[int] = field(default_factory=set)
    free_cores: set[int] = field(default_factory=set)   # not held exclusively by any job
    #: Free (GPU, CPU, memory), never below zero, kept up to date by :meth:`assume` and
    #: :meth:`forget`: what :meth:`fits` compares a request's ``vec`` with.
    vec: tuple[int, int, int] = field(init=False, repr=False, compare=False)
    #: Draining: its jobs run on, nothing new starts here (nothing :meth:`fits`).
    cordoned: bool = False
    #: Shared devices: GPU index -> thousandths held by its sharers (1..1000); such a
    #: device is out of :attr:`free_gpus` and counts as a used GPU (:mod:`.shares`).
    shares: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._revec()

    def _revec(self) -> None:
        alloc, used = self.allocatable, self.used
        self.vec = (max(0, alloc.get(GPU, 0) - used.get(GPU, 0)), max(0, alloc.get(CPU, 0) - used.get(CPU, 0)),
                    max(0, alloc.get(MEMORY, 0) - used.get(MEMORY, 0)))

    def free(self, resource: str) -> int:
        return self.allocatable.get(resource, 0) - self.used.get(resource, 0)

    def fits(self, requests: Resources) -> bool:
        # The hottest check there is: GPU, CPU and memory from tuples (a zero request
        # passes, as free is never below zero), any other resource from the dicts.
        g, c, m = requests.vec
        fg, fc, fm = self.vec
        if g > fg or c > fc or m > fm or self.cordoned:
            return False
        if requests.constraints is not None and not self.allows(requests):
            return False
        if requests.only_vec:
            return True
        alloc, used = self.allocatable, self.used
        for name, amount in requests.amounts.items():
            if name == GPU_SHARE:
                if not share_fits(self, requests):
                    return False
            elif amount > alloc.get(name, 0) - used.get(name, 0):
                return False
        return True

    def allows(self, requests: Resources) -> bool:
        """The request's constraints allow this node now: one node's worth (a request over
        several nodes never fits one), labels, and enough free GPUs of a wanted model."""
        c = requests.constraints
        if c is None:
            return True
        if c.nodes > 1 or not node_allows(self.node, c, requests.vec[0]):
            return False
        wanted = wanted_gpus(self.node, c)
        return wanted is None or requests.vec[0] <= len(self.free_gpus & wanted)

    def gpus_for(self, requests: Resources) -> set[int] | frozenset[int]:
        """The free GPUs ``requests`` may take here."""
        wanted = wanted_gpus(self.node, requests.constraints)
        return self.free_gpus if wanted is None else self.free_gpus & wanted

    def assume(self, piece: Piece) -> None:
        """Take a piece's resources and devices out of the free pool."""
        share = piece.requests.get(GPU_SHARE, 0)
        if share:
            self._share(piece, share)
        for name, amount in piece.requests.items():
            if name != GPU_SHARE:
                self.used[name] = self.used.get(name, 0) + amount
        self._revec()
        if share:
            return
        for g in piece.gpus:
            if g not in self.free_gpus:
                raise CorralError(f"GPU {g} on node {self.node.name} is already allocated")
            self.free_gpus.discard(g)
        for c in piece.cores:
            if c not in self.free_cores:
                raise CorralError(f"core {c} on node {self.node.name} is already allocated")
            self.free_cores.discard(c)

    def forget(self, piece: Piece) -> None:
        """Undo :meth:`assume`."""
        share = piece.requests.get(GPU_SHARE, 0)
        for name, amount in piece.requests.items():
            if name != GPU_SHARE:
                self.used[name] = self.used.get(name, 0) - amount
        if share:
            for g in piece.gpus:
                left = self.shares.get(g, 0) - share
                if left > 0:
                    self.shares[g] = left
                else:                           # its last sharer: the device is free again
                    self.shares.pop(g, None)
                    self.free_gpus.add(g)
                    self.used[GPU] = self.used.get(GPU, 0) - 1
            self._revec()
            self.free_cores.update(piece.cores)
            return
        self._revec()
        self.free_gpus.update(piece.gpus)
        self.free_cores.update(piece.cores)

    def _share(self, piece: Piece, share: int) -> None:
        """Take ``share`` thousandths of the piece's one device (opening it when free)."""
        if len(piece.gpus) != 1:
            raise CorralError(f"a GPU share names one device, got {list(piece.gpus)} on node {self.node.name}")
        g = piece.gpus[0]
        held = self.shares.get(g)
        if held is None:
            if g not in self.free_gpus:
                raise CorralError(f"GPU {g} on node {self.node.name} is allocated whole, it cannot be shared")
            self.free_gpus.discard(g)
            self.used[GPU] = self.used.get(GPU, 0) + 1
            held = 0
        if held + share > MILLI:
            raise CorralError(f"GPU {g} on node {self.node.name}: shares of {held + share}/1000 exceed the device")
        self.shares[g] = held + share
        for c in piece.cores:
            if c not in self.free_cores:
                raise CorralError(f"core {c} on node {self.node.name} is already allocated")
            self.free_cores.discard(c)

    def copy(self) -> "NodeState":
        return NodeState(node=self.node, allocatable=dict(self.allocatable), used=dict(self.used),
                         free_gpus=set(self.free_gpus), free_cores=set(self.free_cores), cordoned=self.cordoned,
                         shares=dict(self.shares))


class Snapshot:
    def __init__(self, nodes: Iterable[Node], allocations: Mapping[int, Allocation] | Iterable[Allocation] = (),
                 cordoned: Iterable[str] = ()):
        self.nodes: dict[str, NodeState] = {}
        #: Draining nodes: counted (their jobs hold what they hold), but nothing new fits.
        self.cordoned = frozenset(cordoned)
        for node in nodes:
            allocatable = node.allocatable.as_dict()
            if node.gpus:
                # A node's GPUs in thousandths, for shares: a bound for "could it ever fit"
                # and for quotas; what is free of it is per device (NodeState.shares).
                allocatable[GPU_SHARE] = MILLI * len(node.gpus)
            self.nodes[node.name] = NodeState(
                node=node,
                allocatable=allocatable,
                free_gpus={g.index for g in node.gpus},
                free_cores=set(node.cores),
                cordoned=node.name in self.cordoned,
            )
        #: Node states in name order: the order cycles visit them in (deterministic).
        self.ordered: list[NodeState] = sorted(self.nodes.values(), key=lambda s: s.node.name)
        self._pos = {state.node.name: i for i, state in enumerate(self.ordered)}
        allocs = allocations.values() if isinstance(allocations, Mapping) else allocations
        for alloc in allocs:
            for piece in alloc.pieces:
                state = self.nodes.get(piece.node)
                if state is not None:
                    # A piece on a node that is gone counts nowhere; the daemon reports
                    # such jobs separately.
                    state.assume(piece)
        #: The best-fit index: free GPUs -> sorted [free CPU x n + position] (one int
        #: per node orders as (free CPU, position), and positions are in name order; ints
        #: compare fastest); and the bucket keys, sorted.
        n = self._n = max(1, len(self.ordered))
        self._indexed: list[tuple[int, int]] = []
        self._buckets: dict[int, list[int]] = {}
        self._bucket_keys: list[int] = []
        for i, state in enumerate(self.ordered):
            key = (state.free(GPU), state.free(CPU))
            self._indexed.append(key)
            self._buckets.setdefault(key[0], []).append(key[1] * n + i)
        for bucket in self._buckets.values():
            bucket.sort()
        self._bucket_keys = sorted(self._buckets)
        #: Total allocatable over the nodes (for quota and shares).
        total: dict[str, int] = {}
        for state in self.ordered:
            for r, v in state.allocatable.items():
                total[r] = total.get(r, 0) + v
        self.capacity = Resources({r: v for r, v in total.items() if v > 0})
        #: The most GPUs any one node has (a job asking for more must spread).
        self.largest_gpus = max((len(s.node.gpus) for s in self.ordered), default=0)
        #: Shapes that fitted no node at the end of the last cycle, and the positions of
        #: the nodes that gained capacity since (see the module docstring).
        self.failed: set[Resources] = set()
        #: The same for shapes spread over several nodes (gangs): such a shape can only
        #: fit now if some node gained capacity.
        self.failed_gangs: set[Resources] = set()
        self.gained: set[int] = set()
        self._never: dict[Resources, bool] = {}
        #: A change log for cached explanations: every change of a node bumps the epoch
        #: and appends (epoch, position); see :mod:`.feasibility`.
        self.epoch = 0
        self.changes: list[tuple[int, int]] = []
        self.explained: dict = {}

    # -- changes ---------------------------------------------------------------------------
    def assume(self, allocation: Allocation) -> None:
        for piece in allocation.pieces:
            state = self.nodes.get(piece.node)
            if state is None:       # a node that is gone (lost, left): counted nowhere
                continue
            state.assume(piece)
            self._reindex(piece.node, state)

    def forget(self, allocation: Allocation) -> None:
        for piece in allocation.pieces:
            state = self.nodes.get(piece.node)
            if state is not None:  # pieces on a node that is gone were never counted
                state.forget(piece)
                self._reindex(piece.node, state)
                self.gained.add(self._pos[piece.node])

    def _reindex(self, name: str, state: NodeState) -> None:
        i = self._pos[name]
        self.epoch += 1
        self.changes.append((self.epoch, i))
        if len(self.changes) > 4 * len(self.ordered) + 64:      # old entries: recompute instead
            del self.changes[:len(self.changes) // 2]
        old = self._indexed[i]
        new = (state.free(GPU), state.free(CPU))
        if new == old:
            return
        bucket = self._buckets[old[0]]
        del bucket[bisect_left(bucket, old[1] * self._n + i)]
        if not bucket:
            del self._buckets[old[0]]
            del self._bucket_keys[bisect_left(self._bucket_keys, old[0])]
        target = self._buckets.get(new[0])
        if target is None:
            target = self._buckets[new[0]] = []
            insort(self._bucket_keys, new[0])
        insort(target, new[1] * self._n + i)
        self._indexed[i] = new

    # -- questions -------------------------------------------------------------------------
    def position(self, name: str) -> int:
        """The node's place in :attr:`ordered` (what :attr:`gained` holds)."""
        return self._pos[name]

    def best_fit_order(self, requests: Resources) -> Iterable[NodeState]:
        """The nodes where ``requests`` fits now (aggregate amounts), best fit first (see
        the module docstring). A generator: stop reading once a node takes the job."""
        gpus, cpu = requests.get(GPU, 0), requests.get(CPU, 0)
        keys = self._bucket_keys
        ordered = self.ordered
        n = self._n
        for k in range(bisect_left(keys, gpus), len(keys)):
            bucket = self._buckets[keys[k]]
            for j in range(bisect_left(bucket, cpu * n), len(bucket)):
                state = ordered[bucket[j] % n]
                if state.fits(requests):
                    yield state

    def best_fit_gained(self, requests: Resources) -> list[NodeState]:
        """Like :meth:`best_fit_order`, among the nodes that gained capacity since the last
        cycle only (for a shape in :attr:`failed`)."""
        gpus, cpu = requests.get(GPU, 0), requests.get(CPU, 0)
        scored = []
        for i in self.gained:
            state = self.ordered[i]
            if state.fits(requests):
                scored.append((state.free(GPU) - gpus, state.free(CPU) - cpu, state.node.name, i))
        scored.sort()
        return [self.ordered[entry[3]] for entry in scored]

    def changed_since(self, epoch: int) -> set[int] | None:
        """Positions of the nodes changed after ``epoch``; None when the log no longer
        reaches back that far."""
        log = self.changes
        if epoch >= self.epoch:
            return set()
        if not log or log[0][0] > epoch + 1:
            return None
        from bisect import bisect_right

        return {pos for _, pos in log[bisect_right(log, (epoch, len(self.ordered))):]}

    def never_fits(self, requests: Resources) -> bool:
        """True when no node could ever hold ``requests`` (its allocatable is too small, or
        its constraints rule it out) -- for replicas over N nodes, fewer than N could."""
        v = self._never.get(requests)
        if v is None:
            whole = as_whole(requests)
            if whole is not requests:
                v = self._never[requests] = self.never_fits(whole)
                return v
            if requests.constraints is None:
                v = not any(requests.fits_in(s.allocatable) for s in self.ordered)
            else:
                v = holders((s.node for s in self.ordered), requests) < requests.replicas
            self._never[requests] = v
        return v

    def most_free(self, resource: str) -> int:
        """The most of ``resource`` free on any one node."""
        if resource == GPU:
            return self._bucket_keys[-1] if self._bucket_keys else 0
        return max((s.free(resource) for s in self.ordered), default=0)


def needs_whole_cores(requests: Resources) -> int:
    """Number of cores to pin exclusively: the CPU request when it is whole, else 0."""
    cpu = requests.get(CPU, 0)
    return cpu // 1000 if cpu and cpu % 1000 == 0 else 0


def gpu_count(requests: Resources) -> int:
    return requests.get(GPU, 0)
