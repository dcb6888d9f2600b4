"""The pure scheduler core: worked examples and property-based invariants."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.capacity.node import GpuDevice, TopologyLevel, make_node
from corral.job import Allocation, Reason
from corral.reasons import Behind, InsufficientResources, Unschedulable
from corral.resources import GPU, Resources
from corral.scheduler import CycleContext, PendingJob, PendingSet, Snapshot, infeasible, schedule
from corral.scheduler.placement import choose_gpus
from sched_helpers import check_invariants, one_queue, state_of

GiB = 2**30
BEST = "best-effort-fifo"
STRICT = "strict-fifo"


def schedule_once(nodes, running, pending, policy=BEST):
    """One cycle on a fresh state (the old ``schedule(nodes, allocations, pending, policy)``)."""
    from sched_helpers import cycle

    return cycle(nodes, running, pending, policy)


def job(i: int, priority: int = 0, **req) -> PendingJob:
    return PendingJob(i, Resources.parse(req), priority=priority, seq=i)


def node4():
    return make_node("n1", cores=4, memory=16 * GiB, gpus=4)


def test_priority_then_submit_order():
    n = make_node("n1", cores=2, memory=GiB)
    res = schedule_once([n], {}, [job(1, cpu=1), job(2, priority=5, cpu=1), job(3, priority=5, cpu=1)], BEST)
    assert [p.job_id for p in res.placements] == [2, 3]
    assert isinstance(res.reasons[1], InsufficientResources)
    assert res.reasons[1].reason is Reason.INSUFFICIENT_RESOURCES
    assert res.reasons[1].message == "insufficient cpu: requests 1, free 0 of 2"


def test_pending_reason_names_resource_and_numbers():
    n = node4()
    running = {1: Allocation("n1", Resources.parse({"cpu": 1, "gpu": 3}), gpus=(0, 1, 2), cores=(0,))}
    res = schedule_once([n], running, [job(2, cpu=1, gpu=2)], BEST)
    assert res.placements == []
    assert res.reasons[2].message == "insufficient nvidia.com/gpu: requests 2, free 1 of 4"


def test_best_effort_lets_small_jobs_pass_strict_does_not():
    n = node4()
    running = {1: Allocation("n1", Resources.parse({"cpu": 1, "gpu": 3}), gpus=(0, 1, 2), cores=(0,))}
    pending = [job(2, cpu=1, gpu=2), job(3, cpu=1, gpu=1)]
    assert [p.job_id for p in schedule_once([n], running, pending, BEST).placements] == [3]
    res = schedule_once([n], running, pending, STRICT)
    assert res.placements == []
    assert res.reasons[3] == Behind(job_id=2) and res.reasons[3].reason is Reason.PRIORITY
    assert res.reasons[3].message == "waiting behind job 2 (strict order)"


def test_specific_gpus_and_cores_are_assigned():
    res = schedule_once([node4()], {}, [job(1, cpu=2, gpu=1), job(2, cpu="500m", gpu=1)], BEST)
    a1, a2 = (p.allocation for p in res.placements)
    assert len(a1.gpus) == 1 and len(a1.cores) == 2
    assert a2.cores == ()          # fractional CPU: shared pool, no pinned cores
    assert set(a1.gpus).isdisjoint(a2.gpus)


def test_multi_gpu_job_gets_an_nvlink_pair_and_singles_do_not_split_pairs():
    n = node4()   # NVLink pairs (0,1) and (2,3)
    res = schedule_once([n], {}, [job(1, cpu=1, gpu=1), job(2, cpu=1, gpu=2), job(3, cpu=1, gpu=1)], BEST)
    allocs = {p.job_id: p.allocation.gpus for p in res.placements}
    assert allocs[2] in {(0, 1), (2, 3)}
    # The two single-GPU jobs share the other pair instead of breaking both pairs.
    assert {allocs[1][0], allocs[3][0]} == set(range(4)) - set(allocs[2])


def test_topology_prefers_closest_pcie_ancestor():
    def dev(i, links):
        return GpuDevice(i, f"GPU-{i}", "X", GiB, links=tuple(links.items()))
    L = TopologyLevel
    gpus = (
        dev(0, {1: L.SYSTEM, 2: L.SINGLE, 3: L.SYSTEM}),
        dev(1, {0: L.SYSTEM, 2: L.SYSTEM, 3: L.HOSTBRIDGE}),
        dev(2, {0: L.SINGLE, 1: L.SYSTEM, 3: L.SYSTEM}),
        dev(3, {0: L.SYSTEM, 1: L.HOSTBRIDGE, 2: L.SYSTEM}),
    )
    n = make_node("n", cores=4, memory=GiB, gpus=gpus)
    assert choose_gpus(n, {0, 1, 2, 3}, 2) == (0, 2)
    assert choose_gpus(n, {1, 2, 3}, 2) == (1, 3)
    assert choose_gpus(n, {1, 2}, 3) is None


def test_never_fits_is_reported_per_resource():
    n = make_node("n1", cores=2, memory=4 * GiB, gpus=4)
    lines = infeasible([n], Resources.parse({"cpu": 64, "memory": "8Gi", "gpu": 2}))
    assert lines == [
        "insufficient cpu: job requests 64, node has 2 allocatable",
        "insufficient memory: job requests 8Gi, node has 4Gi allocatable",
    ]
    assert infeasible([n], Resources.parse({"cpu": 2, "gpu": 4})) == []


def test_reserve_is_not_allocatable():
    n = make_node("n1", cores=2, memory=4 * GiB, reserve=Resources.parse({"cpu": "500m", "memory": "1Gi"}))
    assert infeasible([n], Resources.parse({"cpu": 2})) == [
        "insufficient cpu: job requests 2, node has 1.5 allocatable"]
    res = schedule_once([n], {}, [job(1, cpu=1), job(2, cpu=1)], BEST)
    assert [p.job_id for p in res.placements] == [1]


def test_a_job_the_node_shrank_under_waits_as_unschedulable():
    # Submitted when the node had 4 GPUs; the daemon came back with 1.
    n = make_node("n1", cores=2, memory=GiB, gpus=1)
    res = schedule_once([n], {}, [job(1, cpu=1, gpu=4)], BEST)
    assert res.placements == []
    assert isinstance(res.reasons[1], Unschedulable) and res.reasons[1].reason is Reason.UNSCHEDULABLE
    assert res.reasons[1].message == ("can never fit the node as it is now: insufficient nvidia.com/gpu: "
                                      "job requests 4, node has 1 allocatable")


def test_extended_resources_are_counted():
    n = make_node("n1", cores=4, memory=GiB, extended={"example.com/fpga": 1})
    res = schedule_once([n], {}, [job(1, cpu=1, **{"example.com/fpga": 1}), job(2, cpu=1, **{"example.com/fpga": 1})],
                   BEST)
    assert [p.job_id for p in res.placements] == [1]
    assert res.reasons[2].message == "insufficient example.com/fpga: requests 1, free 0 of 1"


def test_multi_node_best_fit_packs_gpus():
    a = make_node("a", cores=8, memory=GiB, gpus=4)
    b = make_node("b", cores=8, memory=GiB, gpus=4)
    running = {9: Allocation("b", Resources.parse({"cpu": 1, "gpu": 2}), gpus=(0, 1), cores=(0,))}
    res = schedule_once([a, b], running, [job(1, cpu=1, gpu=2)], BEST)
    assert res.placements[0].allocation.node == "b"


def test_deterministic():
    pending = [job(i, priority=i % 3, cpu=1 + i % 2, gpu=i % 3) for i in range(1, 40)]
    r1 = schedule_once([node4(), make_node("n2", cores=4, memory=GiB, gpus=2)], {}, pending, BEST)
    r2 = schedule_once([node4(), make_node("n2", cores=4, memory=GiB, gpus=2)], {}, list(reversed(pending)), BEST)
    assert r1.placements == r2.placements
    assert r1.reasons == r2.reasons


# --- properties ------------------------------------------------------------------

shapes = st.fixed_dictionaries({
    "cpu": st.sampled_from(["250m", "500m", "1", "1500m", "2", "3"]),
    "memory": st.sampled_from(["256Mi", "1Gi", "2Gi", "5Gi"]),
    "gpu": st.integers(min_value=0, max_value=4),
})
events = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), shapes, st.integers(min_value=-2, max_value=2)),
        st.tuples(st.just("end"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
    ),
    max_size=60,
)


def _submitted(event, nodes, job_id: int) -> PendingJob | None:
    """The job a ("submit", shape, priority) event adds, or None if it could never fit."""
    req = Resources.parse(event[1])
    if infeasible(nodes, req):
        return None
    return PendingJob(job_id, req, priority=event[2], seq=job_id)


@settings(max_examples=150, deadline=None)
@given(events=events, strict=st.booleans(), gpus=st.integers(min_value=0, max_value=8))
def test_random_streams_never_overcommit_and_release_everything(events, strict, gpus):
    nodes = [make_node("n1", cores=4, memory=8 * GiB, gpus=gpus,
                       reserve=Resources.parse({"memory": "1Gi"})),
             make_node("n2", cores=2, memory=4 * GiB, gpus=2)]
    policy = STRICT if strict else BEST
    pending: dict[int, PendingJob] = {}
    running: dict[int, Allocation] = {}
    next_id = 1
    for event in events:
        if event[0] == "submit":
            job = _submitted(event, nodes, next_id)
            if job is None:
                continue
            pending[next_id] = job
            next_id += 1
        elif event[0] == "end" and running:
            running.pop(sorted(running)[event[1] % len(running)])
        elif event[0] == "cancel" and (pending or running):
            ids = sorted(pending) + sorted(running)
            victim = ids[event[1] % len(ids)]
            pending.pop(victim, None)
            running.pop(victim, None)
        res = schedule_once(nodes, running, pending.values(), policy)
        for p in res.placements:
            assert p.job_id in pending
            running[p.job_id] = p.allocation
            del pending[p.job_id]
        assert set(res.reasons) == set(pending)
        check_invariants(nodes, running)
        # Work-conserving (best-effort): nothing left waiting fits what is free now.
        snap = Snapshot(nodes, running)
        if not strict:
            for j in pending.values():
                assert not any(s.fits(j.requests) and len(s.free_gpus) >= j.requests.get(GPU, 0)
                               for s in snap.nodes.values())
    # Drain: jobs keep ending; every feasible job eventually runs exactly once and,
    # once all have ended, the snapshot is back to full capacity.
    ran: Counter = Counter(running.keys())
    for _ in range(len(pending) + 1):
        running.clear()
        res = schedule_once(nodes, running, pending.values(), policy)
        for p in res.placements:
            running[p.job_id] = p.allocation
            ran[p.job_id] += 1
            del pending[p.job_id]
        check_invariants(nodes, running)
    assert not pending
    assert all(count == 1 for count in ran.values())
    running.clear()
    for s in Snapshot(nodes, running).nodes.values():
        assert s.used == {} or all(v == 0 for v in s.used.values())
        assert s.free_gpus == {g.index for g in s.node.gpus}
        assert s.free_cores == set(s.node.cores)


def test_sjf_orders_by_estimate_and_unknown_last():
    n = make_node("n1", cores=1, memory=GiB)
    pending = [PendingJob(1, Resources.parse({"cpu": 1}), seq=1, estimate=None),
               PendingJob(2, Resources.parse({"cpu": 1}), seq=2, estimate=300.0),
               PendingJob(3, Resources.parse({"cpu": 1}), seq=3, estimate=60.0)]
    res = schedule_once([n], {}, pending, "sjf")
    assert [p.job_id for p in res.placements] == [3]
    assert res.positions() == {2: 1, 1: 2}


@settings(max_examples=80, deadline=None)
@given(events=events, strict=st.booleans())
def test_a_long_lived_state_decides_exactly_like_a_fresh_one(events, strict):
    """The daemon and the simulator keep one cluster state and pending set across cycles
    (with the best-fit index kept up to date); the result must be what a state built from
    scratch each cycle decides."""
    nodes = [make_node("n1", cores=4, memory=8 * GiB, gpus=4), make_node("n2", cores=2, memory=4 * GiB, gpus=2),
             make_node("n3", cores=8, memory=16 * GiB, gpus=0)]
    policy = STRICT if strict else BEST
    queues = one_queue(policy)
    live, queue = state_of(nodes, {}, queues), PendingSet(queues)
    running: dict[int, Allocation] = {}
    next_id = 1
    for event in events:
        if event[0] == "submit":
            job = _submitted(event, nodes, next_id)
            if job is None:
                continue
            queue.add(job)
            next_id += 1
        elif event[0] in ("end", "cancel") and running:
            victim = sorted(running)[event[1] % len(running)]
            running.pop(victim)
            live.end(victim)
        fresh = schedule_once(nodes, running, list(queue), policy)
        kept = schedule(live, queue, CycleContext(0.0))
        assert kept.placements == fresh.placements
        assert kept.reasons == fresh.reasons
        for p in kept.placements:
            queue.remove(p.job_id)
            running[p.job_id] = p.allocation


def test_best_fit_index_answers_like_scoring_every_node():
    """The snapshot's index visits nodes in exactly the best-fit order."""
    import random

    from corral.scheduler.placement import node_score

    rng = random.Random(3)
    nodes = [make_node(f"n{i:02d}", cores=rng.choice((4, 8, 16)), memory=rng.choice((8, 32)) * GiB,
                       gpus=rng.choice((0, 2, 4, 8))) for i in range(30)]
    snap = Snapshot(nodes)
    held = []
    for _ in range(400):
        if held and rng.random() < 0.4:
            snap.forget(held.pop(rng.randrange(len(held))))
            continue
        req = Resources.parse({"cpu": rng.choice(("500m", "1", "2", "3")), "memory": f"{rng.choice((1, 2, 4))}Gi",
                               "gpu": rng.choice((0, 1, 2))})
        expected = sorted((s for s in snap.ordered if s.fits(req)), key=lambda s: node_score(s, req))
        assert [s.node.name for s in snap.best_fit_order(req)] == [s.node.name for s in expected]
        from corral.scheduler.placement import best_fit

        alloc = best_fit(snap, req)
        if alloc is not None:
            snap.assume(alloc)
            held.append(alloc)
