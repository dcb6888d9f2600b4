"""Simulator metrics and the mean-JCT lower bound, every expected number worked out by hand."""

from __future__ import annotations

import csv
import io
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.sim.bounds import fluid_srpt_completions, mean_jct_lower_bound, mean_jct_lower_bound_terms
from corral.sim.metrics import (
    JobOutcome,
    Sample,
    bounded_slowdown,
    format_table,
    jain_index,
    percentile,
    summarize,
    to_csv_rows,
)

# --------------------------------------------------------------------------- fluid SRPT


def test_srpt_preempts_for_shorter_arrivals():
    # t=0..1 job0 (4 -> 3 left); job1 (1) arrives, shorter: runs 1..2; job2 (2) arrives at 2,
    # shorter than job0's 3: runs 2..4; job0 finishes its 3 at 7.
    assert fluid_srpt_completions([(0, 4), (1, 1), (2, 2)], 1) == [7, 2, 4]


def test_srpt_speed_two_is_halved_works():
    # t=0..1 job0 does 2 (2 left); job1 (1 -> 0.5 s) done at 1.5; job0 runs 1.5..2 (1 left);
    # job2 (2) arrives, job0's 1 is shorter: done at 2.5; job2 takes 1 s: done at 3.5.
    assert fluid_srpt_completions([(0, 4), (1, 1), (2, 2)], 2) == [2.5, 1.5, 3.5]
    assert fluid_srpt_completions([(0, 2), (1, 0.5), (2, 1)], 1) == [2.5, 1.5, 3.5]


def test_srpt_simultaneous_releases_is_spt_with_index_ties():
    # all at 0: shortest first (job1), then the two works of 2 in index order
    assert fluid_srpt_completions([(0, 2), (0, 1), (0, 2)], 1) == [3, 1, 5]
    # same works everywhere: pure index order
    assert fluid_srpt_completions([(5, 3), (5, 3), (5, 3)], 1) == [8, 11, 14]


def test_srpt_idle_gaps_zero_work_and_input_order():
    # job1 released first; idle 2..10; job0 has no work and completes at its release
    assert fluid_srpt_completions([(10, 0), (0, 2), (10, 3)], 1) == [10, 2, 13]
    # a completion exactly at a release: job0 completes first, then job1 runs
    assert fluid_srpt_completions([(0, 2), (2, 1)], 1) == [2, 3]
    assert fluid_srpt_completions([], 3) == []


@pytest.mark.parametrize(("jobs", "speed", "message"), [
    ([(0, 1)], 0, "speed must be positive"),
    ([(0, 1)], -1, "speed must be positive"),
    ([(0, 1)], math.inf, "speed must be finite"),
    ([(0, 1), (0, -1)], 1, "job 1: work must be >= 0"),
    ([(math.nan, 1)], 1, "job 0: release must be finite"),
])
def test_srpt_rejects_bad_input(jobs, speed, message):
    with pytest.raises(ValueError, match=message):
        fluid_srpt_completions(jobs, speed)


def unit_step_srpt(jobs):
    """SRPT at speed 1 in unit time steps: exact for integer releases and works."""
    remaining = [w for _, w in jobs]
    completions = [float(r) if w == 0 else None for r, w in jobs]
    t = 0
    while any(c is None for c in completions):
        ready = [j for j, (r, _) in enumerate(jobs) if r <= t and completions[j] is None]
        if ready:
            j = min(ready, key=lambda k: (remaining[k], k))
            remaining[j] -= 1
            if remaining[j] == 0:
                completions[j] = float(t + 1)
        t += 1
    return completions


release_work = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 8)), max_size=8)


@given(release_work)
def test_srpt_matches_a_unit_step_simulation(jobs):
    assert fluid_srpt_completions(jobs, 1) == unit_step_srpt(jobs)


@given(release_work, st.sampled_from([1, 2, 4, 8]))
def test_srpt_speed_scales_work(jobs, speed):
    # dividing by a power of two is exact, so equality is exact
    assert fluid_srpt_completions(jobs, speed) == fluid_srpt_completions([(r, w / speed) for r, w in jobs], 1)


@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 6)), min_size=1, max_size=6))
def test_srpt_sum_beats_every_nonpreemptive_order(jobs):
    best = math.inf
    for order in itertools.permutations(range(len(jobs))):
        t, total = -math.inf, 0
        for j in order:
            t = max(t, jobs[j][0]) + jobs[j][1]
            total += t
        best = min(best, total)
    assert sum(fluid_srpt_completions(jobs, 1)) <= best


# --------------------------------------------------------------------------- the bound


def test_bound_heavy_load_fluid_term_dominates():
    # G=1, three 3-s jobs at 0: fluid completions 3, 6, 9 -> mean JCT 6 > mean duration 3
    assert mean_jct_lower_bound_terms([(0, 3, 1)] * 3, 1) == (6, 3)
    assert mean_jct_lower_bound([(0, 3, 1)] * 3, 1) == 6
    # same with 2-GPU jobs on 2 GPUs: works 6 at speed 2
    assert mean_jct_lower_bound([(0, 3, 2)] * 3, 2) == 6
    # G=4: works 40, 40, 1 at speed 4 -> 0.25, 10.25, 20.25 -> (0.25 + 10.25 + 20.25) / 3
    # = 10.25 > mean duration 7. (The optimum runs the small job first: 1, 11, 21 -> 11.)
    fluid, mean_duration = mean_jct_lower_bound_terms([(0, 10, 4), (0, 10, 4), (0, 1, 1)], 4)
    assert (fluid, mean_duration) == (10.25, 7)
    assert mean_jct_lower_bound([(0, 10, 4), (0, 10, 4), (0, 1, 1)], 4) == 10.25


def test_bound_light_load_mean_duration_dominates():
    # two jobs far apart on 4 GPUs: fluid JCTs 10/4 = 2.5 and 20/4 = 5 -> 3.75; mean duration 15
    assert mean_jct_lower_bound_terms([(0, 10, 1), (100, 20, 1)], 4) == (3.75, 15)
    assert mean_jct_lower_bound([(0, 10, 1), (100, 20, 1)], 4) == 15


def test_bound_is_tight_for_one_gpu_and_simultaneous_release():
    # one machine, all released together: SPT is optimal and the fluid term equals it
    # 1, 3, 6 -> mean 10/3
    assert mean_jct_lower_bound([(0, 3, 1), (0, 1, 1), (0, 2, 1)], 1) == pytest.approx(10 / 3)
    assert best_list_schedule_mean_jct([(0, 3, 1), (0, 1, 1), (0, 2, 1)], 1) == pytest.approx(10 / 3)


@pytest.mark.parametrize(("jobs", "total", "message"), [
    ([(0, 1, 2), (0, 1, 5)], 4, r"job 1 requests 5 GPUs but the cluster has only 4"),
    ([], 4, "no jobs"),
    ([(0, 1, 1)], 0, "total_gpus must be a positive integer"),
    ([(0, -1, 1)], 4, "job 0: duration must be >= 0"),
    ([(0, 1, -1)], 4, "job 0: gpus must be a non-negative integer"),
    ([(0, 1, 1), (math.inf, 1, 1)], 4, "job 1: submit must be finite"),
])
def test_bound_rejects_bad_input(jobs, total, message):
    with pytest.raises(ValueError, match=message):
        mean_jct_lower_bound(jobs, total)


def earliest_start(placed, release, duration, gpus, total):
    """Earliest t >= release at which `gpus` GPUs stay free for [t, t + duration)."""
    if duration == 0:
        return release
    for t in sorted({release} | {end for _, end, _ in placed if end > release}):
        # usage only rises at starts, so checking t and every start inside the window suffices
        points = [t, *(s for s, _, _ in placed if t < s < t + duration)]
        if all(sum(g for s, e, g in placed if s <= x < e) + gpus <= total for x in points):
            return t
    raise AssertionError("unreachable: after every end the whole cluster is free")


def best_list_schedule_mean_jct(jobs, total):
    """Min mean JCT over all non-preemptive list schedules: every job order, each job placed
    at its earliest feasible start (after its release, given the jobs placed before it).
    Branch and bound: a partial schedule's JCT sum plus the remaining durations bounds it."""
    best = math.inf

    def search(placed, remaining, jct_sum):
        nonlocal best
        if jct_sum + sum(jobs[j][1] for j in remaining) >= best:
            return
        if not remaining:
            best = jct_sum
            return
        # earliest-finishing first finds good schedules early, so more branches are pruned
        for j in sorted(remaining, key=lambda k: (jobs[k][0] + jobs[k][1], k)):
            release, duration, gpus = jobs[j]
            t = earliest_start(placed, release, duration, gpus, total)
            search([*placed, (t, t + duration, gpus)], remaining - {j}, jct_sum + t + duration - release)

    search([], frozenset(range(len(jobs))), 0)
    return best / len(jobs)


def test_brute_force_list_scheduler_by_hand():
    # G=2: A=(0, 4 s, 2 GPUs), B=(1, 1 s, 1 GPU). A then B: 0..4, 4..5 -> JCTs 4, 4 -> 4.
    # B then A: B 1..2; A can't start at 0 (B at 1), starts at 2: 2..6 -> JCTs 6, 1 -> 3.5.
    assert best_list_schedule_mean_jct([(0, 4, 2), (1, 1, 1)], 2) == 3.5
    # backfilling: C=(0, 10 s, 1) then D=(0, 2 s, 1) on 2 GPUs run side by side -> (10 + 2) / 2
    assert best_list_schedule_mean_jct([(0, 10, 1), (0, 2, 1)], 2) == 6
    # the bound for the first: fluid at speed 2: A does 2 of 8 by t=1, B's 1 done at 1.5,
    # A's 6 left done at 4.5 -> JCTs 4.5, 0.5 -> 2.5 = mean duration 2.5
    assert mean_jct_lower_bound([(0, 4, 2), (1, 1, 1)], 2) == 2.5


@st.composite
def instances(draw):
    total = draw(st.integers(1, 4))
    job = st.tuples(st.integers(0, 20), st.integers(0, 10), st.integers(0, total))
    return draw(st.lists(job, min_size=1, max_size=7)), total


@settings(max_examples=100, deadline=None)
@given(instances())
def test_bound_never_exceeds_the_best_list_schedule(instance):
    jobs, total = instance
    bound = mean_jct_lower_bound(jobs, total)
    best = best_list_schedule_mean_jct(jobs, total)
    assert bound <= best + 1e-9
    assert bound >= sum(d for _, d, _ in jobs) / len(jobs)


# --------------------------------------------------------------------------- summarize


def outcome(id, user, submit, start, end, duration, gpus=1):
    return JobOutcome(id=id, user=user, submit=submit, start=start, end=end, duration=duration, gpus=gpus)


#  id user submit start end duration gpus | JCT  wait  JCT-d  slowdown
#  1  a    0      0     100 100      2    | 100  0     0      1
#  2  a    0      100   105 5        1    | 105  100   100    105/10 = 10.5 (10 s floor)
#  3  b    10     10    30  20       1    | 20   0     0      1
#  4  b    20     30    60  20       2    | 40   10    20     2
OUTCOMES = [
    outcome(1, "a", 0, 0, 100, 100, 2),
    outcome(2, "a", 0, 100, 105, 5, 1),
    outcome(3, "b", 10, 10, 30, 20, 1),
    outcome(4, "b", 20, 30, 60, 20, 2),
]
# 4 GPUs; (t, allocated, queue): integral of allocated = 2*10 + 3*10 + 3*10 + 4*30 + 2*40 + 1*5
# = 285 over 4 GPUs * 105 s; queue = 1*10 + 1*10 + 2*10 + 1*30 + 1*40 + 0*5 = 110
SAMPLES = [
    Sample(t, alloc, 4, queue, running)
    for t, alloc, queue, running in [(0, 2, 1, 1), (10, 3, 1, 2), (20, 3, 2, 2), (30, 4, 1, 2),
                                     (60, 2, 1, 1), (100, 1, 0, 1), (105, 0, 0, 0)]
]


def test_summarize_by_hand():
    s = summarize(OUTCOMES, SAMPLES)
    assert s["jobs"] == 4
    # JCTs sorted 20, 40, 100, 105: p50 = rank ceil(2) = 2 -> 40; p95 = rank ceil(3.8) = 4
    assert s["jct_mean"] == 66.25
    assert (s["jct_p50"], s["jct_p95"], s["jct_p99"]) == (40, 105, 105)
    # waits sorted 0, 0, 10, 100
    assert s["wait_mean"] == 27.5
    assert (s["wait_p50"], s["wait_p95"], s["wait_p99"], s["max_wait"]) == (0, 100, 100, 100)
    assert s["wait_total_mean"] == 30  # (0 + 100 + 0 + 20) / 4
    assert s["slowdown_mean"] == 3.625  # (1 + 10.5 + 1 + 2) / 4
    assert s["slowdown_p95"] == 10.5
    assert s["makespan"] == 105
    assert s["utilization"] == pytest.approx(285 / 420)
    assert s["queue_mean"] == pytest.approx(110 / 105)
    # work 100*2 + 5*1 + 20*1 + 20*2 = 265 GPU-s arriving over 20 s on 4 GPUs
    assert s["offered_load"] == pytest.approx(265 / 80)
    assert s["users"] == 2
    assert s["per_user"] == {
        "a": {"jobs": 2, "jct_mean": 102.5, "wait_mean": 50, "max_wait": 100, "slowdown_mean": 5.75},
        "b": {"jobs": 2, "jct_mean": 30, "wait_mean": 5, "max_wait": 10, "slowdown_mean": 1.5},
    }
    # Jain over (5.75, 1.5): 7.25^2 / (2 * (5.75^2 + 1.5^2)) = 52.5625 / 70.625
    assert s["jain_fairness"] == pytest.approx(52.5625 / 70.625)
    assert "jct_ratio" not in s and "jct_mean_bound" not in s


def test_summarize_with_bound():
    s = summarize(OUTCOMES, SAMPLES, bound=50)
    assert s["jct_mean_bound"] == 50
    assert s["jct_ratio"] == 66.25 / 50
    assert summarize(OUTCOMES, SAMPLES, bound=0)["jct_ratio"] is None
    with pytest.raises(ValueError, match="bound"):
        summarize(OUTCOMES, SAMPLES, bound=-1)


def test_percentile_nearest_rank():
    values = [40, 15, 50, 35, 20]  # sorted: 15 20 35 40 50
    assert percentile(values, 0) == 15      # rank max(1, 0)
    assert percentile(values, 30) == 20     # rank ceil(1.5) = 2
    assert percentile(values, 40) == 20     # rank ceil(2.0) = 2
    assert percentile(values, 50) == 35     # rank ceil(2.5) = 3
    assert percentile(values, 100) == 50
    assert percentile(range(1, 21), 95) == 19  # rank 19 exactly
    assert percentile(range(1, 101), 7) == 7   # 0.07 * 100 is 7.000000000000001 in floats
    assert percentile(range(1, 1001), 99.9) == 999
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_bounded_slowdown_floor():
    assert bounded_slowdown(5, 1) == 1          # 5 / 10 below 1 -> 1
    assert bounded_slowdown(30, 2) == 3         # 30 / max(2, 10)
    assert bounded_slowdown(30, 20) == 1.5      # 30 / 20
    assert bounded_slowdown(20, 20) == 1


def test_utilization_integral_edges():
    # window [0, 10]; unsorted input; first sample at 2 (0 allocated before); two samples at
    # t=5, the later-recorded (3 GPUs) wins. 0*2 + 1*3 + 3*5 = 18 over 4 GPUs * 10 s;
    # queue 1 during [2, 5) -> 3 / 10
    outcomes = [outcome(1, "u", 0, 0, 10, 10), outcome(2, "u", 0, 2, 10, 8)]
    samples = [Sample(5, 2, 4, 0, 2), Sample(2, 1, 4, 1, 1), Sample(5, 3, 4, 0, 2)]
    s = summarize(outcomes, samples)
    assert s["utilization"] == pytest.approx(18 / 40)
    assert s["queue_mean"] == pytest.approx(3 / 10)
    # samples past the window are ignored
    s = summarize(outcomes, [*samples, Sample(50, 4, 4, 9, 4)])
    assert s["utilization"] == pytest.approx(18 / 40)
    # all submits equal: no arrival window, no offered load
    assert s["offered_load"] is None
    # no samples: no utilization/queue/offered load, everything else still there
    s = summarize(outcomes, [])
    assert s["utilization"] is None and s["queue_mean"] is None and s["offered_load"] is None
    assert s["jct_mean"] == 10


def test_jain_equal_users_is_one():
    outcomes = [outcome(1, "a", 0, 0, 30, 10), outcome(2, "b", 0, 0, 30, 10), outcome(3, "c", 5, 5, 35, 10)]
    assert summarize(outcomes, [])["jain_fairness"] == pytest.approx(1.0)
    assert jain_index([1.0]) == 1.0


def test_jain_one_user_starved_tends_to_one_over_n():
    # b and c run at once (slowdown 1); a waits 10^6 s for a 10 s job (slowdown ~10^5)
    outcomes = [outcome(1, "a", 0, 1_000_000, 1_000_010, 10),
                outcome(2, "b", 0, 0, 10, 10), outcome(3, "c", 0, 0, 10, 10)]
    s = summarize(outcomes, [])
    assert s["jain_fairness"] == pytest.approx(1 / 3, rel=1e-4)
    # by hand: slowdowns 2, 1, 1 -> 4^2 / (3 * 6) = 8/9
    assert jain_index([2, 1, 1]) == pytest.approx(8 / 9)
    assert jain_index([1, 0, 0]) == pytest.approx(1 / 3)


def test_summarize_errors():
    with pytest.raises(ValueError, match="no job outcomes"):
        summarize([], SAMPLES)
    with pytest.raises(ValueError, match="job 7: starts at 1 before its submit 5"):
        summarize([outcome(7, "u", 5, 1, 10, 5)], [])
    with pytest.raises(ValueError, match="job 8: ends at 3 before its start 4"):
        summarize([outcome(8, "u", 0, 4, 3, 1)], [])


def test_format_table_and_csv():
    results = {"fifo": summarize(OUTCOMES, SAMPLES, bound=50), "nobound": summarize(OUTCOMES, [])}
    rows = format_table(results)
    assert rows[0][:3] == ["policy", "jobs", "JCT mean (s)"]
    assert len({len(r) for r in rows}) == 1 and len(rows) == 3
    header = rows[0]
    fifo, nobound = dict(zip(header, rows[1])), dict(zip(header, rows[2]))
    assert fifo["policy"] == "fifo" and fifo["jobs"] == "4"
    assert fifo["JCT mean (s)"] == "66.2"  # 66.25 rounds half to even
    assert fifo["JCT / bound"] == "1.325"
    assert fifo["GPU util"] == "0.679"
    assert nobound["JCT / bound"] == "-" and nobound["GPU util"] == "-"

    rows = to_csv_rows(results)
    assert rows[0][0] == "policy" and "per_user" not in rows[0]
    assert rows[0][-2:] == ["jct_mean_bound", "jct_ratio"]
    fifo, nobound = dict(zip(rows[0], rows[1])), dict(zip(rows[0], rows[2]))
    assert float(fifo["jct_mean"]) == 66.25 and fifo["jobs"] == "4"
    assert nobound["jct_ratio"] == "" and nobound["utilization"] == ""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == rows
