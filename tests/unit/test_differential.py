"""The daemon and the simulator decide alike.

One side is the daemon's whole manager -- commands, admission, the driver, the
lifecycle, an in-memory store -- running jobs on the simulated executor with the virtual
clock as its event loop: jobs are submitted at their trace times and end after their
durations, preemption victims are requeued, every end is recorded in the store. The other
is ``corral sim``'s engine on the same trace. For every ordering policy, with backfill and
preemption on and off, with and without queues and quotas, each job must start and end at
the same times on both, and be preempted as often.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.capacity.node import make_node
from corral.daemon.manager import Manager
from corral.executors.simulated import Program, SimulatedExecutor, SimWorld
from corral.job import Reason
from corral.resources import Resources
from corral.scheduler import QueueSpec
from corral.scheduler.policies import POLICIES
from corral.scheduler.settings import Scheduling
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import HISTORY, SimPolicy
from corral.spec import build_spec
from corral.store import MemoryStore

GiB = 2**30
NODES = [make_node("a", cores=8, memory=32 * GiB, gpus=4), make_node("b", cores=4, memory=16 * GiB, gpus=2)]


def daemon_run(trace: list[SimJob], scheduling: Scheduling) -> dict[int, tuple[float, float, int]]:
    """(start, end, preemptions) per trace job, as the daemon's manager runs it."""
    world = SimWorld(NODES, program_for=lambda job: Program(durations[job.id]))
    manager: list[Manager] = []
    executor = SimulatedExecutor(world, lambda j, s: manager[0].on_exit(j, s), kill_grace=0.0)
    m = Manager(MemoryStore(), executor, scheduling, clock=world, loop=world)
    manager.append(m)
    durations: dict[int, float] = {}
    ids: dict[int, int] = {}                       # store id -> trace id

    def submit(tj: SimJob) -> None:
        queue = tj.user if tj.user in scheduling.queue_map else "default"
        spec = build_spec(["simulated"], requests=dict(tj.requests.formatted()), priority=tj.priority, queue=queue,
                          time_limit=None if tj.time_limit is None else f"{int(tj.time_limit)}s")
        [job] = m.submit([spec], user=tj.user)
        ids[job.id] = tj.id
        durations[job.id] = tj.duration

    for tj in sorted(trace, key=lambda j: (j.submit, j.id)):
        world.call_at(tj.submit, submit, tj, priority=1)
    world.run()
    out = {}
    for job in m.store.list_jobs():
        preempted = sum(1 for e in m.store.events(job.id) if e.reason is Reason.PREEMPTED)
        out[ids[job.id]] = (job.started_at, job.ended_at, preempted)
        assert job.state.value == "Succeeded", (job.id, job.state, job.reason, job.message)
    return out


def sim_run(trace: list[SimJob], scheduling: Scheduling) -> dict[int, tuple[float, float, int]]:
    result = simulate(NODES, trace, SimPolicy("daemon", scheduling, order_by=HISTORY), check=True)
    return {o.id: (o.start, o.end, 0) for o in result.outcomes}, result.preemptions


rows = st.lists(
    st.tuples(st.integers(0, 30),               # submit time
              st.integers(1, 25),               # duration
              st.integers(0, 4),                # GPUs
              st.integers(1, 3),                # CPUs
              st.sampled_from(["u0", "u1", "u2"]),
              st.integers(0, 2),                # priority
              st.sampled_from([None, 1.5, 3.0])),  # time limit as a multiple of the duration
    min_size=1, max_size=18)


def trace_of(rows) -> list[SimJob]:
    out = []
    for i, (t, d, g, c, user, prio, limit) in enumerate(rows):
        requests = Resources.parse({"cpu": c, "gpu": g} if g else {"cpu": c})
        out.append(SimJob(i, float(t), float(d), requests, user=user, priority=prio,
                          time_limit=None if limit is None else float(int(d * limit) + 1)))
    return out


def quota_queues(policy: str) -> tuple[QueueSpec, ...]:
    """u0 and u1 have queues with quotas (u1's may borrow 1 GPU); u2 goes to default."""
    return (QueueSpec("u0", nominal={"nvidia.com/gpu": 3}, policy=policy),
            QueueSpec("u1", nominal={"nvidia.com/gpu": 2}, borrowing_limit={"nvidia.com/gpu": 1}, policy=policy))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, policy=st.sampled_from(sorted(POLICIES)), backfill=st.booleans(), preemption=st.booleans(),
       quotas=st.booleans())
def test_the_daemon_and_the_simulator_decide_alike(rows, policy, backfill, preemption, quotas):
    trace = trace_of(rows)
    scheduling = Scheduling.make(quota_queues(policy) if quotas else (), policy=policy, backfill=backfill,
                                 preemption=preemption, half_life=3600.0)
    # Jobs that could never run are refused by the daemon at submit; the simulator drops
    # them the same way: leave them out of both.
    from corral.scheduler import infeasible
    from corral.scheduler.quota import QuotaState

    quota = QuotaState(scheduling.queue_map, {"nvidia.com/gpu": 6, "cpu": 12000})
    trace = [j for j in trace if not infeasible(NODES, j.requests)
             and not quota.never_fits(j.user if j.user in scheduling.queue_map else "default", j.requests)]
    if not trace:
        return
    daemon = daemon_run(trace, scheduling)
    sim, preemptions = sim_run(trace, scheduling)
    assert {j: (s, e) for j, (s, e, _) in daemon.items()} == {j: (s, e) for j, (s, e, _) in sim.items()}
    assert sum(p for _, _, p in daemon.values()) == preemptions


def test_a_worked_case_with_preemption_and_backfill():
    """A hand-checked case: u1's high-priority job preempts u0's, both requeue and finish."""
    trace = [SimJob(0, 0.0, 20.0, Resources.parse({"cpu": 1, "gpu": 4}), user="u0", time_limit=40.0),
             SimJob(1, 1.0, 5.0, Resources.parse({"cpu": 1, "gpu": 2}), user="u0", time_limit=10.0),
             SimJob(2, 2.0, 10.0, Resources.parse({"cpu": 1, "gpu": 4}), user="u1", priority=5, time_limit=20.0)]
    scheduling = Scheduling.make(policy="best-effort-fifo", backfill=True, preemption=True)
    daemon = daemon_run(trace, scheduling)
    sim, preemptions = sim_run(trace, scheduling)
    assert {j: (s, e) for j, (s, e, _) in daemon.items()} == {j: (s, e) for j, (s, e, _) in sim.items()}
    assert daemon[2][:2] == (2.0, 12.0)                  # started at once, preempting job 0
    assert daemon[0][2] == 1 and preemptions == 1        # job 0 ran again from 12 to 32
    assert daemon[0][:2] == (12.0, 32.0)
