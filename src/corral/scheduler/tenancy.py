"""Multi-tenant scheduling: queues with quotas, per-queue ordering, EASY backfill and
preemption planning, in one pure cycle (no I/O, no clock: time is ``ctx.now``).

Entry point: :func:`schedule_tenants` (snapshot, pending jobs, :class:`TenantContext`)
-> :class:`TenantResult`. The pieces, one module each:

* :mod:`.quota` -- nominal quotas, lending and borrowing (the exact rule is there);
* :mod:`.fairshare` -- ordering within a queue (strict-fifo, priority, fair-share/DRF);
* :mod:`.backfill` -- the cycle's one EASY reservation;
* :mod:`.preemption` -- choosing victims, priority and reclaim.

A cycle:

1. *Bookkeeping* -- quota usage per queue, allocation per user, per-user limits, from
   the running jobs. Preemptions under way (``ctx.preempting``, and running jobs with
   ``stopping_for`` set) hold back, for their preemptor, what it will take from what is
   free now -- except from the jobs ahead of it in its own queue with no lower priority.
2. *Walk* -- at each step every queue offers its next job (its *head*); the cycle
   takes, in this order: heads that fit within their queue's nominal quota before
   heads that would borrow; then the queue with the lowest dominant share of its
   nominal quota (DRF across queues); then higher priority, then earlier ``seq``.
3. *Admit* -- the job must be within its per-user limits, within quota (with
   borrowing), and fit a node (respecting the reservation, if any). If it fits it is
   placed and *assumed* in the snapshot, so later jobs see it.
4. *When it does not* -- if preemption is on and the job is held back by quota or by
   the nodes, a preemption may be planned (at most one per node per cycle; the
   preemptor's share of what is free now is held back for the rest of the cycle, so
   the victims' resources go to it). Otherwise, if backfill is on and no reservation
   exists yet, a job held back only by the nodes gets the reservation. A strict-fifo
   queue stops at its first job that does not start: the rest of that queue waits
   behind it. Other queues continue.
5. *Reasons* -- every job not placed gets a :class:`~.types.Waiting` with numbers:
   the :class:`~corral.job.Reason` ones (``InsufficientResources`` and
   ``Unschedulable`` with the shortfall, ``Priority`` "waiting behind job N" in a
   blocked strict-fifo queue), or a ``code`` outside the enum (:data:`~.types.CODES`):
   ``QuotaExceeded``, ``UserLimit``, ``Reserved`` (held back by the reservation),
   ``FairShare`` (it fitted when the cycle began, but a job of a user with a lower
   share in its queue went first and took it) and ``Preempting``.

The snapshot keeps this cycle's placements (like :func:`~.core.schedule_on`); the holds
are taken out again before returning. Within a cycle, a shape that fitted no node (or a
queue and shape over quota) is remembered, so a long queue costs little more than its
distinct shapes plus what the cycle places; :func:`decide_tenants` also skips working
out reasons, for projections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..job import Allocation, Reason
from ..resources import GPU, Resources
from .backfill import ActiveReservation, copy_state, earliest_on_node
from .core import explain
from .fairshare import QueueOrder, UserShares
from .placement import node_score, place_on
from .preemption import _plan_on_node, hold_for
from .quota import QuotaState, UserUsage
from .snapshot import Snapshot
from .types import (FAIR_SHARE, PREEMPTING, QUOTA_EXCEEDED, RESERVED, USER_LIMIT, FairShareDetail,
                    PendingJob, Placement, Preemption, PreemptingDetail, QueueSpec, QuotaDetail, Reservation,
                    ReservedDetail, RunningJob, Waiting, seconds_until)

#: Preemption plans tried per cycle (jobs that fail alike are remembered); a cap so a
#: long queue of blocked jobs cannot make one cycle slow.
MAX_PREEMPTION_TRIES = 64


#: The ordering of the ``default`` queue when a config sets only the single-queue
#: ``policy`` (the daemon's manager and ``corral sim --config`` use it alike).
DEFAULT_QUEUE_POLICY = {"best-effort-fifo": "priority", "strict-fifo": "strict-fifo", "fair-share": "fair-share",
                        "sjf": "priority"}


@dataclass
class TenantContext:
    """Everything besides nodes and pending jobs that a multi-tenant cycle needs."""

    now: float
    #: Every queue a pending or running job names (a ``default`` queue is typical).
    queues: dict[str, QueueSpec]
    running: list[RunningJob] = field(default_factory=list)
    #: Historical dominant share per user (decayed usage, 0..1+), from the daemon.
    shares: dict[str, float] = field(default_factory=dict)
    #: Total allocatable (the sum over nodes), for shares; from the snapshot when None.
    capacity: Resources | None = None
    backfill: bool = True
    preempt: bool = True
    #: Preemptions under way: preemptor id -> node, from the cycle that planned them
    #: until the preemptor starts (or leaves the queue). While its victims stop (they
    #: carry ``stopping_for``) and after they are gone, what the preemptor will take on
    #: that node is held for it, so no job ranked after it -- a requeued victim
    #: included -- takes it first. Preemptors whose victims still carry
    #: ``stopping_for`` count as under way even when missing here.
    preempting: dict[int, str] = field(default_factory=dict)


@dataclass
class TenantResult:
    placements: list[Placement] = field(default_factory=list)
    #: Why each pending job that was not placed waits.
    waiting: dict[int, Waiting] = field(default_factory=dict)
    #: Preemptions to carry out (victims to stop and requeue), planned this cycle.
    preemptions: list[Preemption] = field(default_factory=list)
    reservation: Reservation | None = None
    #: Every pending job id in the order the cycle considered them (queue positions).
    order: list[int] = field(default_factory=list)


def schedule_tenants(snapshot: Snapshot, pending: Iterable[PendingJob], ctx: TenantContext) -> TenantResult:
    """Run one multi-tenant cycle (see the module docstring). Deterministic.

    ``snapshot`` must hold the allocations of ``ctx.running``; this cycle's placements
    are assumed in it on return."""
    return _Cycle(snapshot, list(pending), ctx).run()


def decide_tenants(snapshot: Snapshot, pending: Iterable[PendingJob], ctx: TenantContext) -> TenantResult:
    """:func:`schedule_tenants` without working out reasons (``waiting`` is partial):
    for projections such as :func:`~.estimate.estimate_starts`."""
    return _Cycle(snapshot, list(pending), ctx, reasons=False).run()


def total_capacity(snapshot: Snapshot) -> Resources:
    out: dict[str, int] = {}
    for state in snapshot.ordered:
        for r, v in state.allocatable.items():
            out[r] = out.get(r, 0) + v
    return Resources(out)


@dataclass
class _Planned:
    """A preemption on a node (planned now or in flight): the preemptor's future
    allocation and what of it is held back from what is free now."""

    job: PendingJob
    victims: list[RunningJob]
    alloc: Allocation | None
    hold: Allocation | None
    kind: str


class _Cycle:
    def __init__(self, snapshot: Snapshot, pending: list[PendingJob], ctx: TenantContext, reasons: bool = True):
        self.snapshot = snapshot
        self.ctx = ctx
        self.now = ctx.now
        self.queues = ctx.queues
        cap = ctx.capacity if ctx.capacity is not None else total_capacity(snapshot)
        self.quota = QuotaState(ctx.queues, cap)
        self.shares = UserShares(cap, ctx.shares)
        self.users = UserUsage()
        self.running_by_node: dict[str, list[RunningJob]] = {}
        for r in ctx.running:
            self.quota.add(r.queue, r.requests)
            self.shares.add(r.user, r.requests)
            self.users.add(r.queue, r.user, r.requests)
            self.running_by_node.setdefault(r.node, []).append(r)
        self.pending = pending
        self.result = TenantResult()
        self.placed_by_node: dict[str, list[tuple[Allocation, float | None]]] = {}
        self.planned: dict[str, _Planned] = {}          # node -> preemption on it
        self.inflight: dict[int, str] = {}              # preemptor id -> node
        self.reservation: ActiveReservation | None = None
        # Memos valid for one cycle (capacity and quota only shrink while it runs).
        self.phys_fail: set[Resources] = set()
        self.quota_fail: dict[tuple[str, Resources], tuple] = {}
        self.no_preempt: set[tuple] = set()
        self.no_reservation: set[Resources] = set()
        self.never: dict[Resources, bool] = {}
        self.preempt_tries = 0
        self.picks: list[tuple[str, str, float, str]] = []   # fair-share: queue, user, share, node
        self.explain_later: dict[int, Resources] = {}
        self.shares_changed = False
        #: False: decisions only (no reasons worked out), for projections.
        self.reasons = reasons

    # -- the cycle ----------------------------------------------------------------------
    def run(self) -> TenantResult:
        res = self.result
        by_queue: dict[str, list[PendingJob]] = {}
        unknown: list[PendingJob] = []
        for job in self.pending:
            (by_queue.setdefault(job.queue, []) if job.queue in self.queues else unknown).append(job)
        self._hold_inflight()
        self.initial_free = {s.node.name: ({r: s.free(r) for r in s.allocatable}, len(s.free_gpus))
                             for s in self.snapshot.ordered}
        orders = {name: QueueOrder(self.queues[name].policy, jobs, self.shares)
                  for name, jobs in sorted(by_queue.items())}
        blocked: dict[str, int] = {}

        def head_key(name: str) -> tuple | None:
            head = orders[name].head()
            if head is None:
                return None
            return (not self.quota.within_nominal(name, head.requests), self.quota.share(name),
                    -head.priority, head.seq, head.id, name), head

        # A queue's key depends on its own usage and head, and (fair-share) on users'
        # shares: recompute the visited queue's, and the fair-share queues' when a
        # user's allocation changed.
        keys = {name: head_key(name) for name in orders}
        fair = [name for name in orders if self.queues[name].policy == "fair-share"]
        while True:
            best = min((k for k in keys.values() if k is not None), default=None, key=lambda k: k[0])
            if best is None:
                break
            job = best[1]
            name = best[0][-1]
            orders[name].pop(job)
            res.order.append(job.id)
            self.shares_changed = False
            if name in blocked:
                res.waiting[job.id] = Waiting(Reason.PRIORITY, behind=blocked[name])
            elif not self._visit(job, self.queues[name]):
                if self.queues[name].policy == "strict-fifo":
                    blocked[name] = job.id
                    if not self.reasons:
                        # Decisions only: the rest of a blocked queue only waits, and
                        # leaving it out does not change the order of the others.
                        orders[name].drop()
            keys[name] = head_key(name)
            if self.shares_changed:
                for other in fair:
                    if other != name:
                        keys[other] = head_key(other)
        for job in unknown:
            res.order.append(job.id)
            res.waiting[job.id] = Waiting(Reason.INSUFFICIENT_RESOURCES, code=QUOTA_EXCEEDED, detail=QuotaDetail(
                unknown_queue=job.queue, known=tuple(sorted(self.queues))))
        # Explain shortfalls against what is left (holds included: they are not free).
        shapes: dict[Resources, Waiting] = {}
        for job_id, shape in self.explain_later.items():
            w = shapes.get(shape)
            if w is None:
                w = shapes[shape] = explain(self.snapshot.ordered, shape)
            res.waiting[job_id] = w
        for planned in self.planned.values():
            if planned.hold is not None:
                self.snapshot.forget(planned.hold)
        if self.reservation is not None:
            res.reservation = self.reservation.public()
        return res

    def _visit(self, job: PendingJob, spec: QueueSpec) -> bool:
        """Try to start ``job``; record why not. True when it was placed."""
        if not self.reasons and self._known_to_fail(job):
            return False
        node = self.inflight.pop(job.id, None)          # visited now: no longer "behind"
        own = self.planned[node] if node is not None else None
        if own is not None:
            self._unhold(own)
        # Holds of preemptors further back in this queue, of no higher priority than
        # this job, do not apply to it (it is ahead of them in any case). A job of lower
        # priority ahead in a fair-share queue does not get what was preempted for a
        # higher one: it could be preempted for it again, and again.
        behind = [self.planned[n] for pid, n in self.inflight.items()
                  if pid != job.id and self.planned[n].job.queue == job.queue
                  and self.planned[n].job.priority <= job.priority]
        for pl in behind:
            self._unhold(pl)
        before = len(self.result.placements)
        outcome, detail = self._admit(job, spec, memo=own is None and not behind)
        took = self.result.placements[-1].allocation if len(self.result.placements) > before else None
        for pl in behind:
            self._rehold(pl, took)
        if outcome == "placed":
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
        if outcome != "user" and self.ctx.preempt and not self._never(job.requests) and not (
                outcome == "quota" and self.quota.never_fits(job.queue, job.requests)):
            planned = self._plan(job)
            if planned is not None:
                self._preempting(job, planned)
                return False
        if outcome == "nodes" and self.ctx.backfill and self.reservation is None and not self._never(job.requests):
            self._reserve(job)
        self._record(job, spec, outcome, detail)
        return False

    def _known_to_fail(self, job: PendingJob) -> bool:
        """True when trying ``job`` could neither start it nor change anything (a shape
        already known not to fit, no preemption, no reservation to make, no hold that
        would be lifted for it): decisions-only cycles skip such tries."""
        req = job.requests
        if not (req in self.phys_fail or (job.queue, req) in self.quota_fail):
            return False
        if self.ctx.preempt or self.inflight:
            return False
        return not self.ctx.backfill or self.reservation is not None or req in self.no_reservation \
            or (job.queue, req) in self.quota_fail

    def _preempting(self, job: PendingJob, planned: "_Planned") -> None:
        self.result.waiting[job.id] = Waiting(Reason.INSUFFICIENT_RESOURCES, code=PREEMPTING, detail=PreemptingDetail(
            tuple(sorted(v.id for v in planned.victims)), planned.kind))

    def _record(self, job: PendingJob, spec: QueueSpec, outcome: str, detail: object) -> None:
        """The reason for a job that did not start and preempts nothing."""
        waiting = self.result.waiting
        if outcome == "user":
            waiting[job.id] = Waiting(Reason.INSUFFICIENT_RESOURCES, code=USER_LIMIT, detail=detail)
        elif outcome == "quota":
            waiting[job.id] = Waiting(Reason.INSUFFICIENT_RESOURCES, code=QUOTA_EXCEEDED,
                                      detail=QuotaDetail(shortfalls=detail))  # type: ignore[arg-type]
        elif outcome == "reserved":
            r = self.reservation
            assert r is not None
            waiting[job.id] = Waiting(Reason.PRIORITY, code=RESERVED, detail=ReservedDetail(
                r.job_id, r.node, r.shadow, seconds_until(self.now, r.shadow)))
        elif not self.reasons:
            return
        else:
            fair = None if self._never(job.requests) else self._fair_share_reason(job, spec)
            if fair is not None:
                waiting[job.id] = fair
            else:
                self.explain_later[job.id] = job.requests

    def _admit(self, job: PendingJob, spec: QueueSpec, memo: bool = True) -> tuple[str, object]:
        """"placed", or why not: "user", "quota", "reserved" or "nodes"."""
        req = job.requests
        limit = self.users.violation(spec, job.queue, job.user, req)
        if limit is not None:
            return "user", limit
        qkey = (job.queue, req)
        if memo and qkey in self.quota_fail:
            return "quota", self.quota_fail[qkey]
        short = self.quota.shortfalls(job.queue, req)
        if short:
            if memo:
                self.quota_fail[qkey] = short
            return "quota", short
        if memo and req in self.phys_fail:
            return "nodes", None
        alloc, in_extra = self._place(job)
        if alloc is not None:
            share = self.shares.share(job.user)
            self._take(job, alloc)
            if in_extra:
                assert self.reservation is not None
                self.reservation.consume(alloc)
            if spec.policy == "fair-share":
                self.picks.append((job.queue, job.user, share, alloc.node))
            return "placed", None
        r = self.reservation
        if r is not None and not r.allows(job, self.now):
            state = self.snapshot.nodes[r.node]
            if state.fits(req) and place_on(state, req) is not None:
                return "reserved", None
        if memo:
            self.phys_fail.add(req)
        return "nodes", None

    def _place(self, job: PendingJob) -> tuple[Allocation | None, bool]:
        """The best allocation for ``job`` now, respecting the reservation; and whether
        it is on the reservation node taken from the extra."""
        req = job.requests
        r = self.reservation
        restricted = r is not None and not r.allows(job, self.now)
        candidates = []
        for state in self.snapshot.with_free_gpus(req.get(GPU, 0)):
            view, extra = state, False
            if restricted and state.node.name == r.node:  # type: ignore[union-attr]
                view, extra = r.view(state), True  # type: ignore[union-attr]
            if view.fits(req):
                candidates.append((node_score(view, req), view, extra))
        candidates.sort(key=lambda c: c[0])
        for _, view, extra in candidates:
            alloc = place_on(view, req)
            if alloc is not None:
                return alloc, extra
        return None, False

    def _take(self, job: PendingJob, alloc: Allocation) -> None:
        self.shares_changed = True
        self.snapshot.assume(alloc)
        self.quota.add(job.queue, job.requests)
        self.shares.add(job.user, job.requests)
        self.users.add(job.queue, job.user, job.requests)
        limit = job.time_limit
        end = None if limit is None else self.now + limit
        self.placed_by_node.setdefault(alloc.node, []).append((alloc, end))
        self.result.placements.append(Placement(job.id, alloc))

    def _never(self, requests: Resources) -> bool:
        """True when no node could ever hold ``requests`` (Unschedulable)."""
        v = self.never.get(requests)
        if v is None:
            v = self.never[requests] = not any(requests.fits_in(s.allocatable) for s in self.snapshot.ordered)
        return v

    # -- preemption ---------------------------------------------------------------------
    def _hold(self, planned: _Planned) -> None:
        self.shares_changed = True
        if planned.hold is not None:
            self.snapshot.assume(planned.hold)
        job = planned.job
        self.quota.add(job.queue, job.requests)
        self.shares.add(job.user, job.requests)
        self.users.add(job.queue, job.user, job.requests)

    def _unhold(self, planned: _Planned) -> None:
        self.shares_changed = True
        if planned.hold is not None:
            self.snapshot.forget(planned.hold)
        job = planned.job
        self.quota.remove(job.queue, job.requests)
        self.shares.remove(job.user, job.requests)
        self.users.remove(job.queue, job.user, job.requests)

    def _rehold(self, planned: _Planned, took: Allocation | None) -> None:
        """Hold again after a job ahead in the queue had its try; if that job took part
        of what the preemptor needed (``took``), recompute its allocation (or drop it)."""
        node = planned.alloc.node if planned.alloc is not None else None
        if node is not None and took is not None and took.node == node:
            alloc = self._alloc_after(planned.job, node, planned.victims)
            if alloc is None:
                del self.planned[node]
                self.inflight.pop(planned.job.id, None)
                return
            planned.alloc = alloc
            planned.hold = hold_for(self.snapshot.nodes[node], Preemption(planned.job.id, (), node, planned.kind,
                                                                          alloc), planned.victims, planned.job.requests)
        self._hold(planned)

    def _alloc_after(self, job: PendingJob, node: str, victims: list[RunningJob]) -> Allocation | None:
        s = copy_state(self.snapshot.nodes[node])
        for v in victims:
            s.forget(v.allocation)
        return place_on(s, job.requests)

    def _hold_inflight(self) -> None:
        """Preemptions already under way: hold the free part their preemptors will take.
        One whose preemptor no longer fits there even without its victims is dropped
        (the preemptor is treated like any other job)."""
        stopping: dict[int, list[RunningJob]] = {}
        for r in self.ctx.running:
            if r.stopping_for is not None:
                stopping.setdefault(r.stopping_for, []).append(r)
        where = {pid: min(v.node for v in vs) for pid, vs in stopping.items()}
        where.update(self.ctx.preempting)
        by_id = {j.id: j for j in self.pending}
        for pid in sorted(where):
            job = by_id.get(pid)
            node = where[pid]
            if job is None or job.queue not in self.queues or node in self.planned or node not in self.snapshot.nodes:
                continue
            victims = sorted((v for v in stopping.get(pid, ()) if v.node == node), key=lambda v: v.id)
            alloc = self._alloc_after(job, node, victims)
            if alloc is None:
                continue
            kind = "priority" if all(v.priority < job.priority for v in victims) else "reclaim"
            hold = hold_for(self.snapshot.nodes[node], Preemption(pid, (), node, kind, alloc), victims, job.requests)
            planned = _Planned(job, victims, alloc, hold, kind)
            self.planned[node] = planned
            self.inflight[pid] = node
            self._hold(planned)

    def _plan(self, job: PendingJob) -> _Planned | None:
        key = (job.queue, job.user, job.priority, job.requests)
        if key in self.no_preempt or self.preempt_tries >= MAX_PREEMPTION_TRIES:
            return None
        if not any(r.priority < job.priority or r.queue != job.queue
                   for rs in self.running_by_node.values() for r in rs):
            self.no_preempt.add(key)
            return None
        self.preempt_tries += 1
        best = None
        for state in self.snapshot.ordered:
            name = state.node.name
            if (name in self.planned or name not in self.running_by_node
                    or (self.reservation is not None and name == self.reservation.node)
                    or not job.requests.fits_in(state.allocatable)):
                continue
            found = _plan_on_node(state, job, self.running_by_node[name], self.queues, self.quota, self.users,
                                  self.now)
            if found is not None and (best is None or (found[0], name) < (best[0], best[1].node)):
                best = found
        if best is None:
            self.no_preempt.add(key)
            return None
        pre = best[1]
        victims = [r for r in self.running_by_node[pre.node] if r.id in set(pre.victims)]
        hold = hold_for(self.snapshot.nodes[pre.node], pre, victims, job.requests)
        planned = _Planned(job, victims, pre.allocation, hold, pre.reason)
        self.planned[pre.node] = planned
        self._hold(planned)
        self.result.preemptions.append(pre)
        return planned

    # -- backfill -----------------------------------------------------------------------
    def _timeline(self, name: str):
        """The node's state to project from, and when what is on it frees."""
        state = copy_state(self.snapshot.nodes[name])
        releases: list[tuple[float, Allocation]] = []
        gone: set[int] = set()
        planned = self.planned.get(name)
        if planned is not None and planned.alloc is not None:
            if planned.hold is not None:
                state.forget(planned.hold)
            for v in planned.victims:
                state.forget(v.allocation)
                gone.add(v.id)
            state.assume(planned.alloc)
            limit = planned.job.time_limit
            if limit is not None:
                releases.append((self.now + limit, planned.alloc))
        for r in self.running_by_node.get(name, ()):
            if r.id not in gone and r.expected_end is not None:
                releases.append((max(self.now, r.expected_end), r.allocation))
        for alloc, end in self.placed_by_node.get(name, ()):
            if end is not None:
                releases.append((end, alloc))
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

    # -- reasons ------------------------------------------------------------------------
    def _fair_share_reason(self, job: PendingJob, spec: QueueSpec) -> Waiting | None:
        """FairShare when the job would have fitted at the start of the cycle and a job of
        another user with a lower share, in the same queue, went first on such a node."""
        if spec.policy != "fair-share" or not self.picks:
            return None
        mine = self.shares.share(job.user)
        req = job.requests
        for queue, user, share, node in reversed(self.picks):
            if queue != job.queue or user == job.user or share >= mine:
                continue
            free, gpus = self.initial_free[node]
            if req.get(GPU, 0) <= gpus and all(x <= free.get(r, 0) for r, x in req.items()):
                return Waiting(Reason.PRIORITY, code=FAIR_SHARE, detail=FairShareDetail(job.user, mine, user, share))
        return None
