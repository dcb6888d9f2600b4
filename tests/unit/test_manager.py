"""The manager on an in-memory store and a fake executor: decisions applied, recovery."""

from __future__ import annotations

import pytest

from manager_helpers import Clock, FakeExecutor, manager

from corral.errors import Infeasible
from corral.executors.base import ExitStatus, Running, StopReason
from corral.job import JobState, Reason
from corral.spec import build_spec
from corral.store import MemoryStore

GiB = 2**30


def spec(gpus=0, cpus="1", **kw):
    req = {"cpu": cpus}
    if gpus:
        req["nvidia.com/gpu"] = gpus
    return build_spec(["train"], requests=req, **kw)


def test_submit_starts_what_fits_and_explains_the_rest():
    m = manager()
    jobs = m.submit([spec(gpus=2), spec(gpus=2), spec(gpus=1)])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    assert sorted(ex.launched) == [1, 2]
    assert {ex.launched[1].env["CUDA_VISIBLE_DEVICES"], ex.launched[2].env["CUDA_VISIBLE_DEVICES"]} == {"0,1", "2,3"}
    assert m.store.get_job(3).state is JobState.PENDING
    assert m.waiting_for(3).message == "insufficient nvidia.com/gpu: requests 1, free 0 of 4"
    assert m.queue_positions() == {3: 1}
    assert [j.id for j in jobs] == [1, 2, 3]


def test_job_end_releases_and_schedules_next():
    m = manager()
    m.submit([spec(gpus=4), spec(gpus=1)])
    m.on_exit(1, ExitStatus(ended_at=5.0, exit_code=0))
    job = m.store.get_job(1)
    assert (job.state, job.reason, job.exit_code) == (JobState.SUCCEEDED, Reason.COMPLETED, 0)
    assert m.store.get_job(2).state is JobState.RUNNING
    assert list(m.running) == [2]
    assert m.store.active_allocations().keys() == {2}


@pytest.mark.parametrize("status, state, reason", [
    (ExitStatus(1.0, exit_code=3), JobState.FAILED, Reason.ERROR),
    (ExitStatus(1.0, signal=9), JobState.FAILED, Reason.SIGNALED),
    (ExitStatus(1.0, launch_error="command not found or not executable: nope", exit_code=127),
     JobState.FAILED, Reason.LAUNCH_FAILED),
    (ExitStatus(1.0, signal=15, stopped_for=StopReason.CANCEL), JobState.CANCELLED, Reason.CANCELLED),
    (ExitStatus(1.0, lost=True), JobState.FAILED, Reason.SUPERVISOR_LOST),
])
def test_every_end_is_classified_and_releases_once(status, state, reason):
    m = manager()
    m.submit([spec(gpus=1)])
    m.on_exit(1, status)
    job = m.store.get_job(1)
    assert (job.state, job.reason) == (state, reason)
    assert m.store.active_allocations() == {}
    assert m.driver.state.snapshot.nodes["n1"].free_gpus == {0, 1, 2, 3}
    m.on_exit(1, status)                      # a duplicate report changes nothing
    assert m.store.get_job(1).state is state


def test_cancel_pending_and_running():
    m = manager(gpus=1)
    m.submit([spec(gpus=1), spec(gpus=1)])
    assert m.cancel(2) == "cancelled"
    assert m.store.get_job(2).state is JobState.CANCELLED
    assert m.cancel(1) == "stopping"
    assert m.executor.stopped == [1]          # type: ignore[attr-defined]
    assert m.cancel(2) == "already cancelled"


def test_infeasible_batch_stores_nothing():
    m = manager(gpus=4, cores=2)
    with pytest.raises(Infeasible) as err:
        m.submit([spec(gpus=1), spec(gpus=8, cpus="64")])
    assert err.value.lines == [
        "job 2: insufficient cpu: job requests 64, node has 2 allocatable",
        "job 2: insufficient nvidia.com/gpu: job requests 8, node has 4 allocatable",
    ]
    assert m.store.list_jobs() == []


def test_default_cpu_request_applies():
    m = manager()
    [job] = m.submit([build_spec(["x"])])
    assert job.spec.requests == {"cpu": 1000}


def test_recovery_adopts_finishes_and_relaunches():
    store = MemoryStore()
    first = manager(store=store, gpus=4)
    first.submit([spec(gpus=1), spec(gpus=1), spec(gpus=1), spec(gpus=4), spec(gpus=1)])
    assert sorted(first.running) == [1, 2, 3, 5]  # job 4 (4 GPUs) waits, job 5 behind it fits
    # The daemon dies here. Jobs 1 and 5 still run, job 2 ended with exit 3 meanwhile,
    # job 3 was admitted but never launched.
    ex = FakeExecutor(adopt_results={1: Running(1, "1001"), 5: Running(5, "1005"), 2: ExitStatus(50.0, exit_code=3)})
    second = manager(store=store, executor=ex, gpus=4)
    counts = second.recover()
    assert counts == {"pending": 1, "adopted": 2, "ended": 1, "relaunched": 1}
    assert store.get_job(2).exit_code == 3 and store.get_job(2).state is JobState.FAILED
    assert sorted(ex.launched) == [3]            # relaunched on its recorded allocation
    recorded = store.get_job(3).allocation
    assert ex.launched[3].env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, recorded.gpus))
    # No GPU is handed out twice: the pending 4-GPU job still waits for 1, 3 and 5.
    held = [g for a in store.active_allocations().values() for g in a.gpus]
    assert len(held) == len(set(held))
    assert store.get_job(4).state is JobState.PENDING
    assert second.waiting_for(4).message == "insufficient nvidia.com/gpu: requests 4, free 1 of 4"


def test_time_limit_stops_the_job_and_it_ends_timed_out():
    m = manager()
    m.submit([spec(time_limit="90s"), spec()])
    clock: Clock = m.clock  # type: ignore[assignment]
    assert m.lifecycle.enforce_time_limits() == []             # not yet
    clock.now += 200
    assert m.lifecycle.enforce_time_limits() == [1]
    assert m.executor.why == {1: StopReason.TIME_LIMIT}  # type: ignore[attr-defined]
    m.on_exit(1, ExitStatus(clock.now, signal=15, stopped_for=StopReason.TIME_LIMIT))
    job = m.store.get_job(1)
    assert (job.state, job.reason, job.message) == (JobState.FAILED, Reason.TIMED_OUT,
                                                    "time limit reached (signal SIGTERM)")
    assert all(live.deadline is None for live in m.driver.jobs.values())
    assert m.lifecycle.enforce_time_limits() == []             # job 2 has no limit


def sjf_manager(store=None, executor=None):
    return manager(store, executor, gpus=1, policy="sjf")


def test_sjf_orders_jobs_without_a_time_limit_by_their_users_history():
    store = MemoryStore()
    m = sjf_manager(store)
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    # History: alice's jobs take 10 s, bob's 1,000 s (started at the clock's 1001 and 1002).
    m.submit([spec(gpus=1)], user="alice")
    m.on_exit(1, ExitStatus(ended_at=m.store.get_job(1).started_at + 10, exit_code=0))
    m.submit([spec(gpus=1)], user="bob")
    m.on_exit(2, ExitStatus(ended_at=m.store.get_job(2).started_at + 1000, exit_code=0))
    assert m.history.predict("alice") == 10 and m.history.predict("bob") == 1000
    # The GPU busy: bob's job (3), then a newcomer's (4, no history), then alice's (5) wait.
    m.submit([spec(gpus=1)], user="carol")                      # 3: runs now
    m.submit([spec(gpus=1)], user="bob")                        # 4
    m.submit([spec(gpus=1)], user="dave")                       # 5: no history, goes last
    m.submit([spec(gpus=1)], user="alice")                      # 6
    m.submit([spec(gpus=1, time_limit=60)], user="bob")         # 7: its own limit, 60 s
    assert m.store.get_job(3).state is JobState.RUNNING
    order = []
    for running in (3, 6, 7, 4):
        m.on_exit(running, ExitStatus(ended_at=m.store.get_job(running).started_at + 1, exit_code=0))
        order.append(next(j for j in ex.launched if j not in (1, 2, 3, *order)))
    assert order == [6, 7, 4, 5]       # alice (10 s), bob's 60 s limit, bob (1,000 s), dave (unknown)

    # A restarted daemon learns the same history back from the store.
    again = sjf_manager(store)
    again.recover()
    assert again.history.predict("alice") == pytest.approx((10 + 1) / 2)   # the median of 10 s and job 6's 1 s
    assert again.history.predict("bob") == 1                                 # the median of 1000, 1, 1
    assert again.history.samples("bob") == 3 and again.history.predict("dave") is None   # 5 still runs


def test_sjf_aging_in_the_daemon_estimates_by_the_users_jobs_of_the_same_gpu_count():
    m = manager(None, None, gpus=2, policy="sjf-aging")
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    # alice's 2-GPU jobs take 1,000 s, her 1-GPU ones 10 s.
    m.submit([spec(gpus=2)], user="alice")
    m.on_exit(1, ExitStatus(ended_at=m.store.get_job(1).started_at + 1000, exit_code=0))
    m.submit([spec(gpus=1)], user="alice")
    m.on_exit(2, ExitStatus(ended_at=m.store.get_job(2).started_at + 10, exit_code=0))
    assert m.history.predict("alice", gpus=2) == 1000 and m.history.predict("alice", gpus=1) == 10
    m.submit([spec(gpus=2)], user="carol")                      # 3: runs now, both GPUs
    m.submit([spec(gpus=2)], user="alice")                      # 4: 1,000 s
    m.submit([spec(gpus=1)], user="alice")                      # 5: 10 s
    assert m.driver.pending.get(4).estimate == 1000 and m.driver.pending.get(5).estimate == 10
    assert m.driver.pending.get(5).submitted == m.store.get_job(5).submitted_at
    m.on_exit(3, ExitStatus(ended_at=m.store.get_job(3).started_at + 1, exit_code=0))
    assert 5 in ex.launched and 4 not in ex.launched             # the shorter one first
    # (sjf, per user only, would tell both jobs the median of 1,000 s and 10 s.)


def test_failed_and_cancelled_jobs_teach_nothing():
    m = sjf_manager()
    m.submit([spec(gpus=1)], user="alice")
    m.on_exit(1, ExitStatus(ended_at=m.store.get_job(1).started_at + 5, exit_code=1))
    m.submit([spec(gpus=1)], user="alice")
    m.cancel(2)
    assert m.history.predict("alice") is None


def test_ends_the_store_refuses_are_kept_and_recorded_when_it_takes_them_again():
    import sqlite3

    m = manager()
    m.submit([spec(gpus=4), spec(gpus=4)])
    real = m.store.apply_ends
    faults = [sqlite3.OperationalError("database or disk is full")]

    def apply(*args, **kw):
        if faults:
            raise faults.pop()
        return real(*args, **kw)

    m.store.apply_ends = apply                       # type: ignore[method-assign]
    m.on_exit(1, ExitStatus(ended_at=5.0, exit_code=3))   # must not raise
    assert m.store.get_job(1).state is JobState.RUNNING and list(m.running) == [1]   # nothing recorded ...
    m.lifecycle.flush()                              # ... until the store takes it (a timer does this)
    job = m.store.get_job(1)
    assert (job.state, job.exit_code) == (JobState.FAILED, 3)   # the real exit code, not lost
    assert m.store.get_job(2).state is JobState.RUNNING          # and its GPUs went to the next job
