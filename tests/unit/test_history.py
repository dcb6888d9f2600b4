"""Run-time estimates from history (corral.scheduler.history), and ``sjf-history`` in the
simulator -- what the daemon's ``sjf`` does with jobs that have no time limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.resources import Resources
from corral.scheduler.history import RunTimeHistory
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import is_oracle, policy_names, resolve


def test_median_of_the_last_runs_per_user():
    h = RunTimeHistory(keep=3)
    assert h.predict("a") is None and h.estimate("a") is None
    for seconds in (100, 1, 2, 3):          # 100 falls out of the window of 3
        h.observe("a", seconds)
    h.observe("b", 50)
    assert h.predict("a") == 2 and h.samples("a") == 3
    assert h.predict("b") == 50
    assert h.estimate("a", time_limit=600) == 600      # a declared limit wins
    assert h.estimate("a", time_limit=0) == 2
    h.observe("a", -5)                                  # a clock step teaches nothing
    h.observe("a", math.nan)
    assert h.samples("a") == 3
    with pytest.raises(ValueError):
        RunTimeHistory(keep=0)


def job(i, submit, duration, user):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": 1}), user=user)


# One GPU.
#   j0 a t=0  10 s  -> 0-10 (nothing else there). a has learned 10 s at t=10.
#   j1 b t=0  100 s -> b has no history: last; alone in the queue at 10 -> 10-110.
#   j2 b t=20 100 s -> b still has no finished job at t=20: no estimate.
#   j3 a t=30 10 s  -> estimate 10 (a's median).
#   j4 a t=40 500 s -> estimate 10 as well (a's history says short; it is not).
# At 110 the queue is j2 (none), j3 (10), j4 (10):
#   sjf-history: j3 110-120, j4 120-620, j2 620-720;
#   sjf (oracle, real durations 100/10/500): j3 110-120, j2 120-220, j4 220-720;
#   best-effort-fifo: j2 110-210, j3 210-220, j4 220-720.
TRACE = [job(0, 0, 10, "a"), job(1, 0, 100, "b"), job(2, 20, 100, "b"), job(3, 30, 10, "a"), job(4, 40, 500, "a")]


@pytest.mark.parametrize("policy, starts", [
    ("sjf-history", {0: 0, 1: 10, 2: 620, 3: 110, 4: 120}),
    ("sjf", {0: 0, 1: 10, 2: 120, 3: 110, 4: 220}),
    ("best-effort-fifo", {0: 0, 1: 10, 2: 110, 3: 210, 4: 220}),
])
def test_sjf_history_learns_only_from_what_has_finished(policy, starts):
    r = simulate(parse_cluster("1x1gpu"), TRACE, resolve(policy), check=True)
    assert {o.id: o.start for o in r.outcomes} == starts


def test_sjf_history_is_deployable_and_listed():
    assert "sjf-history" in policy_names()
    assert not is_oracle(resolve("sjf-history")) and is_oracle(resolve("sjf"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 40), st.integers(1, 4), st.sampled_from("abc")),
                min_size=1, max_size=30))
def test_sjf_history_conserves_and_is_deterministic(rows):
    trace = [SimJob(i, float(t), float(d), Resources.parse({"cpu": "1", "gpu": g}), user=u)
             for i, (t, d, g, u) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    first = simulate(nodes, trace, resolve("sjf-history"), check=True)
    again = simulate(nodes, list(reversed(trace)), resolve("sjf-history"), check=True)
    assert [(o.id, o.start, o.end) for o in first.outcomes] == [(o.id, o.start, o.end) for o in again.outcomes]
    assert sorted(o.id for o in first.outcomes) == list(range(len(trace)))


def test_per_gpu_count_lane_then_the_user():
    h = RunTimeHistory(keep=3)
    h.observe("a", 100, gpus=1)
    h.observe("a", 200, gpus=1)
    h.observe("a", 9000, gpus=8)
    h.observe("a", 50)                                  # no GPU count (read back from the store)
    assert h.predict("a", gpus=1) == 150                # the 1-GPU runs only
    assert h.predict("a", gpus=8) == 9000
    assert h.predict("a", gpus=4) == 200                # none of 4 GPUs: all of a's (last 3)
    assert h.predict("a") == 200                        # without a count: as before
    assert h.estimate("a", time_limit=60, gpus=1) == 60
    assert h.predict("b", gpus=1) is None
