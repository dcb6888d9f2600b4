"""Multi-tenant scheduling (queues, quotas, fair share, backfill, preemption): worked examples."""

from __future__ import annotations

import pytest

from dataclasses import replace

from corral.capacity.node import make_node
from corral.errors import ValidationError
from corral.job import Allocation, Reason
from corral.resources import GPU, Resources
from corral.scheduler import (Amounts, ClusterState, CycleContext, PendingJob, QueueSpec, RunningJob, Snapshot,
                              estimate_starts, schedule)
from corral.scheduler.backfill import earliest_start
from corral.scheduler.preemption import plan_preemption
from corral.scheduler.quota import QuotaState

GiB = 2**30


def R(**req) -> Resources:
    return Resources.parse(req)


def job(i, gpu=1, *, cpu=1, priority=0, queue="default", user="", limit=None, seq=None) -> PendingJob:
    return PendingJob(i, R(cpu=cpu, gpu=gpu), priority=priority, seq=i if seq is None else seq, time_limit=limit,
                      queue=queue, user=user)


def node(name="n1", gpus=8, cores=16):
    return make_node(name, cores=cores, memory=64 * GiB, gpus=gpus)


class World:
    """Nodes plus running jobs (assigned devices in order) for hand-made cases."""

    def __init__(self, *nodes):
        self.nodes = list(nodes) or [node()]
        self.running: list[RunningJob] = []

    def run(self, i, gpu=1, *, node="n1", cpu=1, priority=0, queue="default", user="", started=0.0, end=None,
            preemptible=True, stopping_for=None):
        snap = self.snapshot()
        state = snap.nodes[node]
        gpus = tuple(sorted(state.free_gpus)[:gpu])
        cores = tuple(sorted(state.free_cores)[:cpu])
        r = RunningJob(i, Allocation(node, R(cpu=cpu, gpu=gpu), gpus, cores), priority=priority, queue=queue,
                       user=user, started_at=started, expected_end=end, preemptible=preemptible,
                       stopping_for=stopping_for)
        self.running.append(r)
        return r

    def snapshot(self) -> Snapshot:
        return Snapshot(self.nodes, [r.allocation for r in self.running])

    def state(self, queues=None) -> ClusterState:
        return ClusterState(self.nodes, queues or {"default": QueueSpec("default")}, self.running)

    def cycle(self, pending, queues=None, now=0.0, backfill=True, preempt=True, **kw):
        ctx = CycleContext(now, backfill=backfill, preempt=preempt, **kw)
        return schedule(self.state(queues), pending, ctx)


def placed(res) -> list[int]:
    return [p.job_id for p in res.placements]


def msg(res, i) -> str:
    return res.reasons[i].message


# --- quotas -------------------------------------------------------------------------


def two_queues(research=None, prod=None):
    return {"research": QueueSpec("research", nominal={GPU: 4}, **(research or {})),
            "prod": QueueSpec("prod", nominal={GPU: 4}, **(prod or {}))}


def test_a_queue_borrows_what_the_other_does_not_use():
    w = World(node(gpus=8))
    res = w.cycle([job(i, queue="research") for i in range(1, 8)], two_queues())
    assert placed(res) == [1, 2, 3, 4, 5, 6, 7]       # 4 nominal + 3 borrowed from prod


def test_borrowing_limit_caps_what_a_queue_borrows():
    w = World(node(gpus=8))
    res = w.cycle([job(i, queue="research") for i in range(1, 8)], two_queues(research={"borrowing_limit": {GPU: 1}}))
    assert placed(res) == [1, 2, 3, 4, 5]
    assert res.reasons[6].name == "QuotaExceeded"
    assert res.reasons[6].reason is Reason.QUOTA
    assert msg(res, 6) == "queue research: quota nvidia.com/gpu: requests 1, in use 5 of nominal 4 + borrowable 0"


def test_a_zero_borrowing_limit_is_kept():
    spec = QueueSpec("q", nominal=Amounts.parse({"gpu": 2}), borrowing_limit={"gpu": 0})
    assert spec.borrowing_limit == {GPU: 0}
    w = World(node(gpus=8))
    res = w.cycle([job(1, 2, queue="q"), job(2, queue="q")], {"q": spec, "other": QueueSpec("other", nominal={GPU: 6})})
    assert placed(res) == [1]
    assert msg(res, 2) == "queue q: quota nvidia.com/gpu: requests 1, in use 2 of nominal 2 + borrowable 0"


def test_lending_limit_caps_what_others_borrow():
    w = World(node(gpus=8))
    res = w.cycle([job(i, queue="research") for i in range(1, 8)], two_queues(prod={"lending_limit": {GPU: 1}}))
    assert placed(res) == [1, 2, 3, 4, 5]               # 4 + the 1 GPU prod lends
    assert msg(res, 6) == "queue research: quota nvidia.com/gpu: requests 1, in use 5 of nominal 4 + borrowable 0"


def test_guaranteed_part_stays_available_to_its_queue():
    # prod lends 1 of its 4: 3 are guaranteed to it even while research borrows the 1.
    w = World(node(gpus=8))
    for i in range(10, 15):
        w.run(i, queue="research")
    res = w.cycle([job(1, 3, queue="prod"), job(2, 1, queue="prod")], two_queues(prod={"lending_limit": {GPU: 1}}),
                  preempt=False)
    assert placed(res) == [1]
    assert msg(res, 2) == ("queue prod: quota nvidia.com/gpu: requests 1, in use 3 of nominal 4 "
                           "(1 of it borrowed by other queues)")


def test_quota_state_numbers():
    queues = {"a": QueueSpec("a", nominal={GPU: 4}, lending_limit={GPU: 1}),
              "b": QueueSpec("b", nominal={GPU: 2}, borrowing_limit={GPU: 2}),
              "c": QueueSpec("c", nominal={GPU: 2})}
    q = QuotaState(queues, {GPU: 8})
    assert q.pool == {GPU: 1 + 2 + 2}
    assert q.available("a", GPU) == 3 + 5                  # guaranteed 3 + the whole pool
    assert q.available("b", GPU) == 4                      # capped by nominal 2 + borrowing limit 2
    q.add("c", {GPU: 4})                                   # c draws 4 from the pool (2 its own, 2 borrowed)
    assert q.borrowed("c") == {GPU: 2}
    assert q.available("b", GPU) == 1
    assert q.available("a", GPU) == 3 + 1
    assert q.share("c") == 2.0
    assert not q.within_nominal("c", {GPU: 1}) and q.within_nominal("a", {GPU: 4})
    assert q.never_fits("b", {GPU: 5}) and not q.never_fits("b", {GPU: 4})


def test_resources_the_quota_does_not_name_are_not_limited():
    w = World(node(gpus=2, cores=16))
    res = w.cycle([PendingJob(1, R(cpu=12), queue="q"), PendingJob(2, R(cpu=4, gpu=2), queue="q", seq=2)],
                  {"q": QueueSpec("q", nominal={GPU: 2})})
    assert placed(res) == [1, 2]


def test_unknown_queue_and_bad_policy():
    w = World()
    res = w.cycle([job(1, queue="nope")])
    assert res.reasons[1].name == "QuotaExceeded"
    assert msg(res, 1) == "queue nope is not defined (queues: default)"
    assert res.visited == [1]
    with pytest.raises(ValidationError):
        QueueSpec("x", policy="lottery")


def test_user_limits():
    w = World(node(gpus=8))
    w.run(10, 2, queue="research", user="alice")
    queues = {"research": QueueSpec("research", max_user_gpus=3, max_user_jobs=3)}
    res = w.cycle([job(1, 1, queue="research", user="alice"), job(2, 1, queue="research", user="alice"),
                   job(3, 0, queue="research", user="alice"), job(4, 0, queue="research", user="alice"),
                   job(5, 2, queue="research", user="bob")], queues)
    assert placed(res) == [1, 3, 5]
    assert res.reasons[2].name == "UserLimit"
    assert msg(res, 2) == "user alice: max_user_gpus 3 in queue research (using 3)"
    assert msg(res, 4) == "user alice: max_user_jobs 3 in queue research (using 3)"


# --- ordering -----------------------------------------------------------------------


def test_strict_fifo_blocks_only_its_own_queue():
    w = World(node(gpus=4))
    w.run(10, 3, queue="other")                                     # no time limit: no reservation
    queues = {"strict": QueueSpec("strict", policy="strict-fifo"), "other": QueueSpec("other")}
    pending = [job(1, 2, queue="strict"), job(2, 1, queue="strict"), job(3, 1, queue="other", seq=3)]
    res = w.cycle(pending, queues, preempt=False)
    assert placed(res) == [3]
    assert res.reasons[2].reason is Reason.PRIORITY
    assert msg(res, 2) == "waiting behind job 1 (strict order)"
    assert msg(res, 1) == "insufficient nvidia.com/gpu: requests 2, free 0 of 4"
    # Priority first, then submit order (a preempted job queues behind its preemptor).
    res = w.cycle(pending[:2] + [job(4, 2, queue="strict", priority=1)], queues, preempt=False)
    assert res.positions() == {4: 1, 1: 2, 2: 3} and msg(res, 1) == "waiting behind job 4 (strict order)"
    assert res.visited == [4]                     # the rest of a blocked queue is not walked


def test_priority_queue_is_best_effort():
    w = World(node(gpus=4))
    w.run(10, 3)
    res = w.cycle([job(1, 2, priority=5), job(2, 1)], preempt=False)
    assert placed(res) == [2]
    assert res.visited == [1, 2]


def test_queues_within_nominal_go_before_borrowers_then_lowest_share():
    w = World(node(gpus=8))
    for i in range(10, 14):
        w.run(i, queue="research")                                   # research at its nominal
    w.run(14, queue="prod")
    res = w.cycle([job(1, queue="research", priority=9), job(2, queue="prod", seq=2),
                   job(3, queue="prod", seq=3)], two_queues())
    assert res.visited == [2, 3, 1]                                    # prod needs no borrowing
    assert placed(res) == [2, 3, 1]


def test_fair_share_alternates_users_and_counts_history():
    w = World(node(gpus=4))
    queues = {"shared": QueueSpec("shared", policy="fair-share")}
    pending = [job(i, queue="shared", user="alice") for i in (1, 2, 3, 4)] + \
              [job(i, queue="shared", user="bob") for i in (5, 6, 7, 8)]
    res = w.cycle(pending, queues)
    assert placed(res) == [1, 5, 2, 6]
    res = w.cycle(pending, queues, shares={"alice": 0.5})
    assert placed(res) == [5, 6, 1, 7]             # bob catches up to 0.5, then the tie goes by seq
    assert res.reasons[2].name == "FairShare"
    assert msg(res, 2) == "fair share: user alice's share 0.75 is above bob's 0.50"


# --- backfill -----------------------------------------------------------------------


def backfill_world():
    w = World(node(gpus=4, cores=8))
    w.run(10, 2, end=100.0, priority=9)
    w.run(11, 1, end=100.0, priority=9)
    return w                                                         # 1 GPU free until t=100


def test_backfill_lets_a_job_that_ends_before_the_shadow_time_start():
    w = backfill_world()
    res = w.cycle([job(1, 4, priority=5), job(2, 1, limit=60)])
    assert res.reservation.job_id == 1 and res.reservation.shadow == 100.0
    assert placed(res) == [2]


def test_backfill_refuses_a_job_that_would_delay_the_reservation():
    w = backfill_world()
    for late in (job(2, 1, limit=200), job(2, 1)):                    # too long, or no limit
        res = w.cycle([job(1, 4, priority=5), late], now=10.0)
        assert placed(res) == []
        assert res.reasons[2].name == "Reserved"
        assert res.reasons[2].reason is Reason.RESERVED
        assert msg(res, 2) == "reserved for job 1 (it starts within 1m30s)"
        assert msg(res, 1) == "insufficient nvidia.com/gpu: requests 4, free 1 of 4"


def test_backfill_uses_the_extra():
    w = backfill_world()
    res = w.cycle([job(1, 3, priority=5), job(2, 1), job(3, 1)])
    assert res.reservation.job_id == 1
    assert placed(res) == [2]                                        # the 4th GPU is spare at t=100
    assert res.reservation.extra.get(GPU, 0) == 0
    start = earliest_start(Snapshot(w.nodes, [r.allocation for r in w.running] + [res.placements[0].allocation]),
                           R(cpu=1, gpu=3), w.running + [RunningJob(2, res.placements[0].allocation)], 0.0)
    assert start == ("n1", 100.0)


def test_no_reservation_when_jobs_without_limits_hold_it():
    w = World(node(gpus=4))
    w.run(10, 3)
    res = w.cycle([job(1, 4, priority=5), job(2, 1)], preempt=False)
    assert res.reservation is None
    assert placed(res) == [2]


def test_backfill_off():
    w = backfill_world()
    res = w.cycle([job(1, 4, priority=5), job(2, 1, limit=500)], backfill=False)
    assert res.reservation is None and placed(res) == [2]


def test_reservation_on_the_node_that_frees_first_leaves_other_nodes_alone():
    w = World(node("a", gpus=2), node("b", gpus=2))
    w.run(10, 2, node="a", end=50.0)
    w.run(11, 1, node="b", end=500.0)
    res = w.cycle([job(1, 2), job(2, 1)])
    assert (res.reservation.node, res.reservation.shadow) == ("a", 50.0)
    assert placed(res) == [2] and res.placements[0].allocation.node == "b"


# --- preemption ---------------------------------------------------------------------


def plan(w, pending_job, queues=None, now=100.0):
    queues = queues or {"default": QueueSpec("default")}
    return plan_preemption(w.snapshot(), pending_job, w.running, queues, now)


def test_preemption_takes_the_fewest_victims():
    w = World(node(gpus=4))
    w.run(1, 1, priority=0)
    w.run(2, 1, priority=0)
    w.run(3, 2, priority=1)
    p = plan(w, job(9, 2, priority=5))
    assert (p.victims, p.kind.value, p.node) == ((3,), "priority", "n1")


def test_preemption_takes_the_lowest_priority_then_the_most_recent():
    w = World(node(gpus=4))
    w.run(1, 2, priority=1, started=0)
    w.run(2, 2, priority=0, started=0)
    assert plan(w, job(9, 2, priority=5)).victims == (2,)
    w = World(node(gpus=4))
    w.run(1, 2, started=10)
    w.run(2, 2, started=20)
    assert plan(w, job(9, 2, priority=5)).victims == (2,)


def test_preemption_refused_when_it_would_not_fit():
    w = World(node(gpus=4))
    w.run(1, 2, priority=0)
    w.run(2, 2, priority=9)
    assert plan(w, job(9, 4, priority=5)) is None
    w = World(node(gpus=4))
    w.run(1, 4, priority=0, preemptible=False)
    assert plan(w, job(9, 1, priority=5)) is None
    assert plan(World(node(gpus=4)), job(9, 8, priority=5)) is None     # never fits anyway


def test_preemption_never_takes_equal_or_higher_priority_in_its_queue():
    w = World(node(gpus=4))
    w.run(1, 4, priority=5)
    assert plan(w, job(9, 1, priority=5)) is None


def test_preemption_in_a_cycle_holds_the_victims_resources_for_the_preemptor():
    w = World(node(gpus=4))
    w.run(1, 1, priority=0, end=1000.0)
    w.run(2, 2, priority=9)
    res = w.cycle([job(9, 2, priority=5), job(10, 1, seq=10)])
    assert [(p.preemptor, p.victims) for p in res.preemptions] == [(9, (1,))]
    assert res.reasons[9].name == "Preempting"
    assert msg(res, 9) == "preempting job 1 (lower priority)"
    # The free GPU is part of what job 9 will take: job 10 does not get it.
    assert placed(res) == []
    # Next cycles, while job 1 stops: no new plan, the hold stays.
    w.running = [r if r.id != 1 else replace(r, stopping_for=9) for r in w.running]
    res = w.cycle([job(9, 2, priority=5), job(10, 1, seq=10)])
    assert res.preemptions == [] and placed(res) == []
    assert msg(res, 9) == "preempting job 1 (lower priority)"
    # Job 1 is gone: job 9 starts; job 10 still finds nothing free.
    w.running = [r for r in w.running if r.id != 1]
    res = w.cycle([job(9, 2, priority=5), job(10, 1, seq=10)])
    assert placed(res) == [9]


def reclaim_world(research_jobs=6, gpus=6):
    w = World(node(gpus=gpus))
    for i in range(1, research_jobs + 1):
        w.run(i, 1, queue="research", priority=10, started=float(i))
    return w


def test_reclaim_takes_borrowed_capacity_back_whatever_the_priority():
    w = reclaim_world(research_jobs=5)                 # research borrows 1; 1 GPU free
    res = w.cycle([job(9, 2, queue="prod")], two_queues())
    assert [(p.victims, p.kind.value) for p in res.preemptions] == [((5,), "reclaim")]
    assert msg(res, 9) == "preempting job 5 (reclaiming quota other queues borrow)"


def test_reclaim_never_takes_a_queue_below_its_nominal():
    w = reclaim_world(research_jobs=5)
    res = w.cycle([job(9, 3, queue="prod")], two_queues())     # would need 2: research down to 3 < 4
    assert res.preemptions == []
    assert msg(res, 9) == "insufficient nvidia.com/gpu: requests 3, free 1 of 6"


def test_reclaim_when_the_quota_is_what_blocks():
    w = reclaim_world(research_jobs=8, gpus=8)                 # research borrows all 4 of prod's
    res = w.cycle([job(9, 2, queue="prod")], two_queues(), preempt=False)
    assert msg(res, 9) == ("queue prod: quota nvidia.com/gpu: requests 1, in use 0 of nominal 4 "
                           "(4 of it borrowed by other queues)").replace("requests 1", "requests 2")
    res = w.cycle([job(9, 2, queue="prod")], two_queues())
    assert [(p.victims, p.kind.value) for p in res.preemptions] == [((7, 8), "reclaim")]


def test_a_borrowing_queue_does_not_preempt_other_queues_by_priority():
    w = World(node(gpus=4))
    w.run(1, 2, queue="prod", priority=0)
    w.run(2, 2, queue="research", priority=5)
    queues = {"research": QueueSpec("research", nominal={GPU: 2}), "prod": QueueSpec("prod", nominal={GPU: 2})}
    res = w.cycle([job(9, 1, queue="research", priority=5)], queues)
    assert res.preemptions == []                        # research would borrow: prod's jobs are safe
    # Within its own queue, lower priority is fair game.
    w.running = [r for r in w.running if r.id != 2]
    w.run(3, 1, queue="research", priority=0)
    w.run(4, 1, queue="research", priority=5)
    res = w.cycle([job(9, 1, queue="research", priority=5)], queues)
    assert [(p.victims, p.kind.value) for p in res.preemptions] == [((3,), "priority")]


def test_no_preemption_loop():
    """Preempt, requeue the victims, run cycles: nobody takes its preemptor back."""
    queues = two_queues()
    w = World(node(gpus=6))
    for i in range(1, 6):
        w.run(i, 1, queue="research", priority=10, started=float(i))
    pending = {9: job(9, 2, queue="prod"), 10: job(10, 1, queue="research", priority=20, seq=10)}
    preempted_by: dict[int, int] = {}
    for t in range(10):
        res = w.cycle(list(pending.values()), queues, now=float(t))
        for p in res.placements:
            spec = pending.pop(p.job_id)
            a = p.allocation
            w.running.append(RunningJob(spec.id, a, priority=spec.priority, queue=spec.queue, user=spec.user,
                                        started_at=float(t)))
        for pre in res.preemptions:
            for v in pre.victims:
                assert preempted_by.get(pre.preemptor) != v, "a victim preempted its preemptor back"
                preempted_by[v] = pre.preemptor
                r = next(r for r in w.running if r.id == v)
                w.running.remove(r)
                pending[v] = PendingJob(v, r.requests, priority=r.priority, seq=v, queue=r.queue, user=r.user)
    assert preempted_by                                  # something was preempted
    assert 9 not in pending


# --- estimates ----------------------------------------------------------------------


def test_estimate_starts_runs_the_core_forward():
    w = World(node(gpus=4))
    w.run(10, 4, end=100.0)
    pending = [job(1, 2, limit=50), job(2, 2, limit=50), job(3, 4, limit=10), job(4, 1)]
    assert estimate_starts(w.state(), pending, CycleContext(0.0, backfill=True)) == {1: 100.0, 2: 100.0, 3: 150.0, 4: 160.0}


def test_estimate_is_unknown_behind_a_job_without_a_limit():
    w = World(node(gpus=4))
    w.run(10, 2)
    w.run(11, 2, end=30.0)
    pending = [job(1, 2, limit=50), job(2, 4, limit=10), job(3, 2, limit=10)]
    assert estimate_starts(w.state(), pending, CycleContext(0.0, backfill=True)) == {1: 30.0, 2: None, 3: 80.0}


def test_after_the_victims_are_gone_their_capacity_waits_for_the_preemptor():
    # q0 (no quota: the whole machine) is idle (share 0), so its head goes first; without
    # the hold the requeued victim would take its GPUs back and be preempted again.
    queues = {"q0": QueueSpec("q0"), "q1": QueueSpec("q1", nominal={GPU: 8})}
    w = World(node(gpus=8))
    w.run(1, 4, queue="q0", priority=0)
    w.run(2, 2, queue="q1", priority=9)
    res = w.cycle([job(9, 4, queue="q1", priority=5)], queues)
    assert [(p.preemptor, p.victims, p.node) for p in res.preemptions] == [(9, (1,), "n1")]
    w.running = w.running[1:]
    pending = [job(1, 4, queue="q0"), job(9, 4, queue="q1", priority=5)]
    res = w.cycle(pending, queues, preempting={9: "n1"})
    assert res.visited == [1, 9] and placed(res) == [9]
    assert msg(res, 1) == "insufficient nvidia.com/gpu: requests 4, free 2 of 8"
    res = w.cycle(pending, queues)                       # without the record: job 1 first, again
    assert placed(res) == [1]                           # ... and next cycle job 9 would preempt it again


def test_a_queue_within_its_quota_is_no_priority_victim_of_another_queue():
    # As in Kueue: q0 keeps what is within its nominal quota, whatever the priorities (else
    # the GPUs its job frees are lent to q1, and q0 reclaims them: round and round). From
    # a queue that borrows, a job of lower priority may be taken.
    queues = {"q0": QueueSpec("q0", nominal={GPU: 4}), "q1": QueueSpec("q1", nominal={GPU: 8})}
    w = World(node(gpus=8))
    w.run(1, 4, queue="q0", priority=0)
    w.run(2, 4, queue="q1", priority=9)
    res = w.cycle([job(9, 2, queue="q1", priority=5)], queues)
    assert res.preemptions == [] and msg(res, 9) == "insufficient nvidia.com/gpu: requests 2, free 0 of 8"
    queues = {"q0": QueueSpec("q0", nominal={GPU: 4}), "q1": QueueSpec("q1", nominal={GPU: 4})}
    w = World(node(gpus=8))
    w.run(1, 4, queue="q0", priority=0)
    w.run(3, 1, queue="q0", priority=0)                 # q0 borrows 1 GPU
    w.run(2, 3, queue="q1", priority=9)
    res = w.cycle([job(9, 1, queue="q1", priority=5)], queues)
    # Job 1 would do too (fewest victims, lowest id) but would take q0 below its nominal.
    assert [(p.preemptor, p.victims) for p in res.preemptions] == [(9, (3,))]


def test_a_hold_does_not_stop_jobs_ahead_in_the_preemptors_queue():
    w = World(node(gpus=4))
    w.run(2, 2, priority=9)                              # job 9's victim is gone: 2 GPUs free
    pending = [job(8, 2, priority=7, seq=8), job(9, 2, priority=5), job(10, 2, queue="other", priority=9)]
    queues = {"default": QueueSpec("default"), "other": QueueSpec("other")}
    res = w.cycle(pending, queues, preempting={9: "n1"}, preempt=False)
    assert placed(res) == [8]                            # job 8 ranks before job 9 in its queue
    res = w.cycle([job(9, 2, priority=5), job(10, 2, queue="other", priority=9)], queues,
                  preempting={9: "n1"}, preempt=False)
    assert placed(res) == [9]                            # job 10 of another queue does not


def test_estimate_counts_a_preemption_under_way():
    w = World(node(gpus=4))
    w.run(1, 4, priority=0, end=500.0, stopping_for=9)
    pending = [job(9, 4, priority=5, limit=100), job(10, 2, limit=10)]
    assert estimate_starts(w.state(), pending, CycleContext(0.0, backfill=True)) == {9: 0.0, 10: 100.0}
