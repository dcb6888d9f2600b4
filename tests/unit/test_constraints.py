"""Constrained requests: GPU models, node selectors and replicas over several nodes, in
the scheduler (placement, the cycle, never-fits)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.capacity.node import GpuDevice, Node, make_node
from corral.resources import CPU, GPU, Constraints, Resources
from corral.scheduler import PendingJob
from corral.scheduler.eligibility import gpu_model_matches
from corral.scheduler.placement import place_replicas
from corral.scheduler.snapshot import Snapshot

from sched_helpers import check_invariants, cycle, placed, state_of

GiB = 2**30


def req(cpu=1, gpu=0, models=(), selector=None, nodes=1) -> Resources:
    amounts = {CPU: cpu * 1000 * nodes}
    if gpu:
        amounts[GPU] = gpu * nodes
    return Resources(amounts, constraints=Constraints.make(models, selector, nodes))


def test_gpu_model_names_match_as_people_write_them():
    assert gpu_model_matches("A100", "NVIDIA A100-SXM4-80GB")
    assert gpu_model_matches("a100", "NVIDIA A100-SXM4-80GB")
    assert gpu_model_matches("A100-80GB", "NVIDIA A100 80GB PCIe")
    assert gpu_model_matches("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3")
    assert not gpu_model_matches("A10", "NVIDIA A100-SXM4-80GB")
    assert not gpu_model_matches("A100", "NVIDIA A10")
    assert not gpu_model_matches("", "NVIDIA A10")


def test_constraints_are_part_of_the_shape_but_not_of_the_amounts():
    plain, a100 = req(gpu=1), req(gpu=1, models=["A100"])
    assert plain != a100 and hash(plain) != hash(a100)
    assert dict(a100) == dict(plain) and a100.as_dict() == plain.as_dict()
    assert a100.add(plain).constraints is None
    assert Constraints.make() is None and req(gpu=1, models=[]).constraints is None
    two = req(cpu=2, gpu=2, nodes=2)
    assert two[GPU] == 4 and two.replicas == 2
    assert two.per_node() == Resources({CPU: 2000, GPU: 2}) and two.per_node().replicas == 1


def nodes_with_models():
    a100 = make_node("a", cores=8, memory=64 * GiB, gpus=2, gpu_model="NVIDIA A100-SXM4-80GB",
                     labels={"zone": "east"})
    h100 = make_node("b", cores=8, memory=64 * GiB, gpus=2, gpu_model="NVIDIA H100 80GB HBM3",
                     labels={"zone": "west"})
    return [a100, h100]


def test_a_gpu_model_or_a_selector_picks_the_node():
    nodes = nodes_with_models()
    res = cycle(nodes, {}, [PendingJob(1, req(gpu=1, models=["H100"])), PendingJob(2, req(gpu=1, models=["A100"])),
                           PendingJob(3, req(selector={"zone": "west"}))])
    where = {p.job_id: p.allocation.node for p in res.placements}
    assert where == {1: "b", 2: "a", 3: "b"}


def test_any_of_several_models_and_a_model_no_node_has():
    nodes = nodes_with_models()
    res = cycle(nodes, {}, [PendingJob(1, req(gpu=2, models=["V100", "H100"])), PendingJob(2, req(gpu=1, models=["H100"])),
                           PendingJob(3, req(gpu=1, models=["V100"]))])
    assert placed(res) == [1]
    assert res.reason(2).reason.name == "INSUFFICIENT_RESOURCES"       # H100s busy: waits
    assert res.reason(3).reason.name == "UNSCHEDULABLE"                # no node ever has a V100
    assert Snapshot(nodes).never_fits(req(gpu=1, models=["V100"]))
    assert not Snapshot(nodes).never_fits(req(gpu=1, models=["H100"]))


def test_a_node_with_two_models_gives_only_the_wanted_gpus():
    gpus = (GpuDevice(0, "g0", "NVIDIA A100", 80 * GiB), GpuDevice(1, "g1", "NVIDIA T4", 16 * GiB),
            GpuDevice(2, "g2", "NVIDIA A100", 80 * GiB), GpuDevice(3, "g3", "NVIDIA T4", 16 * GiB))
    node = make_node("mixed", cores=8, memory=64 * GiB, gpus=gpus)
    res = cycle([node], {}, [PendingJob(1, req(gpu=2, models=["T4"])), PendingJob(2, req(gpu=1, models=["T4"])),
                            PendingJob(3, req(gpu=2, models=["A100"]))])
    got = {p.job_id: p.allocation.gpus for p in res.placements}
    assert got == {1: (1, 3), 3: (0, 2)}, got       # job 2 waits: both T4s are job 1's


def test_replicas_go_one_per_node_all_or_none():
    nodes = [make_node(n, cores=4, memory=32 * GiB, gpus=2) for n in ("a", "b", "c")]
    res = cycle(nodes, {}, [PendingJob(1, req(cpu=1, gpu=2, nodes=2), gang=True)])
    [p] = res.placements
    assert len(p.allocation.pieces) == 2 and len(set(p.allocation.nodes)) == 2
    assert all(piece.requests == Resources({CPU: 1000, GPU: 2}) for piece in p.allocation.pieces)
    assert all(len(piece.gpus) == 2 for piece in p.allocation.pieces)
    # Three replicas of 2 GPUs when only two nodes are free: nothing is taken.
    busy = {9: place_replicas(Snapshot(nodes), req(cpu=1, gpu=2, nodes=1).with_constraints(None))}
    res = cycle(nodes, {9: busy[9]}, [PendingJob(1, req(cpu=1, gpu=2, nodes=3), gang=True)])
    assert placed(res) == [] and res.reason(1).reason.name == "INSUFFICIENT_RESOURCES"
    # More replicas than nodes can ever hold: unschedulable.
    assert Snapshot(nodes).never_fits(req(cpu=1, gpu=2, nodes=4))
    assert not Snapshot(nodes).never_fits(req(cpu=1, gpu=2, nodes=3))


def test_replicas_respect_models_and_selectors():
    nodes = nodes_with_models() + [make_node("c", cores=8, memory=64 * GiB, gpus=2, gpu_model="NVIDIA A100",
                                             labels={"zone": "east"})]
    res = cycle(nodes, {}, [PendingJob(1, req(gpu=1, models=["A100"], nodes=2), gang=True)])
    [p] = res.placements
    assert sorted(p.allocation.nodes) == ["a", "c"]
    assert Snapshot(nodes).never_fits(req(gpu=1, models=["A100"], selector={"zone": "west"}, nodes=1))


@settings(max_examples=60, deadline=None)
@given(jobs=st.lists(st.tuples(st.integers(1, 2), st.integers(0, 2), st.sampled_from([(), ("A100",), ("H100",),
                                                                                    ("A100", "H100")]),
                               st.sampled_from([1, 1, 2, 3])), min_size=1, max_size=12))
def test_constrained_cycles_never_overcommit_and_honour_the_constraints(jobs):
    nodes = nodes_with_models() + [make_node("c", cores=8, memory=64 * GiB, gpus=4, gpu_model="NVIDIA A100")]
    by_name = {n.name: n for n in nodes}
    state = state_of(nodes, {})
    pending = [PendingJob(i, req(cpu=c, gpu=g, models=m, nodes=n), gang=n > 1, seq=i)
               for i, (c, g, m, n) in enumerate(jobs)]
    from corral.scheduler import CycleContext, schedule

    res = schedule(state, pending, CycleContext(0.0))
    check_invariants(nodes, {p.job_id: p.allocation for p in res.placements})
    wanted = {j.id: j.requests for j in pending}
    for p in res.placements:
        r = wanted[p.job_id]
        assert len(p.allocation.pieces) == r.replicas and len(set(p.allocation.nodes)) == r.replicas
        models = r.constraints.gpu_models if r.constraints else ()
        for piece in p.allocation.pieces:
            node: Node = by_name[piece.node]
            for g in piece.gpus:
                assert not models or any(gpu_model_matches(m, node.gpu(g).model) for m in models)


def test_why_a_constrained_job_waits_or_can_never_run():
    from corral.scheduler import infeasible

    nodes = nodes_with_models()
    lines = infeasible(nodes, req(gpu=1, models=["V100"]))
    assert lines == ["no node has 1 GPU of model V100 (GPUs here: 2 x NVIDIA A100-SXM4-80GB, "
                     "2 x NVIDIA H100 80GB HBM3)"], lines
    assert infeasible(nodes, req(selector={"zone": "north"})) == [
        "no node matches node selector zone=north (labels here: zone=east, zone=west)"]
    assert infeasible(nodes, req(gpu=2, nodes=3)) == [
        "needs 3 nodes that can each hold cpu=1, nvidia.com/gpu=2; 2 of the 2 nodes can"]
    assert infeasible(nodes, req(gpu=1, models=["H100"])) == []
    # Waiting: the GPUs of the wanted model are busy.
    busy = cycle(nodes, {}, [PendingJob(1, req(gpu=2, models=["H100"])), PendingJob(2, req(gpu=2, models=["H100"]))])
    # (one node has H100s: its numbers, the GPUs counted among the wanted model only)
    assert busy.reason(2).message == "insufficient nvidia.com/gpu (H100): requests 2, free 0 of 2", \
        busy.reason(2).message
    # Replicas: the 2nd best node is the one short.
    three = [make_node(n, cores=4, memory=32 * GiB, gpus=2) for n in ("a", "b", "c")]
    from corral.job import Allocation

    running = {1: Allocation("a", Resources({CPU: 1000, GPU: 1}), gpus=(0,)),
               2: Allocation("b", Resources({CPU: 1000, GPU: 1}), gpus=(0,))}
    res = cycle(three, running, [PendingJob(3, req(gpu=2, nodes=2), gang=True)])
    assert placed(res) == []
    assert res.reason(3).message == ("insufficient nvidia.com/gpu: requests 2, free 1 of 2 per replica on the 2nd "
                                     "best of 3 nodes (it needs 2 nodes)"), res.reason(3).message


def test_a_drained_node_keeps_its_jobs_but_takes_no_new_ones():
    from corral.job import Allocation
    from corral.scheduler import ClusterState, CycleContext, QueueSpec, RunningJob, schedule

    nodes = [make_node("a", cores=4, memory=32 * GiB, gpus=2), make_node("b", cores=4, memory=32 * GiB, gpus=4)]
    running = [RunningJob(1, Allocation("a", Resources({CPU: 1000, GPU: 1}), gpus=(0,)))]
    state = ClusterState(nodes, {"default": QueueSpec("default")}, running, cordoned={"b"})
    res = schedule(state, [PendingJob(2, req(gpu=1)), PendingJob(3, req(gpu=4)), PendingJob(4, req(gpu=1))],
                   CycleContext(0.0))
    assert [(p.job_id, p.allocation.node) for p in res.placements] == [(2, "a")]
    assert res.reason(3).message == "the nodes that could hold it are draining: b"
    assert res.reason(4).message.startswith("insufficient nvidia.com/gpu: requests 1, free 0 of 2")
    # No estimated start while the only node that could hold it drains.
    from corral.scheduler.estimate import estimate_starts

    pending = [PendingJob(3, req(gpu=4))]
    assert estimate_starts(ClusterState(nodes, {"default": QueueSpec("default")}, cordoned={"b"}), pending,
                           CycleContext(0.0)) == {3: None}
    # Undrained: the job goes there; the running job stayed counted throughout.
    state.set_nodes(nodes, cordoned=())
    assert set(state.running) == {1, 2}
    res = schedule(state, [PendingJob(3, req(gpu=4))], CycleContext(0.0))
    assert [(p.job_id, p.allocation.node) for p in res.placements] == [(3, "b")]
    # A node that leaves: its job's piece counts nowhere, the rest is as it was.
    state.set_nodes(nodes[:1])
    assert state.snapshot.nodes["a"].free(GPU) == 0 and "b" not in state.snapshot.nodes
