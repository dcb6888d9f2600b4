"""The simulator drives the real scheduler core in virtual time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import ValidationError
from corral.resources import Resources
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import resolve

BEST = resolve("best-effort-fifo")
STRICT = resolve("strict-fifo")


def job(i, submit, duration, gpus, user="u"):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}), user=user)


def jct(result):
    return {o.id: o.end - o.submit for o in result.outcomes}


def test_best_effort_lets_a_small_job_through_strict_fifo_holds_it():
    # One node, 4 GPUs. A takes 3; B (2 GPUs) cannot start until A ends; C (1 GPU) could.
    trace = [job(0, 0, 10, 3), job(1, 1, 10, 2), job(2, 2, 5, 1)]
    nodes = parse_cluster("1x4gpu")
    strict = simulate(nodes, trace, STRICT, check=True)
    assert jct(strict) == {0: 10, 1: 19, 2: 13}        # C waits behind B, then runs 10-15
    best = simulate(nodes, trace, BEST, check=True)
    assert jct(best) == {0: 10, 1: 19, 2: 5}           # C runs 2-7 in the free GPU
    starts = {o.id: o.start for o in best.outcomes}
    assert starts == {0: 0, 1: 10, 2: 2}


def test_multi_node_packing_and_samples():
    nodes = parse_cluster("2x2gpu")
    trace = [job(0, 0, 4, 2), job(1, 0, 4, 2), job(2, 0, 4, 1), job(3, 1, 2, 1)]
    result = simulate(nodes, trace, BEST, check=True)
    assert jct(result) == {0: 4, 1: 4, 2: 8, 3: 5}     # both 1-GPU jobs start when the 2-GPU ones end
    assert result.samples[0].gpus_allocated == 4 and result.samples[0].gpus_total == 4
    assert result.samples[-1].gpus_allocated == 0 and result.samples[-1].queue_length == 0


def test_jobs_that_can_never_fit_are_reported_not_dropped_silently():
    result = simulate(parse_cluster("2x4gpu"), [job(0, 0, 5, 9), job(1, 0, 5, 1)], BEST)
    assert [o.id for o in result.outcomes] == [1]
    assert result.infeasible == {0: "insufficient nvidia.com/gpu: job requests 9, the whole cluster has 8"}
    assert result.gang_placed == 0
    one_node = SimJob(2, 0, 5, Resources.parse({"cpu": "100", "gpu": 1}))
    assert simulate(parse_cluster("2x4gpu"), [one_node], BEST).infeasible == {
        2: "insufficient cpu: job requests 100, node n0000 has 32 allocatable"}


def test_cluster_spec():
    nodes = parse_cluster("3x8gpu,64cpu,512Gi")
    assert len(nodes) == 3 and nodes[0].allocatable == {"cpu": 64000, "memory": 512 * 2**30, "nvidia.com/gpu": 8}
    with pytest.raises(ValidationError, match="expected e.g. 16x4gpu"):
        parse_cluster("16 nodes")


traces = st.lists(st.tuples(st.integers(0, 50), st.integers(1, 30), st.integers(0, 4), st.sampled_from("abc")),
                  min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows=traces, strict=st.booleans())
def test_conservation_and_determinism(rows, strict):
    trace = [job(i, s, d, g, u) for i, (s, d, g, u) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    policy = STRICT if strict else BEST
    first = simulate(nodes, trace, policy, check=True)       # check: never over-committed
    assert sorted(o.id for o in first.outcomes) == list(range(len(trace)))   # each ends once
    for o in first.outcomes:
        assert o.start >= o.submit and o.end - o.start == o.duration
    again = simulate(nodes, list(reversed(trace)), policy)
    assert again.outcomes == first.outcomes                 # same inputs, same results


def test_sjf_runs_the_shortest_waiting_job_first():
    trace = [job(0, 0, 10, 1), job(1, 1, 5, 1), job(2, 1, 1, 1)]
    nodes = parse_cluster("1x1gpu")
    assert jct(simulate(nodes, trace, BEST, check=True)) == {0: 10, 1: 14, 2: 15}
    assert jct(simulate(nodes, trace, resolve("sjf"), check=True)) == {0: 10, 1: 15, 2: 10}
