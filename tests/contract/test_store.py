"""Contract tests for corral.store: one suite, run against every implementation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from corral.errors import CorralError, InvalidTransition, NotFound
from corral.job import TRANSITIONS, Allocation, Job, JobState, Reason
from corral.resources import Resources
from corral.spec import JobSpec
from corral.job import Piece
from corral.store import SCHEMA_VERSION, Event, Finish, JobUsage, MemoryStore, Requeue, SqliteStore, Store, UsageRow

T0 = 1_700_000_000.0


def make_job(name: str = "", **spec_fields) -> Job:
    spec_fields.setdefault("command", ("true",))
    spec_fields.setdefault("requests", Resources({"cpu": 1000}))
    return Job(id=0, spec=JobSpec(name=name, **spec_fields))


def alloc(gpus=(), cores=(), cpu=1000) -> Allocation:
    return Allocation(node="node0", requests=Resources({"cpu": cpu, "memory": 2**30}),
                      gpus=tuple(gpus), cores=tuple(cores))


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "corral.db")
    yield s
    s.close()


class TestStoreContract:
    # Jobs -----------------------------------------------------------------------------
    def test_add_get_list(self, store):
        spec = JobSpec(command=("python", "train.py", "--lr", "0.1"), name="train",
                       env={"A": "1"}, workdir="/tmp", labels={"team": "ml"}, priority=5,
                       time_limit=3600, requests=Resources({"cpu": 2000, "memory": 2**33, "nvidia.com/gpu": 1}),
                       limits=Resources({"cpu": 4000, "memory": 2**33, "nvidia.com/gpu": 1}))
        added = store.add_jobs([Job(id=0, spec=spec, base_env={"PATH": "/usr/bin"}), make_job("b")], T0)
        assert [j.id for j in added] == [1, 2]
        first = added[0]
        assert first.spec == spec
        assert first.state is JobState.PENDING and first.reason is Reason.QUEUED
        assert first.submitted_at == T0 and first.seq == 1 and first.base_env == {"PATH": "/usr/bin"}
        assert first.allocation is None and first.started_at is None
        assert store.get_job(1) == first
        assert store.get_job(2) == added[1]
        assert store.list_jobs() == added
        assert store.list_jobs(limit=1) == [first]
        assert store.list_jobs(states={JobState.RUNNING}) == []
        assert store.list_jobs(states=set()) == []
        assert store.get_jobs([2, 99, 1, 2]) == added

    def test_get_missing_job(self, store):
        with pytest.raises(NotFound, match=r"^no such job: 42$"):
            store.get_job(42)

    def test_empty_batch(self, store):
        assert store.add_jobs([], T0) == []
        assert store.add_jobs([make_job()], T0)[0].id == 1

    def test_ids_increase_and_seq(self, store):
        a = store.add_jobs([make_job() for _ in range(3)], T0)
        b = store.add_jobs([make_job() for _ in range(2)], T0 + 1)
        assert [j.id for j in a + b] == [1, 2, 3, 4, 5]
        assert [j.seq for j in a + b] == [1, 2, 3, 4, 5]

    def test_idempotency_keys(self, store):
        assert store.jobs_for_key("k1") is None
        first = store.add_jobs([make_job(), make_job()], T0, key="k1")
        assert [j.id for j in store.jobs_for_key("k1")] == [j.id for j in first]
        with pytest.raises(Exception):
            store.add_jobs([make_job()], T0, key="k1")      # a key is stored once
        assert len(store.list_jobs()) == 2                   # ... and a refused batch stores nothing
        store.add_jobs([make_job()], T0 + 100, key="k2")
        assert store.forget_keys(T0 + 50) == 1
        assert store.jobs_for_key("k1") is None and store.jobs_for_key("k2") is not None

    def test_ids_can_be_reserved(self, store):
        store.reserve_ids_above(40)                  # an empty store starting above old job dirs
        assert [j.id for j in store.add_jobs([make_job(), make_job()], T0)] == [41, 42]
        store.reserve_ids_above(10)                  # never backwards
        assert store.add_jobs([make_job()], T0)[0].id == 43

    def test_returned_jobs_are_copies(self, store):
        job = make_job(env={"X": "1"})
        [stored] = store.add_jobs([job], T0)
        stored.state = JobState.FAILED
        stored.spec.env["X"] = "changed"
        stored.base_env["Y"] = "2"
        job.base_env["Z"] = "3"
        fresh = store.get_job(stored.id)
        assert fresh.state is JobState.PENDING
        assert fresh.spec.env == {"X": "1"} and fresh.base_env == {}

    def test_list_by_state(self, store):
        store.add_jobs([make_job() for _ in range(4)], T0)
        store.start_jobs([(2, alloc()), (4, alloc())], T0 + 1)
        assert [j.id for j in store.list_jobs({JobState.RUNNING})] == [2, 4]
        assert [j.id for j in store.list_jobs({JobState.PENDING})] == [1, 3]
        assert [j.id for j in store.list_jobs({JobState.PENDING, JobState.RUNNING}, limit=3)] == [1, 2, 3]

    # Lifecycle ------------------------------------------------------------------------
    def test_start_job(self, store):
        store.add_jobs([make_job()], T0)
        a = alloc(gpus=(0, 3), cores=(4, 5))
        store.start_jobs([(1, a)], T0 + 5)
        job = store.get_job(1)
        assert job.state is JobState.RUNNING and job.reason is Reason.LAUNCHED
        assert job.started_at == T0 + 5 and job.allocation == a
        assert store.active_allocations() == {1: a}

    def test_start_batch_is_atomic(self, store):
        store.add_jobs([make_job() for _ in range(3)], T0)
        store.start_jobs([(2, alloc())], T0)
        with pytest.raises(InvalidTransition, match="job 2: Running -> Running"):
            store.start_jobs([(1, alloc()), (2, alloc()), (3, alloc())], T0 + 1)
        assert [j.state for j in store.list_jobs()] == [JobState.PENDING, JobState.RUNNING, JobState.PENDING]
        assert set(store.active_allocations()) == {2}
        assert len(store.events()) == 4

    def test_start_batch_unknown_job_rolls_back(self, store):
        store.add_jobs([make_job()], T0)
        with pytest.raises(NotFound):
            store.start_jobs([(1, alloc()), (7, alloc())], T0)
        assert store.get_job(1).state is JobState.PENDING
        assert store.active_allocations() == {}

    def test_start_same_job_twice_in_batch(self, store):
        store.add_jobs([make_job()], T0)
        with pytest.raises(InvalidTransition):
            store.start_jobs([(1, alloc()), (1, alloc())], T0)
        assert store.get_job(1).state is JobState.PENDING

    @pytest.mark.parametrize("target", [s for s in JobState if s.terminal])
    @pytest.mark.parametrize("origin", list(JobState))
    def test_transition_table_enforced(self, store, origin, target):
        reasons = {JobState.SUCCEEDED: Reason.COMPLETED, JobState.FAILED: Reason.ERROR,
                   JobState.CANCELLED: Reason.CANCELLED}
        store.add_jobs([make_job()], T0)
        if origin is not JobState.PENDING:
            store.start_jobs([(1, alloc())], T0)
        if origin.terminal:
            store.finish_job(1, origin, reasons[origin], ended_at=T0)
        if target in TRANSITIONS[origin]:
            assert store.finish_job(1, target, reasons[target], ended_at=T0 + 1) is True
            assert store.get_job(1).state is target
        else:
            before = store.get_job(1)
            with pytest.raises(InvalidTransition):
                store.finish_job(1, target, reasons[target], ended_at=T0 + 1)
            assert store.get_job(1) == before

    def test_finish_needs_terminal_state_and_matching_reason(self, store):
        store.add_jobs([make_job()], T0)
        with pytest.raises(InvalidTransition):
            store.finish_job(1, JobState.RUNNING, Reason.LAUNCHED, ended_at=T0)
        with pytest.raises(CorralError, match="does not go with"):
            store.finish_job(1, JobState.CANCELLED, Reason.COMPLETED, ended_at=T0)
        assert store.get_job(1).state is JobState.PENDING
        with pytest.raises(NotFound):
            store.finish_job(9, JobState.FAILED, Reason.ERROR, ended_at=T0)

    def test_finish_records_exit_and_releases_once(self, store):
        store.add_jobs([make_job(), make_job()], T0)
        store.start_jobs([(1, alloc(gpus=(0,))), (2, alloc(gpus=(1,)))], T0 + 1)
        assert store.finish_job(1, JobState.FAILED, Reason.SIGNALED, message="killed by SIGKILL",
                                exit_code=None, signal=9, ended_at=T0 + 2) is True
        job = store.get_job(1)
        assert (job.state, job.reason, job.message) == (JobState.FAILED, Reason.SIGNALED, "killed by SIGKILL")
        assert (job.exit_code, job.signal, job.ended_at) == (None, 9, T0 + 2)
        assert job.allocation == alloc(gpus=(0,))  # history keeps what it held
        assert set(store.active_allocations()) == {2}
        with pytest.raises(InvalidTransition):
            store.finish_job(1, JobState.CANCELLED, Reason.CANCELLED, ended_at=T0 + 3)
        assert set(store.active_allocations()) == {2}
        assert store.get_job(1) == job
        store.finish_job(2, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 4)
        assert store.active_allocations() == {}
        assert store.get_job(2).exit_code == 0

    def test_recent_run_times_are_the_last_successes(self, store):
        store.add_jobs([make_job(), make_job(), make_job(), make_job(), make_job()], T0)
        store.start_jobs([(1, alloc()), (2, alloc()), (3, alloc()), (4, alloc())], T0 + 1)
        store.finish_job(2, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 31)   # 30 s
        store.finish_job(1, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 61)   # 60 s, later
        store.finish_job(3, JobState.FAILED, Reason.ERROR, exit_code=1, ended_at=T0 + 5)           # not a success
        store.finish_job(5, JobState.CANCELLED, Reason.CANCELLED, ended_at=T0 + 6)                 # never ran
        assert store.recent_run_times(10) == [("", 30.0), ("", 60.0)]      # oldest end first
        assert store.recent_run_times(1) == [("", 60.0)]                   # the latest
        assert store.recent_run_times(0) == []

    def test_cancel_pending(self, store):
        store.add_jobs([make_job()], T0)
        store.finish_job(1, JobState.CANCELLED, Reason.CANCELLED, message="by user", ended_at=T0 + 1)
        job = store.get_job(1)
        assert job.state is JobState.CANCELLED and job.allocation is None and job.started_at is None

    def test_finish_jobs_batch_is_atomic(self, store):
        store.add_jobs([make_job(), make_job(), make_job()], T0)
        store.start_jobs([(1, alloc(gpus=(0,))), (2, alloc(gpus=(1,)))], T0)
        store.finish_jobs([Finish(1, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 1),
                           Finish(2, JobState.FAILED, Reason.ERROR, "exit code 3", exit_code=3, ended_at=T0 + 2)])
        assert [store.get_job(i).state for i in (1, 2)] == [JobState.SUCCEEDED, JobState.FAILED]
        assert store.get_job(2).exit_code == 3
        assert store.active_allocations() == {}
        store.start_jobs([(3, alloc(gpus=(0,)))], T0 + 3)
        with pytest.raises(InvalidTransition):   # job 1 is already terminal: nothing changes
            store.finish_jobs([Finish(3, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 4),
                               Finish(1, JobState.FAILED, Reason.ERROR, ended_at=T0 + 4)])
        assert store.get_job(3).state is JobState.RUNNING
        assert 3 in store.active_allocations()
        with pytest.raises(NotFound):
            store.finish_jobs([Finish(99, JobState.FAILED, Reason.ERROR, ended_at=T0)])

    def test_set_reason(self, store):
        store.add_jobs([make_job(), make_job()], T0)
        store.set_reason(1, Reason.INSUFFICIENT_RESOURCES, "needs cpu=2", now=T0 + 1)
        job = store.get_job(1)
        assert (job.state, job.reason, job.message) == (JobState.PENDING, Reason.INSUFFICIENT_RESOURCES, "needs cpu=2")
        assert len(store.events(1)) == 2
        # same reason, new message: stored, but no event
        store.set_reason(1, Reason.INSUFFICIENT_RESOURCES, "needs cpu=3", now=T0 + 2)
        assert store.get_job(1).message == "needs cpu=3"
        assert len(store.events(1)) == 2
        store.set_reason(1, Reason.INSUFFICIENT_RESOURCES, "needs cpu=3", now=T0 + 3)
        assert len(store.events(1)) == 2
        last = store.events(1)[-1]
        assert (last.from_state, last.to_state, last.reason, last.ts) == (
            JobState.PENDING, JobState.PENDING, Reason.INSUFFICIENT_RESOURCES, T0 + 1)
        # wrong reason for the state, unknown job, finished job
        with pytest.raises(CorralError, match="does not go with"):
            store.set_reason(1, Reason.LAUNCHED, "")
        with pytest.raises(NotFound):
            store.set_reason(9, Reason.PRIORITY, "")
        store.finish_job(2, JobState.CANCELLED, Reason.CANCELLED, ended_at=T0)
        with pytest.raises(InvalidTransition):
            store.set_reason(2, Reason.PRIORITY, "")

    def test_set_reasons_batch_is_atomic(self, store):
        store.add_jobs([make_job() for _ in range(3)], T0)
        store.set_reasons([(1, Reason.PRIORITY, "behind 0"), (2, Reason.PRIORITY, "behind 1")], now=T0)
        assert [j.reason for j in store.list_jobs()] == [Reason.PRIORITY, Reason.PRIORITY, Reason.QUEUED]
        with pytest.raises(NotFound):
            store.set_reasons([(3, Reason.INSUFFICIENT_RESOURCES, "x"), (8, Reason.PRIORITY, "")], now=T0)
        assert store.get_job(3).reason is Reason.QUEUED

    # Events ---------------------------------------------------------------------------
    def test_events_in_order(self, store):
        store.add_jobs([make_job(), make_job()], T0)
        store.set_reason(1, Reason.INSUFFICIENT_RESOURCES, "no gpu", now=T0 + 1)
        store.start_jobs([(1, alloc())], T0 + 2)
        store.finish_job(1, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 3)
        store.finish_job(2, JobState.CANCELLED, Reason.CANCELLED, message="by user", ended_at=T0 + 4)
        events = store.events()
        assert all(isinstance(e, Event) for e in events)
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert [(e.job_id, e.ts, e.from_state, e.to_state, e.reason, e.message) for e in events] == [
            (1, T0, None, JobState.PENDING, Reason.QUEUED, ""),
            (2, T0, None, JobState.PENDING, Reason.QUEUED, ""),
            (1, T0 + 1, JobState.PENDING, JobState.PENDING, Reason.INSUFFICIENT_RESOURCES, "no gpu"),
            (1, T0 + 2, JobState.PENDING, JobState.RUNNING, Reason.LAUNCHED, ""),
            (1, T0 + 3, JobState.RUNNING, JobState.SUCCEEDED, Reason.COMPLETED, ""),
            (2, T0 + 4, JobState.PENDING, JobState.CANCELLED, Reason.CANCELLED, "by user"),
        ]
        assert [e.to_state for e in store.events(2)] == [JobState.PENDING, JobState.CANCELLED]
        assert store.events(limit=2) == events[-2:]
        assert store.events(1, limit=1) == [events[4]]
        assert store.events(99) == []

    # Meta -----------------------------------------------------------------------------
    def test_meta(self, store):
        assert store.get_meta("node") is None
        store.set_meta("node", '{"name": "n0"}')
        store.set_meta("node", '{"name": "n1"}')
        assert store.get_meta("node") == '{"name": "n1"}'
        with pytest.raises(TypeError):
            store.set_meta("x", 1)

    # Scale ----------------------------------------------------------------------------
    def test_thousand_job_batch(self, store):
        start = time.perf_counter()
        added = store.add_jobs([make_job(f"j{i}") for i in range(1000)], T0)
        store.start_jobs([(j.id, alloc(cpu=10)) for j in added[:500]], T0 + 1)
        assert len(store.list_jobs({JobState.PENDING})) == 500
        assert len(store.active_allocations()) == 500
        store.set_reasons([(j.id, Reason.INSUFFICIENT_RESOURCES, "full") for j in added[500:]], now=T0 + 2)
        elapsed = time.perf_counter() - start
        assert added[-1].id == 1000
        assert elapsed < 5, f"1,000-job batch took {elapsed:.2f}s"


    def test_set_reason_with_forced_event(self, store):
        store.add_jobs([make_job()], T0)
        store.start_jobs([(1, alloc(gpus=(0,)))], T0)
        store.set_reason(1, Reason.GPU_IDLE, "idle 30m: warning", now=T0 + 1, event=True)
        store.set_reason(1, Reason.GPU_IDLE, "idle 40m: sent SIGUSR1", now=T0 + 2, event=True)
        store.set_reason(1, Reason.GPU_IDLE, "idle 40m: sent SIGUSR1", now=T0 + 3)   # unchanged: nothing
        tail = [(e.ts, e.reason, e.message) for e in store.events(1)[-2:]]
        assert tail == [(T0 + 1, Reason.GPU_IDLE, "idle 30m: warning"), (T0 + 2, Reason.GPU_IDLE, "idle 40m: sent SIGUSR1")]
        assert len(store.events(1)) == 4
        with pytest.raises(CorralError):
            store.set_reason(1, Reason.QUEUED, "x", event=True)
        store.finish_job(1, JobState.SUCCEEDED, Reason.COMPLETED, ended_at=T0 + 5)
        with pytest.raises(InvalidTransition):
            store.set_reason(1, Reason.GPU_IDLE, "late", event=True)

    # Users, attempts, requeue ------------------------------------------------------------
    def test_user_kept_and_attempts_counted(self, store):
        job = make_job("u")
        job.user = "alice"
        [added] = store.add_jobs([job], T0)
        assert added.user == "alice" and added.attempts == 0
        store.start_jobs([(1, alloc())], T0 + 1)
        assert store.get_job(1).user == "alice" and store.get_job(1).attempts == 1

    def test_requeue_running_job(self, store):
        store.add_jobs([make_job("a"), make_job("b")], T0)
        store.start_jobs([(1, alloc(gpus=(0,)))], T0 + 1)
        store.requeue_job(1, Reason.REQUEUED, "GPUs idle", T0 + 5)
        job = store.get_job(1)
        assert job.state is JobState.PENDING and job.reason is Reason.REQUEUED and job.message == "GPUs idle"
        assert job.seq == 1 and job.attempts == 1 and job.allocation is None and job.started_at is None
        assert store.active_allocations() == {}
        last = store.events(1)[-1]
        assert (last.from_state, last.to_state, last.reason) == (JobState.RUNNING, JobState.PENDING, Reason.REQUEUED)
        store.start_jobs([(1, alloc(gpus=(1,)))], T0 + 6)   # starts again, on other devices
        again = store.get_job(1)
        assert again.attempts == 2 and again.allocation == alloc(gpus=(1,))
        assert store.active_allocations() == {1: alloc(gpus=(1,))}

    def test_requeue_needs_running_and_a_pending_reason(self, store):
        store.add_jobs([make_job()], T0)
        with pytest.raises(InvalidTransition):
            store.requeue_job(1, Reason.REQUEUED, "", T0)
        store.start_jobs([(1, alloc())], T0)
        with pytest.raises(CorralError):
            store.requeue_job(1, Reason.COMPLETED, "", T0)
        assert store.get_job(1).state is JobState.RUNNING
        with pytest.raises(NotFound):
            store.requeue_job(9, Reason.REQUEUED, "", T0)

    def test_owner_arrays_and_hold_at_submit(self, store):
        jobs = []
        for i in range(5):
            job = make_job(f"t{i}")
            job.uid, job.gid, job.user = 1001, 1002, "alice"
            if i < 3:
                job.array_id, job.array_index = -1, i * 10          # one array of three tasks
            elif i == 3:
                job.array_id, job.array_index = -2, 0               # a second array in the batch
            job.held = i == 4
            jobs.append(job)
        store.add_jobs([make_job("before")], T0)
        added = store.add_jobs(jobs, T0)
        assert [(j.id, j.array_id, j.array_index) for j in added] == [
            (2, 2, 0), (3, 2, 10), (4, 2, 20), (5, 5, 0), (6, None, None)]
        assert all((j.uid, j.gid, j.user) == (1001, 1002, "alice") for j in added)
        held = store.get_job(6)
        assert held.held and held.reason is Reason.HELD and held.message == "held at submit"
        assert store.events(6)[0].reason is Reason.HELD
        assert store.get_job(3) == added[1]

    def test_hold_and_release(self, store):
        store.add_jobs([make_job(), make_job(), make_job()], T0)
        store.start_jobs([(3, alloc())], T0)
        assert store.set_held([1, 2], True, "held by alice", T0 + 1) == [1, 2]
        assert store.set_held([1], True, "again", T0 + 2) == []          # already held: nothing
        job = store.get_job(1)
        assert job.held and job.reason is Reason.HELD and job.message == "held by alice"
        with pytest.raises(InvalidTransition):
            store.set_held([2, 3], False, "x", T0 + 3)                    # 3 runs: all or nothing
        assert store.get_job(2).held
        assert store.set_held([2], False, "released by alice", T0 + 4) == [2]
        job = store.get_job(2)
        assert not job.held and job.reason is Reason.QUEUED
        assert [e.reason for e in store.events(2)] == [Reason.QUEUED, Reason.HELD, Reason.QUEUED]
        with pytest.raises(NotFound):
            store.set_held([9], True, "", T0)

    def test_update_spec_of_live_jobs(self, store):
        from dataclasses import replace

        store.add_jobs([make_job("a"), make_job("b")], T0)
        job = store.get_job(1)
        store.update_spec(1, replace(job.spec, priority=7, time_limit=600), "priority 0 -> 7", T0 + 1)
        again = store.get_job(1)
        assert again.spec.priority == 7 and again.spec.time_limit == 600 and again.state is JobState.PENDING
        last = store.events(1)[-1]
        assert (last.ts, last.reason, last.message) == (T0 + 1, Reason.QUEUED, "priority 0 -> 7")
        store.start_jobs([(2, alloc())], T0)
        store.finish_job(2, JobState.SUCCEEDED, Reason.COMPLETED, ended_at=T0 + 2)
        with pytest.raises(InvalidTransition):
            store.update_spec(2, job.spec, "x", T0 + 3)

    def test_requeue_keeps_the_work_of_a_resumable_job(self, store):
        store.add_jobs([make_job()], T0)
        store.start_jobs([(1, alloc())], T0)
        assert store.get_job(1).served == 0.0
        store.apply_ends([], [Requeue(1, Reason.PREEMPTED, "preempted", T0 + 100, served=100.0)])
        assert store.get_job(1).served == 100.0
        store.start_jobs([(1, alloc())], T0 + 110)
        store.apply_ends([], [Requeue(1, Reason.PREEMPTED, "preempted", T0 + 160, served=50.0)])
        assert store.get_job(1).served == 150.0           # summed over the attempts
        store.start_jobs([(1, alloc())], T0 + 200)
        store.finish_job(1, JobState.SUCCEEDED, Reason.COMPLETED, ended_at=T0 + 230)
        # What estimates learn: every second it ran, not only the last attempt's.
        assert store.recent_run_times(1) == [("", 180.0)]

    def test_requeue_with_backoff(self, store):
        store.add_jobs([make_job()], T0)
        store.start_jobs([(1, alloc())], T0)
        store.requeue_job(1, Reason.RETRY_BACKOFF, "exit code 1: retry 1 of 3 in 10s", T0 + 5, not_before=T0 + 15)
        job = store.get_job(1)
        assert job.not_before == T0 + 15 and job.reason is Reason.RETRY_BACKOFF

    # Usage -----------------------------------------------------------------------------
    def test_usage_rows_and_totals(self, store):
        store.add_jobs([make_job("a"), make_job("b")], T0)
        rows = [
            UsageRow(1, T0, T0 + 30, cpu_seconds=15.0, memory=2**30, memory_peak=2**30, gpu_util=50.0,
                     gpu_memory=2**31, energy_j=3000.0, gpu_seconds=60.0, idle_gpu_seconds=0.0),
            UsageRow(2, T0, T0 + 30, cpu_seconds=1.0, memory=10, memory_peak=10),
            UsageRow(1, T0 + 30, T0 + 40, cpu_seconds=5.0, memory=2**29, memory_peak=3 * 2**30, gpu_util=0.0,
                     gpu_memory=2**30, energy_j=500.0, gpu_seconds=20.0, idle_gpu_seconds=20.0),
            UsageRow(1, T0 + 40, T0 + 50, cpu_seconds=1.0, gpu_util=None, gpu_seconds=20.0),
        ]
        store.record_usage(rows[:2])
        store.record_usage(rows[2:])
        totals = store.job_usage([1, 2, 3])
        assert set(totals) == {1, 2}
        one = totals[1]
        assert one.rows == 3 and one.first == T0 and one.last == T0 + 50
        assert one.cpu_seconds == 21.0 and one.memory_peak == 3 * 2**30 and one.gpu_memory_peak == 2**31
        assert one.energy_j == 3500.0 and one.gpu_seconds == 100.0 and one.idle_gpu_seconds == 20.0
        assert one.gpu_util == pytest.approx((50.0 * 30 + 0.0 * 10) / 40)   # rows without a value don't count
        assert totals[2].gpu_util is None and totals[2].gpu_memory_peak is None
        assert store.usage_rows() == sorted(rows, key=lambda r: (r.t1, r.job_id))
        assert store.usage_rows(since=T0 + 35) == rows[2:]
        assert store.usage_rows(job_id=2) == [rows[1]]

    def test_usage_for_unknown_job_records_nothing(self, store):
        store.add_jobs([make_job()], T0)
        with pytest.raises(NotFound):
            store.record_usage([UsageRow(1, T0, T0 + 1, cpu_seconds=1.0), UsageRow(7, T0, T0 + 1)])
        assert store.usage_rows() == [] and store.job_usage([1]) == {}

    # Retention -------------------------------------------------------------------------
    def test_prune_deletes_old_finished_jobs_only(self, store):
        store.add_jobs([make_job(str(i)) for i in range(4)], T0)
        store.start_jobs([(1, alloc()), (2, alloc()), (3, alloc())], T0)
        store.finish_job(1, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 10)
        store.finish_job(2, JobState.FAILED, Reason.ERROR, exit_code=1, ended_at=T0 + 100)
        store.record_usage([UsageRow(1, T0, T0 + 10, cpu_seconds=1.0), UsageRow(3, T0, T0 + 10)])
        assert store.prune(T0 + 50) == [1]
        assert [j.id for j in store.list_jobs()] == [2, 3, 4]
        assert store.events(1) == [] and store.job_usage([1]) == {} and store.usage_rows(job_id=1) == []
        assert store.usage_rows(job_id=3) != []
        assert store.prune(T0 + 10**6) == [2]          # running 3 and pending 4 stay
        assert store.active_allocations().keys() == {3}
        assert [j.id for j in store.add_jobs([make_job()], T0)] == [5]   # ids never reused

    # One transaction per cycle, one per batch of ends ----------------------------------
    def test_commit_cycle_starts_and_reasons_together(self, store):
        store.add_jobs([make_job() for _ in range(3)], T0)
        store.commit_cycle([(1, alloc(gpus=(0,)))],
                           [(2, Reason.INSUFFICIENT_RESOURCES, "insufficient cpu: requests 1, free 0 of 2"),
                            (3, Reason.PRIORITY, "waiting behind job 2 (strict order)")], T0 + 1)
        assert store.get_job(1).state is JobState.RUNNING and store.get_job(1).allocation == alloc(gpus=(0,))
        two = store.get_job(2)
        assert (two.reason, two.message) == (Reason.INSUFFICIENT_RESOURCES, "insufficient cpu: requests 1, free 0 of 2")
        assert [(e.to_state, e.reason) for e in store.events(2)] == [
            (JobState.PENDING, Reason.QUEUED), (JobState.PENDING, Reason.INSUFFICIENT_RESOURCES)]
        # The same reason with new numbers: the message follows, no new event.
        store.commit_cycle([], [(2, Reason.INSUFFICIENT_RESOURCES, "insufficient cpu: requests 1, free 1 of 2")], T0 + 2)
        assert store.get_job(2).message.endswith("free 1 of 2") and len(store.events(2)) == 2
        # Unchanged: nothing written.
        before = store.events()
        store.commit_cycle([], [(3, Reason.PRIORITY, "waiting behind job 2 (strict order)")], T0 + 3)
        assert store.events() == before

    def test_commit_cycle_is_all_or_none(self, store):
        store.add_jobs([make_job() for _ in range(2)], T0)
        store.start_jobs([(1, alloc())], T0 + 1)
        before = (store.list_jobs(), store.events(), store.active_allocations())
        with pytest.raises(InvalidTransition):          # job 1 is not pending any more
            store.commit_cycle([(2, alloc(cores=(1,))), (1, alloc(cores=(2,)))],
                               [(2, Reason.QUOTA, "queue q: quota ...")], T0 + 2)
        with pytest.raises(CorralError):                # a running reason for a pending job
            store.commit_cycle([], [(2, Reason.LAUNCHED, "")], T0 + 2)
        with pytest.raises(NotFound):
            store.commit_cycle([], [(2, Reason.QUOTA, "x"), (99, Reason.QUOTA, "y")], T0 + 2)
        assert (store.list_jobs(), store.events(), store.active_allocations()) == before

    def test_apply_ends_finishes_requeues_and_retries_in_one_batch(self, store):
        store.add_jobs([make_job() for _ in range(3)], T0)
        store.start_jobs([(1, alloc(cores=(1,))), (2, alloc(cores=(2,))), (3, alloc(cores=(3,)))], T0 + 1)
        store.apply_ends([Finish(1, JobState.SUCCEEDED, Reason.COMPLETED, "exit code 0", 0, None, T0 + 5)],
                         [Requeue(2, Reason.PREEMPTED, "preempted for job 9", T0 + 5),
                          Requeue(3, Reason.RETRY_BACKOFF, "exit code 3; retry 1 of 2 in 10s", T0 + 5,
                                  not_before=T0 + 15, retry=True)],
                         [UsageRow(1, T0 + 1, T0 + 5, cpu_seconds=2.0)])
        one, two, three = store.get_jobs([1, 2, 3])
        assert (one.state, one.exit_code) == (JobState.SUCCEEDED, 0)
        assert (two.state, two.reason, two.retried, two.not_before) == (JobState.PENDING, Reason.PREEMPTED, 0, None)
        assert (three.state, three.retried, three.not_before) == (JobState.PENDING, 1, T0 + 15)
        assert two.allocation is None and two.started_at is None and two.attempts == 1
        assert store.active_allocations() == {}
        assert store.job_usage([1])[1].cpu_seconds == 2.0
        # Retried again: the count goes on with the job.
        store.start_jobs([(3, alloc())], T0 + 20)
        store.apply_ends([], [Requeue(3, Reason.RETRY_BACKOFF, "again", T0 + 25, not_before=T0 + 45, retry=True)])
        assert store.get_job(3).retried == 2 and store.get_job(3).attempts == 2

    def test_apply_ends_is_all_or_none(self, store):
        store.add_jobs([make_job() for _ in range(2)], T0)
        store.start_jobs([(1, alloc())], T0 + 1)
        before = (store.list_jobs(), store.events(), store.active_allocations(), store.usage_rows())
        with pytest.raises(InvalidTransition):          # job 2 never ran: it cannot be requeued
            store.apply_ends([Finish(1, JobState.FAILED, Reason.ERROR, "exit code 1", 1, None, T0 + 2)],
                             [Requeue(2, Reason.PREEMPTED, "x", T0 + 2)], [UsageRow(1, T0 + 1, T0 + 2)])
        with pytest.raises(NotFound):
            store.apply_ends([], [], [UsageRow(7, T0, T0 + 1)])
        assert (store.list_jobs(), store.events(), store.active_allocations(), store.usage_rows()) == before

    def test_an_allocation_over_several_nodes_round_trips(self, store):
        [job] = store.add_jobs([make_job(requests=Resources({"cpu": 4000, "nvidia.com/gpu": 12}))], T0)
        spread = Allocation(pieces=[Piece("n0", Resources({"cpu": 2000, "nvidia.com/gpu": 8}), tuple(range(8)), (0, 1)),
                                    Piece("n1", Resources({"cpu": 2000, "nvidia.com/gpu": 4}), (0, 1, 2, 3))])
        store.start_jobs([(job.id, spread)], T0 + 1)
        got = store.get_job(job.id).allocation
        assert got == spread and got.nodes == ("n0", "n1") and got.requests == Resources({"cpu": 4000,
                                                                                           "nvidia.com/gpu": 12})
        assert store.active_allocations() == {job.id: spread}


# SQLite only ------------------------------------------------------------------------------

class TestSqliteStore:
    def test_reopen_keeps_everything(self, tmp_path):
        path = tmp_path / "corral.db"
        with SqliteStore(path) as s:
            s.add_jobs([make_job("a"), make_job("b"), make_job("c")], T0)
            s.start_jobs([(1, alloc(gpus=(0,))), (2, alloc(cores=(1, 2)))], T0 + 1)
            s.finish_job(1, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=T0 + 2)
            s.set_meta("k", "v")
            jobs, events, active = s.list_jobs(), s.events(), s.active_allocations()
        with SqliteStore(path) as s:
            assert s.list_jobs() == jobs
            assert s.events() == events
            assert s.active_allocations() == active == {2: alloc(cores=(1, 2))}
            assert s.get_meta("k") == "v"
            assert s.get_meta("schema_version") == str(SCHEMA_VERSION)

    def test_migrates_a_schema_1_file(self, tmp_path):
        """A database written by the first release opens, keeps its jobs and gains the new columns."""
        from corral.store.sqlite import MIGRATIONS

        path = tmp_path / "old.db"
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for statement in MIGRATIONS[0][1]:
            raw.execute(statement)
        spec = json.dumps(make_job("old").spec.to_dict())
        raw.execute("INSERT INTO jobs (id, name, state, reason, seq, spec_json, submitted_at) "
                    "VALUES (1, 'old', 'Succeeded', 'Completed', 1, ?, ?)", (spec, T0))
        raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        raw.commit()
        raw.close()
        with SqliteStore(path) as s:
            job = s.get_job(1)
            assert job.spec.name == "old" and job.user == "" and job.attempts == 0
            assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
            s.record_usage([UsageRow(1, T0, T0 + 30, cpu_seconds=3.0)])
            assert s.job_usage([1])[1].cpu_seconds == 3.0

    def test_migrates_a_schema_3_file_dropping_the_unused_columns(self, tmp_path):
        from corral.store.sqlite import MIGRATIONS

        path = tmp_path / "v3.db"
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for version, statements in MIGRATIONS:
            if version <= 3:
                for statement in statements:
                    raw.execute(statement)
        spec = json.dumps(make_job("old").spec.to_dict())
        raw.execute("INSERT INTO jobs (id, name, state, reason, seq, spec_json, submitted_at, supervisor_pid) "
                    "VALUES (1, 'old', 'Running', 'Launched', 1, ?, ?, 4242)", (spec, T0))
        raw.execute("INSERT INTO allocations (job_id, node, requests_json, allocated_at) "
                    "VALUES (1, 'n0', '{\"cpu\": 1000}', ?)", (T0,))
        raw.execute("INSERT INTO meta VALUES ('schema_version', '3')")
        raw.commit()
        raw.close()
        with SqliteStore(path) as s:
            job = s.get_job(1)
            assert job.retried == 0 and job.allocation == Allocation("n0", Resources({"cpu": 1000}))
            assert job.served == 0.0
            assert s.get_meta("schema_version") == str(SCHEMA_VERSION) == "6"
        raw = sqlite3.connect(path)
        columns = {row[1] for row in raw.execute("PRAGMA table_info(jobs)")}
        raw.close()
        assert "supervisor_pid" not in columns and "supervisor_start" not in columns and "retried" in columns

    def test_ids_not_reused_after_reopen_and_delete(self, tmp_path):
        path = tmp_path / "corral.db"
        with SqliteStore(path) as s:
            s.add_jobs([make_job() for _ in range(3)], T0)
        # Even if the newest jobs disappear (e.g. a future prune), their ids stay used.
        raw = sqlite3.connect(path)
        with raw:
            raw.execute("PRAGMA foreign_keys = ON")
            raw.execute("DELETE FROM jobs WHERE id >= 2")
        raw.close()
        with SqliteStore(path) as s:
            assert [j.id for j in s.add_jobs([make_job(), make_job()], T0)] == [4, 5]
            assert s.events(2) == []  # cascaded

    def test_wal_mode_and_permissions(self, tmp_path):
        path = tmp_path / "sub" / "corral.db"
        with SqliteStore(path) as s:
            s.add_jobs([make_job()], T0)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            wal = path.with_name("corral.db-wal")
            if wal.exists():
                assert stat.S_IMODE(os.stat(wal).st_mode) == 0o600
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.close()

    def test_second_connection_sees_writes(self, tmp_path):
        path = tmp_path / "corral.db"
        with SqliteStore(path) as a, SqliteStore(path) as b:
            assert b.list_jobs() == []
            [job] = a.add_jobs([make_job("shared")], T0)
            assert b.get_job(job.id) == job
            b.start_jobs([(job.id, alloc())], T0 + 1)
            assert a.get_job(job.id).state is JobState.RUNNING
            with pytest.raises(InvalidTransition):
                a.start_jobs([(job.id, alloc())], T0 + 2)
            assert [j.id for j in b.add_jobs([make_job()], T0)] == [2]

    def test_newer_schema_refused(self, tmp_path):
        path = tmp_path / "corral.db"
        SqliteStore(path).close()
        raw = sqlite3.connect(path)
        with raw:
            raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        raw.close()
        with pytest.raises(CorralError, match="schema version 99"):
            SqliteStore(path)

    def test_survives_sigkill(self, tmp_path):
        path = tmp_path / "corral.db"
        n = 250
        script = textwrap.dedent(f"""
            import sys, time
            from corral.job import Job
            from corral.resources import Resources
            from corral.spec import JobSpec
            from corral.store import SqliteStore
            s = SqliteStore({str(path)!r})
            spec = JobSpec(command=("true",), requests=Resources({{"cpu": 1000}}))
            for i in range({n} // 50):
                s.add_jobs([Job(id=0, spec=spec) for _ in range(50)], 1.0)
            s.start_jobs([(1, __import__("corral.job").job.Allocation(node="n", requests=spec.requests))], 2.0)
            # Leave a write transaction open when the kill comes: it must vanish.
            s._conn.execute("BEGIN IMMEDIATE")
            s._conn.execute("DELETE FROM jobs WHERE id > 1")
            print("ok", flush=True)
            time.sleep(60)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ok"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        with SqliteStore(path, busy_timeout=2) as s:
            jobs = s.list_jobs()
            assert [j.id for j in jobs] == list(range(1, n + 1))
            assert s.get_job(1).state is JobState.RUNNING
            assert set(s.active_allocations()) == {1}
            assert [j.id for j in s.add_jobs([make_job()], T0)] == [n + 1]
