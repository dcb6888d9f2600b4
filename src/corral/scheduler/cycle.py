"""The scheduling cycle: one pipeline, in numbered phases, for the daemon, the estimates
and the simulator alike. Pure: no I/O, no clock (time is ``ctx.now``). Deterministic.

Entry point: :func:`schedule` (the :class:`~.state.ClusterState`, the pending jobs, a
:class:`CycleContext`) -> :class:`Decisions`. Kueue's ``schedule()`` is the model. The
pieces, one module each:

* :mod:`.policies` -- how each queue orders its jobs (one class per policy);
* :mod:`.placement` -- which node(s), GPUs and cores (best fit; gangs across nodes);
* :mod:`.quota` -- nominal quotas, lending, borrowing and per-user limits;
* :mod:`.backfill` -- the cycle's one EASY reservation;
* :mod:`.preemption` -- choosing victims, by priority or to reclaim quota;
* :mod:`.feasibility` -- why a job does not fit, with the numbers.

The phases:

1. **Holds** -- preemptions under way (``ctx.preempting``, and running jobs with
   ``stopping_for`` set) hold back, for their preemptor, what it will take from what is
   free now -- except from the jobs ahead of it in its own queue with no lower priority.
2. **Queues** -- the pending jobs by queue (there is always at least the ``default``
   queue); a job whose queue is not defined waits, saying so.
3. **Order** -- each queue hands out its jobs in its policy's order (:mod:`.policies`):
   the heads of its shape groups merged on a heap, or, for a policy that takes turns
   between users, the head of the user with the lowest share.
4. **Walk** -- at each step every queue offers its next job (its *head*); the cycle takes,
   in this order: heads that fit within their queue's nominal quota before heads that
   would borrow; then the queue with the lowest dominant share of its nominal quota (DRF
   across queues); then higher priority, then earlier ``seq``. For the job taken:

   a. *admit* -- within its per-user limits, within quota (with borrowing), and it fits a
      node (respecting the reservation, if any): then it is placed and started in the
      state, so later jobs see it;
   b. *preempt* -- if preemption is on and the job is held back by quota or the nodes, a
      preemption may be planned (at most one per node per cycle; what the preemptor will
      take of what is free now is held back for the rest of the cycle);
   c. *reserve* -- otherwise, if backfill is on and no reservation exists yet, a job held
      back only by the nodes gets the reservation;
   d. *wait* -- the job gets its typed reason. A strict queue stops at its first job that
      does not start: the rest of that queue waits behind it; so does a queue whose
      policy ages its jobs at a job that is due (``sjf-aging``: it has waited its bound).
      When what held the job back holds back every later job of its shape in its queue
      (the nodes or the quota, no holds in play, no per-user limits, no preemption),
      that shape leaves the walk (in an aging queue too: its due jobs come first, so a
      job after one that is not due is not due either): a
      long queue costs its distinct shapes plus what the cycle places. Why that changes
      no decision, and how shapes that fitted nowhere in the last cycle are only tried
      on the nodes that gained capacity since: docs/design.md ("Why a shape may leave
      the walk", "Across cycles").

5. **Decisions** -- the placements (already started in the state), the preemptions to
   carry out, the reservation, the order the jobs were taken in, and for every job left
   waiting a typed :class:`~corral.reasons.Wait` with its numbers: resources short
   (against what is left, holds included), behind a blocked job, quota, user limit,
   reserved for job N, fair share, preempting, unknown queue.

Holds are taken out again before :func:`schedule` returns; the placements stay in the
state (the caller undoes them with :meth:`ClusterState.end
<corral.scheduler.state.ClusterState.end>` if it cannot record them).
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Mapping

from ..job import Allocation
from ..reasons import (Behind, FairShare, Preempting, PreemptionKind, QuotaExceeded, Reserved, UnknownQueue,
                       Wait)
from ..resources import GPU, Resources
from .backfill import ActiveReservation, earliest_on_node, releases_on
from .feasibility import explain
from .placement import best_fit, place_multi, place_on
from .preemption import hold_for, plan_on_node
from .queue import GroupKey, PendingQueue, PendingSet
from .state import ClusterState
from .queues import QueueSpec
from .snapshot import NodeState
from .types import PendingJob, Placement, Preemption, Reservation, RunningJob, seconds_until

#: Preemption plans tried per cycle (jobs that fail alike are remembered); a cap so a
#: long queue of blocked jobs cannot make one cycle slow.
MAX_PREEMPTION_TRIES = 64


@dataclass
class CycleContext:
    """Everything besides the state and the pending jobs that a cycle needs."""

    now: float
    backfill: bool = False
    preempt: bool = False
    #: Historical dominant share per user (decayed usage, 0..1+), for fair share.
    shares: Mapping[str, float] = field(default_factory=dict)
    #: Preemptions under way: preemptor id -> node, from the cycle that planned them
    #: until the preemptor starts (or leaves the queue). While its victims stop (they
    #: carry ``stopping_for``) and after they are gone, what the preemptor will take on
    #: that node is held for it, so no job ranked after it -- a requeued victim included
    #: -- takes it first. Preemptors whose victims still carry ``stopping_for`` count as
    #: under way even when missing here.
    preempting: Mapping[int, str] = field(default_factory=dict)
    #: False: decisions only, no reasons worked out (projections, the simulator). The
    #: decisions are the same either way.
    reasons: bool = True


class Decisions:
    """What one cycle decided."""

    def __init__(self) -> None:
        self.placements: list[Placement] = []
        #: Preemptions to carry out (victims to stop and requeue), planned this cycle.
        self.preemptions: list[Preemption] = []
        self.reservation: Reservation | None = None
        #: The pending jobs the walk took, in the order it took them.
        self.visited: list[int] = []
        self._reasons: dict[int, Wait] = {}
        #: Jobs that left the walk together, with their common reason (None until the
        #: cycle's end works out the shape's shortfall).
        self._groups: list[tuple[list[PendingJob], Wait | None]] = []
        self._queues: dict[str, tuple[PendingQueue, list[int]]] = {}
        self._positions: dict[int, int] | None = None

    @property
    def reasons(self) -> dict[int, Wait]:
        """Why each pending job that was not placed waits (empty for a decisions-only cycle)."""
        if self._groups:
            for jobs, wait in self._groups:
                for job in jobs:
                    self._reasons[job.id] = wait  # type: ignore[assignment]
            self._groups = []
        return self._reasons

    def waits(self) -> Iterable[tuple[list[int], Wait]]:
        """The reasons, grouped: (job ids, their reason) -- cheaper than :attr:`reasons`
        for a caller that compares whole groups."""
        for jobs, wait in self._groups:
            yield [j.id for j in jobs], wait  # type: ignore[misc]
        for job_id, wait in self._reasons.items():
            yield [job_id], wait

    def reason(self, job_id: int) -> Wait | None:
        return self.reasons.get(job_id)

    def positions(self) -> dict[int, int]:
        """Each waiting job's place in its queue's line (1 = next), as this cycle saw it:
        the queue's order; in a queue that takes turns between users, the order the walk
        took its jobs in, then the rest."""
        if self._positions is not None:
            return self._positions
        placed = {p.job_id for p in self.placements}
        out: dict[int, int] = {}
        for queue, visited in self._queues.values():
            if queue.policy.by_user:
                ids = [j for j in visited if j in queue.jobs and j not in placed]
                seen = set(ids)
                ids += [j.id for j in queue.ordered() if j.id not in seen and j.id not in placed]
            else:
                ids = [j.id for j in queue.ordered() if j.id not in placed]
            out.update((job_id, i + 1) for i, job_id in enumerate(ids))
        self._positions = out
        return out


def schedule(state: ClusterState, pending: PendingSet | Iterable[PendingJob], ctx: CycleContext) -> Decisions:
    """Run one cycle (see the module docstring). ``pending`` is a :class:`PendingSet`
    kept by the caller across cycles (cheap) or any iterable of jobs; it is not changed.
    The placements are started in ``state``."""
    if not isinstance(pending, PendingSet):
        pending = PendingSet(state.queues, pending)
    return _Cycle(state, pending, ctx).run()


class _Outcome(enum.Enum):
    PLACED = "placed"
    USER = "user limit"
    QUOTA = "quota"
    RESERVED = "reserved"
    NODES = "nodes"


@dataclass
class _Planned:
    """A preemption on a node (planned now or in flight): the preemptor's future
    allocation and what of it is held back from what is free now."""

    job: PendingJob
    victims: list[RunningJob]
    alloc: Allocation | None
    hold: Allocation | None
    kind: PreemptionKind


class _Order:
    """One queue's jobs for one cycle, handed out in the queue's order.

    Each (lane, shape) group of the :class:`PendingQueue` is a sorted list; a heap per
    lane holds each group's next job. Without lanes (one lane) the head is that heap's
    top; with lanes (users) the head is the top of the lane whose user has the lowest
    share. A shape can leave the walk (:meth:`drop_shape`): its groups' rest is recorded
    and their heap entries are skipped."""

    def __init__(self, queue: PendingQueue, share: Callable[[Hashable], float] | None,
                 dead: set[Resources] | None = None):
        self.queue = queue
        self.keys = queue.keys
        self.share = share if queue.policy.by_user else None
        self.cursor: dict[GroupKey, int] = {}
        self.lanes: dict[Hashable, list[tuple[tuple, GroupKey]]] = {}
        self.dead: set[Resources] = dead if dead is not None else set()
        keys = self.keys
        for gkey, group in queue.groups.items():
            if gkey[1] not in self.dead:
                self.lanes.setdefault(gkey[0], []).append((keys[group[0].id], gkey))
        for heap in self.lanes.values():
            heapq.heapify(heap)

    def _top(self, heap: list) -> tuple | None:
        while heap:
            entry = heap[0]
            if entry[1][1] in self.dead:
                heapq.heappop(heap)
                continue
            return entry
        return None

    def head(self) -> PendingJob | None:
        best = None
        best_key = None
        for lane, heap in self.lanes.items():
            entry = self._top(heap)
            if entry is None:
                continue
            if self.share is None:
                best = entry
                break
            key = (self.share(lane), entry[0])
            if best_key is None or key < best_key:
                best, best_key = entry, key
        if best is None:
            return None
        gkey = best[1]
        return self.queue.groups[gkey][self.cursor.get(gkey, 0)]

    def pop(self, job: PendingJob) -> None:
        """Take ``job``, which must be the current :meth:`head`."""
        gkey = self.queue.group_of(job)
        heap = self.lanes[gkey[0]]
        heapq.heappop(heap)
        i = self.cursor.get(gkey, 0) + 1
        self.cursor[gkey] = i
        group = self.queue.groups[gkey]
        if i < len(group):
            heapq.heappush(heap, (self.keys[group[i].id], gkey))

    def drop_shape(self, shape: Resources, collect: bool = True) -> list[PendingJob]:
        """The jobs of ``shape`` not taken yet (when ``collect``), which leave the walk."""
        self.dead.add(shape)
        if not collect:
            return []
        groups = self.queue.groups
        if self.share is None:                  # one lane: one group per shape
            gkey = (None, shape)
            group = groups.get(gkey)
            return group[self.cursor.get(gkey, 0):] if group else []
        rest: list[PendingJob] = []
        for gkey, group in groups.items():
            if gkey[1] == shape:
                rest.extend(group[self.cursor.get(gkey, 0):])
        return rest

    def drop_all(self) -> list[PendingJob]:
        """Every job not taken yet (a blocked strict queue)."""
        rest: list[PendingJob] = []
        for gkey, group in self.queue.groups.items():
            if gkey[1] not in self.dead:
                rest.extend(group[self.cursor.get(gkey, 0):])
        self.lanes = {}
        return rest


class _Cycle:
    def __init__(self, state: ClusterState, pending: PendingSet, ctx: CycleContext):
        self.state = state
        self.snapshot = state.snapshot
        self.pending = pending
        self.ctx = ctx
        self.now = ctx.now
        self.queues: Mapping[str, QueueSpec] = state.queues
        self.quota = state.quota
        self.users = state.users
        self.shares = state.shares
        self.shares.historical = ctx.shares
        self.result = Decisions()
        self.planned: dict[str, _Planned] = {}          # node -> preemption on it
        self.inflight: dict[int, str] = {}              # preemptor id -> node
        self.reservation: ActiveReservation | None = None
        # Memos valid for one cycle (capacity and quota only shrink while it runs).
        self.phys_fail: set[tuple[Resources, bool]] = set()
        #: One-node shapes that fitted no node, unrestricted by the reservation (what the
        #: snapshot remembers for the next cycle).
        self.nowhere: set[Resources] = set()
        self.nowhere_gangs: set[Resources] = set()
        self.quota_fail: dict[tuple[str, Resources], QuotaExceeded] = {}
        self.no_preempt: set[tuple] = set()
        self.no_reservation: set[Resources] = set()
        self.preempt_tries = 0
        self.picks: list[tuple[str, str, float, tuple[str, ...]]] = []   # fair share: queue, user, share, nodes
        self.initial_free: dict[str, tuple[dict[str, int], int]] = {}
        self.explain_later: dict[int, tuple[Resources, bool]] = {}
        self._gained: list | None = None
        #: Positions of the nodes where a hold was let go in this cycle.
        self._released: set[int] = set()
        self._fit: dict[Resources, NodeState] = {}
        self._nofit: set[Resources] = set()
        #: Per plain queue, the shapes the predrop kept only because a node that gained
        #: capacity holds them (see :meth:`_recheck`).
        self._survivors: dict[str, list[Resources]] = {}
        self._plain_queues: dict[str, bool] = {}
        self._users_on = state.tracks_users
        self.shares_changed = False
        self.reasons = ctx.reasons
        #: Some preemption may be planned: the config's (priority, reclaim), or a queue's
        #: policy preempting by attained service (``las``).
        self.may_preempt = ctx.preempt or any(q.order.by_service for q in self.queues.values())

    # -- the phases --------------------------------------------------------------------------
    def run(self) -> Decisions:
        res = self.result
        self._hold_inflight()                                                      # phase 1
        orders: dict[str, _Order] = {}                                             # phases 2, 3
        unknown: list[PendingJob] = []
        share = self.shares.share
        for name in sorted(self.pending.queues):
            queue = self.pending.queues[name]
            if name not in self.queues:
                unknown.extend(queue.ordered())
                continue
            orders[name] = _Order(queue, share, self._predrop(name, queue))
            res._queues[name] = (queue, [])
        fair = [name for name in orders if orders[name].share is not None]
        if self.reasons and fair:
            self.initial_free = {s.node.name: ({r: s.free(r) for r in s.allocatable}, len(s.free_gpus))
                                 for s in self.snapshot.ordered}
        self._walk(orders, fair)                                                   # phase 4
        for job in unknown:
            res.visited.append(job.id)
            if self.reasons:
                res._reasons[job.id] = UnknownQueue(queue=job.queue, known=tuple(sorted(self.queues)))
        self._finish()                                                             # phase 5
        return res

    def _plain(self, name: str) -> bool:
        """A queue where a job that does not fit changes nothing for later jobs (see
        :meth:`_predrop`)."""
        if self.planned:
            return False
        plain = self._plain_queues.get(name)
        if plain is None:
            spec = self.queues[name]
            plain = self._plain_queues[name] = not (
                self.ctx.backfill or self.may_preempt or spec.order.strict or spec.order.by_user or spec.order.ages
                or spec.has_user_limits or spec.nominal is not None)
        return plain

    def _fits_gained(self, shape: Resources) -> bool:
        """Whether a node that gained capacity since the last cycle holds ``shape`` now.
        "No" stays true for the rest of the cycle (capacity only shrinks); "yes" is
        remembered with the node that said it, asked again first next time."""
        witness = self._fit.get(shape)
        if witness is not None:
            if witness.fits(shape):
                return True
            del self._fit[shape]
        elif shape in self._nofit:
            return False
        gained = self._gained
        if gained is None:
            ordered = self.snapshot.ordered
            gained = self._gained = [ordered[i] for i in self.snapshot.gained]
        for state in gained:
            if state.fits(shape):
                self._fit[shape] = state
                return True
        self._nofit.add(shape)
        return False

    def _predrop(self, name: str, queue: PendingQueue) -> set[Resources] | None:
        """The shapes to leave out of the walk before it starts: those that fitted nowhere at
        the end of the last cycle and that no node that gained capacity since could hold --
        where trying them could change nothing else (docs/design.md, "Across cycles"): a plain
        best-effort queue without quota or per-user limits, no backfill, no preemption, no
        holds. In a busy cluster that is most shapes, so a cycle costs what it places."""
        snapshot = self.snapshot
        failed = snapshot.failed
        gangs = snapshot.failed_gangs if not snapshot.gained else ()
        if not (failed or gangs) or not self._plain(name):
            return None
        dead: set[Resources] = set()
        survivors: list[Resources] = []
        check = bool(snapshot.gained)         # nothing gained: what fitted nowhere still does
        for gkey, group in queue.groups.items():
            shape = gkey[1]
            if shape in gangs:
                self.nowhere_gangs.add(shape)
            elif shape in failed:
                if check and self._fits_gained(shape):
                    survivors.append(shape)
                    continue
                self.nowhere.add(shape)
            else:
                continue
            dead.add(shape)
            if self.reasons:
                self.result._groups.append((list(group), None))
        if survivors:
            self._survivors[name] = survivors
        return dead

    def _recheck(self, order: _Order, survivors: list[Resources]) -> list[Resources]:
        """After a placement in a plain queue: the survivors of :meth:`_predrop` (shapes
        that can only go to a node that gained capacity) that no such node holds any more
        leave the walk now, in one pass over the few gained nodes, instead of one walk
        step each; the others are returned."""
        gained = self._gained
        if gained is None:
            ordered = self.snapshot.ordered
            gained = self._gained = [ordered[i] for i in self.snapshot.gained]
        keep: list[Resources] = []
        dead = order.dead
        for shape in survivors:
            if shape in dead:
                continue
            if shape.only_vec:
                a, b, c = shape.vec
                for state in gained:
                    g, cpu, m = state.vec
                    if a <= g and b <= cpu and c <= m:
                        keep.append(shape)
                        break
                else:
                    self._nofit.add(shape)
                    self._drop_nowhere(order, shape)
            elif self._fits_gained(shape):
                keep.append(shape)
            else:
                self._drop_nowhere(order, shape)
        return keep

    def _drop_nowhere(self, order: _Order, shape: Resources) -> None:
        """``shape`` fits no node now: the rest of its jobs leave the walk."""
        self.nowhere.add(shape)
        rest = order.drop_shape(shape, self.reasons)
        if rest:
            self.result._groups.append((rest, None))

    def _walk(self, orders: dict[str, _Order], fair: list[str]) -> None:
        res = self.result
        if not orders:
            return
        quota = self.quota

        def head_key(name: str) -> tuple | None:
            head = orders[name].head()
            if head is None:
                return None
            return (not quota.within_nominal(name, head.requests), quota.share(name),
                    -head.priority, head.seq, head.id, name), head

        single = len(orders) == 1
        keys = {name: head_key(name) for name in orders} if not single else {}
        only = next(iter(orders)) if single else None
        failed = self.snapshot.failed
        while True:
            if single:
                job = orders[only].head()
                if job is None:
                    return
                name = only
            else:
                best = min((k for k in keys.values() if k is not None), default=None, key=lambda k: k[0])
                if best is None:
                    return
                job, name = best[1], best[0][-1]
            order = orders[name]
            if job.requests in failed and self._plain(name) and not self._fits_gained(job.requests):
                # Fitted nowhere at the last cycle's end, and no node that gained capacity
                # holds it now (free capacity only shrinks in a cycle): its shape is done.
                self._drop_nowhere(order, job.requests)
                if not single:
                    keys[name] = head_key(name)
                continue
            order.pop(job)
            res.visited.append(job.id)
            res._queues[name][1].append(job.id)
            self.shares_changed = False
            spec = self.queues[name]
            if self._visit(job, spec, order):
                survivors = self._survivors.get(name)
                if survivors:
                    self._survivors[name] = self._recheck(order, survivors)
            elif spec.order.strict or (spec.order.ages and spec.order.blocks(job, self.now)):
                blocker = job.id
                rest = order.drop_all()
                if rest and self.reasons:
                    res._groups.append((rest, Behind(job_id=blocker)))
            if not single:
                keys[name] = head_key(name)
                if self.shares_changed:
                    for other in fair:
                        if other != name:
                            keys[other] = head_key(other)

    def _finish(self) -> None:
        res = self.result
        # Explain shortfalls against what is left (holds included: they are not free).
        if self.reasons:
            shapes: dict[tuple[Resources, bool], Wait] = {}
            for job_id, key in self.explain_later.items():
                w = shapes.get(key)
                if w is None:
                    w = shapes[key] = explain(self.snapshot, key[0], gang=key[1])
                res._reasons[job_id] = w
            groups = []
            for jobs, wait in res._groups:
                if wait is None:
                    key = (jobs[0].requests, jobs[0].gang)
                    wait = shapes.get(key)
                    if wait is None:
                        wait = shapes[key] = explain(self.snapshot, key[0], gang=key[1])
                    spec = self.queues.get(jobs[0].queue)
                    if self.picks and spec is not None and spec.order.by_user:
                        # Fair share may say more, job by job (its user's share).
                        for job in jobs:
                            res._reasons[job.id] = self._fair_share_wait(job) or wait
                        continue
                groups.append((jobs, wait))
            res._groups = groups
        self.snapshot.failed = self.nowhere
        self.snapshot.failed_gangs = self.nowhere_gangs
        self.snapshot.gained = self._released
        for planned in self.planned.values():      # every one left is held: let go
            self._unhold(planned)
        if self.reservation is not None:
            res.reservation = self.reservation.public()

    def _fair_share_wait(self, job: PendingJob) -> FairShare | None:
        """FairShare when the job would have fitted at the start of the cycle and a job of
        another user with a lower share, in the same queue, went first on such a node."""
        mine = self.shares.share(job.user)
        req = job.requests
        for queue, user, share, nodes in reversed(self.picks):
            if queue != job.queue or user == job.user or share >= mine:
                continue
            for node in nodes:
                free, gpus = self.initial_free.get(node, ({}, 0))
                if req.get(GPU, 0) <= gpus and all(x <= free.get(r, 0) for r, x in req.items()):
                    return FairShare(user=job.user, share=mine, other=user, other_share=share)
        return None

    # -- one job -------------------------------------------------------------------------------
    def _visit(self, job: PendingJob, spec: QueueSpec, order: _Order) -> bool:
        """Try to start ``job``; record why not. True when it was placed."""
        if not self.reasons and self._known_to_fail(job):
            return False
        own = node = None
        behind: list[_Planned] = []
        if self.inflight:
            node = self.inflight.pop(job.id, None)      # visited now: no longer "behind"
            own = self.planned[node] if node is not None else None
            if own is not None:
                self._unhold(own)
            # Holds of preemptors further back in this queue, of no higher priority than
            # this job, do not apply to it (it is ahead of them in any case). A job of
            # lower priority ahead in a fair-share queue does not get what was preempted
            # for a higher one: it could be preempted for it again, and again.
            behind = [self.planned[n] for pid, n in self.inflight.items()
                      if pid != job.id and self.planned[n].job.queue == job.queue
                      and self.planned[n].job.priority <= job.priority]
            for pl in behind:
                self._unhold(pl)
        before = len(self.result.placements)
        outcome, detail, restricted = self._admit(job, spec, memo=own is None and not behind)
        took = self.result.placements[-1].allocation if len(self.result.placements) > before else None
        for pl in behind:
            self._rehold(pl, took)
        if outcome is _Outcome.PLACED:
            if own is not None:
                del self.planned[node]
            return True
        if own is not None:
            self._hold(own)
            if own.victims:
                self._preempting(job, own)
            else:       # its victims are gone; what holds it back now is ordinary
                self._record(job, spec, outcome, detail)
            return False
        if (outcome is not _Outcome.USER and (self.ctx.preempt or spec.order.by_service) and job.preempts
                and not job.gang
                and not self._never(job)
                and not (outcome is _Outcome.QUOTA and self.quota.never_fits(job.queue, job.requests))):
            planned = self._plan(job)
            if planned is not None:
                self._preempting(job, planned)
                return False
        if (outcome is _Outcome.NODES and self.ctx.backfill and self.reservation is None and not job.gang
                and not self._never(job)):
            self._reserve(job)
        self._record(job, spec, outcome, detail)
        if (outcome is _Outcome.NODES and not restricted) or outcome is _Outcome.QUOTA:
            if (not spec.order.strict and not self.may_preempt and not self.planned and not behind
                    and not spec.has_user_limits):
                rest = order.drop_shape(job.requests, self.reasons)
                if rest:
                    self.result._groups.append((rest, detail if outcome is _Outcome.QUOTA else None))
        return False

    def _known_to_fail(self, job: PendingJob) -> bool:
        """True when trying ``job`` could neither start it nor change anything (a shape
        already known not to fit, no preemption, no reservation to make, no hold that
        would be lifted for it): decisions-only cycles skip such tries."""
        req = job.requests
        if not ((req, job.gang) in self.phys_fail or (job.queue, req) in self.quota_fail):
            return False
        if self.may_preempt or self.inflight:
            return False
        return not self.ctx.backfill or self.reservation is not None or req in self.no_reservation \
            or (job.queue, req) in self.quota_fail

    def _preempting(self, job: PendingJob, planned: _Planned) -> None:
        if self.reasons:
            self.result._reasons[job.id] = Preempting(victims=tuple(sorted(v.id for v in planned.victims)),
                                                      kind=planned.kind)

    def _record(self, job: PendingJob, spec: QueueSpec, outcome: _Outcome, detail: Wait | None) -> None:
        """The reason for a job that did not start and preempts nothing."""
        if not self.reasons:
            return
        reasons = self.result._reasons
        if outcome is _Outcome.USER or outcome is _Outcome.QUOTA:
            reasons[job.id] = detail  # type: ignore[assignment]
        elif outcome is _Outcome.RESERVED:
            r = self.reservation
            assert r is not None
            reasons[job.id] = Reserved(job_id=r.job_id, node=r.node, shadow=r.shadow,
                                       within=seconds_until(self.now, r.shadow))
        else:
            fair = None
            if spec.order.by_user and self.picks and not self._never(job):
                fair = self._fair_share_wait(job)
            if fair is not None:
                reasons[job.id] = fair
            else:
                self.explain_later[job.id] = (job.requests, job.gang)

    def _admit(self, job: PendingJob, spec: QueueSpec, memo: bool = True) -> tuple[_Outcome, Wait | None, bool]:
        """Placed, or why not; and whether the reservation restricted where it may go."""
        req = job.requests
        if self._users_on:
            limit = self.users.violation(spec, job.queue, job.user, req)
            if limit is not None:
                return _Outcome.USER, limit, False
        if self.quota.active:
            qkey = (job.queue, req)
            if memo and qkey in self.quota_fail:
                return _Outcome.QUOTA, self.quota_fail[qkey], False
            short = self.quota.shortfalls(job.queue, req)
            if short:
                wait = QuotaExceeded(shortfalls=short)
                if memo:
                    self.quota_fail[qkey] = wait
                return _Outcome.QUOTA, wait, False
        pkey = (req, job.gang)
        if memo and pkey in self.phys_fail:
            return _Outcome.NODES, None, False
        if job.gang and req in self.snapshot.failed_gangs and not self.snapshot.gained:
            self.nowhere_gangs.add(req)          # fitted nowhere last cycle; nothing freed since
            if memo:
                self.phys_fail.add(pkey)
            return _Outcome.NODES, None, False
        r = self.reservation
        restricted = r is not None and not r.allows(job, self.now)
        alloc, in_extra = self._place(job, restricted)
        if alloc is not None:
            share = self.shares.share(job.user)
            self._take(job, alloc)
            if in_extra:
                assert r is not None
                piece = alloc.piece_on(r.node)
                if piece is not None:
                    r.consume(piece)
            if spec.order.by_user:
                self.picks.append((job.queue, job.user, share, alloc.nodes))
            return _Outcome.PLACED, None, restricted
        if restricted and not job.gang:
            assert r is not None
            state = self.snapshot.nodes[r.node]
            if state.fits(req) and place_on(state, req) is not None:
                return _Outcome.RESERVED, None, True
        if memo:
            self.phys_fail.add(pkey)
        if not restricted:
            (self.nowhere_gangs if job.gang else self.nowhere).add(req)
        return _Outcome.NODES, None, restricted

    def _place(self, job: PendingJob, restricted: bool) -> tuple[Allocation | None, bool]:
        """The best allocation for ``job`` now, respecting the reservation; and whether it
        may have taken from the reservation's extra."""
        req = job.requests
        r = self.reservation
        if job.gang:
            exclude = frozenset((r.node,)) if restricted and r is not None else frozenset()
            return place_multi(self.snapshot, req, exclude), False
        if not restricted:
            return best_fit(self.snapshot, req), False
        assert r is not None
        alloc = best_fit(self.snapshot, req, swap=(r.node, r.view(self.snapshot.nodes[r.node])))
        return alloc, alloc is not None and r.node in alloc.nodes

    def _take(self, job: PendingJob, alloc: Allocation) -> None:
        self.shares_changed = True
        limit = job.time_limit
        order = self.queues[job.queue].order if job.queue in self.queues else None
        protected = order is not None and order.by_service and order.due(job, self.now)
        self.state.start(RunningJob(job.id, alloc, priority=job.priority, queue=job.queue, user=job.user,
                                    started_at=self.now, expected_end=None if limit is None else self.now + limit,
                                    preemptible=job.preemptible, served=job.served, resumable=job.resumable,
                                    protected=protected, submitted=job.submitted))
        self.result.placements.append(Placement(job.id, alloc))

    def _never(self, job: PendingJob) -> bool:
        """True when no node could ever hold the job (Unschedulable)."""
        if job.gang and job.requests.replicas == 1:
            return not job.requests.fits_in(self.snapshot.capacity)
        return self.snapshot.never_fits(job.requests)

    # -- preemption ----------------------------------------------------------------------------
    def _book(self, job: PendingJob, sign: int) -> None:
        self.shares_changed = True
        if self.quota.active:
            self.quota.add(job.queue, job.requests, sign)
        if self.state.tracks_shares:
            self.shares.add(job.user, job.requests, sign)
        if self.state.tracks_users:
            self.users.add(job.queue, job.user, job.requests, sign)

    def _hold(self, planned: _Planned) -> None:
        if planned.hold is not None:
            self.snapshot.assume(planned.hold)
        self._book(planned.job, 1)

    def _unhold(self, planned: _Planned) -> None:
        if planned.hold is not None:
            self.snapshot.forget(planned.hold)
            # A shape that failed while this was held may fit there once it is let go:
            # the node counts as gained for the next cycle too.
            self._released.update(self.snapshot.position(p.node) for p in planned.hold.pieces
                                  if p.node in self.snapshot.nodes)
        self._book(planned.job, -1)

    def _rehold(self, planned: _Planned, took: Allocation | None) -> None:
        """Hold again after a job ahead in the queue had its try; if that job took part
        of what the preemptor needed (``took``), recompute its allocation (or drop it)."""
        node = planned.alloc.pieces[0].node if planned.alloc is not None else None
        if node is not None and took is not None and node in took.nodes:
            alloc = self._alloc_after(planned.job, node, planned.victims)
            if alloc is None:
                del self.planned[node]
                self.inflight.pop(planned.job.id, None)
                return
            planned.alloc = alloc
            planned.hold = hold_for(self.snapshot.nodes[node], alloc, planned.victims, planned.job.requests)
        self._hold(planned)

    def _alloc_after(self, job: PendingJob, node: str, victims: list[RunningJob]) -> Allocation | None:
        s = self.snapshot.nodes[node].copy()
        for v in victims:
            piece = v.allocation.piece_on(node)
            if piece is not None:
                s.forget(piece)
        return place_on(s, job.requests)

    def _hold_inflight(self) -> None:
        """Preemptions already under way: hold the free part their preemptors will take.
        One whose preemptor no longer fits there even without its victims is dropped
        (the preemptor is treated like any other job)."""
        stopping: dict[int, list[RunningJob]] = {}
        for r in self.state.stopping.values():
            stopping.setdefault(r.stopping_for, []).append(r)  # type: ignore[arg-type]
        if not stopping and not self.ctx.preempting:
            return
        where = {pid: min(n for v in vs for n in v.allocation.nodes) for pid, vs in stopping.items()}
        where.update(self.ctx.preempting)
        for pid in sorted(where):
            job = self.pending.get(pid)
            node = where[pid]
            if (job is None or job.queue not in self.queues or node in self.planned
                    or node not in self.snapshot.nodes or job.gang):
                continue
            victims = sorted((v for v in stopping.get(pid, ()) if node in v.allocation.nodes), key=lambda v: v.id)
            alloc = self._alloc_after(job, node, victims)
            if alloc is None:
                continue
            if all(v.priority < job.priority for v in victims):
                kind = PreemptionKind.PRIORITY
            elif self.queues[job.queue].order.by_service and all(
                    v.queue == job.queue and v.priority <= job.priority for v in victims):
                kind = PreemptionKind.SERVICE
            else:
                kind = PreemptionKind.RECLAIM
            hold = hold_for(self.snapshot.nodes[node], alloc, victims, job.requests)
            planned = _Planned(job, victims, alloc, hold, kind)
            self.planned[node] = planned
            self.inflight[pid] = node
            self._hold(planned)

    def _plan(self, job: PendingJob) -> _Planned | None:
        order = self.queues[job.queue].order
        level = order.level(job) if order.by_service else 0
        key = (job.queue, job.user, job.priority, job.requests, level)
        if key in self.no_preempt or self.preempt_tries >= MAX_PREEMPTION_TRIES:
            return None
        by_node = self.state.by_node
        priority = self.ctx.preempt
        if not any((priority and (r.priority < job.priority or r.queue != job.queue))
                   or (order.by_service and r.queue == job.queue and r.resumable)
                   for rs in by_node.values() for r in rs.values()):
            self.no_preempt.add(key)
            return None
        self.preempt_tries += 1
        best = None
        for state in self.snapshot.ordered:
            name = state.node.name
            if (name in self.planned or name not in by_node
                    or (self.reservation is not None and name == self.reservation.node)
                    or not job.requests.fits_in(state.allocatable)):
                continue
            found = plan_on_node(state, job, list(by_node[name].values()), self.queues, self.quota, self.users,
                                 self.now, priority=priority)
            if found is not None and (best is None or (found[0], name) < (best[0], best[1].node)):
                best = found
        if best is None:
            self.no_preempt.add(key)
            return None
        pre = best[1]
        victims = [by_node[pre.node][v] for v in pre.victims]
        hold = hold_for(self.snapshot.nodes[pre.node], pre.allocation, victims, job.requests)
        planned = _Planned(job, victims, pre.allocation, hold, pre.kind)
        self.planned[pre.node] = planned
        self._hold(planned)
        self.result.preemptions.append(pre)
        return planned

    # -- backfill ------------------------------------------------------------------------------
    def _timeline(self, name: str):
        """The node's state to project from, and when what is on it frees."""
        state = self.snapshot.nodes[name].copy()
        releases = []
        gone: set[int] = set()
        planned = self.planned.get(name)
        if planned is not None and planned.alloc is not None:
            if planned.hold is not None:
                state.forget(planned.hold.pieces[0])
            for v in planned.victims:
                piece = v.allocation.piece_on(name)
                if piece is not None:
                    state.forget(piece)
                gone.add(v.id)
            mine = planned.alloc.pieces[0]
            state.assume(mine)
            limit = planned.job.time_limit
            if limit is not None:
                releases.append((self.now + limit, mine))
        on = [r for r in self.state.by_node.get(name, {}).values() if r.id not in gone]
        releases.extend(releases_on(name, on, self.now))
        return state, releases

    def _reserve(self, job: PendingJob) -> None:
        if job.requests in self.no_reservation:
            return
        best = None
        for s in self.snapshot.ordered:
            name = s.node.name
            if not job.requests.fits_in(s.allocatable):
                continue
            state, releases = self._timeline(name)
            found = earliest_on_node(state, job.requests, releases, self.now)
            if found is not None and (best is None or (found[0], name) < (best[0], best[1])):
                best = (found[0], name, found[2])
        if best is None:
            self.no_reservation.add(job.requests)
            return
        self.reservation = ActiveReservation(job, best[1], best[0], best[2])


__all__ = ["CycleContext", "Decisions", "schedule", "MAX_PREEMPTION_TRIES"]
