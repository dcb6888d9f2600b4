"""EASY backfill: one reservation per cycle, per node, from time limits.

The first job (in the cycle's visiting order) that is held back only by the nodes'
free capacity gets a *reservation*: the earliest time it could start -- the *shadow
time* -- given when the jobs on each node end at the latest (a running job at its
``expected_end``; a job placed earlier in this cycle at ``now`` + its time limit; a job
without a limit never), on the node where that time is earliest. ``extra`` is what that
node will have free at the shadow time beyond what the reserved job takes there.

After that, a later job may start on the reservation node only if it has a time limit
and ends by the shadow time (``now + limit <= shadow``), or if it fits in the extra
(which then shrinks by what it takes). Jobs on other nodes are unaffected. So backfill
never delays the reserved job (docs/design.md, "Backfill"). Fit is checked with the
real placement code, GPUs and cores as devices. When no start time can be computed
(jobs without a time limit hold what it needs), there is no reservation. A gang (a job
spread over nodes) gets no reservation: it waits for its nodes like any job.
"""

from __future__ import annotations

from itertools import groupby
from typing import Iterable

from ..job import Piece
from ..resources import Resources
from .placement import place_on
from .snapshot import NodeState, Snapshot
from .types import PendingJob, Reservation, RunningJob


def earliest_on_node(state: NodeState, requests: Resources, releases: Iterable[tuple[float, Piece]],
                     now: float) -> tuple[float, Piece, NodeState] | None:
    """When ``requests`` could start on this node at the earliest, if the pieces in
    ``releases`` free at their times (nothing else frees). Returns the time, the piece
    it would get then and the node's state at that time with it assumed, or None.
    ``state`` is not modified."""
    if not requests.fits_in(state.allocatable):
        return None
    s = state.copy()
    alloc = place_on(s, requests)
    if alloc is None:
        free_now = (set(state.free_gpus), set(state.free_cores))
        for when, group in groupby(sorted(releases, key=lambda r: r[0]), key=lambda r: r[0]):
            for _, freed in group:
                s.forget(freed)
            if s.fits(requests):
                alloc = _place_avoiding(s, requests, *free_now)
                if alloc is not None:
                    now = max(now, when)
                    break
        else:
            return None
    piece = alloc.pieces[0]
    s.assume(piece)
    return now, piece, s


def _place_avoiding(state: NodeState, requests: Resources, gpus: set[int], cores: set[int]):
    """Like :func:`place_on`, preferring devices outside ``gpus``/``cores`` (those free
    now): the reserved job takes what frees later, so what is free now stays in the
    extra that backfill may use."""
    for avoid_g, avoid_c in ((gpus, cores), (gpus, set()), (set(), cores)):
        if not avoid_g and not avoid_c:
            continue
        view = NodeState(node=state.node, allocatable=state.allocatable, used=state.used,
                         free_gpus=state.free_gpus - avoid_g, free_cores=state.free_cores - avoid_c,
                         shares=state.shares)
        alloc = place_on(view, requests)
        if alloc is not None:
            return alloc
    return place_on(state, requests)


def releases_on(node: str, running: Iterable[RunningJob], now: float) -> list[tuple[float, Piece]]:
    """(when, piece) on ``node`` for every job there that ends at a known time."""
    out = []
    for job in running:
        if job.expected_end is not None:
            piece = job.allocation.piece_on(node)
            if piece is not None:
                out.append((max(now, job.expected_end), piece))
    return out


def earliest_start(snapshot: Snapshot, requests: Resources, running: Iterable[RunningJob],
                   now: float) -> tuple[str, float] | None:
    """(node, time) where and when ``requests`` could start at the earliest, given that
    ``running`` jobs end at their ``expected_end``; None when it depends on a job without
    a time limit. The snapshot must hold those jobs' allocations; it is not modified."""
    running = list(running)
    best: tuple[float, str] | None = None
    for state in snapshot.ordered:
        found = earliest_on_node(state, requests, releases_on(state.node.name, running, now), now)
        if found is not None and (best is None or (found[0], state.node.name) < best):
            best = (found[0], state.node.name)
    return None if best is None else (best[1], best[0])


class ActiveReservation:
    """The cycle's reservation while the cycle runs: who may still use its node."""

    def __init__(self, job: PendingJob, node: str, shadow: float, at_shadow: NodeState):
        self.job_id = job.id
        self.node = node
        self.shadow = shadow
        # What is free at the shadow time once the reserved job has its allocation.
        self.extra: dict[str, int] = {r: at_shadow.free(r) for r in at_shadow.allocatable}
        self.extra_gpus = set(at_shadow.free_gpus)
        self.extra_cores = set(at_shadow.free_cores)

    def allows(self, job: PendingJob, now: float) -> bool:
        """True when ``job`` ends by the shadow time (it has a limit that says so)."""
        limit = job.time_limit
        return limit is not None and now + limit <= self.shadow

    def view(self, state: NodeState) -> NodeState:
        """The part of the node a job that does not end by the shadow time may use: what
        is free now *and* free at the shadow time beyond the reserved job."""
        return NodeState(
            node=state.node,
            allocatable={r: min(state.free(r), self.extra.get(r, 0)) for r in state.allocatable},
            used={},
            free_gpus=state.free_gpus & self.extra_gpus,
            free_cores=state.free_cores & self.extra_cores,
        )

    def consume(self, piece: Piece) -> None:
        for r, x in piece.requests.items():
            self.extra[r] = self.extra.get(r, 0) - x
        self.extra_gpus.difference_update(piece.gpus)
        self.extra_cores.difference_update(piece.cores)

    def public(self) -> Reservation:
        return Reservation(self.job_id, self.node, self.shadow,
                           Resources({r: v for r, v in self.extra.items() if v > 0}))
