"""Multi-tenant scheduling: property-based invariants, driven by a small virtual-time loop
that plays the daemon (start placements, stop and requeue preemption victims, end jobs)."""

from __future__ import annotations

import random
import time
from collections import Counter

from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st
from sched_helpers import check_invariants

from corral.capacity.node import make_node
from corral.job import Allocation
from corral.resources import CPU, GPU, Resources
from corral.scheduler import ClusterState, CycleContext, PendingJob, QueueSpec, RunningJob, Snapshot, schedule
from corral.scheduler.backfill import earliest_start
from corral.scheduler.quota import QuotaState

GiB = 2**30
NODES = [make_node("a", cores=8, memory=32 * GiB, gpus=4), make_node("b", cores=4, memory=16 * GiB, gpus=2)]


def nonzero(d):
    """A tally without its zeros (nested one level)."""
    out = {}
    for k, v in d.items():
        v = nonzero(v) if isinstance(v, dict) else v
        if v:
            out[k] = v
    return out


def total_capacity(snapshot: Snapshot) -> Resources:
    return snapshot.capacity


class Sim:
    """Plays the daemon around :func:`schedule` in virtual time, on one cluster state kept
    across cycles (checked against a fresh one after every cycle)."""

    def __init__(self, nodes, queues, *, backfill=True, preempt=True, grace=False, half_life=None):
        self.nodes, self.queues = nodes, queues
        self.backfill, self.preempt, self.grace = backfill, preempt, grace
        self.now = 0.0
        self.running: dict[int, RunningJob] = {}
        self.pending: dict[int, PendingJob] = {}
        self.duration: dict[int, float] = {}
        self.ends: dict[int, float] = {}
        self.preempting: dict[int, str] = {}
        self.starts: Counter = Counter()
        self.finished: set[int] = set()
        self.preemptions: list[tuple[int, int, str]] = []      # (preemptor, victim, reason)
        self.capacity = total_capacity(Snapshot(nodes))
        self.half_life = half_life
        self.usage: dict[str, float] = {}                      # decayed GPU-seconds per user
        self.gpu_time: Counter = Counter()                     # GPU-seconds per user (exact)
        self.state = ClusterState(nodes, queues)

    def submit(self, job: PendingJob, duration: float) -> None:
        self.pending[job.id] = job
        self.duration[job.id] = duration

    def shares(self) -> dict[str, float]:
        if not self.half_life:
            return {}
        total = sum(self.usage.values())
        return {u: v / total for u, v in self.usage.items()} if total else {}

    def cycle(self):
        # Victims given a grace cycle are gone now.
        for r in [r for r in self.running.values() if r.stopping_for is not None]:
            self._requeue(r)
        self.preempting = {p: n for p, n in self.preempting.items() if p in self.pending}
        ctx = CycleContext(self.now, shares=self.shares(), backfill=self.backfill, preempt=self.preempt,
                           preempting=dict(self.preempting))
        res = schedule(self.state, list(self.pending.values()), ctx)
        placed = {p.job_id for p in res.placements}
        assert set(res.positions()) | placed == set(self.pending)
        assert set(res.reasons) | placed == set(self.pending) and not set(res.reasons) & placed
        for p in res.placements:
            job = self.pending.pop(p.job_id)
            self.running[job.id] = self.state.running[job.id]
            self.ends[job.id] = self.now + self.duration[job.id]
            self.starts[job.id] += 1
            self.preempting.pop(job.id, None)
        victims_seen: set[int] = set()
        nodes_seen: set[str] = set()
        for pre in res.preemptions:
            assert pre.node not in nodes_seen, "two preemptions on one node in one cycle"
            nodes_seen.add(pre.node)
            assert pre.preemptor in self.pending
            self.preempting = {p: n for p, n in self.preempting.items() if n != pre.node}   # as the driver does
            self.preempting[pre.preemptor] = pre.node
            for v in pre.victims:
                assert v not in victims_seen
                victims_seen.add(v)
                r = self.running[v]
                assert r.preemptible and r.stopping_for is None and r.allocation.node == pre.node
                self.preemptions.append((pre.preemptor, v, pre.kind.value))
                if self.grace:
                    self.running[v] = replace(r, stopping_for=pre.preemptor)
                    self.state.replace(self.running[v])
                else:
                    self._requeue(r)
        self.check()
        return res

    def _requeue(self, r: RunningJob) -> None:
        del self.running[r.id]
        del self.ends[r.id]
        self.state.end(r.id)
        self.pending[r.id] = PendingJob(r.id, r.requests, priority=r.priority, seq=r.id, queue=r.queue, user=r.user,
                                        time_limit=None if r.expected_end is None else r.expected_end - r.started_at)

    def check(self) -> None:
        check_invariants(self.nodes, {i: r.allocation for i, r in self.running.items()})
        fresh = ClusterState(self.nodes, self.queues, self.running.values())
        assert self.state.running == fresh.running
        for kept, new in ((self.state.quota.usage, fresh.quota.usage), (self.state.shares.allocated,
                          fresh.shares.allocated), ({n: s.used for n, s in self.state.snapshot.nodes.items()},
                                                    {n: s.used for n, s in fresh.snapshot.nodes.items()})):
            assert nonzero(kept) == nonzero(new)
        assert nonzero(self.state.quota.drawn) == nonzero(fresh.quota.drawn)
        assert nonzero(self.state.users.gpus) == nonzero(fresh.users.gpus)
        assert nonzero(self.state.users.jobs) == nonzero(fresh.users.jobs)
        assert set(self.state.stopping) == {i for i, r in self.running.items() if r.stopping_for is not None}
        q = QuotaState(self.queues, self.capacity)
        for r in self.running.values():
            q.add(r.queue, r.requests)
        for name in self.queues:
            for res, ceiling in q.ceiling[name].items():
                assert q.usage[name].get(res, 0) <= ceiling, f"queue {name} over nominal + borrowing limit in {res}"
        if not q.whole:
            for res, pool in q.pool.items():
                assert q.drawn.get(res, 0) <= pool, f"more {res} borrowed than lent"

    def advance(self, until: float | None = None) -> bool:
        """Move to the next job end (or ``until``, if earlier); False when nothing is left."""
        if not self.ends and until is None:
            return False
        t = min(self.ends.values(), default=until)
        if until is not None:
            t = min(t, until)
        dt = t - self.now
        for r in self.running.values():
            self.gpu_time[r.user] += dt * r.gpu_count
        if self.half_life:
            decay = 0.5 ** (dt / self.half_life)
            for u in self.usage:
                self.usage[u] *= decay
            for r in self.running.values():
                self.usage[r.user] = self.usage.get(r.user, 0.0) + dt * r.gpu_count
        self.now = t
        for i in [i for i, end in self.ends.items() if end <= t]:
            del self.running[i]
            del self.ends[i]
            self.state.end(i)
            self.finished.add(i)
        return True

    def settle(self, limit: int = 60) -> None:
        """Cycles at this instant until nothing more happens (no placement, no preemption)."""
        for _ in range(limit):
            res = self.cycle()
            if not res.placements and not res.preemptions and not any(
                    r.stopping_for is not None for r in self.running.values()):
                return
        raise AssertionError(f"no fixed point after {limit} cycles at t={self.now}: preemption churn")

    def run(self, arrivals: list[tuple[float, PendingJob, float]], max_steps: int = 2000) -> None:
        arrivals = sorted(arrivals, key=lambda a: (a[0], a[1].id))
        i = 0
        for _ in range(max_steps):
            while i < len(arrivals) and arrivals[i][0] <= self.now:
                self.submit(arrivals[i][1], arrivals[i][2])
                i += 1
            self.settle()
            if i == len(arrivals) and not self.running and not self.pending:
                return
            nxt = arrivals[i][0] if i < len(arrivals) else None
            if not self.advance(nxt):
                assert not self.pending, f"stuck with jobs {sorted(self.pending)} pending and nothing running"
                return
        raise AssertionError("did not finish")


# --- strategies ---------------------------------------------------------------------

queue_specs = st.lists(
    st.fixed_dictionaries({
        "gpu": st.integers(0, 6),
        "borrow": st.one_of(st.none(), st.integers(0, 4)),
        "lend": st.one_of(st.none(), st.integers(0, 4)),
        "policy": st.sampled_from(["strict-fifo", "best-effort-fifo", "priority", "sjf", "fair-share"]),
    }),
    min_size=1, max_size=3,
)
job_specs = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(1, 2), st.integers(0, 2), st.integers(1, 30),
              st.booleans(), st.integers(0, 40), st.integers(0, 2)),
    min_size=1, max_size=25,
)


def build_queues(specs) -> dict[str, QueueSpec]:
    out = {}
    for i, s in enumerate(specs):
        name = f"q{i}"
        out[name] = QueueSpec(name, nominal={GPU: s["gpu"]},
                              borrowing_limit=None if s["borrow"] is None else {GPU: s["borrow"]},
                              lending_limit=None if s["lend"] is None else {GPU: s["lend"]}, policy=s["policy"])
    return out


def build_jobs(queues, specs):
    """(arrival, job, duration) for every job that could ever run (fits a node and quota)."""
    quota = QuotaState(queues, total_capacity(Snapshot(NODES)))
    names = sorted(queues)
    out = []
    for i, (qi, gpu, cpu, prio, duration, limited, arrival, user) in enumerate(specs, start=1):
        req = Resources({CPU: 1000 * cpu, GPU: gpu})
        queue = names[qi % len(names)]
        if not any(req.fits_in(n.allocatable) for n in NODES) or quota.never_fits(queue, req):
            continue
        job = PendingJob(i, req, priority=prio, seq=i, time_limit=float(duration) if limited else None,
                         estimate=float(duration) if limited else None, queue=queue, user=f"u{user}")
        out.append((float(arrival), job, float(duration)))
    return out


# --- properties ---------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(queue_specs, job_specs, st.booleans(), st.booleans())
# A loop once found: a CPU-only job of a queue borrowing GPUs preempted across queues by
# priority, so priority, priority and a reclaim went round three jobs.
@example([{'gpu': 1, 'borrow': None, 'lend': None, 'policy': 'strict-fifo'}, {'gpu': 1, 'borrow': None, 'lend': None, 'policy': 'strict-fifo'}, {'gpu': 1, 'borrow': None, 'lend': None, 'policy': 'strict-fifo'}],
         [(0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 2, 1, 23, False, 14, 0), (0, 1, 2, 2, 5, False, 32, 0), (0, 1, 2, 2, 1, False, 36, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 2, 1, 15, False, 25, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 2, 1, 0, 23, False, 0, 0), (2, 1, 1, 0, 18, False, 23, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 1, 0, 1, False, 0, 0), (0, 0, 2, 1, 18, False, 20, 0), (0, 0, 2, 1, 17, False, 20, 0)],
         False, False)
# Once stuck: a shape that failed only because of a preemptor's hold was remembered as
# fitting nowhere, and the node where the hold was let go was not counted as gained.
@example([{'gpu': 2, 'policy': 'sjf', 'borrow': 1, 'lend': None}, {'gpu': 0, 'borrow': None, 'lend': None, 'policy': 'best-effort-fifo'}, {'borrow': None, 'gpu': 4, 'policy': 'priority', 'lend': None}],
         [(1, 0, 1, 0, 24, True, 36, 2), (0, 3, 1, 1, 4, False, 21, 0), (0, 0, 1, 2, 24, False, 28, 2), (1, 3, 2, 0, 15, False, 16, 0), (1, 1, 2, 1, 4, True, 7, 0), (0, 2, 2, 1, 17, True, 31, 1), (0, 2, 2, 0, 28, False, 29, 1), (0, 1, 1, 2, 12, True, 4, 2), (1, 2, 2, 2, 30, True, 1, 0), (2, 2, 2, 1, 11, False, 33, 2)],
         False, False)
def test_quotas_hold_nothing_overcommits_and_every_job_finishes(qspecs, jspecs, backfill, grace):
    """No queue exceeds nominal + borrowing limit, nothing borrowed that is not lent, no
    node over-committed (checked after every cycle); preempted jobs are requeued and run
    again; every job finishes; no preemption churn at any instant."""
    queues = build_queues(qspecs)
    sim = Sim(NODES, queues, backfill=backfill, preempt=True, grace=grace)
    arrivals = build_jobs(queues, jspecs)
    sim.run(arrivals)
    assert sim.finished == {job.id for _, job, _ in arrivals}
    for _, victim, _ in sim.preemptions:
        assert sim.starts[victim] >= 2, "a preempted job did not run again"


@settings(max_examples=120, deadline=None)
@given(job_specs, st.booleans())
# A loop once found: an older claim on a node came back after a newer preemption there.
@example([(0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 1, False, 0, 0),
     (0, 0, 1, 0, 17, False, 16, 2),
     (0, 0, 1, 0, 25, False, 8, 2),
     (0, 0, 2, 1, 10, False, 24, 0),
     (0, 1, 1, 1, 10, False, 13, 0),
     (0, 2, 1, 0, 16, False, 0, 0),
     (0, 3, 1, 2, 2, False, 22, 0),
     (1, 1, 1, 0, 13, True, 0, 1),
     (1, 2, 1, 1, 9, True, 16, 0),
     (1, 3, 1, 1, 23, False, 0, 0),
     (0, 1, 1, 1, 7, True, 28, 1),
     (0, 1, 2, 0, 11, False, 0, 2),
     (0, 3, 1, 2, 1, False, 34, 0),
     (1, 1, 2, 1, 2, False, 27, 2)], False)
def test_priority_preemption_in_one_queue_terminates(jspecs, grace):
    """One whole-machine queue (plus a second for cross-queue priority preemption)."""
    queues = {"q0": QueueSpec("q0"), "q1": QueueSpec("q1", policy="fair-share")}
    sim = Sim(NODES, queues, grace=grace)
    arrivals = build_jobs(queues, jspecs)
    sim.run(arrivals)
    assert sim.finished == {job.id for _, job, _ in arrivals}
    back = {(p, v) for p, v, _ in sim.preemptions}
    for p, v, reason in sim.preemptions:
        assert reason == "priority"
        assert (v, p) not in back, "a job preempted its preemptor back"


@settings(max_examples=150, deadline=None)
@given(
    running=st.lists(st.tuples(st.integers(1, 4), st.one_of(st.none(), st.integers(1, 100)), st.booleans()),
                     max_size=6),
    pending=st.lists(st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(1, 150)), st.integers(1, 3)),
                     min_size=1, max_size=12),
)
def test_backfill_never_delays_the_reservation(running, pending):
    nodes = NODES
    snap = Snapshot(nodes)
    live: list[RunningJob] = []
    for i, (gpu, end, on_b) in enumerate(running, start=100):
        state = snap.nodes["b" if on_b else "a"]
        req = Resources({CPU: 1000, GPU: gpu})
        if not state.fits(req) or len(state.free_gpus) < gpu:
            continue
        gpus, cores = tuple(sorted(state.free_gpus)[:gpu]), tuple(sorted(state.free_cores)[:1])
        r = RunningJob(i, Allocation(state.node.name, req, gpus, cores), expected_end=None if end is None else float(end))
        snap.assume(r.allocation)
        live.append(r)
    jobs = [PendingJob(i, Resources({CPU: 1000 * cpu, GPU: gpu}), seq=i, time_limit=None if lim is None else float(lim))
            for i, (gpu, lim, cpu) in enumerate(pending, start=1)]
    state = ClusterState(nodes, {"default": QueueSpec("default")}, live)
    res = schedule(state, jobs, CycleContext(0.0, backfill=True))
    check_invariants(nodes, {**{r.id: r.allocation for r in live}, **{p.job_id: p.allocation for p in res.placements}})
    if res.reservation is None:
        return
    reserved = next(j for j in jobs if j.id == res.reservation.job_id)
    by_id = {j.id: j for j in jobs}
    placed = [RunningJob(p.job_id, p.allocation,
                         expected_end=None if by_id[p.job_id].time_limit is None else by_id[p.job_id].time_limit)
              for p in res.placements]
    after = Snapshot(nodes, [r.allocation for r in live + placed])
    start = earliest_start(after, reserved.requests, live + placed, 0.0)
    assert start is not None and start[1] <= res.reservation.shadow


@settings(max_examples=4, deadline=None)
@given(users=st.integers(2, 3), seed=st.integers(0, 10**6), half_life=st.sampled_from([None, 200.0]),
       head_start=st.floats(0.0, 0.9))
def test_drf_shares_converge_for_saturating_users(users, seed, half_life, head_start):
    """Each user keeps submitting equal one-GPU jobs (always more than fit): over time the
    GPU time each gets converges to an equal share, whatever history one user starts with."""
    rng = random.Random(seed)
    node = make_node("n", cores=32, memory=64 * GiB, gpus=8)
    sim = Sim([node], {"shared": QueueSpec("shared", policy="fair-share")}, half_life=half_life)
    if half_life:
        sim.usage = {"u0": head_start * 8 * half_life, "u1": 0.0}
    names = [f"u{i}" for i in range(users)]
    next_id = 1
    horizon, measured_from = 2000.0, 600.0
    while sim.now < horizon:
        for u in names:                                      # keep every user saturating
            while sum(1 for j in sim.pending.values() if j.user == u) < 10:
                sim.submit(PendingJob(next_id, Resources({CPU: 1000, GPU: 1}), seq=next_id, queue="shared", user=u),
                           float(rng.randint(5, 40)))
                next_id += 1
        sim.settle()
        if sim.now >= measured_from and not getattr(sim, "_reset", False):
            sim.gpu_time.clear()
            sim._reset = True
        sim.advance()
    total = sum(sim.gpu_time.values())
    for u in names:
        assert abs(sim.gpu_time[u] / total - 1 / users) < 0.05, (u, dict(sim.gpu_time))


def test_performance_sanity_2000_pending_3_queues_8_nodes():
    nodes = [make_node(f"n{i}", cores=32, memory=256 * GiB, gpus=8) for i in range(8)]
    queues = {"prod": QueueSpec("prod", nominal={GPU: 32}, policy="priority"),
              "research": QueueSpec("research", nominal={GPU: 24}, policy="fair-share", max_user_gpus=16),
              "batch": QueueSpec("batch", nominal={GPU: 8}, policy="strict-fifo")}
    rng = random.Random(7)
    names = sorted(queues)
    running, pending = [], []
    for i in range(1, 2001):
        req = Resources({CPU: 1000 * rng.randint(1, 4), GPU: rng.choice([0, 1, 1, 2, 4, 8])})
        pending.append(PendingJob(i, req, priority=rng.randint(0, 3), seq=i, time_limit=float(rng.randint(60, 7200)),
                                  queue=rng.choice(names), user=f"u{rng.randint(0, 9)}"))
    for i, node in enumerate(nodes):                   # half the machine busy
        req = Resources({CPU: 4000, GPU: 4})
        running.append(RunningJob(10000 + i, Allocation(node.name, req, (0, 1, 2, 3), (0, 1, 2, 3)),
                                  queue=names[i % 3], user=f"u{i}", expected_end=float(rng.randint(100, 5000))))
    state = ClusterState(nodes, queues, running)
    t0 = time.perf_counter()
    res = schedule(state, pending, CycleContext(0.0, backfill=True, preempt=True))
    elapsed = time.perf_counter() - t0   # about 0.03-0.05 s on the dev box; no assert on time
    assert len(res.positions()) == 2000 - len(res.placements)
    assert len(res.reasons) + len(res.placements) == 2000
    check_invariants(nodes, {**{r.id: r.allocation for r in running}, **{p.job_id: p.allocation
                                                                       for p in res.placements}})
    print(f"schedule: 2000 pending, 3 queues, 8 nodes: {elapsed:.3f}s, {len(res.placements)} placed")


@settings(max_examples=60, deadline=None)
@given(queue_specs, job_specs, st.booleans())
def test_decisions_only_cycles_decide_the_same(qspecs, jspecs, backfill):
    """estimate_starts and the simulator run decisions-only cycles; they must place exactly
    what the full cycle places (without preemption), cycle after cycle."""
    queues = build_queues(qspecs)
    sim = Sim(NODES, queues, backfill=backfill, preempt=False)
    arrivals = build_jobs(queues, jspecs)
    original = sim.cycle

    def cycle():
        copy = sim.state.copy()
        quick = schedule(copy, list(sim.pending.values()), CycleContext(sim.now, backfill=backfill, reasons=False))
        res = original()
        assert quick.placements == res.placements
        assert quick.reservation == res.reservation
        return res

    sim.cycle = cycle
    sim.run(arrivals)
