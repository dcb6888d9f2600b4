"""The packing mode (``corral sim --packing --fill 1.3``): the FGD paper's experiment.

Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
Gradient Descent" (ATC'23) measure a scheduler by how much of a cluster's GPU capacity it
can allocate before jobs stop fitting. Their simulator (hkust-adsl/kubernetes-scheduler-
simulator) and this mode do the same:

* **Arrivals** (:func:`arrivals`): the trace's jobs in an order shuffled by the seed; when
  their GPU requests add up to less than ``fill`` x the cluster's GPUs, more are drawn at
  random (with replacement, by the same seed) until the next would pass it, as the
  simulator's ``tuneUpPods`` does; when they add up to more, the list is cut there. Run
  times and submit times play no part, so pod lists without time columns load here.
* **No departures**: each job is placed when it arrives, or fails for good (it is counted,
  never retried) and the next arrives.
* **The report**: at each *arrived fraction* -- the GPU requested by the jobs so far over
  the cluster's GPU capacity: 10 %, 20 %, ..., ``fill`` -- the *GPU allocation ratio*:
  the GPU allocated (a share counts its thousandths) over the capacity, and the cluster's
  *fragmentation*: the FGD measure summed over the nodes (:func:`corral.scheduler.shares.
  node_fragmentation`), as a share of the capacity.

Three scorers choose the node (and the device of a share):

* ``best-fit``: corral's own placement (:func:`corral.scheduler.placement.best_fit`): the
  node left with the fewest free whole GPUs, then the least free CPU; a share goes on the
  fullest device that still holds it.
* ``weighted-best-fit``: the FGD simulator's own BestFit baseline (the one the paper
  compares with): the node left with the least ``0.5 x free CPU / 128 + 0.5 x free GPU /
  8`` GPUs, then the fullest device for a share.
* ``fgd``: Fragmentation Gradient Descent: among the nodes where the job fits now, the one
  (and for a share, the device) whose fragmentation grows the least by taking it. The target
  workload is the trace's typical job shapes (:func:`~corral.scheduler.shares.typical_shapes`,
  the simulator's defaults: the most common shapes covering 60 % of the GPU jobs). The
  simulator scores ``sigmoid(-growth/1000)`` rounded to an integer 0..100 and breaks ties
  at random; here the growth itself is compared, ties broken by best fit then node name,
  so runs are deterministic.

Both place through the scheduler's snapshot (:class:`~corral.scheduler.snapshot.Snapshot`),
with its constraints (GPU models, CPU, memory) and its share accounting.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

from ..capacity.node import Node
from ..errors import CorralError, ValidationError
from ..job import Allocation
from ..resources import CPU, GPU, Resources
from ..scheduler.eligibility import gpu_model_matches
from ..scheduler.placement import best_fit, node_score, place_piece, place_share
from ..scheduler.shares import (GPU_SHARE, MILLI, PodShape, allocated_milli, device_free, free_devices,
                                node_fragmentation, share_of, typical_shapes)
from ..scheduler.snapshot import NodeState, Snapshot

SCORERS = ("fgd", "best-fit", "weighted-best-fit")
#: The FGD simulator's BestFit normalises by the largest node it knows (128 CPUs, 8 GPUs).
MAX_SPEC_CPU, MAX_SPEC_MILLI = 128000, 8000
FILL_EXPECTED = "expected a number above 0 and at most 10, e.g. 1.3 (130 % of the cluster's GPUs)"


def requested_milli(requests: Resources) -> int:
    """GPU a request asks for, in thousandths (a whole GPU is 1000)."""
    return share_of(requests) or requests.get(GPU, 0) * MILLI


def check_fill(fill: object) -> float:
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not math.isfinite(fill) \
            or not 0 < fill <= 10:
        raise ValidationError("--fill", fill, FILL_EXPECTED)
    return float(fill)


def arrivals(jobs: Sequence, capacity_milli: int, fill: float, seed: int = 0) -> list:
    """The jobs in arrival order: shuffled by ``seed``, then topped up by random draws (or
    cut) so that their GPU requests reach ``fill`` x ``capacity_milli`` (module docstring)."""
    fill = check_fill(fill)
    rng = random.Random(seed)
    order = list(jobs)
    rng.shuffle(order)
    target = fill * capacity_milli
    out, total = [], 0
    for job in order:
        need = requested_milli(job.requests)
        if total + need > target:
            return out
        out.append(job)
        total += need
    if not any(requested_milli(j.requests) for j in order):
        return out                       # no GPU job: nothing to top up with
    while True:
        job = order[rng.randrange(len(order))]
        need = requested_milli(job.requests)
        if total + need > target:
            return out
        out.append(job)
        total += need


@dataclass
class PackingResult:
    scorer: str
    capacity_milli: int
    arrived: int = 0
    placed: int = 0
    #: Jobs that found no node when they arrived (never retried).
    failed: int = 0
    #: (arrived fraction, GPU allocation ratio, fragmentation / capacity) at each mark.
    curve: list[tuple[float, float, float]] = field(default_factory=list)
    #: GPU requested by all the arrivals over the capacity (just below ``fill``).
    arrived_fraction: float = 0.0
    #: Arrival number (0, 1, ...: a job drawn again to top up is another arrival) ->
    #: (node, GPU indices) for the arrivals placed.
    where: dict[int, tuple[str, tuple[int, ...]]] = field(default_factory=dict)

    def ratio_at(self, arrived: float) -> float | None:
        """The allocation ratio at the mark ``arrived`` (e.g. 1.0), None if not reached."""
        for mark, ratio, _ in self.curve:
            if abs(mark - arrived) < 1e-9:
                return ratio
        return None


def marks_for(fill: float, step: float = 0.1) -> list[float]:
    n = int(round(fill / step + 1e-9))
    marks = [round(step * i, 10) for i in range(1, n + 1)]
    if not marks or abs(marks[-1] - fill) > 1e-9:
        marks.append(fill)
    return marks


class _Fgd:
    """FGD scoring with memoised node fragmentation (a node's is a function of its free
    devices and free CPU alone; equal nodes share one entry)."""

    def __init__(self, shapes: Sequence[PodShape]):
        self.shapes = tuple(shapes)
        self.memo: dict[tuple, float] = {}

    def frag(self, devices: tuple[tuple[int, str], ...], cpu: int) -> float:
        key = (devices, cpu)
        v = self.memo.get(key)
        if v is None:
            v = self.memo[key] = node_fragmentation(devices, cpu, self.shapes)
        return v

    def choose(self, snapshot: Snapshot, requests: Resources,
               classes: "_Classes") -> tuple[NodeState, int | None] | None:
        """The node (and, for a share, the device) where ``requests`` grows fragmentation
        least. Nodes in equal states score alike: each class is judged once, on its node
        of the lowest name (the best-fit tie-break prefers it among equals)."""
        share = share_of(requests)
        gpus = requests.get(GPU, 0)
        cpu = requests.get(CPU, 0)
        c = requests.constraints
        models = c.gpu_models if c is not None else ()
        best = None
        for devices, state in classes.fitting(snapshot, requests):
            free_cpu = state.free(CPU)
            before = self.frag(devices, free_cpu)
            growth, device = self._growth(state, devices, free_cpu - cpu, before, share, gpus, models)
            if growth is None or (best is not None and growth > best[0][0]):
                continue
            rank = (growth, node_score(state, requests))
            if best is None or rank < best[0]:
                best = (rank, state, device)
        return None if best is None else (best[1], best[2])

    def _growth(self, state: NodeState, devices, cpu_after: int, before: float, share: int, gpus: int,
                models: tuple[str, ...]) -> tuple[float | None, int | None]:
        ok = (lambda m: any(gpu_model_matches(w, m) for w in models)) if models else (lambda m: True)
        if share:
            best: tuple[float, int] | None = None
            for i, (free, model) in enumerate(devices):
                if free < share or not ok(model) or (i and devices[i - 1] == (free, model)):
                    continue
                after = devices[:i] + ((free - share, model),) + devices[i + 1:]
                growth = self.frag(tuple(sorted(after)), cpu_after) - before
                if best is None or growth < best[0]:
                    best = (growth, i)
            if best is None:
                return None, None
            free, model = devices[best[1]]
            # The device of the node with that free share and model, lowest index first.
            device = min(g.index for g in state.node.gpus
                         if g.model == model and device_free(state, g.index) == free)
            return best[0], device
        after = list(devices)
        taken = 0
        for i in range(len(after) - 1, -1, -1):          # sorted: free devices (1000) last
            if taken == gpus:
                break
            free, model = after[i]
            if free == MILLI and ok(model):
                after[i] = (0, model)
                taken += 1
        if taken < gpus:
            return None, None
        return self.frag(tuple(sorted(after)), cpu_after) - before, None


def _weighted_best_fit(snapshot: Snapshot, requests: Resources, classes: "_Classes") -> NodeState | None:
    """The FGD simulator's BestFit baseline (``best_fit_score.go``): the node left with
    the least ``0.5 x free CPU / 128 CPUs + 0.5 x free GPU / 8 GPUs`` (free GPU in
    thousandths, shares counted), ties by name; a share then goes on the fullest device
    that holds it (its ``bestfit`` GPU choice)."""
    need_cpu, need = requests.get(CPU, 0), requested_milli(requests)
    best = None
    for devices, state in classes.fitting(snapshot, requests):
        left = 0.5 * (state.free(CPU) - need_cpu) / MAX_SPEC_CPU \
            + 0.5 * (sum(f for f, _ in devices) - need) / MAX_SPEC_MILLI
        rank = (left, state.node.name)
        if best is None or rank < best[0]:
            best = (rank, state)
    return None if best is None else best[1]


def _key(state: NodeState) -> tuple[tuple[int, str], ...]:
    return tuple(sorted(free_devices(state)))


class _Classes(dict):
    """Nodes in equal states: (free devices, everything else that decides a fit) ->
    the positions of those nodes in the snapshot's order."""

    def __init__(self, snapshot: Snapshot):
        super().__init__()
        self.of: dict[int, tuple] = {}
        for i, state in enumerate(snapshot.ordered):
            self.place(i, state)

    def fitting(self, snapshot: Snapshot, requests: Resources):
        """(free devices, node) for each class whose node of the lowest name fits ``requests``."""
        ordered = snapshot.ordered
        for (devices, _), members in self.items():
            state = ordered[min(members)]
            if state.fits(requests):
                yield devices, state

    @staticmethod
    def key(state: NodeState) -> tuple:
        rest = (tuple(sorted(state.allocatable.items())), tuple(sorted((k, v) for k, v in state.used.items() if v)),
                state.cordoned, state.node.labels, len(state.free_cores))
        return _key(state), rest

    def place(self, i: int, state: NodeState) -> None:
        old = self.of.get(i)
        if old is not None:
            members = self[old]
            members.discard(i)
            if not members:
                del self[old]
        key = self.of[i] = self.key(state)
        self.setdefault(key, set()).add(i)


def pack(nodes: Sequence[Node], jobs: Sequence, scorer: str = "fgd", *, fill: float = 1.3,
         marks: Sequence[float] | None = None, shapes: Sequence[PodShape] | None = None) -> PackingResult:
    """Place ``jobs`` (already in arrival order, e.g. from :func:`arrivals`) one by one on
    ``nodes``, with no departures, by ``scorer`` (one of :data:`SCORERS`); the allocation
    ratio and fragmentation at each arrived fraction of ``marks`` (default 0.1 .. ``fill``).
    ``shapes``: FGD's target workload (default: the typical shapes of ``jobs``)."""
    if scorer not in SCORERS:
        raise ValidationError("--packing", scorer, "expected " + " or ".join(SCORERS))
    snapshot = Snapshot(nodes)
    capacity = sum(len(n.gpus) for n in nodes) * MILLI
    if capacity <= 0:
        raise ValidationError("--cluster", f"{len(nodes)} nodes, 0 GPUs", "expected a cluster with GPUs for --packing")
    result = PackingResult(scorer=scorer, capacity_milli=capacity)
    if shapes is None:
        shapes = typical_shapes(j.requests for j in jobs)
    fgd = _Fgd(shapes)
    classes = _Classes(snapshot) if scorer != "best-fit" else None
    pending_marks = sorted(marks if marks is not None else marks_for(fill))
    arrived_milli = allocated = 0
    for number, job in enumerate(jobs):
        requests = job.requests
        need = requested_milli(requests)
        result.arrived += 1
        piece = None
        if scorer == "best-fit":
            alloc = best_fit(snapshot, requests)
            if alloc is not None:
                piece = alloc.pieces[0]
        elif scorer == "weighted-best-fit":
            state = _weighted_best_fit(snapshot, requests, classes)
            if state is not None:
                piece = place_piece(state, requests)
        else:
            chosen = fgd.choose(snapshot, requests, classes)
            if chosen is not None:
                state, device = chosen
                piece = place_share(state, requests, device) if GPU_SHARE in requests.amounts \
                    else place_piece(state, requests)
        if piece is None:
            result.failed += 1
        else:
            snapshot.assume(Allocation(pieces=(piece,)))
            if classes is not None:
                classes.place(snapshot.position(piece.node), snapshot.nodes[piece.node])
            allocated += need
            result.placed += 1
            result.where[number] = (piece.node, piece.gpus)
        arrived_milli += need
        while pending_marks and arrived_milli >= pending_marks[0] * capacity - 1e-6:
            result.curve.append((pending_marks.pop(0), allocated / capacity,
                                 _cluster_frag(snapshot, fgd) / capacity))
    # The arrivals stop within one job of ``fill`` (the next would pass it): the marks not
    # reached exactly (``fill`` itself, usually) are read at the end.
    for mark in pending_marks:
        result.curve.append((mark, allocated / capacity, _cluster_frag(snapshot, fgd) / capacity))
    result.arrived_fraction = arrived_milli / capacity
    held = sum(allocated_milli(s) for s in snapshot.ordered)
    if held != allocated:                               # the snapshot must agree with the count
        raise CorralError(f"packing: the snapshot holds {held} thousandths of GPU, the placements {allocated}")
    return result


def _cluster_frag(snapshot: Snapshot, fgd: _Fgd) -> float:
    return sum(fgd.frag(_key(s), s.free(CPU)) for s in snapshot.ordered)
