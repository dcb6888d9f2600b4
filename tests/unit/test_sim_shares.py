"""Shared GPUs in the simulator: a share of one GPU (``corral.dev/gpu-milli``), several
jobs on one device, never more than the whole device; GPU-model constraints
(Alibaba ``gpu_spec``) never violated."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.job import Piece
from corral.resources import CPU, GPU, MEMORY, Constraints, Resources
from corral.scheduler.eligibility import gpu_model_matches
from corral.scheduler.placement import best_fit
from corral.scheduler.shares import GPU_SHARE, as_whole, choose_share_device, device_free
from corral.scheduler.snapshot import Snapshot
from corral.sim.cluster import make_sim_node, parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.metrics import summarize
from corral.sim.policies import resolve

BEST = resolve("best-effort-fifo")


def share(milli, cpu=1000, models=()):
    c = Constraints.make(gpu_models=models) if models else None
    return Resources({CPU: cpu, GPU_SHARE: milli}, constraints=c)


def test_four_quarter_gpu_jobs_run_together():
    # One GPU, four 0.25-GPU jobs of 1,000 s each: they share the device and all end at 1,000 s.
    nodes = parse_cluster("1x1gpu")
    jobs = [SimJob(i, 0, 1000, share(250)) for i in range(4)]
    result = simulate(nodes, jobs, BEST, check=True)
    assert [o.end for o in result.outcomes] == [1000] * 4
    assert {o.devices for o in result.outcomes} == {(0,)}          # the same device for all
    assert all(o.gpus == 0.25 for o in result.outcomes)
    s = summarize(result.outcomes, result.samples)
    assert s["jct_mean"] == 1000
    assert s["utilization"] == pytest.approx(1.0)                 # 4 x 0.25 of the one GPU


def test_utilization_counts_the_share_not_the_device():
    nodes = parse_cluster("1x2gpu")
    result = simulate(nodes, [SimJob(0, 0, 100, share(250))], BEST, check=True)
    s = summarize(result.outcomes, result.samples)
    assert s["utilization"] == pytest.approx(0.125)
    # The 0.75 left on the shared device only another share can use: 0.75 of 2 GPUs.
    assert s["gpu_stranded"] == pytest.approx(0.375)


def test_stranded_share_follows_the_jobs():
    nodes = parse_cluster("1x1gpu")
    jobs = [SimJob(0, 0, 100, share(500)), SimJob(1, 0, 50, share(500))]
    result = simulate(nodes, jobs, BEST, check=True)
    # Both halves run 0-50 (nothing stranded), the first alone 50-100 (0.5 stranded).
    assert summarize(result.outcomes, result.samples)["gpu_stranded"] == pytest.approx(0.25)
    whole = simulate(nodes, [SimJob(0, 0, 10, Resources({CPU: 1000, GPU: 1}))], BEST)
    assert summarize(whole.outcomes, whole.samples)["gpu_stranded"] == 0


def test_a_fifth_quarter_waits_and_whole_gpus_avoid_shared_devices():
    nodes = parse_cluster("1x2gpu")
    jobs = [SimJob(i, 0, 100, share(300)) for i in range(3)] + \
        [SimJob(3, 0, 100, Resources({CPU: 1000, GPU: 1})), SimJob(4, 0, 100, share(300))]
    result = simulate(nodes, jobs, BEST, check=True)
    starts = {o.id: o.start for o in result.outcomes}
    assert starts == {0: 0, 1: 0, 2: 0, 3: 0, 4: 100}     # 3 x 0.3 on one device, the other whole
    assert {o.devices for o in result.outcomes if o.id < 3} == {(0,)}


def test_share_best_fit_fills_the_fullest_device_first():
    snap = Snapshot(parse_cluster("1x3gpu"))
    state = snap.nodes["n0000"]
    snap.assume(best_fit(snap, share(500)))     # device 0: 500 used
    snap.assume(best_fit(snap, share(500)))     # device 0 again: full
    snap.assume(best_fit(snap, share(700)))     # device 1: 700 used
    assert state.shares == {0: 1000, 1: 700}
    assert choose_share_device(state, share(300)) == 1            # the tightest that holds it
    assert choose_share_device(state, share(400)) == 2            # only a free one holds it
    assert device_free(state, 1) == 300 and state.free(GPU) == 1
    assert best_fit(snap, Resources({CPU: 1000, GPU: 2})) is None  # shared devices are not whole


def test_over_sharing_a_device_raises():
    snap = Snapshot(parse_cluster("1x1gpu"))
    snap.assume(best_fit(snap, share(600)))
    state = snap.nodes["n0000"]
    with pytest.raises(CorralError, match="exceed the device"):
        state.assume(Piece("n0000", share(500), (0,)))
    with pytest.raises(CorralError, match="allocated whole"):
        snap2 = Snapshot(parse_cluster("1x1gpu"))
        snap2.assume(best_fit(snap2, Resources({GPU: 1})))
        snap2.nodes["n0000"].assume(Piece("n0000", share(100), (0,)))


def test_as_whole_and_infeasible_share():
    assert as_whole(share(250)) == Resources({CPU: 1000, GPU: 1})
    nodes = parse_cluster("1x0gpu")
    result = simulate(nodes, [SimJob(0, 0, 10, share(250))], BEST)
    assert 0 in result.infeasible and "nvidia.com/gpu" in result.infeasible[0]


# Property tests over random traces --------------------------------------------------------------

MODELS = ("T4", "P100", "V100M16")


def _nodes(draw_models):
    return [make_sim_node(f"n{i}", cpu=32000, memory=2**37, gpus=g, model=m)
            for i, (g, m) in enumerate(draw_models)]


node_lists = st.lists(st.tuples(st.sampled_from((1, 2, 4)), st.sampled_from(MODELS)), min_size=1, max_size=4)
job_shapes = st.tuples(
    st.floats(0, 50), st.floats(1, 40),
    st.one_of(st.integers(0, 2).map(lambda g: ("whole", g)), st.integers(1, 1000).map(lambda m: ("share", m))),
    st.lists(st.sampled_from(MODELS), max_size=2, unique=True))


@settings(max_examples=60, deadline=None)
@given(node_lists, st.lists(job_shapes, min_size=1, max_size=25))
def test_gpu_models_never_violated_and_shares_conserved(node_spec, shapes):
    nodes = _nodes(node_spec)
    jobs = []
    for i, (submit, duration, (kind, n), models) in enumerate(shapes):
        c = Constraints.make(gpu_models=models) if models else None
        amounts = {CPU: 1000, MEMORY: 2**30, (GPU if kind == "whole" else GPU_SHARE): n}
        jobs.append(SimJob(i, submit, duration, Resources(amounts, constraints=c)))
    # check=True: after every cycle no device holds more than 1000 thousandths, no GPU is
    # held whole and shared, and the snapshot matches the running jobs.
    result = simulate(nodes, jobs, BEST, check=True)
    by_id = {j.id: j for j in jobs}
    assert len(result.outcomes) + len(result.infeasible) == len(jobs)
    for o in result.outcomes:
        c = by_id[o.id].requests.constraints
        if c is not None and c.gpu_models and o.devices:
            for model in o.model.split("|"):
                assert any(gpu_model_matches(w, model) for w in c.gpu_models), (o, c)
    # Conservation over time: the share allocated never exceeds the cluster's GPUs.
    total = sum(len(n.gpus) for n in nodes)
    assert all(s.gpus_allocated <= total + 1e-9 for s in result.samples)
