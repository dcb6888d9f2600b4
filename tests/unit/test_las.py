"""``las`` (corral.scheduler.policies.las): levels and order by hand, preemption by
attained service in one cycle (resumable jobs only, never a protected one, never one
ahead in the order), and -- replayed in the simulator through the daemon's driver -- a
job demoted at its threshold and preempted there, its work kept, and a long job that
still ends under an endless stream of short ones."""

from __future__ import annotations

from dataclasses import replace

import pytest

from corral.reasons import PreemptionKind, Preempting
from corral.resources import Resources
from corral.scheduler import CycleContext, PendingJob, QueueSpec, RunningJob, schedule
from corral.scheduler.policies import POLICIES, LeastAttainedService
from corral.scheduler.settings import Scheduling
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import is_oracle, resolve

from corral.capacity.node import make_node
from sched_helpers import placed, state_of

GiB = 2**30
HOUR = 3600.0
DAY = 86400.0
P = LeastAttainedService


def pj(i, submitted=0.0, gpus=1, served=0.0, priority=0, resumable=True):
    return PendingJob(i, Resources.parse({"cpu": "1", "gpu": gpus}), priority=priority, seq=i,
                      submitted=submitted, served=served, resumable=resumable)


def node(gpus=1):
    return make_node("n1", cores=8, memory=8 * GiB, gpus=gpus)


def running(i, alloc, started, submitted=0.0, served=0.0, resumable=True, protected=False, priority=0):
    return RunningJob(i, alloc, priority=priority, started_at=started, submitted=submitted, served=served,
                      resumable=resumable, protected=protected)


def alloc_for(n, gpus=1):
    """An allocation of ``gpus`` GPUs on node ``n`` (placed by the scheduler itself)."""
    res = schedule(state_of([n]), [pj(99, gpus=gpus)], CycleContext(0.0))
    return res.placements[0].allocation


def las_cycle(n, runs, pending, now, **queues):
    qs = {"default": QueueSpec("default", policy="las")}
    return schedule(state_of([n], runs, qs), list(pending), CycleContext(now))


def test_registered_and_replayed_with_resumable_jobs():
    assert POLICIES["las"] is P
    policy = resolve("las")
    assert policy.resumable and policy.scheduling.by_service
    assert not is_oracle(policy, [SimJob(1, 0, 10, Resources.parse({"gpu": 1}))])
    assert P.THRESHOLDS == (1800.0, 6 * HOUR, 36 * HOUR)
    assert P.max_wait() == P.GRACE + P.STEP * 3 / P.RATE


def test_levels_by_hand_in_gpu_seconds():
    p = P()
    one, four = Resources.parse({"gpu": 1}), Resources.parse({"gpu": 4})
    assert p.level_of(0, one) == 0
    assert p.level_of(1799, one) == 0 and p.level_of(1800, one) == 1
    assert p.level_of(450, four) == 1                # 4 GPUs x 450 s = 1,800 GPU-s
    assert p.level_of(9 * HOUR, four) == 3           # 36 GPU-hours: the last level
    assert p.level_of(10, Resources.parse({"cpu": "2"})) == 0   # no GPU counts as one
    # Demotions of a running job: the next threshold from where it stands.
    n = node(4)
    r = running(1, alloc_for(n, 4), started=1000.0)
    assert p.next_demotion(r, 1000.0) == 1000.0 + 1800 / 4
    # Asked after that demotion: the next one, never one in the past (the daemon arms a
    # timer for it).
    assert p.next_demotion(r, 1000.0 + 1800 / 4) == 1000.0 + 6 * HOUR / 4
    r = running(1, alloc_for(n, 4), started=1000.0, served=450.0)     # level 1 already
    assert p.next_demotion(r, 1000.0) == 1000.0 + 6 * HOUR / 4 - 450.0
    assert p.next_demotion(running(1, alloc_for(n, 4), started=0.0, served=9 * HOUR), 0.0) is None


def test_order_lower_level_first_then_the_longest_wait():
    p = P()
    new = pj(1, submitted=10_000.0)                  # level 0, just submitted
    old = pj(2, submitted=0.0)                       # level 0, waited longer
    ran = pj(3, submitted=0.0, served=HOUR)          # level 1 (3,600 GPU-s)
    assert p.key(old) < p.key(new) < p.key(ran)
    # A level-1 job catches up with new level-0 jobs once it has waited STEP / RATE more
    # than they have (its hour of running is not waiting).
    assert p.key(ran) > p.key(pj(4, submitted=P.STEP / P.RATE + HOUR - 1.0))
    assert p.key(ran) < p.key(pj(5, submitted=P.STEP / P.RATE + HOUR + 1.0))
    assert p.key(pj(6, priority=1, served=99 * HOUR)) < p.key(old)     # priority first


def test_a_waiting_job_preempts_a_resumable_one_of_a_deeper_level():
    n = node(1)
    a = alloc_for(n)
    victim = running(7, a, started=0.0)              # 2,000 GPU-s by t=2,000: level 1
    res = las_cycle(n, [victim], [pj(1, submitted=1500.0)], now=2000.0)
    assert placed(res) == []
    assert [(p.preemptor, p.victims, p.kind) for p in res.preemptions] == [(1, (7,), PreemptionKind.SERVICE)]
    assert res.reasons[1] == Preempting(victims=(7,), kind=PreemptionKind.SERVICE)
    assert "more attained service" in res.reasons[1].message


@pytest.mark.parametrize("why", ["not resumable", "level 0 yet", "protected", "ahead in the order",
                                 "higher priority", "same level"])
def test_no_preemption_by_service(why):
    n = node(1)
    a = alloc_for(n)
    victim = running(7, a, started=0.0)
    waiting = pj(1, submitted=1500.0)
    now = 2000.0
    if why == "not resumable":
        victim = replace(victim, resumable=False)
    elif why == "level 0 yet":
        now = 1700.0
    elif why == "protected":
        victim = replace(victim, protected=True)
    elif why == "ahead in the order":
        # At level 1 since t=1,800, but submitted so long before that it would still come
        # first if it waited again (its aged key is below the new job's).
        victim = replace(victim, submitted=-(P.STEP / P.RATE) - 10_000.0)
    elif why == "higher priority":
        victim = replace(victim, priority=5)
    elif why == "same level":
        waiting = pj(1, submitted=1500.0, served=1800.0)
    res = las_cycle(n, [victim], [waiting], now=now)
    assert res.preemptions == [] and placed(res) == []


def test_a_job_that_was_due_when_it_started_is_protected():
    n = node(1)
    due = P.max_wait() + 1.0
    res = las_cycle(n, [], [pj(1, submitted=0.0, served=0.0)], now=due)
    assert placed(res) == [1]
    res = las_cycle(n, [], [pj(2, submitted=due - 10.0)], now=due)
    assert placed(res) == [2]
    state = state_of([n], [], {"default": QueueSpec("default", policy="las")})
    schedule(state, [pj(1, submitted=0.0)], CycleContext(due))
    assert state.running[1].protected
    state = state_of([n], [], {"default": QueueSpec("default", policy="las")})
    schedule(state, [pj(2, submitted=due - 10.0)], CycleContext(due))
    assert not state.running[2].protected


def test_the_config_sets_the_levels():
    s = Scheduling.make(policy="las", service_levels=(60.0, 300.0))
    assert s.queue_map["default"].order.THRESHOLDS == (60.0, 300.0)
    assert P.THRESHOLDS == (1800.0, 6 * HOUR, 36 * HOUR)          # the class keeps its own


def sj(i, submit, duration, gpus=1):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}))


def outcome(result, job_id):
    return next(o for o in result.outcomes if o.id == job_id)


def test_demoted_at_its_threshold_and_preempted_there_its_work_kept():
    # One GPU. A (10,000 s) starts at 0; B (100 s) comes at t=100 and waits: A is at
    # level 0 until it has 1,800 GPU-s. At t=1,800 A is demoted -- no event but the
    # wake-up the driver asks for -- and B preempts it; B ends at 1,900 and A resumes
    # with its 1,800 s kept: it ends at 10,100.
    jobs = [sj(1, 0.0, 10_000.0), sj(2, 100.0, 100.0)]
    r = simulate(parse_cluster("1x1gpu"), jobs, resolve("las"), check=True)
    a, b = outcome(r, 1), outcome(r, 2)
    assert (b.start, b.end) == (1800.0, 1900.0)
    assert a.end == pytest.approx(10_100.0)
    assert r.preemptions == 1
    # Jobs that do not checkpoint are never preempted by service: B waits for A's end.
    plain = replace(resolve("las"), resumable=False)
    r = simulate(parse_cluster("1x1gpu"), jobs, plain, check=True)
    assert outcome(r, 2).start == 10_000.0 and r.preemptions == 0


def test_a_job_preempted_twice_runs_its_duration_in_all():
    # A (20,000 s) at 0, B (4,000 s) at 1,000, C (50 s) at 9,000; one GPU. B preempts A at
    # 1,800 (A's demotion). At 3,600 B reaches level 1 too: A, of the same level, does not
    # preempt it (never one of its own level), so B ends at 5,800 and A resumes. C (level
    # 0) preempts A (level 1, 5,000 s served) at 9,000 and ends at 9,050; A ends with its
    # 20,000 s run in all.
    jobs = [sj(1, 0.0, 20_000.0), sj(2, 1000.0, 4000.0), sj(3, 9000.0, 50.0)]
    r = simulate(parse_cluster("1x1gpu"), jobs, resolve("las"), check=True)
    a, b, c = outcome(r, 1), outcome(r, 2), outcome(r, 3)
    assert (b.start, b.end) == (1800.0, 5800.0)
    assert (c.start, c.end) == (9000.0, 9050.0)
    assert a.end == pytest.approx(20_000.0 + 4000.0 + 50.0)
    assert r.preemptions == 2


def test_a_long_job_ends_under_an_endless_stream_of_short_jobs(monkeypatch):
    # One GPU, a 1-GPU job of 1,000 s every 900 s for 60 days (more than the GPU can
    # take: the queue never empties) and one long job L. L is demoted below every new job
    # and, resumable, keeps being preempted -- until it is due (GRACE + 3 levels x STEP /
    # RATE of waiting), then it holds the queue, starts, and is protected to its end.
    monkeypatch.setattr(P, "GRACE", 2 * DAY)
    monkeypatch.setattr(P, "STEP", 2000.0)
    jobs = [sj(1, 0.0, 50_000.0)]
    t, i = 10.0, 2
    while t < 60 * DAY:
        jobs.append(sj(i, t, 1000.0))
        t, i = t + 900.0, i + 1
    r = simulate(parse_cluster("1x1gpu"), jobs, resolve("las"))
    long = outcome(r, 1)
    assert long.end < jobs[-1].submit                # it ends while the stream goes on
    waited = long.end - long.submit - long.duration
    assert waited <= P.max_wait() + 1000.0           # due, then one short job drains


def test_a_config_with_las_is_replayed_with_resumable_jobs_and_its_levels(tmp_path):
    from corral.sim.policies import load_config_policy

    path = tmp_path / "c.yaml"
    path.write_text("policy: las\nlas: {levels: [10m, 2h]}\n")
    policy = load_config_policy(str(path))
    assert policy.resumable and policy.scheduling.queue_map["default"].order.THRESHOLDS == (600.0, 7200.0)
    path.write_text("policy: sjf-aging\n")
    assert not load_config_policy(str(path)).resumable


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_jobs = st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 30_000), st.sampled_from([1, 1, 2, 4, 8])),
                 min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs)
def test_no_work_lost_or_made_up_and_nothing_over_committed(spec):
    # Random traces on 2 nodes of 4 GPUs (8-GPU jobs are gangs): with check=True the engine
    # verifies after every cycle that nothing is over-committed; every job ends, never
    # before its submit plus its duration; and the GPU-time allocated over the replay is
    # exactly the work of the jobs -- a preempted resumable job neither loses what it ran
    # nor runs it again.
    jobs = [sj(i + 1, float(at), float(d), gpus=g) for i, (at, d, g) in enumerate(spec)]
    r = simulate(parse_cluster("2x4gpu"), jobs, resolve("las"), check=True)
    assert sorted(o.id for o in r.outcomes) == [j.id for j in jobs]
    by_id = {j.id: j for j in jobs}
    for o in r.outcomes:
        assert o.start >= by_id[o.id].submit and o.end >= by_id[o.id].submit + by_id[o.id].duration - 1e-6
    samples = r.samples
    held = sum(a.gpus_allocated * (b.t - a.t) for a, b in zip(samples, samples[1:]))
    work = sum(j.duration * j.requests.get("nvidia.com/gpu", 0) for j in jobs)
    assert held == pytest.approx(work, rel=1e-9, abs=1e-6)
    assert samples[-1].gpus_allocated == 0


def test_the_driver_asks_to_wake_at_the_next_change_never_a_past_one():
    from corral.daemon.driver import Driver
    from corral.executors.simulated import Program, SimulatedExecutor, SimWorld
    from corral.job import Job
    from corral.spec import JobSpec

    nodes = parse_cluster("1x1gpu")
    world = SimWorld(nodes, program_for=lambda job: Program(100_000.0))
    executor = SimulatedExecutor(world, lambda job_id, status: None, kill_grace=0.0)
    driver = Driver(nodes, Scheduling.make(policy="las"), executor, clock=world)
    spec = JobSpec(command=("true",), requests=Resources.parse({"cpu": "1", "gpu": 1}), resumable=True)
    driver.enqueue(Job(id=1, spec=spec, submitted_at=0.0, seq=1))
    driver.cycle()
    assert driver.next_change() is None                 # nothing waits: nothing to wake for
    driver.enqueue(Job(id=2, spec=spec, submitted_at=10.0, seq=2))
    assert driver.next_change() == 1800.0               # job 1's first demotion
    world.now = 2000.0
    assert driver.next_change() == 6 * HOUR             # then its next, not the past one
    world.now = 40 * HOUR                               # at the last level: only job 2's due time
    assert driver.next_change() == P().due_at(driver.pending.get(2))


def test_resumable_in_a_job_document_and_its_one_line_errors():
    from corral.errors import ValidationError
    from corral.spec import JobSpec, build_spec, parse_document

    spec = parse_document({"spec": {"command": ["train"], "resumable": True}})
    assert spec.resumable and JobSpec.from_dict(spec.to_dict()).resumable
    assert not parse_document({"spec": {"command": ["train"]}}).resumable
    with pytest.raises(ValidationError) as info:
        parse_document({"spec": {"command": ["x"], "resumable": "yes please"}})
    assert str(info.value) == 'invalid value for spec.resumable: "yes please" (expected true or false)'
    with pytest.raises(ValidationError) as info:
        build_spec(["x"], resumable=True, preemptible=False)
    assert "not with preemptible false" in str(info.value) and "\n" not in str(info.value)
