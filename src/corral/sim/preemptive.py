"""The simulator's preemptive loop, for :class:`~corral.sim.policies.preemptive.PreemptivePolicy` s.

Events: arrivals, ends and the policy's own priority changes (Tiresias' demotions), in
virtual time. At equal times ends come first, then priority changes, then arrivals; at
every instant with a valid event the running set is recomputed as described in
:mod:`corral.sim.policies.preemptive`. Per job the engine tracks the work left and the
attained service (GPU-seconds); a job's end event is scheduled when it (re)starts, at
``start + remaining``, and is void if it is preempted before then (a per-job generation
number marks stale events). A preempted job releases its allocation and waits again,
its work kept. Capacity accounting uses the scheduler core's
:class:`~corral.scheduler.Snapshot`, exactly as the non-preemptive loop does.

With ``check=True``: after every cycle no node is over-committed (the engine's usual
check), and at the end every job finished exactly once after running, in segments that
never overlap, for its full duration (within float round-off).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from itertools import pairwise

from ..capacity.node import Node
from ..errors import CorralError
from ..job import Allocation
from ..resources import GPU
from ..scheduler import Snapshot
from ..scheduler.backfill import copy_state
from ..scheduler.placement import node_score, place_on
from .gang import is_gang, largest_node_gpus, place_gang
from .metrics import JobOutcome, Sample
from .policies.preemptive import JobState, PreemptivePolicy

_END, _CHANGE, _ARRIVAL = 0, 1, 2


def _best_fit(snapshot: Snapshot, requests) -> Allocation | None:
    candidates = sorted((node_score(s, requests), i) for i, s in enumerate(snapshot.ordered) if s.fits(requests))
    for _, i in candidates:
        alloc = place_on(snapshot.ordered[i], requests)
        if alloc is not None:
            return alloc
    return None


def simulate_preemptive(nodes: Sequence[Node], by_id: dict, policy: PreemptivePolicy, result, *,
                        check: bool = False):
    from .engine import _check

    snapshot = Snapshot(nodes, {})
    largest = largest_node_gpus(nodes)
    gangs = {job_id for job_id, job in by_id.items() if is_gang(job.requests, largest)}
    gpus_total = sum(n.allocatable.get(GPU, 0) for n in nodes)
    events: list[tuple[float, int, int, int]] = []
    states: dict[int, JobState] = {}
    gen: dict[int, int] = {}
    for job_id, job in by_id.items():
        heapq.heappush(events, (float(job.submit), _ARRIVAL, job_id, 0))
    active: dict[int, JobState] = {}
    running: dict[int, tuple[None, Allocation]] = {}
    segments: dict[int, list[tuple[float, float]]] = {}
    allocated_gpus = 0

    def stop(state: JobState, now: float) -> None:
        nonlocal allocated_gpus
        _, allocs = running.pop(state.id)
        for alloc in _many(allocs):
            snapshot.forget(alloc)
            allocated_gpus -= len(alloc.gpus)
        if check:
            segments.setdefault(state.id, []).append((state.since, now))
        state.remaining = state.remaining_at(now)
        state.attained = state.attained_at(now)
        state.since = None
        gen[state.id] += 1                     # voids its end and change events

    def start(state: JobState, alloc, now: float) -> None:
        nonlocal allocated_gpus
        for piece in _many(alloc):
            snapshot.assume(piece)
            allocated_gpus += len(piece.gpus)
        running[state.id] = (None, alloc)
        state.since = now
        if state.first_start is None:
            state.first_start = now
        g = gen[state.id]
        heapq.heappush(events, (now + state.remaining, _END, state.id, g))
        change = policy.next_change(state, now)
        if change is not None and change < now + state.remaining:
            heapq.heappush(events, (max(change, now), _CHANGE, state.id, g))

    while events:
        now = events[0][0]
        changed = False
        while events and events[0][0] == now:
            _, kind, job_id, g = heapq.heappop(events)
            if kind == _ARRIVAL:
                job = by_id[job_id]
                gen[job_id] = 0
                states[job_id] = active[job_id] = JobState(
                    id=job_id, submit=float(job.submit), duration=float(job.duration),
                    gpus=job.requests.get(GPU, 0), remaining=float(job.duration))
                changed = True
            elif g != gen[job_id]:
                continue                       # stale: the job was preempted since
            elif kind == _END:
                state = active.pop(job_id)
                stop(state, now)
                state.remaining = 0.0
                job = by_id[job_id]
                result.outcomes.append(JobOutcome(
                    id=job_id, user=getattr(job, "user", ""), submit=state.submit, start=state.first_start,
                    end=now, duration=state.duration, gpus=state.gpus, attained=state.attained))
                changed = True
            else:                              # a priority change of a running job
                state = active[job_id]
                change = policy.next_change(state, now)
                if change is not None and change < state.since + state.remaining:
                    heapq.heappush(events, (max(change, now), _CHANGE, job_id, g))
                changed = True
        if not changed:
            continue
        if len(active) > len(running):
            _cycle(snapshot, policy, by_id, active, running, now, stop, start, result, gangs)
            result.cycles += 1
            if check:
                _check(snapshot, running)
        result.samples.append(Sample(t=now, gpus_allocated=allocated_gpus, gpus_total=gpus_total,
                                     queue_length=len(active) - len(running), running=len(running)))
    if active or running:
        raise CorralError(f"simulation ended with {len(active)} jobs unfinished")
    if check:
        _check_work(states, segments, result)
    result.outcomes.sort(key=lambda o: o.id)
    return result


def _cycle(snapshot, policy, by_id, active, running, now, stop, start, result, gangs=frozenset()) -> None:
    # Simple rule for gang jobs (more GPUs than any node, :mod:`corral.sim.gang`): they
    # are tried first, in arrival order, and then hold their nodes until they end --
    # never preempted, never preempting.
    failed: set = set()
    for state in sorted((s for s in active.values() if s.id in gangs and not s.running),
                        key=lambda s: (s.submit, s.id)):
        requests = by_id[state.id].requests
        allocs = None if requests in failed else place_gang(snapshot, requests)
        if allocs is None:
            failed.add(requests)
        else:
            start(state, tuple(allocs), now)
            result.placements += 1
            result.gang_placed += 1
    order = sorted(active.values(), key=lambda s: policy.key(s, now))
    rank = {s.id: i for i, s in enumerate(order)}
    for state in order:
        if state.running or state.id in gangs:
            continue
        requests = by_id[state.id].requests
        alloc = _best_fit(snapshot, requests)
        if alloc is None:
            victims = _victims(snapshot, requests, rank[state.id], rank, running)
            if victims is None:
                continue
            for v in victims:
                stop(active[v], now)
                active[v].preemptions += 1
                result.preemptions += 1
            alloc = _best_fit(snapshot, requests)
            if alloc is None:
                raise CorralError(f"job {state.id} does not fit after preempting {victims}")
        start(state, alloc, now)
        result.placements += 1


def _victims(snapshot: Snapshot, requests, my_rank: int, rank: dict, running: dict) -> list[int] | None:
    """The fewest running jobs ranked below ``my_rank`` on one node whose preemption
    (lowest-ranked first) makes ``requests`` fit there; None if no node works."""
    on_node: dict[str, list[tuple[int, int, Allocation]]] = {}
    for job_id, (_, alloc) in running.items():
        if isinstance(alloc, tuple):
            continue                           # a gang job: never preempted
        if rank[job_id] > my_rank:
            on_node.setdefault(alloc.node, []).append((rank[job_id], job_id, alloc))
    best: tuple[int, str, list[int]] | None = None
    for name in sorted(on_node):
        state = snapshot.nodes[name]
        if not requests.fits_in(state.allocatable):
            continue
        s = copy_state(state)
        chosen: list[int] = []
        for _, job_id, alloc in sorted(on_node[name], reverse=True):
            s.forget(alloc)
            chosen.append(job_id)
            if place_on(s, requests) is not None:
                if best is None or len(chosen) < best[0]:
                    best = (len(chosen), name, list(chosen))
                break
    return None if best is None else best[2]


def _many(x) -> tuple:
    return x if isinstance(x, tuple) else (x,)


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
