"""The research references' preemptive loop, for :class:`~.base.PreemptivePolicy` s (SRTF, Tiresias).

Events: arrivals, ends and the policy's own priority changes (Tiresias' demotions of
running jobs and starvation promotions of waiting ones), in virtual time. At equal times
ends come first, then arrivals, then priority changes (in submit order); at every instant
with a valid event the running set is recomputed. Per job the engine tracks the work left
and the attained service (GPU-seconds); a job's end event is scheduled when it (re)starts,
at ``start + remaining``, and is void if it is preempted before then (a per-job generation
number, bumped at every start and stop, marks stale events). A preempted job releases its
allocation and waits again, its work kept (no restart cost, as in the papers'
simulations). Capacity accounting uses the scheduler's :class:`~corral.scheduler.Snapshot`.

**The paper's rules** (``rules = "paper"``, the default; :meth:`_Loop.repack`), as the
Tiresias authors' simulator (``SymbioticLab/Tiresias``, ``run_sim.py``) recomputes its
running set at every event: every active job, running or waiting, in rank order, runs if
it fits in what the jobs before it left, else waits -- preempted if it was running. Gang
jobs (more GPUs than a node) are ranked, placed and preempted like any job. On one node
(the authors' ``count`` placement: GPUs counted, no nodes) this is their pass exactly. On
several nodes: a running job keeps its allocation when it is still free in the pass, else
is placed afresh (moved at no cost, as their simulator re-places every job at every
event), else is preempted; and when every waiting job fits in the free capacity as it is,
they start there and nothing running is touched. A job counts as preempted when it ran
before the pass and does not after it (a job stopped and started in the same instant is
not a preemption).

**Corral's rules** (``rules = "corral"``; :meth:`_Loop.cycle`): gang jobs are tried first,
in arrival order, and then hold their nodes until they end -- never preempted, never
preempting; the other jobs in rank order start where they fit; one that fits nowhere
preempts the running jobs ranked below it on the node that needs the fewest of them
(lowest-ranked first, node name on ties) when that makes it fit; otherwise it keeps
waiting and later-ranked jobs may use the room it cannot.

**Placement** (``placement``, ``corral sim --placement``): ``best-fit``, corral's own (the
scheduler's best fit, :func:`~corral.scheduler.placement.best_fit`; gangs by
:func:`~corral.scheduler.placement.place_gang`), or ``first-fit``, the papers' (the first
node in name order; gangs on whole free nodes plus one for the rest,
:func:`~corral.scheduler.placement.place_whole_nodes`; the authors' ``yarn`` scheme).

Both recomputations visit the jobs in rank order without sorting them all at every event
(a heavily loaded trace keeps tens of thousands waiting): a waiting job's key does not
change while it waits (the policy contract), so the waiting jobs are kept sorted, one list
per request shape; only the running jobs' keys are computed at each event. Within one
recomputation, once a job of some shape does not get in, the rest of that shape is
skipped (capacity only shrinks as the recomputation goes). Under corral's rules the
decisions are exactly those of sorting every active job at every event (why:
docs/design.md, "The research references"); the unit tests compare both rules with
straightforward loops on random traces.

With ``check=True``: after every cycle no node is over-committed (the engine's usual
check) and the kept waiting order matches the policy's current keys; at the end every job
finished exactly once after running, in segments that never overlap, for its full
duration (within float round-off).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Sequence
from itertools import pairwise

from ...capacity.node import Node
from ...errors import CorralError
from ...job import Allocation
from ...resources import GPU
from ...scheduler import Snapshot
from ...scheduler.placement import best_fit, first_fit, needs_gang, place_gang, place_on, place_whole_nodes
from ...scheduler.shares import requested_gpus
from ..checks import check_allocations
from ..metrics import JobOutcome, Sample, gpus_held, where
from .base import PAPER, JobState, PreemptivePolicy

#: ``--placement``: name -> (one node, larger than a node). ``best-fit``: corral's own
#: (best fit; gangs on whole free nodes, else the fewest nodes that hold them);
#: ``first-fit``: the papers' (first fit in node order; whole free nodes plus one).
PLACEMENTS = {"best-fit": (best_fit, place_gang), "first-fit": (first_fit, place_whole_nodes)}
DEFAULT_PLACEMENT = "best-fit"

_END, _CHANGE, _ARRIVAL = 0, 1, 2

#: A job's place in the rank order: ``(policy key, submit, id)`` -- the order a stable sort
#: of the jobs (in arrival order) by the policy key gives.
Entry = tuple


class _Waiting:
    """Waiting jobs by request shape, each shape's sorted by :data:`Entry`."""

    __slots__ = ("entries", "lists")

    def __init__(self) -> None:
        self.lists: dict[object, list[Entry]] = {}
        self.entries: dict[int, tuple[Entry, object]] = {}

    def add(self, entry: Entry, shape) -> None:
        insort(self.lists.setdefault(shape, []), entry)
        self.entries[entry[-1]] = (entry, shape)

    def remove(self, job_id: int) -> None:
        entry, shape = self.entries.pop(job_id)
        entries = self.lists[shape]
        del entries[bisect_left(entries, entry)]
        if not entries:
            del self.lists[shape]


def simulate_preemptive(nodes: Sequence[Node], by_id: dict, policy: PreemptivePolicy, result, *,
                        check: bool = False, placement: str = DEFAULT_PLACEMENT):
    return _Loop(nodes, by_id, policy, result, check, placement).run()


def check_placement(placement: object) -> str:
    if placement not in PLACEMENTS:
        from ...errors import ValidationError

        raise ValidationError("--placement", placement, "expected best-fit (corral's) or first-fit (the papers')")
    return str(placement)


class _Loop:
    def __init__(self, nodes: Sequence[Node], by_id: dict, policy: PreemptivePolicy, result, check: bool,
                 placement: str = DEFAULT_PLACEMENT):
        self.by_id = by_id
        self.policy = policy
        #: The paper's rules (:meth:`repack`), else corral's (:meth:`cycle`).
        self.paper = policy.rules == PAPER
        self.fit_one, self.fit_gang = PLACEMENTS[check_placement(placement)]
        self.result = result
        self.check = check
        self.snapshot = Snapshot(nodes, {})
        largest = self.snapshot.largest_gpus
        self.gangs = {job_id for job_id, job in by_id.items() if needs_gang(job.requests, largest)}
        self.gpus_total = sum(n.allocatable.get(GPU, 0) for n in nodes)
        self.events: list[tuple[float, int, int, int]] = []
        self.states: dict[int, JobState] = {}
        self.gen: dict[int, int] = {}
        self.active: dict[int, JobState] = {}
        self.running: dict[int, Allocation] = {}
        #: Waiting jobs that fit on one node, and gang jobs (keyed ``(submit, id)``).
        self.waiting = _Waiting()
        self.waiting_gangs = _Waiting()
        self.segments: dict[int, list[tuple[float, float]]] = {}
        self.allocated_gpus: float = 0
        self.node_of = {n.name: n for n in nodes}

    # -- job transitions -------------------------------------------------------------------

    def entry(self, state: JobState, now: float) -> Entry:
        return (self.policy.key(state, now), state.submit, state.id)

    def wait(self, state: JobState, now: float) -> None:
        """Index the waiting ``state`` and schedule its promotion, if any."""
        if state.id in self.gangs and not self.paper:
            self.waiting_gangs.add((state.submit, state.id), self.by_id[state.id].requests)
        else:
            self.waiting.add(self.entry(state, now), self.by_id[state.id].requests)
        due = self.policy.next_promotion(state, now)
        if due is not None:
            heapq.heappush(self.events, (max(due, now), _CHANGE, state.id, self.gen[state.id]))

    def place(self, job_id: int) -> Allocation | None:
        requests = self.by_id[job_id].requests
        return self.fit_gang(self.snapshot, requests) if job_id in self.gangs else self.fit_one(self.snapshot, requests)

    def stop(self, state: JobState, now: float, release: bool = True) -> None:
        alloc = self.running.pop(state.id)
        if release:
            self.snapshot.forget(alloc)
        self.allocated_gpus -= gpus_held(alloc)
        if self.check:
            self.segments.setdefault(state.id, []).append((state.since, now))
        state.pause(now)
        self.gen[state.id] += 1                # voids its end and change events

    def start(self, state: JobState, alloc: Allocation, now: float, take: bool = True) -> None:
        if take:
            self.snapshot.assume(alloc)
        self.allocated_gpus += gpus_held(alloc)
        self.running[state.id] = alloc
        state.resume(now)
        self.gen[state.id] += 1                # voids its promotion event
        g = self.gen[state.id]
        heapq.heappush(self.events, (now + state.remaining, _END, state.id, g))
        change = self.policy.next_change(state, now)
        if change is not None and change < now + state.remaining:
            heapq.heappush(self.events, (max(change, now), _CHANGE, state.id, g))

    # -- the loop --------------------------------------------------------------------------

    def run(self):
        by_id, policy, result, events, active = self.by_id, self.policy, self.result, self.events, self.active
        for job_id, job in by_id.items():
            heapq.heappush(events, (float(job.submit), _ARRIVAL, job_id, 0))
        while events:
            now = events[0][0]
            changed = False
            due: list[JobState] = []
            while events and events[0][0] == now:
                _, kind, job_id, g = heapq.heappop(events)
                if kind == _ARRIVAL:
                    job = by_id[job_id]
                    self.gen[job_id] = 0
                    state = self.states[job_id] = active[job_id] = JobState(
                        id=job_id, submit=float(job.submit), duration=float(job.duration),
                        gpus=requested_gpus(job.requests), remaining=float(job.duration),
                        waiting_since=float(job.submit), reached=float(job.submit))
                    policy.arrive(state, now)
                    self.wait(state, now)
                    changed = True
                elif g != self.gen[job_id]:
                    continue                   # stale: the job started or stopped since
                elif kind == _END:
                    state = active.pop(job_id)
                    alloc = self.running[job_id]
                    self.stop(state, now)
                    state.remaining = 0.0
                    job = by_id[job_id]
                    result.outcomes.append(JobOutcome(
                        id=job_id, user=getattr(job, "user", ""), submit=state.submit, start=state.first_start,
                        end=now, duration=state.duration, gpus=state.gpus, attained=state.attained,
                        **where(alloc, self.node_of)))
                    changed = True
                else:
                    due.append(active[job_id])
            # Priority changes after the instant's arrivals, in submit order (as the authors'
            # simulator updates its jobs after appending the new ones).
            for state in sorted(due, key=lambda s: (s.submit, s.id)):
                job_id = state.id
                if state.running:              # a priority change of a running job (demotion)
                    policy.changed(state, now)
                    change = policy.next_change(state, now)
                    if change is not None and change < state.since + state.remaining:
                        heapq.heappush(events, (max(change, now), _CHANGE, job_id, self.gen[job_id]))
                    changed = True
                else:                          # a waiting job's promotion
                    waiting = self.waiting_gangs if job_id in self.gangs and not self.paper else self.waiting
                    waiting.remove(job_id)
                    changed = policy.promote(state, now) or changed
                    self.wait(state, now)
            if not changed:
                continue
            if self.paper:
                self.repack(now)
                result.cycles += 1
                if self.check:
                    check_allocations(self.snapshot, self.running)
                    self.check_waiting(now)
            elif len(active) > len(self.running):
                self.cycle(now)
                result.cycles += 1
                if self.check:
                    check_allocations(self.snapshot, self.running)
                    self.check_waiting(now)
            result.samples.append(Sample(t=now, gpus_allocated=self.allocated_gpus, gpus_total=self.gpus_total,
                                         queue_length=len(active) - len(self.running), running=len(self.running)))
        if active or self.running:
            raise CorralError(f"simulation ended with {len(active)} jobs unfinished")
        if self.check:
            _check_work(self.states, self.segments, result)
        result.outcomes.sort(key=lambda o: o.id)
        return result

    # -- the paper's rules: one pass over every job in rank order ----------------------------

    def repack(self, now: float) -> None:
        """Every active job in rank order runs where it fits, the rest wait: a running job
        keeps its allocation when it is still free then, else is placed afresh (moved, at
        no cost, as the authors' simulators re-place every job at every event), else is
        preempted; a waiting job starts where the placement puts it. Nothing else is
        preempted, and a job is preempted only when it does not run after the pass."""
        started, preempted = self.pass_(now)
        active, policy = self.active, self.policy
        for job_id in preempted:
            state = active[job_id]
            self.stop(state, now, release=False)
            state.preemptions += 1
            self.result.preemptions += 1
        for job_id, alloc in started:
            self.waiting.remove(job_id)
            if not alloc.single and active[job_id].first_start is None:
                self.result.gang_placed += 1   # jobs, not their restarts
            self.start(active[job_id], alloc, now, take=False)
            self.result.placements += 1
        policy.settle([active[j] for j, _ in started], [active[j] for j in preempted])
        for job_id in preempted:
            self.wait(active[job_id], now)

    def pass_(self, now: float) -> tuple[list[tuple[int, Allocation]], list[int]]:
        """The pass's decisions, taken in the snapshot: (started, with their allocations;
        preempted), in rank order. Running jobs ranked above every waiting job keep their
        allocations (the pass would give them the same), so the pass starts at the first
        waiting job, with the allocations of the running jobs ranked below it released; it
        is skipped when no waiting job could fit even so (GPUs only). Waiting jobs are
        visited per request shape; once one fails the rest of its shape is skipped (free
        capacity only shrinks during the pass)."""
        waiting, running, active, snapshot = self.waiting, self.running, self.active, self.snapshot
        if not waiting.entries:
            return [], []
        shapes = list(waiting.lists.items())
        trial = self.start_all(shapes)
        if trial is not None:
            return trial, []
        first = min(entries[0] for _, entries in shapes)
        ranked = sorted((self.entry(active[j], now), j) for j in running)
        tail = ranked[bisect_left(ranked, (first,)):]
        if not self.hopeful(shapes, tail):
            return [], []
        for _, job_id in tail:
            snapshot.forget(running[job_id])
        heap = [(entries[0], 0, n) for n, (_, entries) in enumerate(shapes)]
        heapq.heapify(heap)
        started: list[tuple[int, Allocation]] = []
        preempted: list[int] = []
        t = 0
        while t < len(tail) or heap:
            if t < len(tail) and (not heap or tail[t][0] < heap[0][0]):
                job_id = tail[t][1]
                t += 1
                alloc = running[job_id]
                if not _free(snapshot, alloc):
                    alloc = self.place(job_id)
                    if alloc is None:
                        preempted.append(job_id)
                        continue
                    running[job_id] = alloc
                    self.result.migrations += 1
                snapshot.assume(alloc)
                continue
            entry, pos, n = heapq.heappop(heap)
            alloc = self.place(entry[-1])
            if alloc is None:
                continue                       # and so will the rest of its shape: dropped
            snapshot.assume(alloc)
            started.append((entry[-1], alloc))
            entries = shapes[n][1]
            if pos + 1 < len(entries):
                heapq.heappush(heap, (entries[pos + 1], pos + 1, n))
        return started, preempted

    def start_all(self, shapes) -> list[tuple[int, Allocation]] | None:
        """When every waiting job, in rank order, fits in the free capacity as it is: their
        allocations there (taken in the snapshot); the pass would run them all too, so
        nothing running is touched. Else None, the snapshot unchanged."""
        snapshot = self.snapshot
        heap = [(entries[0], 0, n) for n, (_, entries) in enumerate(shapes)]
        heapq.heapify(heap)
        trial: list[tuple[int, Allocation]] = []
        while heap:
            entry, pos, n = heapq.heappop(heap)
            alloc = self.place(entry[-1])
            if alloc is None:
                for _, taken in reversed(trial):
                    snapshot.forget(taken)
                return None
            snapshot.assume(alloc)
            trial.append((entry[-1], alloc))
            entries = shapes[n][1]
            if pos + 1 < len(entries):
                heapq.heappush(heap, (entries[pos + 1], pos + 1, n))
        return trial

    def hopeful(self, shapes, tail) -> bool:
        """Whether some waiting shape could get its GPUs with the ``tail`` jobs' released."""
        snapshot = self.snapshot
        extra: dict[str, int] = {}
        total = self.gpus_total - self.allocated_gpus
        for _, job_id in tail:
            for piece in self.running[job_id].pieces:
                extra[piece.node] = extra.get(piece.node, 0) + len(piece.gpus)
                total += len(piece.gpus)
        most = max([snapshot.most_free(GPU)] + [snapshot.nodes[name].free(GPU) + g for name, g in extra.items()
                                                if name in snapshot.nodes])
        largest = snapshot.largest_gpus
        for shape, _ in shapes:
            need = shape.get(GPU, 0)
            if need <= (total if needs_gang(shape, largest) else most):
                return True
        return False

    # -- corral's rules: one recomputation of the running set --------------------------------

    def cycle(self, now: float) -> None:
        self.start_gangs(now)
        snapshot, by_id, active, running, result = self.snapshot, self.by_id, self.active, self.running, self.result
        shapes = list(self.waiting.lists.values())
        #: The next job to try of each shape in play: (entry, position, shape number).
        heap = [(entries[0], 0, n) for n, entries in enumerate(shapes)]
        heapq.heapify(heap)
        #: Jobs preempted in this cycle, tried again at their rank (as running) in it.
        victims_heap: list[Entry] = []
        preempted: list[JobState] = []
        started: set[int] = set()
        #: The running jobs' entries at this cycle's start (gang jobs, never preempted, left
        #: out) and, per node, those jobs lowest-ranked first; computed when first needed.
        ranks: dict[int, Entry] = {}
        by_node: dict[str, list[tuple[Entry, int, Allocation]]] | None = None
        while heap or victims_heap:
            if victims_heap and (not heap or victims_heap[0] < heap[0][0]):
                entry, pos, n = heapq.heappop(victims_heap), -1, -1
            else:
                entry, pos, n = heapq.heappop(heap)
            state = active[entry[-1]]
            requests = by_id[state.id].requests
            alloc = self.fit_one(snapshot, requests)
            if alloc is None:
                if by_node is None:
                    by_node = {}
                    for job_id, a in running.items():
                        if a.single and job_id not in started:
                            rank = ranks[job_id] = self.entry(active[job_id], now)
                            by_node.setdefault(a.node, []).append((rank, job_id, a))
                    for ranked in by_node.values():
                        ranked.sort(reverse=True)
                victims = _victims(snapshot, requests, entry, by_node, running)
                if victims is None:
                    continue                   # and so will the rest of its shape: dropped
                for v in victims:
                    self.stop(active[v], now)
                    active[v].preemptions += 1
                    result.preemptions += 1
                    heapq.heappush(victims_heap, ranks[v])
                    preempted.append(active[v])
                alloc = self.fit_one(snapshot, requests)
                if alloc is None:
                    raise CorralError(f"job {state.id} does not fit after preempting {victims}")
            self.start(state, alloc, now)
            result.placements += 1
            if n >= 0:
                started.add(state.id)
                if pos + 1 < len(shapes[n]):
                    heapq.heappush(heap, (shapes[n][pos + 1], pos + 1, n))
        for job_id in started:
            self.waiting.remove(job_id)
        for state in preempted:
            if not state.running:
                self.wait(state, now)

    def start_gangs(self, now: float) -> None:
        # Simple rule for gang jobs (more GPUs than any node, placed by the shared
        # :func:`~corral.scheduler.placement.place_gang`): they
        # are tried first, in arrival order, and then hold their nodes until they end --
        # never preempted, never preempting. Only starts happen here, so a shape that
        # failed once fails for the rest of the pass.
        shapes = list(self.waiting_gangs.lists.items())
        heap = [(entries[0], 0, n) for n, (_, entries) in enumerate(shapes)]
        heapq.heapify(heap)
        started: list[int] = []
        while heap:
            (_, job_id), pos, n = heapq.heappop(heap)
            requests, entries = shapes[n]
            alloc = self.fit_gang(self.snapshot, requests)
            if alloc is None:
                continue
            self.start(self.active[job_id], alloc, now)
            self.result.placements += 1
            self.result.gang_placed += 1
            started.append(job_id)
            if pos + 1 < len(entries):
                heapq.heappush(heap, (entries[pos + 1], pos + 1, n))
        for job_id in started:
            self.waiting_gangs.remove(job_id)

    def check_waiting(self, now: float) -> None:
        waiting = {s.id for s in self.active.values() if not s.running}
        kept = set(self.waiting.entries) | set(self.waiting_gangs.entries)
        if kept != waiting:
            raise CorralError(f"waiting index out of date: {sorted(kept ^ waiting)[:10]}")
        for job_id, (entry, shape) in self.waiting.entries.items():
            if entry != self.entry(self.active[job_id], now) or shape != self.by_id[job_id].requests:
                raise CorralError(f"job {job_id}: kept rank {entry}, now {self.entry(self.active[job_id], now)}")


def _free(snapshot: Snapshot, alloc: Allocation) -> bool:
    """Whether every piece of ``alloc`` is free in ``snapshot`` now (its devices too)."""
    for piece in alloc.pieces:
        state = snapshot.nodes.get(piece.node)
        if state is None or not state.fits(piece.requests) or not state.free_gpus.issuperset(piece.gpus) \
                or not state.free_cores.issuperset(piece.cores):
            return False
    return True


def _victims(snapshot: Snapshot, requests, entry: Entry, by_node: dict[str, list[tuple[Entry, int, Allocation]]],
             running: dict) -> list[int] | None:
    """The fewest running jobs ranked below ``entry`` on one node whose preemption
    (lowest-ranked first) makes ``requests`` fit there; None if no node works.
    ``by_node``: node -> ``(entry, id, allocation)`` of the jobs that ran there at the
    cycle's start, lowest-ranked first (those since preempted are no longer ``running``)."""
    best: list[int] | None = None
    need = requests.get(GPU, 0)
    for name in sorted(by_node):
        ranked = by_node[name]
        if not ranked or ranked[0][0] < entry:
            continue                           # nobody ranked below it there
        state = snapshot.nodes[name]
        if not requests.fits_in(state.allocatable):
            continue
        # Those still running (not preempted earlier in this cycle), lowest-ranked first --
        # no more than could beat the best node so far.
        most = len(ranked) if best is None else len(best) - 1
        below: list[tuple[int, Allocation]] = []
        gpus = state.free(GPU)
        for rank, job_id, alloc in ranked:
            if rank < entry or len(below) == most:
                break
            if job_id in running:
                below.append((job_id, alloc))
                gpus += alloc.requests.get(GPU, 0)
        if gpus < need:
            continue                           # too few GPUs even with all of them gone
        s = state.copy()
        chosen: list[int] = []
        for job_id, alloc in below:
            s.forget(alloc.pieces[0])
            chosen.append(job_id)
            if place_on(s, requests) is not None:
                best = chosen
                break
        if best is not None and len(best) == 1:
            break                              # the fewest possible (0 would have fitted without)
    return best


def _check_work(states: dict[int, JobState], segments: dict, result) -> None:
    ended = [o.id for o in result.outcomes]
    if len(ended) != len(set(ended)) or set(ended) != set(states):
        raise CorralError("a job did not finish exactly once")
    for job_id, state in states.items():
        segs = sorted(segments.get(job_id, []))
        for (a0, a1), (b0, b1) in pairwise(segs):
            if b0 < a1:
                raise CorralError(f"job {job_id} ran twice at once: {a0}-{a1} and {b0}-{b1}")
        done = sum(b - a for a, b in segs)
        if abs(done - state.duration) > 1e-6 * max(1.0, state.duration):
            raise CorralError(f"job {job_id} ran {done} s of its {state.duration} s")
