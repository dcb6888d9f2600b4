"""The local executor's part of a launch: what a job's supervisor is asked to do -- its
environment, cores, cgroup with limits and device rules -- without starting anything."""

from __future__ import annotations

import asyncio

import pytest

from corral.capacity.node import make_node
from corral.executors.local import LocalExecutor
from corral.executors.local.cgroups import CgroupSupport, Limits
from corral.executors.local.enforcement import Enforcement
from corral.job import Allocation, Job
from corral.resources import Resources
from corral.spec import build_spec

GiB = 2**30


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def executor(tmp_path, loop, **kw) -> LocalExecutor:
    node = make_node("n1", cores=4, memory=8 * GiB, gpus=4)
    return LocalExecutor(tmp_path / "jobs", lambda *_: None, loop, node=node, **kw)


def job(job_id, spec, **kw) -> Job:
    return Job(id=job_id, spec=spec, seq=job_id, **kw)


def alloc(requests, gpus=(), cores=()) -> Allocation:
    return Allocation("n1", Resources.parse(requests), gpus, cores)


def test_cgroup_limits_deny_the_other_gpus_device_files(tmp_path, loop):
    support = CgroupSupport(version="v1", parents={"memory": "/sys/fs/cgroup/memory/x", "devices": "/d/x"},
                            controllers=("devices", "memory"))
    ex = executor(tmp_path, loop, enforcement=Enforcement("cgroup", support), pids_limit=512,
                  gpu_minors={0: 0, 1: 1, 2: 4, 3: 5})
    assert ex.capabilities.cgroups
    train = job(1, build_spec(["train"], requests={"cpu": "1", "nvidia.com/gpu": 2},
                              limits={"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": 2}))
    first = ex.request_for(train, alloc({"cpu": "1", "gpu": 2}, gpus=(0, 1), cores=(0,)).pieces[0]).cgroup
    assert first["key"] == "job-1" and CgroupSupport.from_dict(first["support"]) == support
    assert Limits.from_dict(first["limits"]) == Limits(memory=GiB, cpu=2000, pids=512,
                                                        deny_devices=("c 195:4", "c 195:5"))
    # A job without GPUs may open none of them.
    prep = job(2, build_spec(["prep"], requests={"cpu": "500m"}))
    second = ex.request_for(prep, alloc({"cpu": "500m"}).pieces[0]).cgroup
    assert Limits.from_dict(second["limits"]).deny_devices == ("c 195:0", "c 195:1", "c 195:4", "c 195:5")
    assert Limits.from_dict(second["limits"]).memory is None


def test_no_cgroup_in_watchdog_mode(tmp_path, loop):
    ex = executor(tmp_path, loop, enforcement=Enforcement("watchdog", why="test"))
    assert not ex.capabilities.cgroups
    request = ex.request_for(job(1, build_spec(["train"], requests={"memory": "1Gi"})), alloc({"memory": "1Gi"}).pieces[0])
    assert request.cgroup is None


def test_environment_cores_and_stop_signal_come_from_the_allocation_and_spec(tmp_path, loop):
    ex = executor(tmp_path, loop, kill_grace=7.0)
    spec = build_spec(["train"], requests={"cpu": "2", "nvidia.com/gpu": 1}, env={"A": "1"}, stop_signal="SIGUSR1",
                      name="t")
    request = ex.request_for(job(3, spec, base_env={"PATH": "/bin", "CORRAL_OLD": "x"}, array_id=3, array_index=0),
                             alloc({"cpu": "2", "gpu": 1}, gpus=(2,), cores=(1, 2)).pieces[0])
    env = request.env
    assert env["CUDA_VISIBLE_DEVICES"] == "2" and env["CORRAL_CPUS"] == "1,2" and env["OMP_NUM_THREADS"] == "2"
    assert env["A"] == "1" and env["PATH"] == "/bin" and "CORRAL_OLD" not in env
    assert (env["CORRAL_ARRAY_ID"], env["CORRAL_ARRAY_INDEX"]) == ("3", "0")
    assert request.cores == (1, 2) and request.kill_grace == 7.0 and request.stop_signal == 10


def test_fractional_jobs_run_on_the_cores_nobody_holds(tmp_path, loop):
    ex = executor(tmp_path, loop)
    ex._allocs[1] = alloc({"cpu": "2"}, cores=(0, 1))           # a running job holds cores 0 and 1
    request = ex.request_for(job(2, build_spec(["x"], requests={"cpu": "500m"})), alloc({"cpu": "500m"}).pieces[0])
    assert request.cores == (2, 3) and request.env["CORRAL_CPUS"] == "2,3"
    assert request.env["CUDA_VISIBLE_DEVICES"] == ""          # no GPU: it sees none


def test_python_output_is_unbuffered_and_the_attempt_is_counted(tmp_path, loop):
    ex = executor(tmp_path, loop)
    spec = build_spec(["train"], requests={"cpu": "1"})
    piece = alloc({"cpu": "1"}, cores=(1,)).pieces[0]
    env = ex.request_for(job(3, spec, attempts=2), piece).env
    assert env["PYTHONUNBUFFERED"] == "1" and env["CORRAL_ATTEMPT"] == "2"
    assert ex.request_for(job(4, spec), piece).env["CORRAL_ATTEMPT"] == "1"
    own = ex.request_for(job(5, spec, base_env={"PYTHONUNBUFFERED": ""}), piece).env    # the submitter's choice
    assert own["PYTHONUNBUFFERED"] == ""


def test_every_process_of_a_job_carries_its_tag(tmp_path, loop):
    ex = executor(tmp_path, loop)
    spec = build_spec(["train"], requests={"cpu": "1"})
    piece = alloc({"cpu": "1"}, cores=(1,)).pieces[0]
    forged = job(6, spec, base_env={"CORRAL_JOB_TAG": "someone-else.1"})          # the submitter's own is dropped
    tag = ex.request_for(forged, piece).env["CORRAL_JOB_TAG"]
    assert tag == f"{ex.tag}.6" and ex.tag.startswith("corral-")
    other = executor(tmp_path / "other", loop)                                   # another home: another tag
    assert other.request_for(job(6, spec), piece).env["CORRAL_JOB_TAG"] != tag
