"""Arrays, dependencies, retries with backoff, hold and release -- the manager's gates,
on an in-memory store and a fake executor (the test decides how jobs end)."""

from __future__ import annotations

import pytest

from manager_helpers import FakeExecutor
from manager_helpers import manager as make_manager

from corral.daemon.lifecycle import backoff
from corral.daemon.manager import Manager
from corral.errors import Infeasible, InvalidTransition
from corral.executors.base import ExitStatus, StopReason
from corral.job import JobState, Reason
from corral.spec import build_spec
from corral.store import MemoryStore

GiB = 2**30


def manager(cores: int = 8, gpus: int = 0, store=None) -> Manager:
    return make_manager(store, cores=cores, gpus=gpus, memory=64 * GiB, tick=0.0)


def spec(**kw):
    return build_spec(["train"], requests={"cpu": "1"}, **kw)


def end(m: Manager, job_id: int, code: int = 0) -> None:
    m.on_exit(job_id, ExitStatus(ended_at=m.clock(), exit_code=code))


def state(m: Manager, job_id: int) -> tuple[JobState, Reason]:
    job = m.store.get_job(job_id)
    return job.state, job.reason


# arrays ------------------------------------------------------------------------------------

def test_array_becomes_one_job_per_index_with_its_index_in_the_environment():
    m = manager()
    jobs = m.submit([spec(array="0-3,10")])
    assert [(j.id, j.array_id, j.array_index) for j in jobs] == [(1, 1, 0), (2, 1, 1), (3, 1, 2), (4, 1, 3), (5, 1, 10)]
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    assert {ex.launched[j].env["CORRAL_ARRAY_INDEX"] for j in ex.launched} == {"0", "1", "2", "3", "10"}
    assert all(r.env["CORRAL_ARRAY_ID"] == "1" for r in ex.launched.values())


def test_array_throttle_runs_at_most_n_at_once_in_index_order():
    m = manager(cores=8)
    m.submit([spec(array="0-5%2")])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    assert ex.order == [1, 2]
    assert state(m, 3) == (JobState.PENDING, Reason.ARRAY_LIMIT)
    assert m.store.get_job(3).message == "array 1 has 2 tasks queued or running (limit %2)"
    end(m, 2)
    assert ex.order == [1, 2, 3]
    end(m, 1, code=1)                                 # a failed task frees its slot too
    end(m, 3)
    assert ex.order == [1, 2, 3, 4, 5]
    end(m, 4)
    end(m, 5)
    assert ex.order[-1] == 6


def test_cancelling_a_throttled_task_and_a_running_one():
    m = manager()
    m.submit([spec(array="0-3%1")])
    assert m.cancel(3) == "cancelled"                 # waiting for a slot
    assert state(m, 3) == (JobState.CANCELLED, Reason.CANCELLED)
    end(m, 1)
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    assert ex.order == [1, 2]
    end(m, 2)
    assert ex.order == [1, 2, 4]


# dependencies ------------------------------------------------------------------------------

def test_afterok_waits_then_runs():
    m = manager()
    [first] = m.submit([spec()])
    [second] = m.submit([spec(dependencies=str(first.id))])
    assert state(m, second.id) == (JobState.PENDING, Reason.DEPENDENCY)
    assert m.store.get_job(second.id).message == "waiting for job 1 (afterok; it is Running)"
    end(m, first.id)
    assert state(m, second.id)[0] is JobState.RUNNING


def test_failed_dependency_ends_the_chain_instead_of_leaving_it_stuck():
    m = manager()
    [a] = m.submit([spec()])
    [b] = m.submit([spec(dependencies=f"afterok:{a.id}")])
    [c] = m.submit([spec(dependencies=f"afterany:{b.id}")])
    [d] = m.submit([spec(dependencies=f"afternotok:{a.id}")])
    end(m, a.id, code=2)
    job = m.store.get_job(b.id)
    assert (job.state, job.reason) == (JobState.CANCELLED, Reason.DEPENDENCY_FAILED)
    assert job.message == "dependency afterok:1 not met: job 1 ended Failed (Error)"
    assert state(m, c.id)[0] is JobState.RUNNING      # afterany: b ended, any way
    assert state(m, d.id)[0] is JobState.RUNNING      # afternotok: a failed


def test_afternotok_on_success_fails_and_dependencies_on_finished_jobs_are_checked_at_submit():
    m = manager()
    [a] = m.submit([spec()])
    end(m, a.id)
    [b] = m.submit([spec(dependencies=f"afternotok:{a.id}")])
    assert state(m, b.id) == (JobState.CANCELLED, Reason.DEPENDENCY_FAILED)
    [c] = m.submit([spec(dependencies=f"afterok:{a.id}")])
    assert state(m, c.id)[0] is JobState.RUNNING


def test_unknown_dependency_is_refused_at_submit():
    m = manager()
    with pytest.raises(Infeasible) as info:
        m.submit([spec(dependencies="42")])
    assert info.value.lines == ["invalid value for after: 42 (no such job)"]
    assert m.store.list_jobs() == []


def test_cancelling_a_dependency_fails_afterok_dependents():
    m = manager(cores=1)
    m.submit([spec()])
    [a] = m.submit([spec()])                          # pending (one core)
    [b] = m.submit([spec(dependencies=str(a.id))])
    m.cancel(a.id)
    assert state(m, b.id) == (JobState.CANCELLED, Reason.DEPENDENCY_FAILED)


# retries -----------------------------------------------------------------------------------

def test_retries_with_backoff_then_gives_up():
    m = manager()
    [job] = m.submit([spec(retries=2)])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    end(m, job.id, code=3)
    j = m.store.get_job(job.id)
    assert (j.state, j.reason) == (JobState.PENDING, Reason.RETRY_BACKOFF)
    assert j.message == "exit code 3; retry 1 of 2 in 10s" and j.not_before == m.clock() + backoff(1)
    assert ex.order == [job.id]                       # waits out the backoff
    m.clock.now = j.not_before                        # type: ignore[attr-defined]
    m.admission.backoff_over(job.id)
    assert ex.order == [job.id, job.id] and m.store.get_job(job.id).attempts == 2
    end(m, job.id, code=3)
    assert m.store.get_job(job.id).message == "exit code 3; retry 2 of 2 in 20s"
    m.clock.now += 20                                 # type: ignore[attr-defined]
    m.admission.backoff_over(job.id)
    end(m, job.id, code=3)
    assert state(m, job.id) == (JobState.FAILED, Reason.ERROR)
    assert m.store.get_job(job.id).attempts == 3


def test_no_retry_after_success_cancel_or_time_limit():
    m = manager()
    [a, b] = m.submit([spec(retries=3), spec(retries=3)])
    end(m, a.id, code=0)
    m.on_exit(b.id, ExitStatus(ended_at=m.clock(), signal=15, stopped_for=StopReason.TIME_LIMIT))
    assert state(m, a.id)[0] is JobState.SUCCEEDED
    assert state(m, b.id) == (JobState.FAILED, Reason.TIMED_OUT)


# hold / release ----------------------------------------------------------------------------

def test_hold_at_submit_and_release():
    m = manager()
    [job] = m.submit([spec(hold=True)])
    assert state(m, job.id) == (JobState.PENDING, Reason.HELD)
    assert m.queue_positions() == {}
    assert m.release([job.id], who="alice") == [job.id]
    assert state(m, job.id)[0] is JobState.RUNNING


def test_hold_a_queued_job_and_release_it_later():
    m = manager(cores=1)
    m.submit([spec()])
    [waiting] = m.submit([spec()])
    assert m.hold([waiting.id], who="alice") == [waiting.id]
    job = m.store.get_job(waiting.id)
    assert (job.reason, job.message) == (Reason.HELD, "held by alice")
    end(m, 1)
    assert state(m, waiting.id) == (JobState.PENDING, Reason.HELD)   # the free core is not its
    m.release([waiting.id])
    assert state(m, waiting.id)[0] is JobState.RUNNING
    with pytest.raises(InvalidTransition):
        m.hold([waiting.id])                          # running: cannot be held


def test_recovery_keeps_gates(tmp_path):
    from corral.store import SqliteStore

    store = SqliteStore(tmp_path / "c.db")
    m = manager(store=store)
    m.submit([spec(array="0-3%1")])
    [held] = m.submit([spec(hold=True)])
    [dep] = m.submit([spec(dependencies="1")])       # array 1: every task of it
    # A new daemon on the same store: the running task keeps its slot, the rest wait.
    ex = FakeExecutor()
    again = make_manager(store, ex, cores=8, gpus=0, memory=64 * GiB, tick=0.0)
    again.recover()
    assert ex.order == [1]                            # relaunched on its recorded allocation
    assert state(again, 2)[1] is Reason.ARRAY_LIMIT and state(again, held.id)[1] is Reason.HELD
    assert state(again, dep.id)[1] is Reason.DEPENDENCY
    end(again, 1)
    assert ex.order == [1, 2]
    assert again.store.get_job(dep.id).message == "waiting for array 1 (afterok; 1 of 4 tasks ended)"
    for task in (2, 3, 4):
        end(again, task)
    assert ex.order == [1, 2, 3, 4, dep.id]


def test_a_held_job_whose_dependency_fails_ends_too():
    m = manager()
    [a] = m.submit([spec()])
    [b] = m.submit([spec(dependencies=str(a.id), hold=True)])
    assert state(m, b.id) == (JobState.PENDING, Reason.HELD)
    end(m, a.id, code=1)
    assert state(m, b.id) == (JobState.CANCELLED, Reason.DEPENDENCY_FAILED)
    [c] = m.submit([spec(dependencies=f"afterany:{a.id}", hold=True)])
    assert state(m, c.id) == (JobState.PENDING, Reason.HELD)      # met, but still held
    m.release([c.id])
    assert state(m, c.id)[0] is JobState.RUNNING


# update --------------------------------------------------------------------------------------

def test_update_priority_reorders_and_users_may_only_lower():
    from corral.errors import PermissionDenied

    m = manager(cores=1)
    m.submit([spec()])
    [a, b] = m.submit([spec(), spec()])
    assert m.queue_positions() == {a.id: 1, b.id: 2}
    assert m.update([b.id], priority=5) == [(b.id, "priority 0 -> 5")]
    assert m.queue_positions() == {b.id: 1, a.id: 2}
    assert m.store.events(b.id)[-1].message == "updated: priority 0 -> 5"
    with pytest.raises(PermissionDenied):
        m.update([a.id, b.id], priority=9, admin=False)      # all or none
    assert m.store.get_job(a.id).spec.priority == 0
    assert m.update([b.id], priority=1, admin=False) == [(b.id, "priority 5 -> 1")]
    with pytest.raises(InvalidTransition):
        m.update([1], priority=3)                             # running: time limit only


def test_update_time_limit_of_a_running_job():
    from corral.errors import PermissionDenied

    m = manager()
    [job] = m.submit([spec(time_limit="1h")])
    with pytest.raises(PermissionDenied):
        m.update([job.id], time_limit=7200, admin=False)
    assert m.update([job.id], time_limit=60, admin=False) == [(job.id, "time limit 1h -> 1m")]
    assert m.driver.jobs[job.id].deadline == m.store.get_job(job.id).started_at + 60
