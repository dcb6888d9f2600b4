"""Shared GPUs: a job that asks for a share of one GPU, and where on a node it goes.

**The resource.** A share is requested as ``corral.dev/gpu-milli: N``: thousandths of one
GPU, ``1 <= N <= 1000``, with no ``nvidia.com/gpu`` beside it. It is a separate extended
resource rather than a fractional ``nvidia.com/gpu`` (Kubernetes takes only whole counts of
device-plugin resources, so ``nvidia.com/gpu: 0.25`` is not valid there) and rather than a
GPU-memory request (a memory amount means another share on an A100-80GB than on a T4, so
one trace or spec would mean different things on different nodes; a share in thousandths
means the same everywhere). It is an integer, as every extended resource in Kubernetes
is, and it is the unit of the FGD paper's simulator (``gpu-milli``) and of the Alibaba
openb traces (``gpu_milli``), so those traces load as they are.

**The accounting.** A node's devices are either wholly free (in ``NodeState.free_gpus``),
held whole by one job, or *shared*: ``NodeState.shares`` maps each shared device to the
thousandths its sharers hold (1..1000). A shared device counts as a used GPU in the
node's ``nvidia.com/gpu`` accounting from its first sharer to its last, so whole-GPU
requests never land on it and the free-GPU count the best-fit index sorts by stays the
number of wholly free devices. The sum of a device's shares never exceeds 1000
(:meth:`~corral.scheduler.snapshot.NodeState.assume` raises otherwise). A share job's
:class:`~corral.job.Piece` names its one device in ``gpus``, so every sharer of a device
gets the same ``CUDA_VISIBLE_DEVICES``.

**Where on the node.** :func:`choose_share_device`: the eligible device (of a wanted model)
with the least free share that still holds the request (best fit: fill the shared
devices before opening a free one), then the lowest-numbered free device. The node is
chosen by the placement in use (:func:`corral.scheduler.placement.place_share` makes the
piece); :mod:`corral.sim.packing` adds the FGD scorer.

**Fragmentation** (the FGD paper's measure, Weng et al., "Beware of Fragmentation", ATC'23,
as its simulator computes it, ``pkg/utils/frag.go``): for a *target workload* -- the
typical pod shapes with their frequencies -- a node's fragmentation is the expected free
GPU (thousandths) that the next job drawn from the workload cannot use. For a shape that
fits the node (CPU, and enough devices with its share free, of a wanted model), the free
share of the devices too small for it is fragment; for a shape that does not fit at all,
all the node's free GPU is. :func:`node_fragmentation` computes it; FGD places each job
where it grows the most slowly.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..resources import CPU, GPU, GPU_SHARE, Resources
from .eligibility import gpu_model_matches, wanted_gpus

#: A node's state (:class:`corral.scheduler.snapshot.NodeState`: ``node``, ``free_gpus``,
#: ``shares``); named loosely here, as the snapshot builds on this module.
NodeState = Any

#: The shared-GPU resource (``corral.dev/gpu-milli``): thousandths of one GPU.
__all__ = ["GPU_SHARE"]
MILLI = 1000


def share_of(requests: Resources) -> int:
    """The thousandths of one GPU ``requests`` asks to share (0: none)."""
    return requests.amounts.get(GPU_SHARE, 0)


def requested_gpus(requests: Resources) -> float:
    """GPUs a request asks for: whole GPUs, or a share's fraction of one (0.25)."""
    share = requests.amounts.get(GPU_SHARE, 0)
    return share / MILLI if share else requests.amounts.get(GPU, 0)


def as_whole(requests: Resources) -> Resources:
    """The request with its share counted as one whole GPU (with the same constraints):
    what it needs for "could it ever fit" questions, since a free device holds any share."""
    share = requests.amounts.get(GPU_SHARE, 0)
    if not share:
        return requests
    amounts = {k: v for k, v in requests.amounts.items() if k != GPU_SHARE}
    amounts[GPU] = amounts.get(GPU, 0) + 1
    return Resources(amounts, constraints=requests.constraints)


def check_share_request(requests: Resources, field: str = "resources") -> None:
    """A share request is 1..1000 thousandths of one GPU, on one node, without whole GPUs."""
    from ..errors import ValidationError

    share = requests.amounts.get(GPU_SHARE, 0)
    if not share:
        return
    if share > MILLI:
        raise ValidationError(f"{field}.{GPU_SHARE}", share,
                              "expected 1 to 1000 (thousandths of one GPU); ask for whole GPUs with nvidia.com/gpu")
    if requests.amounts.get(GPU, 0):
        raise ValidationError(f"{field}.{GPU_SHARE}", share,
                              "expected either nvidia.com/gpu (whole GPUs) or a share of one GPU, not both")
    if requests.replicas > 1:
        raise ValidationError(f"{field}.{GPU_SHARE}", share, "expected a share on one node (nodes: 1)")


def device_free(state: NodeState, device: int) -> int:
    """Thousandths of ``device`` free on the node: 1000 wholly free, 0 held whole."""
    if device in state.free_gpus:
        return MILLI
    used = state.shares.get(device)
    return 0 if used is None else MILLI - used


def _eligible(state: NodeState, requests: Resources) -> Iterable[int]:
    wanted = wanted_gpus(state.node, requests.constraints)
    if wanted is None:
        return list(state.free_gpus) + list(state.shares)
    return [d for d in state.free_gpus if d in wanted] + [d for d in state.shares if d in wanted]


def share_fits(state: NodeState, requests: Resources) -> bool:
    """Some eligible device of the node has the requested share free."""
    want = share_of(requests)
    return any(device_free(state, d) >= want for d in _eligible(state, requests))


def share_candidates(state: NodeState, requests: Resources) -> list[int]:
    """The eligible devices that can take the share now, one per distinct free amount
    (devices with equal free shares are alike to every scorer), lowest index first."""
    want = share_of(requests)
    seen: dict[int, int] = {}
    for d in sorted(_eligible(state, requests)):
        free = device_free(state, d)
        if free >= want and free not in seen:
            seen[free] = d
    return [seen[f] for f in sorted(seen)]


def choose_share_device(state: NodeState, requests: Resources) -> int | None:
    """Best fit on the node: the eligible device left with the least free share, shared
    devices before wholly free ones, lowest index among equals; None when none fits."""
    candidates = share_candidates(state, requests)
    return candidates[0] if candidates else None


# -- fragmentation (FGD) ---------------------------------------------------------------------

@dataclass(frozen=True)
class PodShape:
    """One shape of the target workload: CPU (millicores), GPUs, the share of each GPU in
    thousandths (1000 for whole GPUs), the GPU models allowed (empty: any), its weight."""

    cpu: int
    gpus: int
    milli: int
    models: tuple[str, ...] = ()
    weight: float = 1.0


def shape_of(requests: Resources) -> tuple[int, int, int, tuple[str, ...]]:
    """(cpu, gpus, milli, models) of a request, as FGD counts pod shapes."""
    share = share_of(requests)
    c = requests.constraints
    models = c.gpu_models if c is not None else ()
    if share:
        return requests.get(CPU, 0), 1, share, models
    gpus = requests.get(GPU, 0)
    return requests.get(CPU, 0), gpus, MILLI if gpus else 0, models


def typical_shapes(requests: Iterable[Resources], *, popularity: float = 0.6, step: int = 10,
                   with_cpu_jobs: bool = False) -> tuple[PodShape, ...]:
    """The target workload as FGD's simulator builds it (``GetTypicalPods``): shapes by
    how many jobs have them, most common first, taken ``step`` at a time until they cover
    ``popularity`` of the jobs, their weights renormalised to sum to 1. Jobs without GPUs
    count only with ``with_cpu_jobs`` (its default leaves them out)."""
    counts: dict[tuple, int] = {}
    order: list[tuple] = []
    total = 0
    for r in requests:
        key = shape_of(r)
        if key[1] == 0 and not with_cpu_jobs:
            continue
        if key not in counts:
            counts[key] = 0
            order.append(key)
        counts[key] += 1
        total += 1
    if not total:
        return ()
    # Most common first; equal counts in first-seen order (deterministic).
    ranked = sorted(order, key=lambda k: -counts[k])
    taken, cum, i = [], 0, 0
    while cum < popularity * total and i < len(ranked):
        for k in ranked[i:i + step]:
            taken.append(k)
            cum += counts[k]
        i += step
    return tuple(PodShape(cpu=k[0], gpus=k[1], milli=k[2], models=k[3], weight=counts[k] / cum) for k in taken)


def node_fragmentation(free: Sequence[tuple[int, str]], free_cpu: int, shapes: Sequence[PodShape]) -> float:
    """The FGD fragmentation of a node (expected thousandths of GPU the next job of the
    target workload cannot use): ``free`` is each device's (free thousandths, model),
    ``free_cpu`` the node's free millicores. See the module docstring."""
    total = sum(f for f, _ in free)
    if not total:
        return 0.0
    frag = 0.0
    for s in shapes:
        if s.gpus == 0:                       # a CPU job uses no GPU: all of it idles for it
            frag += s.weight * total
            continue
        if s.models:
            usable = [f for f, m in free if any(gpu_model_matches(w, m) for w in s.models)]
            if not usable:
                frag += s.weight * total      # no access
                continue
        else:
            usable = [f for f, _ in free]
        if free_cpu >= s.cpu and sum(1 for f in usable if f >= s.milli) >= s.gpus:
            # It fits: the free share of the devices too small for it is fragment (and a
            # device of a model it may not use is of no use to it at all).
            small = sum(f for f in usable if f < s.milli) + (total - sum(usable))
            frag += s.weight * small
        else:
            frag += s.weight * total
    return frag


def free_devices(state: NodeState) -> tuple[tuple[int, str], ...]:
    """Each device's (free thousandths, model) on the node, in device order."""
    return tuple((device_free(state, g.index), g.model) for g in state.node.gpus)


def allocated_milli(state: NodeState) -> int:
    """Thousandths of GPU allocated on the node (whole GPUs held count 1000 each)."""
    return sum(MILLI - device_free(state, g.index) for g in state.node.gpus)

