"""Multi-node gang placement in the simulator (jobs with more GPUs than any one node)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.job import Allocation
from corral.resources import GPU, Resources
from corral.scheduler import Snapshot
from corral.scheduler.placement import place_gang
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import policy_names, resolve

BEST = resolve("best-effort-fifo")
STRICT = resolve("strict-fifo")


def job(i, submit, duration, gpus, user="u", cpu="2"):
    return SimJob(i, submit, duration, Resources.parse({"cpu": cpu, "gpu": gpus}), user=user)


def starts(result):
    return {o.id: o.start for o in result.outcomes}


def pieces(alloc):
    return [(p.node, len(p.gpus), p.requests.get("cpu", 0)) for p in alloc.pieces]


def test_an_8_gpu_job_waits_for_both_nodes_then_runs_across_both():
    # 2 nodes x 4 GPUs. Job 0 (1 GPU) runs 0-10; the 8-GPU job 1 arrives at 1 and needs
    # both nodes completely free: it starts at 10 and runs to 15. Job 2 (1 GPU, at 2):
    # best-effort FIFO lets it pass (2-5); strict FIFO holds it behind the gang job (15).
    trace = [job(0, 0, 10, 1), job(1, 1, 5, 8), job(2, 2, 3, 1)]
    nodes = parse_cluster("2x4gpu")
    best = simulate(nodes, trace, BEST, check=True)
    assert starts(best) == {0: 0, 1: 10, 2: 2} and best.gang_placed == 1 and not best.infeasible
    assert {o.id: o.end for o in best.outcomes}[1] == 15
    strict = simulate(nodes, trace, STRICT, check=True)
    assert starts(strict) == {0: 0, 1: 10, 2: 15} and strict.gang_placed == 1
    # While the gang job runs, all 8 GPUs are allocated.
    assert any(s.t == 10 and s.gpus_allocated == 8 for s in best.samples)


def test_a_6_gpu_job_takes_one_full_node_and_2_gpus_of_another():
    nodes = parse_cluster("2x4gpu")
    snap = Snapshot(nodes, [Allocation("n0000", Resources.parse({"cpu": "1", "gpu": 2}), gpus=(0, 1))])
    allocs = place_gang(snap, Resources.parse({"cpu": "4", "gpu": 6}))
    assert sorted(pieces(allocs), key=lambda p: -p[1]) == [("n0001", 4, 2000), ("n0000", 2, 2000)]
    assert set(allocs.piece_on("n0000").gpus) == {2, 3}
    # In the engine: job 0 holds 2 GPUs of n0000 for 10 s; the 6-GPU job starts at once.
    result = simulate(nodes, [job(0, 0, 10, 2), job(1, 1, 5, 6)], BEST, check=True)
    assert starts(result) == {0: 0, 1: 1} and result.gang_placed == 1


def test_gang_prefers_completely_free_nodes_and_fewest_nodes():
    nodes = parse_cluster("3x4gpu")
    one_used = Snapshot(nodes, [Allocation("n0000", Resources.parse({"cpu": "1", "gpu": 1}), gpus=(0,))])
    # 6 GPUs: two completely free nodes (n0001 whole, n0002 two GPUs), not n0000's 3 + n0001's 3.
    assert pieces(place_gang(one_used, Resources.parse({"cpu": "3", "gpu": 6}))) == [
        ("n0001", 4, 1500), ("n0002", 2, 1500)]
    # 11 GPUs: no choice but all three nodes (3 + 4 + 4).
    assert pieces(place_gang(one_used, Resources.parse({"cpu": "3", "gpu": 11}))) == [
        ("n0000", 3, 1000), ("n0001", 4, 1000), ("n0002", 4, 1000)]
    assert place_gang(one_used, Resources.parse({"cpu": "3", "gpu": 12})) is None
    # The per-node CPU share must fit: 3 nodes x 32 CPUs, 2 nodes' worth of GPUs but 80 CPUs.
    empty = Snapshot(nodes, {})
    assert pieces(place_gang(empty, Resources.parse({"cpu": "80", "gpu": 8}))) == [
        ("n0000", 4, 26667), ("n0001", 4, 26667), ("n0002", 0, 26666)]
    assert place_gang(empty, Resources.parse({"cpu": "97", "gpu": 8})) is None


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_places_gang_jobs_and_reports_over_cluster_jobs(name):
    trace = [job(0, 0, 10, 1), job(1, 1, 5, 8), job(2, 2, 3, 1), job(3, 3, 5, 9)]
    result = simulate(parse_cluster("2x4gpu"), trace, resolve(name), check=True)
    assert result.infeasible == {3: "insufficient nvidia.com/gpu: job requests 9, the whole cluster has 8"}
    assert sorted(o.id for o in result.outcomes) == [0, 1, 2] and result.gang_placed == 1
    if name == "srtf":
        # The paper's rules: gangs preempt and are preempted like any job. t=1 the gang (5 s)
        # preempts job 0 (9 s left); t=2 job 2 (3 s) preempts the gang (4 s left), job 0
        # resumes beside it; t=5 the gang preempts job 0 again.
        assert starts(result)[1] == 1 and result.preemptions == 3
    else:
        assert starts(result)[1] >= 10      # needs both nodes, and job 0 holds one until 10


traces = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 20), st.integers(0, 8), st.sampled_from("ab")),
                  min_size=1, max_size=25)


@settings(max_examples=40, deadline=None)
@given(rows=traces, name=st.sampled_from(policy_names()))
def test_conservation_and_determinism_with_gang_jobs(rows, name):
    trace = [job(i, s, d, g, u, cpu="1") for i, (s, d, g, u) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    policy = resolve(name)
    first = simulate(nodes, trace, policy, check=True)       # never over-committed on any node
    assert not first.infeasible
    ended = [o.id for o in first.outcomes]
    assert sorted(ended) == list(range(len(trace)))        # every job ends exactly once
    assert first.gang_placed == sum(1 for r in rows if r[2] > 4)
    for o in first.outcomes:
        assert o.start >= o.submit
        if name not in ("srtf", "tiresias"):
            assert o.end - o.start == o.duration
    again = simulate(nodes, list(reversed(trace)), policy)
    assert again.outcomes == first.outcomes and again.gang_placed == first.gang_placed


def _shared_traces() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    for folder in (root.parent / "shared" / "traces", Path("/work/shared/traces")):
        if (folder / "philly.csv").exists():
            return folder
    return None


def test_real_philly_multi_node_jobs_now_fit():
    folder = _shared_traces()
    if folder is None:
        pytest.skip("shared traces not found (../shared/traces from the repository root)")
    from corral.sim.loaders import load_trace

    trace = load_trace(folder / "philly.csv", "philly")
    big = [j for j in trace.jobs if j.requests[GPU] > 4]
    assert len(big) == 1_932                      # all of them never fitted a 16x4gpu cluster before
    result = simulate(parse_cluster("16x4gpu"), big, BEST)
    assert len(result.infeasible) == 3            # only the 128-GPU jobs exceed the 64 GPUs
    assert result.gang_placed == len(result.outcomes) == 1_929
