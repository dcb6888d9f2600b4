"""``sjf-aging`` (corral.scheduler.policies.sjf_aging): its order on hand-worked examples,
when a job is due and holds its queue, and -- replayed in the simulator through the
daemon's driver -- that a long job and a wide job start under an endless stream of short
jobs, where ``sjf`` keeps them waiting as long as the stream lasts."""

from __future__ import annotations

from corral.reasons import Behind
from corral.resources import Resources
from corral.scheduler import PendingJob
from corral.scheduler.policies import POLICIES, AgedShortestJobFirst
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import HISTORY, is_oracle, resolve

from corral.capacity.node import make_node
from sched_helpers import cycle, placed

GiB = 2**30

P = AgedShortestJobFirst
DAY = 86400.0


def pj(i, submitted, estimate, gpus=0, priority=0):
    return PendingJob(i, Resources.parse({"cpu": "1", "gpu": gpus}), priority=priority, seq=i,
                      estimate=estimate, submitted=submitted)


def test_registered_and_as_the_daemon_runs_it_in_the_simulator():
    assert POLICIES["sjf-aging"] is P
    policy = resolve("sjf-aging")
    assert policy.order_by == HISTORY and policy.scheduling.estimates_by_gpus
    assert not is_oracle(policy, [SimJob(1, 0, 10, Resources.parse({"gpu": 1}))])
    assert P.max_wait() == P.CAP / P.RATE + P.GRACE == 27 * DAY


def test_aged_estimate_by_hand():
    p = P()
    # CAP 1 day, RATE 0.05: the key is min(estimate, 1 day) + 0.05 x submitted.
    assert p.aged(pj(1, 0, 3600)) == 3600
    assert p.aged(pj(2, 100_000, 600)) == 600 + 5000
    assert p.aged(pj(3, 0, None)) == DAY            # unknown counts as the cap
    assert p.aged(pj(4, 0, 30 * DAY)) == DAY        # so does anything longer
    assert p.key(pj(5, 0, 10, priority=3)) < p.key(pj(6, 0, 1, priority=0))   # priority first


def test_order_waiting_outweighs_a_shorter_estimate():
    # One core. At t=100,000: A (estimate 1 h, waited 100,000 s) has 3,600 against B's
    # 600 + 0.05 x 100,000 = 5,600 (B is shorter but was just submitted), C and D (no
    # estimate; 40 days) both the cap, in submit order.
    n = make_node("n1", cores=1, memory=GiB)
    pending = [pj(4, 0, 40 * DAY), pj(2, 100_000, 600), pj(3, 0, None), pj(1, 0, 3600)]
    res = cycle([n], {}, pending, "sjf-aging", now=100_000)
    assert placed(res) == [1]
    assert res.positions() == {2: 1, 3: 2, 4: 3}


def test_plain_sjf_puts_the_shorter_new_job_first():
    n = make_node("n1", cores=1, memory=GiB)
    res = cycle([n], {}, [pj(1, 0, 3600), pj(2, 100_000, 600)], "sjf", now=100_000)
    assert placed(res) == [2]


def test_a_due_job_that_cannot_start_blocks_its_queue():
    # 4 GPUs, 2 of them busy. W wants all 4 (no estimate: the cap, 1 day), S wants 1.
    # W is due once 0.05 x (wait - 7 days) >= 1 day: at 27 days.
    n = make_node("n1", cores=8, memory=8 * GiB, gpus=4)
    busy = cycle([n], {}, [pj(9, 0, None, gpus=2)], "best-effort-fifo").placements[0].allocation
    due_at = P.max_wait()
    w = pj(1, 0, None, gpus=4)
    assert not P().due(w, due_at - 1) and P().due(w, due_at)
    before = cycle([n], {9: busy}, [w, pj(2, due_at - 1, 60, gpus=1)], "sjf-aging", now=due_at - 1)
    assert placed(before) == [2]                    # not due: best effort, S starts
    at = cycle([n], {9: busy}, [w, pj(2, due_at, 60, gpus=1)], "sjf-aging", now=due_at)
    assert placed(at) == []                         # due: S waits behind W
    assert at.reasons[2] == Behind(job_id=1)
    # The same with a job of W's shape ahead of it that is not due: it fails and W, of
    # the same shape and further back, is still reached and holds the queue.
    x = pj(3, due_at, 0, gpus=4)
    assert P().key(x) > P().key(w) or not P().due(x, due_at)
    at = cycle([n], {9: busy}, [x, w, pj(2, due_at, 60, gpus=1)], "sjf-aging", now=due_at)
    assert placed(at) == [] and at.reasons[2] == Behind(job_id=1)


def job(i, submit, duration, gpus, user):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}), user=user)


def stream_past(big):
    """One node of 4 GPUs; user "s" submits a 1-GPU job of 10,000 s every 2,000 s for 30
    days (1.25x the node: the queue never empties; from t=10,000 on, "s" has history);
    ``big`` (user "b", no history: the cap) comes at t=20,000, when the node is full."""
    jobs = [big]
    t, i = 0.0, 3
    while t < 30 * DAY:
        jobs.append(job(i, t, 10_000, 1, "s"))
        t, i = t + 2000.0, i + 1
    return jobs


BIG_AT = 20_000.0


def start_of(result, job_id):
    return next(o.start for o in result.outcomes if o.id == job_id)


def test_a_long_job_starts_under_a_stream_of_short_jobs():
    jobs = stream_past(job(2, BIG_AT, 50_000, 1, "b"))
    last_submit = jobs[-1].submit
    sjf = simulate(parse_cluster("1x4gpu"), jobs, resolve("sjf-history"))
    assert start_of(sjf, 2) > last_submit           # sjf: waits for the stream to end
    aged = simulate(parse_cluster("1x4gpu"), jobs, resolve("sjf-aging"))
    # Due 27 days after its submit; the first GPU that frees then is its.
    assert start_of(aged, 2) - BIG_AT <= P.max_wait() + 10_000


def test_a_wide_job_starts_under_a_stream_of_short_jobs():
    jobs = stream_past(job(2, BIG_AT, 5000, 4, "b"))     # all 4 GPUs
    last_submit = jobs[-1].submit
    sjf = simulate(parse_cluster("1x4gpu"), jobs, resolve("sjf-history"))
    assert start_of(sjf, 2) > last_submit
    aged = simulate(parse_cluster("1x4gpu"), jobs, resolve("sjf-aging"))
    # Due at 27 days; it then holds the queue, and the 4 running jobs end within 10,000 s.
    assert start_of(aged, 2) - BIG_AT <= P.max_wait() + 10_000
